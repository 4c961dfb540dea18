import ArgumentParser
import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilSeccomp

struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report a workload's departures from its profile as anomaly events (JSON lines).",
        discussion: """
        Loads the workload's newest profile, runs COMMAND in a cgroup of its own (or watches --cgroup PATH),
        and prints an `anomaly` line for each behaviour the profile lacks: unexpected-exec,
        unexpected-file-write, unexpected-egress, unexpected-syscall, and model-artifact-write and
        metadata-service-access (the cloud's instance metadata service, 169.254.169.254…) as critical.
        Repeats fold into one line per 10 s (count, first_seen, last_seen); lines are rate limited per
        workload (agent.throttle says when). Behaviour in the profile is dropped in the kernel.
        Each exec or egress anomaly says what --protect would have done (`would_action`).

        With --protect (a stable profile only): an exec outside the profile is killed before the program
        runs (the command itself is not: it is the workload's entrypoint), a connect or datagram to a
        destination outside it fails with EPERM; the anomaly says so (`action`: killed, denied). When
        vigil stops, so does enforcement.
        """
    )

    @Option(name: .long, help: "The workload whose profile to check against.")
    var workload: String

    @OptionGroup var store: ProfileStoreOptions

    @Flag(name: .long, help: "Do not load the profile into the kernel: every event reaches userspace (for measuring).")
    var noKernelSuppression = false

    @Flag(name: .long, help: "Protect mode: kill execs and refuse egress the (stable) profile lacks.")
    var protect = false

    @Option(name: .long, help: "Anomaly lines per second per workload once the burst is spent.")
    var rateLimit: Double = 5

    @Option(name: .long, help: "Anomaly lines allowed in a burst before rate limiting starts.")
    var burst: Double = 20

    @OptionGroup var capture: CaptureOptions

    func validate() throws {
        try capture.validate()
        try WorkloadArgument.check(workload)
        guard rateLimit > 0, rateLimit.isFinite, burst >= 1, burst.isFinite, burst <= 1_000_000 else {
            throw ValidationError("--rate-limit must be a number above 0 and --burst from 1 to 1000000")
        }
    }

    func run() throws {
        let status = try reportingFailures { () throws -> Int32 in
            let profile = try store.store.requireLatest(workload)
            if protect && profile.state != .stable {
                throw CommandFailure("--protect needs a stable profile: \(workload) v\(profile.version) is still learning "
                    + "(learn until stable, or `vigil profile promote`)")
            }
            if profile.state == .learning {
                note("the profile of \(workload) (v\(profile.version)) is still learning: checking against what it has so far")
            }
            var settings = WorkloadRegistry.Settings()
            settings.reporter.perSecond = rateLimit
            settings.reporter.burst = burst
            settings.suppressInKernel = !noKernelSuppression
            settings.retireAfter = .infinity
            let protect = self.protect
            settings.protect = { _ in protect }
            let hierarchy = try CgroupHierarchy.system()
            let probes = try capture.loadProbes()
            let sink = FileDescriptorSink()
            let registry = WorkloadRegistry(kernel: probes, sink: sink, node: capture.nodeName, resolver: SeccompSyscallResolver(),
                                            runtimeExes: RuntimeExecutables.onThisHost(), settings: settings,
                                            writer: ProfileWriter(store: store.store)) { _ in (.monitor(profile), []) }
            let monitored = registry.workload(workload) // loads its known behaviour into the kernel under its profile id
            let directory = CommandDirectory(hierarchy: hierarchy, workload: workload)
            let pipeline = try EventPipeline(kernel: probes, directory: directory, consumer: registry, sink: sink, node: capture.nodeName)
            var loop = CaptureLoop(options: capture, hierarchy: hierarchy, pipeline: pipeline)
            loop.profileID = noKernelSuppression ? 0 : monitored.profileID
            if protect {
                loop.watched = { id, cgroupDirectory in
                    try probes.guardEgress(cgroupDirectory: cgroupDirectory)
                    guard case .container(let container) = directory.lookup(id) else { return }
                    registry.containerNamed(id, container: container)
                    guard monitored.protectedContainers.contains(id) else {
                        throw CommandFailure("protect mode could not be set up for \(cgroupDirectory) (see the log above)")
                    }
                }
            }
            loop.tick = {
                registry.tick()
                return false
            }
            let status = try loop.run()
            registry.tick()
            let suppressed = probes.suppressedCounts().values.reduce(0, +)
            let anomalies = registry.anomaliesEmitted.map { "\($0.key.rawValue): \($0.value)" }.sorted().joined(separator: ", ")
            note("\(workload) v\(profile.version): \(registry.checkedEvents) events checked in userspace, \(suppressed) known events "
                + "dropped in the kernel; anomaly lines: \(anomalies.isEmpty ? "none" : anomalies)")
            return status
        }
        throw ExitCode(status)
    }
}
