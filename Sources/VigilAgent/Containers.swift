import Foundation
import VigilCore
import VigilRuntime

/// A container as the agent knows it: how its events are labelled, and which workload's profile
/// they belong to.
public struct Container: Sendable, Equatable {
    public var identity: WorkloadIdentity
    /// The workload key (`namespace/kind/owner/container`, or the name given to `vigil learn`);
    /// nil where there is no workload (`vigil trace`).
    public var workload: String?
    /// How it was started, for its seccomp profile's safety net; nil when no runtime state says.
    public var runtime: ObservedRuntime?
    /// Model contents its pod declares (annotation `vigil.dev/model-digests`).
    public var declaredModelDigests: Set<String>
    /// Its pod asks for protect mode (annotation `vigil.dev/mode: protect`).
    public var protectRequested: Bool
    /// A process in the container's root when it was named (its runtime's init), through which
    /// its model directories are found before any event of it; 0: none known.
    public var rootPid: UInt32 = 0

    public init(identity: WorkloadIdentity, workload: String?, runtime: ObservedRuntime? = nil, declaredModelDigests: Set<String> = [],
                protectRequested: Bool = false) {
        self.identity = identity
        self.workload = workload
        self.runtime = runtime
        self.declaredModelDigests = declaredModelDigests
        self.protectRequested = protectRequested
    }
}

/// What the agent knows of a cgroup when one of its events arrives.
public enum ContainerLookup: Sendable, Equatable {
    case container(Container)
    /// Not a container (a pod or QoS level): stays watched (containers are made below it), reports nothing.
    case notAContainer
    /// A container not to watch (a namespace or labels the configuration leaves out, a pod that
    /// no longer exists, a pod's sandbox): the kernel reports nothing of it but its removal.
    case excluded
    /// Being named (its runtime state or its pod's metadata is not there yet): its events wait.
    case pending
    /// Could not be named (its runtime state never appeared): its events are dropped, and counted.
    case unnamed
}

/// Who the processes of each cgroup are. The pipeline asks on every event, so `lookup` is a cheap
/// read of what is known; naming a new container happens elsewhere, off the event path, and
/// reaches the loop through `takeResolved()`.
public protocol ContainerDirectory: AnyObject {
    func lookup(_ cgroupID: UInt64) -> ContainerLookup
    /// The kernel made `cgroupID`, named `name`, below the watched `parent`.
    func cgroupCreated(_ cgroupID: UInt64, parent: UInt64, name: String)
    /// The kernel removed a watched cgroup: everything about it goes.
    func cgroupRemoved(_ cgroupID: UInt64)
    /// Cgroups whose lookup changed since the last call (from `.pending` to what they are).
    func takeResolved() -> [(cgroupID: UInt64, lookup: ContainerLookup)]
    /// Containers that began to serve since the last call, by a signal other than the kernel's
    /// first accept (their pod's readiness, with `serving.trigger: ready`).
    func takeServing() -> [UInt64]
    /// Cgroups remembered, for the metrics and the memory tests.
    var count: Int { get }
    /// Every cgroup remembered (named, excluded, or being named).
    var cgroupIDs: [UInt64] { get }
}

/// Every watched cgroup is one container of one workload (`vigil learn|monitor --workload`), or of
/// none (`vigil trace`): named at once, by its cgroup path.
public final class CommandDirectory: ContainerDirectory {
    public func takeServing() -> [UInt64] { [] } // a command's container serves at its first accept
    private let hierarchy: CgroupHierarchy
    private let workload: String?
    private var known: [UInt64: ContainerLookup] = [:]

    public init(hierarchy: CgroupHierarchy, workload: String?) {
        self.hierarchy = hierarchy
        self.workload = workload
    }

    public func lookup(_ cgroupID: UInt64) -> ContainerLookup {
        if let known = known[cgroupID] { return known }
        let identity = WorkloadIdentity(id: workload, cgroup: hierarchy.path(of: cgroupID))
        var container = Container(identity: identity, workload: workload)
        container.rootPid = UInt32(getpid()) // a command's processes share vigil's root
        let lookup = ContainerLookup.container(container)
        known[cgroupID] = lookup
        return lookup
    }

    public func cgroupCreated(_ cgroupID: UInt64, parent: UInt64, name: String) {
        if let parentPath = hierarchy.path(of: parent) {
            hierarchy.remember(id: cgroupID, path: parentPath == "/" ? "/" + name : parentPath + "/" + name)
        }
    }

    public func cgroupRemoved(_ cgroupID: UInt64) {
        known[cgroupID] = nil
        hierarchy.forget(id: cgroupID)
    }

    public func takeResolved() -> [(cgroupID: UInt64, lookup: ContainerLookup)] { [] }

    public var count: Int { known.count }
    public var cgroupIDs: [UInt64] { Array(known.keys) }
}

/// A list shared by two threads: one puts, the other takes everything at once. The one lock in
/// the agent's hand-offs (the profile writer's outcomes, the container namer's results).
final class Mailbox<Item: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Item] = []

    func put(_ item: Item) {
        lock.withLock { items.append(item) }
    }

    func takeAll() -> [Item] {
        lock.withLock {
            defer { items.removeAll(keepingCapacity: true) }
            return items
        }
    }
}
