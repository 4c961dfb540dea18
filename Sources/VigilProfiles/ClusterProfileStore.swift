import Foundation
import VigilCore

/// Where a cluster keeps one profile per workload for every node (the Kubernetes API's
/// WorkloadProfile objects; `VigilKubernetes.WorkloadProfileClient`). Calls block: the agent
/// makes them from its cluster-sync thread, never from the loop that empties the ring buffer.
public protocol ClusterProfileStore: Sendable {
    /// Merges what `node` learned into the workload's cluster profile (writing only when it adds
    /// something, or when learning ends) and returns the cluster's profile after it.
    func merge(_ local: Profile, from node: String, now: Date) throws -> (cluster: ClusterProfile, wrote: Bool)
    /// Every stable cluster profile, and those of `workloads` whatever their state (learning ones
    /// of other workloads are not read: a node needs them only once it runs the workload).
    func current(including workloads: Set<String>) throws -> ClusterSnapshot
    /// Blocks while it watches the stable profiles from `resourceVersion` (a snapshot's), calling
    /// `changed` when one turns stable, changes, relearns or goes; returns the version to watch
    /// from next when the watch ends, or nil when that version is too old (read a snapshot again).
    func watchStable(from resourceVersion: String, changed: @escaping @Sendable () -> Void) throws -> String?
    /// Ends the running watch and refuses later ones.
    func cancelWatches()
}

/// What `ClusterProfileStore.current` read.
public struct ClusterSnapshot: Sendable {
    public var profiles: [ClusterProfile]
    /// Every workload that has a cluster profile, read or not (its filter stays installed).
    public var workloads: Set<String>
    /// Objects that could not be read, one text each.
    public var problems: [String]
    /// The version of the cluster's state it was read at, to watch from.
    public var resourceVersion: String?

    public init(profiles: [ClusterProfile], workloads: Set<String>, problems: [String], resourceVersion: String? = nil) {
        self.profiles = profiles
        self.workloads = workloads
        self.problems = problems
        self.resourceVersion = resourceVersion
    }
}
