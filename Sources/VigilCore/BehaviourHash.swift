import CVigilABI

/// The hashes that key known behaviour, computed exactly as the kernel programs compute them
/// (bpf/vigil.bpf.h): FNV-1a 64 over path bytes. Both sides must agree bit for bit, or known
/// behaviour would not be suppressed in the kernel (it would still be matched in userspace).
public enum BehaviourHash {
    public static let offset: UInt64 = VIGIL_FNV_OFFSET
    public static let prime: UInt64 = VIGIL_FNV_PRIME
    public static let parentMix: UInt64 = VIGIL_PARENT_MIX

    @inline(__always)
    public static func fnv1a(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = offset) -> UInt64 {
        var hash = seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* prime
        }
        return hash
    }

    public static func fnv1a(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { fnv1a(UnsafeRawBufferPointer($0)) }
    }

    public static func exec(exe: UInt64, parent: UInt64) -> UInt64 {
        exe ^ (parent &* parentMix)
    }

    public static func exec(exe: String, parent: String) -> UInt64 {
        exec(exe: fnv1a(exe), parent: fnv1a(parent))
    }

    /// One write operation on one path, as the learner and the detector key it in userspace.
    public static func fileWrite(path: UInt64, op: FileOperation) -> UInt64 {
        path ^ UInt64(fileKind(op))
    }

    /// The `kind` of a known-behaviour key (vigil_known_key.kind).
    public static func fileKind(_ op: FileOperation) -> UInt32 {
        UInt32(VIGIL_KIND_FILE.rawValue) * 16 + op.rawValue
    }

    public static let execKind = UInt32(VIGIL_KIND_EXEC.rawValue)
}
