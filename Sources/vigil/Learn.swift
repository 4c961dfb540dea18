import ArgumentParser
import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilSeccomp

struct Learn: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Learn a workload's behaviour profile while it runs.",
        discussion: """
        Runs COMMAND in a cgroup of its own (or watches --cgroup PATH) and folds what it does into the
        workload's profile: the binaries it execs, the files it writes, where it connects, its syscalls.
        The profile is checkpointed every --checkpoint-interval; run learn again to continue a profile
        that is still learning. It becomes stable after --min-duration of learning and a --quiet-period
        with nothing new; the rule is checked while running and when the command exits.
        """
    )

    @Option(name: .long, help: "The workload's name: its profile's key.")
    var workload: String

    @OptionGroup var store: ProfileStoreOptions

    @Option(name: .long, help: "Learn at least this long before the profile may become stable (e.g. 30m, 2h, 0s).")
    var minDuration: DurationArgument = DurationArgument(seconds: 3600)

    @Option(name: .long, help: "And see nothing new for this long (e.g. 10m, 0s).")
    var quietPeriod: DurationArgument = DurationArgument(seconds: 600)

    @Option(name: .long, help: "Write the profile to the store this often while learning.")
    var checkpointInterval: DurationArgument = DurationArgument(seconds: 30)

    @Option(name: .long, help: "A glob of model artifacts (repeatable), e.g. '/models/**': never generalised; an unexpected write there is critical.")
    var modelPath: [String] = []

    @Flag(name: .long, help: "The workload's profile is stable: start a new version from scratch.")
    var relearn = false

    @Flag(name: .long, help: "Stop (and stop the command) as soon as the profile is stable.")
    var untilStable = false

    @OptionGroup var capture: CaptureOptions

    func validate() throws {
        try capture.validate()
        try WorkloadArgument.check(workload)
    }

    func run() throws {
        let status = try reportingFailures { () throws -> Int32 in
            let resolver = SeccompSyscallResolver()
            let runtimeExes = RuntimeExecutables.onThisHost()
            let profileStore = store.store
            let now = Date()
            let learner: Learner
            switch try profileStore.latest(workload: workload) {
            case nil:
                learner = .start(workload: workload, modelPaths: modelPath, minDuration: minDuration.seconds,
                                 quietPeriod: quietPeriod.seconds, now: now, resolver: resolver, runtimeExes: runtimeExes)
            case let profile? where profile.state == .learning:
                var resumed = profile
                resumed.learning.minDuration = minDuration.seconds
                resumed.learning.quietPeriod = quietPeriod.seconds
                if !modelPath.isEmpty { resumed.modelPaths = modelPath }
                learner = Learner(profile: resumed, resolver: resolver, runtimeExes: runtimeExes)
                note("continuing \(workload) v\(profile.version) (learning since \(profile.learning.started))")
            case let profile?:
                guard relearn else {
                    throw CommandFailure("the profile of \(workload) (v\(profile.version)) is stable: monitor it with "
                        + "`vigil monitor --workload \(workload)`, or pass --relearn to learn a new version")
                }
                guard profile.version < ProfileCodec.maximumVersion else {
                    throw CommandFailure("\(workload) is at the highest version (\(profile.version)): no version can follow it")
                }
                learner = .start(workload: workload, modelPaths: modelPath.isEmpty ? profile.modelPaths : modelPath,
                                 minDuration: minDuration.seconds, quietPeriod: quietPeriod.seconds,
                                 version: profile.version + 1, now: now, resolver: resolver, runtimeExes: runtimeExes)
            }

            let hierarchy = try CgroupHierarchy.system()
            let probes = try capture.loadProbes()
            let sink = FileDescriptorSink()
            var settings = WorkloadRegistry.Settings()
            settings.checkpointInterval = checkpointInterval.seconds
            settings.retireAfter = .infinity
            let registry = WorkloadRegistry(kernel: probes, sink: sink, node: capture.nodeName, resolver: resolver, runtimeExes: runtimeExes,
                                            settings: settings, writer: ProfileWriter(store: profileStore)) { _ in (.learn(learner), []) }
            registry.workload(workload)
            let pipeline = try EventPipeline(kernel: probes, directory: CommandDirectory(hierarchy: hierarchy, workload: workload),
                                             consumer: registry, sink: sink, node: capture.nodeName)
            var loop = CaptureLoop(options: capture, hierarchy: hierarchy, pipeline: pipeline)
            loop.tick = {
                registry.tick()
                return untilStable && registry.workloadStates[workload] == .stable
            }
            let status = try loop.run()
            registry.tick()
            registry.checkpointAll()
            guard let learned = registry.workloads[workload], let profile = learned.snapshot else {
                throw CommandFailure("\(workload): nothing was learned")
            }
            let file = profileStore.path(workload: workload, version: profile.version)
            // The seccomp profile beside it (OCI JSON, enforce): `vigil seccomp install` puts it where the kubelet reads it.
            let seccompFile = String(file.dropLast(".yaml".count)) + ".seccomp.json"
            try AtomicFile.write(try SeccompExport.ociJSON(profile, mode: .enforce), to: seccompFile)
            if let cap = learned.capReached { note("learning ended early: the profile reached its limit of \(cap)") }
            note("\(workload) v\(profile.version): \(profile.state.rawValue); \(profile.learning.events) events, "
                + "\(profile.execs.count) execs, \(profile.fileWrites.count) file-write rules, \(profile.egress.count) destinations, "
                + "\(profile.syscalls.x86_64.count + profile.syscalls.i386.count + profile.syscalls.x32.count) syscalls -> \(file), \(seccompFile)")
            return status
        }
        throw ExitCode(status)
    }
}

func note(_ message: String) {
    FileHandle.standardError.write(Data("vigil: \(message)\n".utf8))
}
