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
    private let writer: ProfileWriter
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
        var learner: Learner?
        var detector: Detector?
        var reporter: AnomalyReporter?
        let profileID: UInt32
        var cgroups: Set<UInt64> = []
        var lastCheckpoint = Date()
        /// A stable profile whose save failed: saved again at the next checkpoint time.
        var unsaved: Profile?
        /// How its containers were started: what its seccomp profile must let run. A nil member:
        /// a container whose runtime Vigil could not tell.
        var runtimes: Set<ObservedRuntime?> = []
        /// The runtimes its installed seccomp profile was checked against.
        var seccompCheckedFor: Set<ObservedRuntime?> = []
        init(profileID: UInt32) {
            self.profileID = profileID
        }
        var isMonitoring: Bool { detector != nil }
    }

    /// What the agent decided about a cgroup, once: a container of a watched workload, or not one
    /// to watch (not a container, a filtered namespace or label, a pod that no longer exists).
    private enum Resolution {
        case watched(identity: WorkloadIdentity, key: String)
        case ignored
    }

    /// A container as its cgroup and its runtime name it, before the API server's word.
    private struct NamedContainer {
        var pod: PodIdentity
        let cgroup: ContainerCgroup
        let path: String
        let runtime: ObservedRuntime?
    }

    private var containers: [UInt64: Resolution] = [:]
    /// Containers waiting for their pod's metadata (the API server did not answer).
    private var awaitingMetadata: [UInt64: NamedContainer] = [:]
    /// No lookup before then: the last one failed.
    private var lookupsPausedUntil = Date.distantPast
    /// Ignored containers, no longer in the kernel's watch list: swept like the watched ones.
    private var unwatchedContainers: Set<UInt64> = []
    private let podMetadata: PodMetadataSource?
    /// Events of containers not yet named (their runtime state or their pod's metadata still
    /// missing), by kind: counted as drops at stage `unidentified`.
    public private(set) var drops = DropCounts()
    /// Lookups the API server did not answer, for the metrics.
    public private(set) var podLookupFailures: UInt64 = 0
    private var workloads: [String: Workload] = [:]
    private var nextProfileID: UInt32 = 1

    public init(configuration: AgentConfiguration, probes: KernelProbes, hierarchy: CgroupHierarchy, sink: EventSink,
                node: String, podMetadata: PodMetadataSource? = nil, clock: BootClock = .system(),
                runtimeExes: [String] = RuntimeExecutables.onThisHost()) {
        self.configuration = configuration
        self.probes = probes
        self.hierarchy = hierarchy
        self.store = DirectoryProfileStore(root: configuration.profiles)
        self.writer = ProfileWriter(store: store)
        self.stateReader = RuntimeStateReader(roots: configuration.runtimeStateRoots)
        self.sink = sink
        self.node = node
        self.clock = clock
        self.runtimeExes = runtimeExes
        self.podMetadata = podMetadata
    }

    /// The configured cgroup roots watched so far, and those that do not exist yet (a node
    /// whose kubelet has not created them): checked again at every tick.
    public private(set) var watchedRoots: [String] = []
    public private(set) var awaitedRoots: [String] = []

    /// Ready once a root is watched: before, no pod can be seen.
    public var isReady: Bool { !watchedRoots.isEmpty }

    /// Watches the configured cgroup roots that exist, and everything below them; the others
    /// are watched as soon as they appear. Returns the roots watched.
    @discardableResult
    public func start() throws -> [String] {
        awaitedRoots = configuration.cgroupRoots
        try watchAppearedRoots()
        return watchedRoots
    }

    /// Returns the roots that appeared and are now watched.
    @discardableResult
    private func watchAppearedRoots() throws -> [String] {
        var appeared: [String] = []
        for root in awaitedRoots where FileManager.default.fileExists(atPath: hierarchy.directory(of: root)) {
            try hierarchy.forEachInSubtree(of: root) { _, id in try probes.watch(cgroupID: id) }
            appeared.append(root)
        }
        awaitedRoots.removeAll { appeared.contains($0) }
        watchedRoots += appeared
        return appeared
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
        guard let resolution = container(event.cgroupID) else {
            drops[.unidentified, event.kind] += 1
            return
        }
        guard case let .watched(identity, key) = resolution, let workload = workloads[key] else { return }
        let digest = event.kind == .exec ? processes[event.pid]?.execDigest : nil
        if workload.learner != nil {
            workload.learner!.observe(event, now: Date(), execDigest: digest)
        } else if let finding = workload.detector?.check(event, execDigest: digest) {
            line.removeAll()
            workload.reporter?.report(finding, event: event, workload: identity, processes: processes, into: &line)
            if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
        }
    }

    /// The container in a cgroup, resolved once: its path's layout gives the container id, the
    /// runtime's state gives the pod, the API server (if configured) its labels and owner. New
    /// containers join their workload here. Nil: not known yet, ask again at the next event.
    private func container(_ cgroupID: UInt64) -> Resolution? {
        if let known = containers[cgroupID] { return known }
        if let waiting = awaitingMetadata[cgroupID] { return lookUp(cgroupID, waiting) }
        guard let path = hierarchy.path(of: cgroupID) else { return nil }
        guard let cgroup = ContainerCgroup.parse(path) else { return remember(cgroupID, .ignored) }
        // The runtime writes its state before it starts the entrypoint; until then, ask again.
        guard let state = stateReader.state(containerID: cgroup.containerID) else { return nil }
        guard let pod = PodIdentity(annotations: state.annotations), configuration.namespaces.admits(pod.namespace) else {
            return ignore(container: cgroupID)
        }
        let named = NamedContainer(pod: pod, cgroup: cgroup, path: path, runtime: state.runtime)
        return podMetadata == nil ? join(cgroupID, named) : lookUp(cgroupID, named)
    }

    /// Asks the API server for the container's pod: its labels decide whether it is watched, its
    /// controller names the workload. After a failure no lookup is tried for `retryInterval`, so
    /// an unreachable API server holds the loop one timeout per interval, not one per container.
    private func lookUp(_ cgroupID: UInt64, _ container: NamedContainer) -> Resolution? {
        guard let podMetadata, Date() >= lookupsPausedUntil else {
            awaitingMetadata[cgroupID] = container
            return nil
        }
        let metadata: PodMetadata?
        do {
            metadata = try podMetadata.pod(namespace: container.pod.namespace, name: container.pod.pod, uid: container.cgroup.podUID)
        } catch {
            podLookupFailures += 1
            lookupsPausedUntil = Date().addingTimeInterval(configuration.kubernetes.retryInterval)
            awaitingMetadata[cgroupID] = container
            logger.warning("pod metadata unavailable; events of pods not yet named are dropped (and counted) until it is", metadata: [
                "pod": "\(container.pod.namespace)/\(container.pod.pod)", "error": "\(error)",
                "retry": "\(configuration.kubernetes.retryInterval)s",
            ])
            return nil
        }
        awaitingMetadata[cgroupID] = nil
        guard let metadata, configuration.podSelector.matches(metadata.labels) else { return ignore(container: cgroupID) }
        var named = container
        named.pod.owner = metadata.owner
        return join(cgroupID, named)
    }

    private func join(_ cgroupID: UInt64, _ container: NamedContainer) -> Resolution {
        let pod = container.pod
        let key = pod.workloadKey
        let identity = WorkloadIdentity(id: key, namespace: pod.namespace, pod: pod.pod, container: pod.container,
                                        containerID: container.cgroup.containerID, image: pod.image, cgroup: container.path)
        let workload = workloads[key] ?? makeWorkload(key)
        workload.cgroups.insert(cgroupID)
        workload.runtimes.insert(container.runtime)
        if let runtime = container.runtime { workload.learner?.observeRuntime(runtime) }
        if let detector = workload.detector {
            try? probes.watch(cgroupID: cgroupID, profileID: workload.profileID)
            // A stable profile from the store, or a container started differently from those it
            // learned from (allowPrivilegeEscalation changed): its filter must let it start.
            if !workload.seccompCheckedFor.contains(container.runtime) { installSeccomp(workload, detector.profile) }
        }
        return remember(cgroupID, .watched(identity: identity, key: key))
    }

    private func remember(_ cgroupID: UInt64, _ resolution: Resolution) -> Resolution {
        containers[cgroupID] = resolution
        return resolution
    }

    /// A container not to watch leaves the kernel's watch list: its events cost nothing from now
    /// on. (Other cgroups that are not containers stay: the kernel watches what is created below
    /// a watched cgroup, and pods' containers are created below their pod's cgroup.)
    private func ignore(container cgroupID: UInt64) -> Resolution {
        probes.unwatch(cgroupID: cgroupID)
        unwatchedContainers.insert(cgroupID)
        return remember(cgroupID, .ignored)
    }

    private func makeWorkload(_ key: String) -> Workload {
        let id = nextProfileID
        nextProfileID += 1
        let workload = Workload(profileID: id)
        workloads[key] = workload
        // The newest version that loads: a corrupt newer file is reported, and never written over.
        var usable = UsableProfile(profile: nil, unusable: [], nextVersion: 1)
        do { usable = try store.latestUsable(workload: key) } catch {
            problem(key, version: nil, "the profile store cannot be read: \(error)")
        }
        for broken in usable.unusable {
            problem(key, version: nil, "\(broken); \(usable.profile.map { "using v\($0.version), the newest that loads" } ?? "learning anew as v\(usable.nextVersion)")")
        }
        let learning = configuration.learning
        switch usable.profile {
        case let existing? where existing.state == .stable:
            startMonitoring(workload, existing)
        case let existing?:
            workload.learner = Learner(profile: existing, resolver: resolver, runtimeExes: runtimeExes)
        case nil:
            workload.learner = .start(workload: key, modelPaths: configuration.modelPaths(for: key), minDuration: learning.minDuration,
                                      quietPeriod: learning.quietPeriod, version: usable.nextVersion, now: Date(), resolver: resolver,
                                      runtimeExes: runtimeExes)
        }
        logger.info("new workload", metadata: ["workload": "\(key)", "mode": "\(workload.isMonitoring ? "monitoring" : "learning")"])
        return workload
    }

    private func startMonitoring(_ workload: Workload, _ profile: Profile) {
        let detector = Detector(profile: profile, resolver: resolver, runtimeExes: runtimeExes)
        do {
            try probes.loadKnownBehaviour(of: detector, profileID: workload.profileID)
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
        takeWriterOutcomes(now: now)
        for root in try watchAppearedRoots() {
            logger.info("cgroup root appeared: watching it", metadata: ["root": "\(root)", "still awaited": "\(awaitedRoots)"])
        }
        let bitmaps = probes.syscallBitmaps()
        // Containers that ran before they were watched (the agent restarted, their root appeared
        // later) or have sent no event yet are named here, so an idle one is learned too. (Only
        // cgroups where something ran: the pod and QoS levels above them never hold a process.)
        for (id, syscalls) in bitmaps where containers[id] == nil && awaitingMetadata[id] == nil && !syscalls.workload.isEmpty {
            _ = container(id)
        }
        line.removeAll()
        for workload in workloads.values {
            var seen = CgroupSyscalls(workload: SyscallBitmap())
            for id in workload.cgroups { if let syscalls = bitmaps[id] { seen.formUnion(syscalls) } }
            if workload.learner != nil {
                workload.learner!.observeSyscalls(seen, now: now)
                if let cap = workload.learner!.capReached {
                    // A workload that grows past a limit is broken or hostile: its learning ends
                    // here, and whatever it does beyond the profile is an anomaly from now on.
                    workload.learner!.stabilize(now: now)
                    problem(workload.learner!.profile.workload, version: workload.learner!.profile.version,
                            "learning ended early: the profile reached its limit of \(cap); it is monitored from now on")
                }
                if workload.learner!.evaluate(now: now) == .stable {
                    promote(workload, workload.learner!.profile)
                } else if now.timeIntervalSince(workload.lastCheckpoint) >= configuration.learning.checkpointInterval {
                    writer.checkpoint(workload.learner!)
                    workload.lastCheckpoint = now
                }
            } else if let detector = workload.detector {
                if let unsaved = workload.unsaved, now.timeIntervalSince(workload.lastCheckpoint) >= configuration.learning.checkpointInterval {
                    workload.unsaved = nil
                    workload.lastCheckpoint = now
                    writer.promote(unsaved)
                }
                let unexpected = detector.unexpectedSyscalls(seen.workload, namedBy: resolver)
                let identity = workload.cgroups.lazy.compactMap { id -> WorkloadIdentity? in
                    if case let .watched(identity, _) = self.containers[id] { return identity }
                    return nil
                }.first
                let bootNow = BootClock.nowBootNanoseconds()
                if !unexpected.isEmpty { workload.reporter?.reportSyscalls(unexpected, workload: identity, now: bootNow, into: &line) }
                workload.reporter?.flush(now: bootNow, into: &line)
            }
        }
        if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
        sink.flush()
        forgetRemovedCgroups(Array(bitmaps.keys) + unwatchedContainers)
    }

    /// Cgroups the kubelet or the runtime removed — stopped containers, deleted pods — leave the
    /// kernel's watch list and the agent's memory, so both stay as large as the node's live
    /// containers. (A container's syscalls were folded into its workload above, in this tick.)
    private func forgetRemovedCgroups(_ watched: [UInt64]) {
        for id in watched {
            if let path = hierarchy.path(of: id), FileManager.default.fileExists(atPath: hierarchy.directory(of: path)) { continue }
            if case let .watched(_, key) = containers[id], let workload = workloads[key] {
                workload.cgroups.remove(id)
                workload.learner?.observeContainerStop()
            }
            containers[id] = nil
            awaitingMetadata[id] = nil
            unwatchedContainers.remove(id)
            probes.unwatch(cgroupID: id)
            hierarchy.forget(id: id)
        }
    }

    /// Containers the agent knows, for tests and metrics.
    public var knownContainers: Int {
        containers.values.filter { if case .watched = $0 { return true } else { return false } }.count
    }

    /// Every cgroup the agent holds state for (watched, ignored or awaiting a name): what it must
    /// forget when the cgroups go.
    public var rememberedCgroups: Int { containers.count + awaitingMetadata.count }

    /// A workload's profile became stable: it is saved (by the writer), monitored from now on
    /// (its known behaviour loaded into the kernel), and its seccomp profile installed.
    private func promote(_ workload: Workload, _ profile: Profile) {
        writer.promote(profile)
        if let beyond = workload.learner?.runtimeCallsBeyondAllowance, !beyond.isEmpty {
            logger.warning("the container runtime made calls after installing the seccomp filter that no measured allowance lists; they are allowed in this profile", metadata: [
                "workload": "\(profile.workload)", "calls": "\(beyond.joined(separator: ","))",
            ])
        }
        startMonitoring(workload, profile)
        for id in workload.cgroups { try? probes.watch(cgroupID: id, profileID: workload.profileID) }
        logger.info("profile stable", metadata: [
            "workload": "\(profile.workload)", "version": "\(profile.version)", "containers": "\(profile.learning.containers)",
            "stopped": "\(profile.learning.stoppedContainers ?? 0)",
        ])
        installSeccomp(workload, profile)
    }

    /// What the writer did since the last tick: failures stay with their workload (a log line, a
    /// `profile.state` line; a stable profile is saved again later), never stop the agent.
    private func takeWriterOutcomes(now: Date) {
        for outcome in writer.takeOutcomes() {
            switch outcome {
            case .saved, .promoted:
                break
            case let .failed(key, error):
                writeFailures += 1
                problem(key, version: nil, "could not be saved: \(error)")
                if let workload = workloads[key], let profile = workload.detector?.profile {
                    workload.unsaved = profile
                    workload.lastCheckpoint = now
                }
            }
        }
    }

    /// Waits until every profile handed to the writer is on disk (tests, exit).
    public func waitForWrites() {
        writer.drain()
        takeWriterOutcomes(now: Date())
    }

    /// Profiles the writer could not save, for the metrics.
    public private(set) var writeFailures: UInt64 = 0

    /// Installs the profile's seccomp filter for the kubelet — only once it is sure to start the
    /// workload's containers under the runtimes (and no_new_privs modes) they were seen with: a
    /// filter that lacks what the runtime calls after installing it makes every new pod fail.
    /// A refusal is a `profile.state` line and a log line saying why; monitoring goes on.
    private func installSeccomp(_ workload: Workload, _ profile: Profile) {
        let runtimes = workload.runtimes.union((profile.learning.runtimes ?? []).map(Optional.some))
        workload.seccompCheckedFor.formUnion(runtimes)
        var problems: [String] = []
        for runtime in runtimes.sorted(by: { ($0?.description ?? "") < ($1?.description ?? "") }) {
            guard let runtime else {
                problems.append("a container's runtime could not be told from its state (only runc's state.json is read)")
                continue
            }
            switch SeccompPolicy.missingRuntimeCalls(profile, for: runtime) {
            case nil: problems.append("no allowance was measured for \(runtime)")
            case let missing? where !missing.isEmpty:
                problems.append("\(runtime) needs \(missing.joined(separator: ", ")) after installing the filter and the profile lacks them")
            default: break
            }
        }
        guard problems.isEmpty else {
            let reason = problems.joined(separator: "; ") + ": not installed, since the filter would keep the pods from starting "
                + "(relearn the workload with this vigil to get today's allowance)"
            writeState(profile, seccomp: .refused(reason))
            logger.error("seccomp profile refused", metadata: ["workload": "\(profile.workload)", "version": "\(profile.version)", "reason": "\(reason)"])
            return
        }
        do {
            let relative = try SeccompExport.install(profile, mode: .enforce, seccompRoot: configuration.seccompRoot).localhostProfile
            writeState(profile, seccomp: .installed(relative))
            logger.info("seccomp profile installed", metadata: ["workload": "\(profile.workload)", "localhostProfile": "\(relative)"])
        } catch {
            writeState(profile, seccomp: .refused("could not be written: \(error)"))
            logger.error("seccomp profile not written", metadata: ["workload": "\(profile.workload)", "error": "\(error)"])
        }
    }

    /// Writes every learning profile now and waits for the writer (SIGTERM): a restart continues
    /// from here.
    public func checkpointAll() {
        for workload in workloads.values {
            if let learner = workload.learner { writer.checkpoint(learner) }
            if let unsaved = workload.unsaved { writer.promote(unsaved) }
        }
        writer.drain()
        takeWriterOutcomes(now: Date())
        sink.flush()
    }

    private enum SeccompOutcome {
        case installed(String)
        case refused(String)
    }

    /// Something is wrong with one workload's profile: a log line and a `profile.state` line
    /// with `problem`; the agent goes on with the others.
    private func problem(_ workload: String, version: Int?, _ text: String) {
        logger.error("profile problem", metadata: ["workload": "\(workload)", "problem": "\(text)"])
        var out = JSONLineWriter()
        out.raw("{"); out.key("time"); clock.writeTimestamp(boot: BootClock.nowBootNanoseconds(), to: &out)
        out.raw(","); out.key("node"); out.string(node)
        out.raw(","); out.key("kind"); out.string("profile.state")
        out.raw(","); out.key("profile"); out.raw("{")
        out.key("id"); out.string(workload)
        if let version { out.raw(","); out.key("version"); out.unsigned(UInt64(version)) }
        out.raw(","); out.key("problem"); out.string(text)
        out.raw("}}")
        out.newline()
        out.bytes.withUnsafeBytes { sink.write($0) }
    }

    private func writeState(_ profile: Profile, seccomp: SeccompOutcome) {
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
        out.raw(","); out.key("stopped_containers"); out.unsigned(UInt64(profile.learning.stoppedContainers ?? 0))
        switch seccomp {
        case .installed(let relative):
            out.raw(","); out.key("seccomp"); out.string("installed")
            out.raw(","); out.key("seccomp_profile"); out.string(relative)
        case .refused(let reason):
            out.raw(","); out.key("seccomp"); out.string("refused")
            out.raw(","); out.key("reason"); out.string(reason)
        }
        out.raw("}}")
        out.newline()
        out.bytes.withUnsafeBytes { sink.write($0) }
    }
}
