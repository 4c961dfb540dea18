/// The kernel side as the agent uses it: the records the programs send, and the maps the agent
/// writes (which cgroups are watched, what behaviour each profile already has). The seam between
/// the agent's logic and BPF: `KernelProbes` (VigilBPF) is the real one, `RecordedKernel` replays
/// records without a kernel, so the whole agent pipeline is tested and measured without root.
public protocol KernelFacade: AnyObject {
    /// Where records go: called on the thread that polls, with a view of each record that is
    /// valid only during the call.
    func setRecordHandler(_ handler: @escaping (UnsafeRawBufferPointer) -> Void) throws
    /// Waits up to `timeoutMilliseconds` for records and hands over those ready; returns how many.
    @discardableResult func poll(timeoutMilliseconds: Int32) throws -> Int
    /// Hands over every record ready, without waiting.
    @discardableResult func drain() throws -> Int

    /// Report this cgroup's processes (and of the cgroups made below it). A non-zero profile id
    /// names the known behaviour dropped in the kernel for it.
    func watch(cgroupID: UInt64, profileID: UInt32) throws
    func unwatch(cgroupID: UInt64)
    /// Report nothing of this cgroup (or of those made below it) but its removal: a container
    /// not to watch stays in the watch list only so that the agent hears when it goes.
    func quiet(cgroupID: UInt64)
    func isWatched(cgroupID: UInt64) -> Bool
    func isQuiet(cgroupID: UInt64) -> Bool
    /// The model directories of a watched cgroup's container (directory inodes, as its processes
    /// see them): the kernel then reports its read-only opens of files below them (`readModel`)
    /// and no other read. Empty: none (and its entries are removed).
    /// `paths`: the same directories by the paths the container's processes name them with, for
    /// protect mode's judgement of renames and unlinks (by text).
    func setModelDirectories(cgroupID: UInt64, _ directories: Set<FileIdentity>, paths: Set<String>) throws
    /// The syscalls each watched cgroup made, read from the kernel.
    func syscallBitmaps() -> [UInt64: CgroupSyscalls]

    /// Behaviour of a stable profile, dropped in the kernel from now on for cgroups watched with
    /// `profileID` (counted as suppressed, never sent).
    func loadKnownBehaviour(_ known: KnownBehaviour, profileID: UInt32) throws
    /// A model file version whose content the agent verified for `profileID`: its opens by a
    /// known reader (`KnownBehaviour.modelReaders`) are dropped in the kernel until it changes.
    /// The kernel keeps the most recently used few thousand; one forgotten is reported again.
    func loadKnownModel(_ version: FileVersion, profileID: UInt32) throws
    /// Removes what `loadKnownBehaviour` and `loadKnownModel` put in for `profileID` (a workload
    /// retired or relearned).
    func unloadKnownBehaviour(profileID: UInt32)

    /// Protect mode: the rules the kernel enforces for `profileID` (replacing those before), and
    /// which of them hold for a watched cgroup (its processes' execs outside them are killed,
    /// their connects and datagrams outside them refused). See `Enforcement`.
    func loadEnforcement(_ enforcement: Enforcement, profileID: UInt32) throws
    /// Attaches the egress guard at a watched root (its directory under the cgroup v2 mount):
    /// protect mode's refusals hold for the containers below it.
    func guardEgress(cgroupDirectory: String) throws
    func unloadEnforcement(profileID: UInt32)
    func protect(cgroupID: UInt64, _ protection: Protection) throws

    /// Events the kernel lost (ring buffer full, in-flight table full), by kind; they only grow.
    func dropCounts() -> DropCounts
    /// Known behaviour dropped in the kernel, by kind.
    func suppressedCounts() -> [EventKind: UInt64]
    /// How full the ring buffer is (0...1).
    func ringBufferFill() -> Double
    /// Per program: how many times it ran, the kernel time it took (zero without BPF stats), and
    /// how many runs the kernel skipped.
    func programStats() -> [ProgramStats]
}

/// What the kernel counts of one of the agent's programs.
public struct ProgramStats: Sendable, Equatable {
    public var name: String
    public var runs: UInt64
    public var nanoseconds: UInt64
    /// Runs the kernel skipped because a BPF program already held the CPU (its recursion
    /// protection; a `tp/` program also while the CPU is inside a BPF syscall): whatever such a
    /// run would have recorded is lost. Counted whether or not statistics are on.
    public var misses: UInt64

    public init(name: String, runs: UInt64, nanoseconds: UInt64, misses: UInt64) {
        self.name = name
        self.runs = runs
        self.nanoseconds = nanoseconds
        self.misses = misses
    }
}

extension KernelFacade {
    public func watch(cgroupID: UInt64) throws { try watch(cgroupID: cgroupID, profileID: 0) }
    public func setModelDirectories(cgroupID: UInt64, _ directories: Set<FileIdentity>) throws {
        try setModelDirectories(cgroupID: cgroupID, directories, paths: [])
    }
}

/// A stable profile's exact behaviour, in the form the kernel's known-behaviour maps hold it
/// (see vigil_abi.h: hashes computed as bpf/vigil.bpf.h computes them).
public struct KnownBehaviour: Sendable, Equatable {
    public struct FileKey: Sendable, Hashable {
        /// `BehaviourHash.fileKind(op)`.
        public var kind: UInt32
        /// The text hash of the absolute path (`BehaviourHash.text`).
        public var hash: UInt64
        public init(kind: UInt32, hash: UInt64) {
            self.kind = kind
            self.hash = hash
        }
    }

    public var execHashes: Set<UInt64>
    public var files: Set<FileKey>
    public var destinations: Set<Destination>
    /// Text hashes of the executables that read the model (`modelReaders`).
    public var modelReaders: Set<UInt64>

    public init(execHashes: Set<UInt64> = [], files: Set<FileKey> = [], destinations: Set<Destination> = [],
                modelReaders: Set<UInt64> = []) {
        self.execHashes = execHashes
        self.files = files
        self.destinations = destinations
        self.modelReaders = modelReaders
    }

    public var count: Int { execHashes.count + files.count + destinations.count + modelReaders.count }
}

/// A kernel request that cannot be done, said so the caller can tell what to fix.
public struct KernelFacadeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Which of protect mode's enforcements hold for one container.
public struct Protection: Equatable, Sendable {
    /// Connects and datagrams outside the profile's egress rules are refused.
    public var egress: Bool
    /// Execs outside its exec rules are killed.
    public var exec: Bool
    /// Write opens below its model directories that it lacks are killed.
    public var modelWrites: Bool

    public init(egress: Bool, exec: Bool, modelWrites: Bool) {
        self.egress = egress
        self.exec = exec
        self.modelWrites = modelWrites
    }

    public static let none = Protection(egress: false, exec: false, modelWrites: false)

    /// Everything the profile's rules let the kernel enforce.
    public init(_ enforcement: Enforcement) {
        self.init(egress: true, exec: enforcement.killsExecs, modelWrites: enforcement.killsModelWrites)
    }
}
