import Foundation
import VigilCore

/// Where a cluster keeps one profile per workload for every node (the Kubernetes API's
/// WorkloadProfile objects; `VigilKubernetes.WorkloadProfileClient`). Calls block: the agent
/// makes them from its cluster-sync thread, never from the loop that empties the ring buffer.
public protocol ClusterProfileStore: Sendable {
    /// Merges what `node` learned into the workload's cluster profile (writing only when it adds
    /// something, or when learning ends) and returns the cluster's profile after it.
    func merge(_ local: Profile, from node: String, now: Date) throws -> (cluster: ClusterProfile, wrote: Bool)
    /// Every workload's cluster profile, and what could not be read (one text each).
    func all() throws -> (profiles: [ClusterProfile], problems: [String])
}
