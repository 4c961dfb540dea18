import CVigilABI

/// The hashes that key known behaviour, computed exactly as the kernel programs compute them
/// (`text_hash` in bpf/vigil.bpf.h; the definition is in bpf/vigil_abi.h): NH, keyed with this
/// process's random `key`, which `KernelProbes` gives the programs before they load. Both sides
/// must agree bit for bit, or known behaviour would not be suppressed in the kernel (it would still
/// be matched in userspace). No hash outlives the process: profiles hold paths.
public enum BehaviourHash {
    public static let parentMix: UInt64 = VIGIL_PARENT_MIX

    /// Drawn from the system's random source once per process.
    public static let key: [UInt64] = (0..<Int(VIGIL_TEXT_HASH_WORDS)).map { _ in UInt64.random(in: .min ... .max) }

    public static func text(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        key.withUnsafeBufferPointer { text(bytes, key: $0) }
    }

    public static func text(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { Self.text(UnsafeRawBufferPointer($0)) }
    }

    static func text(_ bytes: UnsafeRawBufferPointer, key: UnsafeBufferPointer<UInt64>) -> UInt64 {
        @inline(__always) func word(_ word: UInt64, _ index: Int) -> UInt64 {
            let key = key[index % key.count]
            let low = UInt64(UInt32(truncatingIfNeeded: word) &+ UInt32(truncatingIfNeeded: key))
            let high = UInt64(UInt32(truncatingIfNeeded: word >> 32) &+ UInt32(truncatingIfNeeded: key >> 32))
            return low &* high
        }
        var hash = UInt64(bytes.count)
        let words = bytes.count / 8
        for index in 0..<words {
            hash &+= word(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)), index)
        }
        if bytes.count % 8 != 0 {
            var last: UInt64 = 0
            for (shift, byte) in bytes[(words * 8)...].enumerated() {
                last |= UInt64(byte) << (8 * UInt64(shift))
            }
            hash &+= word(last, words)
        }
        return hash
    }

    /// FNV-1a 64: the kernel hashes the prefixes of a name a byte at a time to find model
    /// directories in it (vigil_model_path_key); also the pattern tree's component keys.
    @inline(__always)
    public static func fnv1a(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = VIGIL_FNV_OFFSET) -> UInt64 {
        var hash = seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* VIGIL_FNV_PRIME
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
        exec(exe: text(exe), parent: text(parent))
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
