import Foundation

/// What one node saw of a workload while it learned: the evidence a node adds to the cluster's
/// profile (`status.nodes` of the WorkloadProfile resource).
public struct NodeEvidence: Codable, Equatable, Sendable {
    public var node: String
    public var started: Date
    /// When the node last saw something it had not seen before.
    public var lastNew: Date
    public var events: Int
    public var containers: Int
    public var stoppedContainers: Int

    public init(node: String, started: Date, lastNew: Date, events: Int, containers: Int, stoppedContainers: Int) {
        self.node = node
        self.started = started
        self.lastNew = lastNew
        self.events = events
        self.containers = containers
        self.stoppedContainers = stoppedContainers
    }

    public init(node: String, _ learning: LearningEvidence) {
        self.init(node: node, started: learning.started, lastNew: learning.lastNew, events: learning.events,
                  containers: learning.containers, stoppedContainers: learning.stoppedContainers ?? 0)
    }
}

/// A workload's one profile for the whole cluster: the union of what every node learned, with
/// each node's evidence. `profile.learning` is the cluster's: learning began when the first node
/// began, and `lastNew` is when the cluster (not one node) last learned something.
public struct ClusterProfile: Equatable, Sendable {
    public var profile: Profile
    /// One entry per node that merged, sorted by node name.
    public var nodes: [NodeEvidence]
    /// A person asked for a relearn by setting the object's `spec.relearn` (kubectl patch): the
    /// first agent to read it starts the next version (`ProfileMerge.relearn`), which clears it.
    public var relearnRequested: Bool

    public init(profile: Profile, nodes: [NodeEvidence], relearnRequested: Bool = false) {
        self.profile = profile
        self.nodes = nodes
        self.relearnRequested = relearnRequested
    }
}

/// Merges a node's profile into the cluster's. Pure: the Kubernetes client calls it between a
/// read and an optimistic write, and again on a conflict with the fresh object.
public enum ProfileMerge {
    public enum Outcome: Equatable, Sendable {
        /// Nothing the cluster lacks: no write.
        case unchanged
        /// The profile to write, and why (for the log and the tests).
        case changed(ClusterProfile, reasons: [String])
    }

    /// Learning ends cluster-wide when `minDuration` has passed since the first node began and no
    /// node has brought anything new for `quietPeriod`; a stable profile stays stable. A node's
    /// profile of an older version than the cluster's is stale (the cluster relearns): ignored. One
    /// of a newer version starts the cluster's new version from it.
    public static func merge(_ local: Profile, from node: String, into cluster: ClusterProfile?, now: Date) -> Outcome {
        let evidence = NodeEvidence(node: node, local.learning)
        guard let cluster, cluster.profile.version >= local.version else {
            // In the merged form (sets sorted), so that the next merge of the same rules is no change.
            var fresh = unionRules(local, local)
            fresh.state = .learning
            fresh.learning.stableSince = nil
            var started = ClusterProfile(profile: fresh, nodes: [evidence])
            started.profile.learning = clusterEvidence(started.nodes, minDuration: local.learning.minDuration,
                                                       quietPeriod: local.learning.quietPeriod, lastNew: local.learning.lastNew)
            started.profile.learning.runtimes = local.learning.runtimes
            settleState(&started, now: now)
            return .changed(started, reasons: [cluster == nil ? "created" : "version \(local.version)"])
        }
        guard cluster.profile.version == local.version else { return .unchanged }

        var merged = cluster
        var reasons: [String] = []
        let before = merged.profile
        merged.profile = unionRules(before, local)
        if merged.profile != unionRules(before, before) { reasons.append("new behaviour") }

        if let index = merged.nodes.firstIndex(where: { $0.node == node }) {
            merged.nodes[index] = evidence
        } else {
            merged.nodes.append(evidence)
            merged.nodes.sort { $0.node < $1.node }
            reasons.append("node \(node) joined")
        }
        let lastNew = reasons.contains("new behaviour") ? max(before.learning.lastNew, local.learning.lastNew) : before.learning.lastNew
        let runtimes = Set(before.learning.runtimes ?? []).union(local.learning.runtimes ?? [])
        if runtimes != Set(before.learning.runtimes ?? []) { reasons.append("new runtime") }
        merged.profile.learning = clusterEvidence(merged.nodes, minDuration: before.learning.minDuration,
                                                  quietPeriod: before.learning.quietPeriod, lastNew: lastNew)
        merged.profile.learning.runtimes = runtimes.isEmpty ? nil : runtimes.sorted()
        merged.profile.learning.stableSince = before.learning.stableSince
        if settleState(&merged, now: now) { reasons.append("stable") }
        return reasons.isEmpty ? .unchanged : .changed(merged, reasons: reasons)
    }

    /// A person ends learning now (`vigil profile promote --cluster`).
    public static func promote(_ cluster: inout ClusterProfile, now: Date) {
        guard cluster.profile.state == .learning else { return }
        cluster.profile.state = .stable
        cluster.profile.learning.stableSince = now
    }

    /// A person starts the workload's profile anew (`vigil profile relearn --cluster`): the next
    /// version, with no rules and no evidence. Nodes see the newer version at their next round and
    /// learn it from their containers; their older learning is not merged into it.
    public static func relearn(_ cluster: inout ClusterProfile, now: Date) {
        let old = cluster.profile
        cluster.profile = Profile(workload: old.workload, version: old.version + 1, state: .learning,
                                  learning: LearningEvidence(started: now, lastNew: now, minDuration: old.learning.minDuration,
                                                             quietPeriod: old.learning.quietPeriod),
                                  modelPaths: old.modelPaths)
        cluster.nodes = []
        cluster.relearnRequested = false
    }

    /// Decides stability with nothing new from any node: what an agent checks at each interval,
    /// so that learning ends even when no node has anything to add.
    public static func settle(_ cluster: ClusterProfile, now: Date) -> Outcome {
        var settled = cluster
        return settleState(&settled, now: now) ? .changed(settled, reasons: ["stable"]) : .unchanged
    }

    /// Returns whether the state changed to stable.
    @discardableResult
    private static func settleState(_ cluster: inout ClusterProfile, now: Date) -> Bool {
        let learning = cluster.profile.learning
        guard cluster.profile.state == .learning,
              now.timeIntervalSince(learning.started) >= learning.minDuration,
              now.timeIntervalSince(learning.lastNew) >= learning.quietPeriod else { return false }
        cluster.profile.state = .stable
        cluster.profile.learning.stableSince = now
        return true
    }

    private static func clusterEvidence(_ nodes: [NodeEvidence], minDuration: Double, quietPeriod: Double, lastNew: Date) -> LearningEvidence {
        LearningEvidence(started: nodes.map(\.started).min() ?? lastNew, lastNew: lastNew,
                         events: nodes.reduce(0) { $0 + $1.events }, containers: nodes.reduce(0) { $0 + $1.containers },
                         minDuration: minDuration, quietPeriod: quietPeriod,
                         stoppedContainers: nodes.reduce(0) { $0 + $1.stoppedContainers })
    }

    /// `base` with `other`'s rules added, every list sorted and without repeats.
    private static func unionRules(_ base: Profile, _ other: Profile) -> Profile {
        var result = base
        result.execs = Array(Set(base.execs).union(other.execs)).sorted()
        result.egress = Array(Set(base.egress).union(other.egress)).sorted()
        result.modelPaths = Array(Set(base.modelPaths).union(other.modelPaths)).sorted()
        result.fileWrites = mergeFileWrites(base.fileWrites, other.fileWrites)
        for abi in SyscallABI.allCases {
            result.syscalls[abi] = Array(Set(base.syscalls[abi]).union(other.syscalls[abi])).sorted()
        }
        result.seccomp = mergeSeccomp(base.seccomp, other.seccomp)
        let models = Set(base.models ?? []).union(other.models ?? [])
        result.models = models.isEmpty ? nil : models.sorted()
        let readers = Set(base.modelReaders ?? []).union(other.modelReaders ?? [])
        result.modelReaders = readers.isEmpty ? nil : readers.sorted()
        // Startup-only: what neither side saw a serving container do (a side without phases
        // counts as serving throughout).
        if base.startupOnly != nil || other.startupOnly != nil {
            var served = ServedRules(base, unphasedServe: true)
            served.formUnion(ServedRules(other, unphasedServe: true))
            result.startupOnly = served.startupRules(of: result)
        } else {
            result.startupOnly = nil
        }
        return result
    }

    private static func mergeFileWrites(_ a: [FileWriteRule], _ b: [FileWriteRule]) -> [FileWriteRule] {
        var ops: [String: Set<String>] = [:]
        for rule in a + b { ops[rule.path, default: []].formUnion(rule.ops) }
        return ops.map { FileWriteRule(path: $0.key, ops: $0.value.sorted()) }.sorted()
    }

    private static func mergeSeccomp(_ a: SeccompAdditions?, _ b: SeccompAdditions?) -> SeccompAdditions? {
        guard let a else { return b }
        guard let b else { return a }
        return SeccompAdditions(runtimes: Array(Set(a.runtimes).union(b.runtimes)).sorted(),
                                runtime: Array(Set(a.runtime).union(b.runtime)).sorted(),
                                baseline: Array(Set(a.baseline).union(b.baseline)).sorted())
    }
}
