import Foundation
import Logging
import VigilBPF
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilSeccomp

/// The node daemon's logic: names each container from its cgroup and runtime state, learns each
/// workload (all replicas into one profile) until it is stable, then monitors it — with its known
/// behaviour in the kernel and its seccomp profile in the kubelet's seccomp root.
public final class NodeAgent: EventConsumer {
    public let configuration: AgentConfiguration
    private let probes: KernelProbes
    private let hierarchy: CgroupHierarchy
    private let store: DirectoryProfileStore
    private let stateReader: RuntimeStateReader
    private let resolver = SeccompSyscallResolver()
    private let runtimeExes: [String]
    private let sink: EventSink
    private let node: String
    private let clock: BootClock
    private var line = JSONLineWriter()
    private let logger = Logger(label: "vigil.agent")

    /// Learning (a learner) or monitoring (a detector and its reporter). Stored apart, not in an
    /// enum, so that the per-event mutation happens in place: taking a value out of an enum case
    /// and putting it back would copy the learner's sets on every event.
    private final class Workload {
        let key: String
        var learner: Learner?
        var detector: Detector?
        var reporter: AnomalyReporter?
        let profileID: UInt32
        var cgroups: Set<UInt64> = []
        var lastCheckpoint = Date()
        init(key: String, profileID: UInt32) {
            self.key = key
            self.profileID = profileID
        }
        var isMonitoring: Bool { detector != nil }
    }

    /// cgroup id → (its identity, its workload key); nil: not a pod's container, or filtered out.
    private var containers: [UInt64: (identity: WorkloadIdentity, key: String)?] = [:]
    private var workloads: [String: Workload] = [:]
    private var nextProfileID: UInt32 = 1

    public init(configuration: AgentConfiguration, probes: KernelProbes, hierarchy: CgroupHierarchy, sink: EventSink,
                node: String, clock: BootClock = .system(), runtimeExes: [String] = RuntimeExecutables.onThisHost()) {
        self.configuration = configuration
        self.probes = probes
        self.hierarchy = hierarchy
        self.store = DirectoryProfileStore(root: configuration.profiles)
        self.stateReader = RuntimeStateReader(roots: configuration.runtimeStateRoots)
        self.sink = sink
        self.node = node
        self.clock = clock
        self.runtimeExes = runtimeExes
    }

    /// Watches the configured cgroup roots (those that exist) and everything below them. Returns
    /// the roots watched.
    @discardableResult
    public func start() throws -> [String] {
        var watched: [String] = []
        for root in configuration.cgroupRoots where FileManager.default.fileExists(atPath: hierarchy.directory(of: root)) {
            for (_, id) in try hierarchy.subtree(of: root) { try probes.watch(cgroupID: id) }
            watched.append(root)
        }
        return watched
    }

    /// Anomaly lines emitted so far, by rule, over every workload.
    public var anomaliesEmitted: [AnomalyRule: UInt64] {
        var total: [AnomalyRule: UInt64] = [:]
        for workload in workloads.values {
            for (rule, count) in workload.reporter?.emitted ?? [:] { total[rule, default: 0] += count }
        }
        return total
    }

    public var workloadStates: [String: LearningState] {
        workloads.mapValues { $0.isMonitoring ? .stable : .learning }
    }

    // MARK: events

    public func consume(_ event: RawEvent, workload _: WorkloadIdentity, processes: ProcessTable) {
        guard let (identity, key) = container(event.cgroupID), let workload = workloads[key] else { return }
        if workload.learner != nil {
            workload.learner!.observe(event, now: Date())
        } else if let finding = workload.detector?.check(event) {
            line.removeAll()
            workload.reporter?.report(finding, event: event, workload: identity, processes: processes, into: &line)
            if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
        }
    }

    /// The container in a cgroup, resolved once: its path's layout gives the container id, the
    /// runtime's state gives the pod. New containers join their workload here.
    private func container(_ cgroupID: UInt64) -> (WorkloadIdentity, String)? {
        if let known = containers[cgroupID] { return known }
        guard let path = hierarchy.path(of: cgroupID), let cgroup = ContainerCgroup.parse(path),
              let annotations = stateReader.annotations(containerID: cgroup.containerID),
              let pod = PodIdentity(annotations: annotations) else {
            return nil // maybe not yet: the runtime's state may appear a moment later; ask again
        }
        guard configuration.namespaces.admits(pod.namespace) else {
            containers[cgroupID] = .some(nil)
            return nil
        }
        let key = pod.workloadKey
        let identity = WorkloadIdentity(id: key, namespace: pod.namespace, pod: pod.pod, container: pod.container,
                                        containerID: cgroup.containerID, image: pod.image, cgroup: path)
        containers[cgroupID] = (identity, key)
        let workload = workloads[key] ?? makeWorkload(key)
        workload.cgroups.insert(cgroupID)
        if workload.isMonitoring { try? probes.watch(cgroupID: cgroupID, profileID: workload.profileID) }
        return (identity, key)
    }

    private func makeWorkload(_ key: String) -> Workload {
        let id = nextProfileID
        nextProfileID += 1
        let workload = Workload(key: key, profileID: id)
        let existing: Profile?
        do { existing = try store.latest(workload: key) } catch {
            logger.warning("profile unusable, learning anew", metadata: ["workload": "\(key)", "error": "\(error)"])
            existing = nil
        }
        if let existing, existing.state == .stable {
            startMonitoring(workload, existing)
        } else if let existing {
            workload.learner = Learner(profile: existing, resolver: resolver, runtimeExes: runtimeExes)
        } else {
            let learning = configuration.learning
            workload.learner = .start(workload: key, modelPaths: configuration.modelPaths(for: key), minDuration: learning.minDuration,
                                      quietPeriod: learning.quietPeriod, now: Date(), resolver: resolver, runtimeExes: runtimeExes)
        }
        workloads[key] = workload
        logger.info("new workload", metadata: ["workload": "\(key)", "mode": "\(existing?.state == .stable ? "monitoring" : "learning")"])
        return workload
    }

    private func startMonitoring(_ workload: Workload, _ profile: Profile) {
        let detector = Detector(profile: profile, resolver: resolver, runtimeExes: runtimeExes)
        do {
            try probes.loadKnownBehaviour(profileID: workload.profileID, execHashes: detector.knownExecHashes,
                                          files: detector.knownFiles, destinations: detector.knownDestinations)
        } catch {
            logger.warning("known behaviour stays in userspace", metadata: ["workload": "\(profile.workload)", "error": "\(error)"])
        }
        workload.learner = nil
        workload.detector = detector
        workload.reporter = AnomalyReporter(profile: profile, node: node, clock: clock)
    }

    // MARK: periodic work

    /// About once a second: syscalls from the kernel, end of learning, checkpoints, folded
    /// anomalies. A workload that becomes stable is saved, its seccomp profile installed, its
    /// known behaviour loaded into the kernel, and it is monitored from then on.
    public func tick(now: Date = Date()) throws {
        let bitmaps = probes.syscallBitmaps()
        line.removeAll()
        for workload in workloads.values {
            var seen = CgroupSyscalls(workload: SyscallBitmap())
            for id in workload.cgroups { if let syscalls = bitmaps[id] { seen.formUnion(syscalls) } }
            if workload.learner != nil {
                workload.learner!.observeSyscalls(seen.underFilter(resolver: resolver), now: now)
                if workload.learner!.evaluate(now: now) == .stable {
                    try promote(workload, workload.learner!.profile)
                } else if now.timeIntervalSince(workload.lastCheckpoint) >= configuration.learning.checkpointInterval {
                    try store.save(workload.learner!.snapshot())
                    workload.lastCheckpoint = now
                }
            } else if let detector = workload.detector {
                let unexpected = detector.unexpectedSyscalls(seen.workload, namedBy: resolver)
                let identity = workload.cgroups.lazy.compactMap { self.containers[$0] ?? nil }.first?.identity
                let bootNow = BootClock.nowBootNanoseconds()
                if !unexpected.isEmpty { workload.reporter?.reportSyscalls(unexpected, workload: identity, now: bootNow, into: &line) }
                workload.reporter?.flush(now: bootNow, into: &line)
            }
        }
        if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
        sink.flush()
        forgetRemovedCgroups(Array(bitmaps.keys))
    }

    /// Cgroups the kubelet or the runtime removed — stopped containers, deleted pods — leave the
    /// kernel's watch list and the agent's memory, so both stay as large as the node's live
    /// containers. (A container's syscalls were folded into its workload above, in this tick.)
    private func forgetRemovedCgroups(_ watched: [UInt64]) {
        for id in watched {
            if let path = hierarchy.path(of: id), FileManager.default.fileExists(atPath: hierarchy.directory(of: path)) { continue }
            if let key = containers[id]??.key { workloads[key]?.cgroups.remove(id) }
            containers[id] = nil
            probes.unwatch(cgroupID: id)
            hierarchy.forget(id: id)
        }
    }

    /// Containers the agent knows, for tests and metrics.
    public var knownContainers: Int { containers.values.compactMap { $0 }.count }

    private func promote(_ workload: Workload, _ profile: Profile) throws {
        try store.save(profile)
        let relative = SeccompExport.localhostProfile(workload: profile.workload)
        try AtomicFile.write(try SeccompExport.ociJSON(profile, mode: .enforce) + Data("\n".utf8),
                             to: (configuration.seccompRoot as NSString).appendingPathComponent(relative))
        startMonitoring(workload, profile)
        for id in workload.cgroups { try probes.watch(cgroupID: id, profileID: workload.profileID) }
        writeState(profile, seccompProfile: relative)
        logger.info("profile stable", metadata: [
            "workload": "\(profile.workload)", "version": "\(profile.version)", "containers": "\(profile.learning.containers)",
            "seccomp": "\(relative)",
        ])
    }

    /// Writes every learning profile now (SIGTERM): a restart continues from here.
    public func checkpointAll() throws {
        for workload in workloads.values {
            if let learner = workload.learner { try store.save(learner.snapshot()) }
        }
    }

    private func writeState(_ profile: Profile, seccompProfile: String) {
        var out = JSONLineWriter()
        out.raw("{"); out.key("time"); clock.writeTimestamp(boot: BootClock.nowBootNanoseconds(), to: &out)
        out.raw(","); out.key("node"); out.string(node)
        out.raw(","); out.key("kind"); out.string("profile.state")
        out.raw(","); out.key("profile"); out.raw("{")
        out.key("id"); out.string(profile.workload)
        out.raw(","); out.key("version"); out.unsigned(UInt64(profile.version))
        out.raw(","); out.key("state"); out.string(profile.state.rawValue)
        out.raw(","); out.key("containers"); out.unsigned(UInt64(profile.learning.containers))
        out.raw(","); out.key("events"); out.unsigned(UInt64(profile.learning.events))
        out.raw(","); out.key("seccomp_profile"); out.string(seccompProfile)
        out.raw("}}")
        out.newline()
        out.bytes.withUnsafeBytes { sink.write($0) }
    }
}
