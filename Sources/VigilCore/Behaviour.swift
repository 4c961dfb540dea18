/// Fast identities of an event's behaviour, computed from the raw record without allocating:
/// the same hashes the kernel uses for its known-behaviour maps.
public struct BehaviourKeys: Sendable {
    /// The parent a profile records for a process started by the container runtime (runc's
    /// init, or vigil itself for `vigil learn -- COMMAND`): which runtime binary it was, and
    /// where it is installed, is not the workload's behaviour.
    public static let runtimeParent = "(runtime)"

    private var joiner = PathJoiner()
    private let runtimeExeHashes: Set<UInt64>

    /// `runtimeExes`: binaries that start workloads; as a parent they are `runtimeParent`.
    public init(runtimeExes: [String] = []) {
        runtimeExeHashes = Set(runtimeExes.map(BehaviourHash.text))
    }

    /// Exec: (exe, parent) hash.
    public func execHash(_ event: RawEvent) -> UInt64 {
        BehaviourHash.exec(exe: BehaviourHash.text(event.exe), parent: parentHash(event))
    }

    /// A binary without a file, as a profile names it: `fileless:<name>@<sha256:hex>`, its name
    /// (attacker-chosen: `memfd:payload`, or a deleted file's path) and what it contains. Two
    /// different payloads never share a rule; without a digest (the process was gone before it
    /// could be read) the name matches no rule at all.
    public static func filelessExe(_ event: RawEvent, digest: String?) -> String {
        "fileless:" + String(decoding: event.exe, as: UTF8.self) + "@" + (digest ?? "unread")
    }

    public static func isFilelessRule(_ exe: String) -> Bool { exe.hasPrefix("fileless:") }

    /// The hash of a fileless exec with its parent.
    public func filelessExecHash(_ exe: String, _ event: RawEvent) -> UInt64 {
        BehaviourHash.exec(exe: BehaviourHash.text(exe), parent: parentHash(event))
    }

    private func parentHash(_ event: RawEvent) -> UInt64 {
        startedByRuntime(event) ? BehaviourHash.text(Self.runtimeParent) : BehaviourHash.text(event.parentExe)
    }

    /// The parent as a profile names it.
    public func parentName(_ event: RawEvent) -> String {
        startedByRuntime(event) ? Self.runtimeParent : String(decoding: event.parentExe, as: UTF8.self)
    }

    /// The entrypoint (the kernel saw the runtime's init exec it), or a child of a known runtime.
    private func startedByRuntime(_ event: RawEvent) -> Bool {
        event.isEntrypoint || runtimeExeHashes.contains(BehaviourHash.text(event.parentExe))
    }

    /// The absolute path a file event is about (the new name for a rename), joined and folded.
    public mutating func filePath(_ event: RawEvent) -> [UInt8] {
        let path = event.fileOperation == .rename ? event.fileTarget : event.filePath
        joiner.join(directory: path.directory, name: path.name)
        return joiner.buffer
    }
}
