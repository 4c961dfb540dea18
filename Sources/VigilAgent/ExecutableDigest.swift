import Crypto
import Foundation

/// The content of a binary that has no file a path could name (memfd_create, a deleted file):
/// read through /proc/<pid>/exe while the process runs, streamed into SHA-256. Its name is the
/// attacker's choice; its digest is not.
public enum ExecutableDigest {
    /// Binaries larger than this are not read (the digest is then unknown, and no profile rule
    /// can match the exec).
    public static let maximumBytes = 256 << 20

    /// `sha256:<hex>`, or nil when the process is gone or the binary too large.
    public static func sha256(pid: UInt32) -> String? {
        let fd = open("/proc/\(pid)/exe", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            total += n
            guard total <= maximumBytes else { return nil }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return "sha256:" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
