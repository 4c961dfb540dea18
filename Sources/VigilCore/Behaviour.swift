/// Fast identities of an event's behaviour, computed from the raw record without allocating:
/// the same hashes the kernel uses for its known-behaviour maps.
public struct BehaviourKeys: Sendable {
    private var joiner = PathJoiner()

    public init() {}

    /// Exec: (exe, parent) hash.
    public func execHash(_ event: RawEvent) -> UInt64 {
        BehaviourHash.exec(exe: BehaviourHash.fnv1a(event.exe), parent: BehaviourHash.fnv1a(event.parentExe))
    }

    /// The absolute path a file event is about (the new name for a rename), joined and folded.
    public mutating func filePath(_ event: RawEvent) -> [UInt8] {
        let path = event.fileOperation == .rename ? event.fileTarget : event.filePath
        joiner.join(directory: path.directory, name: path.name)
        return joiner.buffer
    }
}
