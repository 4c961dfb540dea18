import Foundation
import Logging
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilSeccomp

/// The node daemon: watches the pods' cgroup roots, names each container off the event path
/// (`PodDirectory`), and hands its events to its workload (`WorkloadRegistry`): all replicas
/// learn one profile until it is stable, then are monitored — with their known behaviour in the
/// kernel and their seccomp profile in the kubelet's seccomp root.
public final class NodeAgent {
    public let configuration: AgentConfiguration
    public let kernel: KernelFacade
    public let pipeline: EventPipeline
    public let registry: WorkloadRegistry
    public let directory: PodDirectory
    /// With `cluster.enabled`: this node's learning merged into the cluster's profiles, and those
    /// profiles installed here.
    public let cluster: ClusterSync?
    private var nextClusterRound = Date.distantPast
    /// The cluster rounds whose results the loop has looked at.
    private var roundsSeen: UInt64 = 0
    private let hierarchy: CgroupHierarchy
    private let store: DirectoryProfileStore
    private let logger = Logger(label: "vigil.agent")

    /// The configured cgroup roots watched so far, and those that do not exist yet (a node whose
    /// kubelet has not made them): looked for again at every tick.
    public private(set) var watchedRoots: [String] = []
    public private(set) var awaitedRoots: [String] = []

    public init(configuration: AgentConfiguration, kernel: KernelFacade, hierarchy: CgroupHierarchy, sink: EventSink, node: String,
                podMetadata: PodMetadataSource? = nil, clusterProfiles: ClusterProfileStore? = nil, clock: BootClock = .system(),
                runtimeExes: [String] = RuntimeExecutables.onThisHost(), resolver: SyscallResolver = SeccompSyscallResolver()) throws {
        self.configuration = configuration
        self.kernel = kernel
        self.hierarchy = hierarchy
        let store = DirectoryProfileStore(root: configuration.profiles)
        self.store = store
        var directorySettings = PodDirectory.Settings()
        directorySettings.namespaces = configuration.namespaces
        directorySettings.podSelector = configuration.podSelector
        directorySettings.retryInterval = configuration.kubernetes.retryInterval
        directorySettings.servingTrigger = configuration.serving.trigger
        directorySettings.readyPollInterval = configuration.serving.readyPollInterval
        directory = PodDirectory(hierarchy: hierarchy, stateRoots: configuration.runtimeStateRoots, podMetadata: podMetadata,
                                 settings: directorySettings)
        let cluster = clusterProfiles.map { ClusterSync(store: $0, node: node, seccompRoot: configuration.seccompRoot) }
        self.cluster = cluster
        var settings = WorkloadRegistry.Settings()
        settings.declaredModelDigests = { [configuration] in configuration.modelDigests(for: $0) }
        settings.checkpointInterval = configuration.learning.checkpointInterval
        settings.retireAfter = configuration.learning.retireAfter
        settings.promoteLocally = cluster == nil
        settings.servingTrigger = configuration.serving.trigger
        settings.protect = { [configuration] in configuration.protects($0) }
        settings.metadataServices = configuration.metadataServiceNetworks
        let learning = configuration.learning
        registry = WorkloadRegistry(
            kernel: kernel, sink: sink, node: node, clock: clock, resolver: resolver, runtimeExes: runtimeExes, settings: settings,
            writer: ProfileWriter(store: store), installer: SeccompInstaller(seccompRoot: configuration.seccompRoot)
        ) { key in
            // The newest version that loads: a corrupt newer file is reported, and never written over.
            var usable = UsableProfile(profile: nil, unusable: [], nextVersion: 1)
            var problems: [String] = []
            do { usable = try store.latestUsable(workload: key) } catch {
                problems.append("the profile store cannot be read: \(error)")
            }
            for broken in usable.unusable {
                problems.append("\(broken); " + (usable.profile.map { "using v\($0.version), the newest that loads" }
                    ?? "learning anew as v\(usable.nextVersion)"))
            }
            // The cluster's profile first: stable there means monitored here from the first
            // container on; still learning there, and nothing here (a node that joins, a store
            // lost), learning resumes from what the cluster learned so far.
            if let shared = cluster?.cached(key)?.profile, shared.version >= (usable.profile?.version ?? 0) {
                if shared.state == .stable { return (.monitor(shared), problems) }
                if usable.profile?.version != shared.version {
                    return (.learn(Learner(profile: shared, resolver: resolver, runtimeExes: runtimeExes)), problems)
                }
            }
            switch usable.profile {
            case let existing? where existing.state == .stable:
                return (.monitor(existing), problems)
            case let existing?:
                return (.learn(Learner(profile: existing, resolver: resolver, runtimeExes: runtimeExes)), problems)
            case nil:
                return (.learn(.start(workload: key, modelPaths: configuration.modelPaths(for: key), minDuration: learning.minDuration,
                                      quietPeriod: learning.quietPeriod, version: usable.nextVersion, now: Date(), resolver: resolver,
                                      runtimeExes: runtimeExes)), problems)
            }
        }
        pipeline = try EventPipeline(kernel: kernel, directory: directory, consumer: registry, sink: sink, node: node, clock: clock)
    }

    /// Ready once a root is watched: before, no pod can be seen.
    public var isReady: Bool { !watchedRoots.isEmpty }

    /// Watches the configured cgroup roots that exist, and everything below them, and starts
    /// naming the containers already there; the other roots are watched as soon as they appear.
    @discardableResult
    public func start() throws -> [String] {
        // A node that joins late knows the cluster's stable profiles before its first container.
        cluster?.runRound()
        nextClusterRound = Date().addingTimeInterval(clusterInterval())
        awaitedRoots = configuration.cgroupRoots
        try watchAppearedRoots()
        return watchedRoots
    }

    @discardableResult
    private func watchAppearedRoots() throws -> [String] {
        var appeared: [String] = []
        for root in awaitedRoots where FileManager.default.fileExists(atPath: hierarchy.directory(of: root)) {
            do {
                try kernel.guardEgress(cgroupDirectory: hierarchy.directory(of: root))
            } catch {
                // Protect mode needs it; monitoring does not.
                guard configuration.protect.isEmpty else { throw error }
                registry.egressGuardUnavailable = "\(error)"
                logger.warning("the egress guard could not be attached: pods asking for protect mode stay monitored", metadata: ["error": "\(error)"])
            }
            try hierarchy.forEachInSubtree(of: root) { _, id in
                try kernel.watch(cgroupID: id)
                _ = directory.lookup(id) // containers that ran before: named now, not at their next event
            }
            appeared.append(root)
        }
        awaitedRoots.removeAll { appeared.contains($0) }
        watchedRoots += appeared
        return appeared
    }

    /// One turn of the loop: records, then (when due) the tick.
    public func poll(timeoutMilliseconds: Int32) throws {
        try pipeline.poll(timeoutMilliseconds: timeoutMilliseconds)
    }

    /// About once a second: roots that appeared, the registry's tick (syscalls, end of learning,
    /// checkpoints, folded anomalies, retirement).
    public func tick(now: Date = Date()) throws {
        for root in try watchAppearedRoots() {
            logger.info("cgroup root appeared: watching it", metadata: ["root": "\(root)", "still awaited": "\(awaitedRoots)"])
        }
        try pipeline.drain()
        registry.tick(now: now)
        if let cluster {
            let rounds = cluster.counts.rounds
            for merged in cluster.takeMerged() {
                if merged.profile.state == .stable { registry.adopt(merged.profile) } else { registry.absorb(merged.profile) }
            }
            // The cache changes only when a round ends: look for relearns then, not every tick.
            if rounds != roundsSeen {
                roundsSeen = rounds
                for key in registry.workloads.keys {
                    if let shared = cluster.cached(key)?.profile { registry.relearn(from: shared) }
                }
            }
            if now >= nextClusterRound {
                cluster.startRound(learners: registry.learners, workloads: Set(registry.workloads.keys), now: now)
                nextClusterRound = now.addingTimeInterval(clusterInterval())
            }
        }
    }

    /// `cluster.syncInterval`, jittered by ±20 % so that the nodes' writes spread out.
    private func clusterInterval() -> Double {
        configuration.cluster.syncInterval * Double.random(in: 0.8...1.2)
    }

    /// Writes every learning profile now and waits for the writer.
    public func checkpointAll() {
        registry.checkpointAll()
    }

    /// At exit (SIGTERM): the records in the ring buffer are handled, the last tick runs, events
    /// still waiting for a name are counted as dropped and said so, every learning profile is
    /// checkpointed: a restart continues from here, and nothing was lost without a count.
    public func stop() throws {
        try pipeline.drain()
        try tick()
        pipeline.abandonPending()
        pipeline.reportDrops()
        checkpointAll()
        cluster?.stopWatching()
        // What this node learned since the last round reaches the cluster before it goes.
        cluster?.runRound(learners: registry.learners)
    }

    public func waitForWrites() {
        registry.waitForWrites()
    }

    // MARK: for the metrics and the tests

    public var anomaliesEmitted: [AnomalyRule: UInt64] { registry.anomaliesEmitted }
    public var workloadStates: [String: LearningState] { registry.workloadStates }
    public var writeFailures: UInt64 { registry.writeFailures }
    public var podLookupFailures: UInt64 { directory.lookupFailures }
    /// Events lost: in the kernel, and of containers that could not be named.
    public var drops: DropCounts { pipeline.dropCounts() }
    /// Containers of watched workloads the agent holds.
    public var knownContainers: Int { registry.containerCount }
    /// Every cgroup the agent holds state for (named, excluded, or being named).
    public var rememberedCgroups: Int { directory.count }
}
