/// What the agent remembers of each watched process from its exec, so that its later file and
/// network events (which carry only a pid) can name the binary and the exec they belong to.
/// Entries go when the process exits, so the table stays as large as the live watched processes.
public struct ProcessTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public var exe: [UInt8]
        public var execBootNanoseconds: UInt64
        /// `sha256:<hex>` of a binary without a file (see `RawEvent.exeHasNoFile`), read by the
        /// agent from /proc/<pid>/exe when it exec'd; nil for others, or when it could not be read.
        public var execDigest: String?
    }

    public private(set) var entries: [UInt32: Entry] = [:]
    /// Bounds memory if exits were lost (e.g. dropped under a full ring buffer).
    public let capacity: Int

    public init(capacity: Int = 65_536) {
        self.capacity = capacity
    }

    public subscript(pid: UInt32) -> Entry? { entries[pid] }

    /// Updates the table from an exec or exit record; other kinds do not change it.
    public mutating func observe(_ event: RawEvent) {
        switch event.kind {
        case .exec:
            if entries.count >= capacity, entries[event.pid] == nil {
                entries.removeAll(keepingCapacity: true)
            }
            entries[event.pid] = Entry(exe: Array(event.exe), execBootNanoseconds: event.bootNanoseconds, execDigest: nil)
        case .exit:
            entries[event.pid] = nil
        case .file, .network, .cgroup:
            break
        }
    }

    /// Records the content digest of the binary a process just exec'd.
    public mutating func setExecDigest(_ digest: String?, pid: UInt32) {
        entries[pid]?.execDigest = digest
    }
}
