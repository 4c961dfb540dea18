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
        unexpected-file-write, unexpected-egress, unexpected-syscall, and model-artifact-write (critical).
        Repeats fold into one line per 10 s (count, first_seen, last_seen); lines are rate limited per
        workload (agent.throttle says when). Behaviour in the profile is dropped in the kernel.
        """
    )

    @Option(name: .long, help: "The workload whose profile to check against.")
    var workload: String

    @OptionGroup var store: ProfileStoreOptions

    @Flag(name: .long, help: "Do not load the profile into the kernel: every event reaches userspace (for measuring).")
    var noKernelSuppression = false

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
            if profile.state == .learning {
                note("the profile of \(workload) (v\(profile.version)) is still learning: checking against what it has so far")
            }
            var settings = AnomalyReporter.Settings()
            settings.perSecond = rateLimit
            settings.burst = burst
            let hierarchy = try CgroupHierarchy.system()
            let probes = try capture.loadProbes()
            let sink = FileDescriptorSink()
            let consumer = MonitoringConsumer(profile: profile, resolver: SeccompSyscallResolver(), node: capture.nodeName,
                                              sink: sink, settings: settings)
            let profileID: UInt32 = noKernelSuppression ? 0 : 1
            if profileID != 0 { try consumer.loadIntoKernel(probes, profileID: profileID) }
            let session = try CaptureSession(probes: probes, hierarchy: hierarchy, node: capture.nodeName, sink: sink,
                                             consumer: consumer)
            var loop = CaptureLoop(options: capture, hierarchy: hierarchy, probes: probes, session: session)
            loop.profileID = profileID
            loop.tick = {
                consumer.tick(probes: probes)
                return false
            }
            let status = try loop.run()
            consumer.tick(probes: probes)
            let suppressed = probes.suppressedCounts().values.reduce(0, +)
            let anomalies = consumer.findings.map { "\($0.key.rawValue): \($0.value)" }.sorted().joined(separator: ", ")
            note("\(workload) v\(profile.version): \(consumer.checked) events checked in userspace, \(suppressed) known events "
                + "dropped in the kernel; findings: \(anomalies.isEmpty ? "none" : anomalies)")
            return status
        }
        throw ExitCode(status)
    }
}
