#if canImport(Glibc)
import Glibc
#endif
import CVigilSys
import VigilCore

/// The kernel's audit records as they are made, from the audit netlink multicast group (what
/// journald reads): every record, whether auditd runs or not, and without the rate limit the
/// kernel applies when it prints them to its log (10 per 5 s by default). Needs CAP_AUDIT_READ.
/// Only records made after `init` are seen.
public final class AuditListener {
    private let fd: Int32

    /// The record type of a seccomp action the filter logs (AUDIT_SECCOMP).
    public static let seccompRecordType: UInt16 = 1326

    public init() throws {
        let rc = vigil_audit_multicast_socket(8 << 20)
        guard rc >= 0 else {
            throw SinkError("cannot join the kernel's audit multicast group: \(String(cString: strerror(-rc)))"
                + (rc == -EPERM ? " (needs CAP_AUDIT_READ)" : ""))
        }
        fd = rc
    }

    deinit { close(fd) }

    /// Records (type, text) that arrive within `timeoutMilliseconds` of the last one; returns
    /// when none came for that long.
    public func drain(timeoutMilliseconds: Int32 = 200) -> [(type: UInt16, text: String)] {
        var records: [(UInt16, String)] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            var pending = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pending, 1, timeoutMilliseconds) > 0 else { break }
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            var offset = 0
            // struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; } then the text.
            while offset + 16 <= n {
                let length = buffer.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
                let type = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self) }
                guard length >= 16, offset + length <= n else { break }
                var text = buffer[(offset + 16)..<(offset + length)]
                while text.last == 0 { text = text.dropLast() }
                records.append((type, String(decoding: text, as: UTF8.self)))
                offset += (length + 3) & ~3
            }
        }
        return records
    }

    /// The seccomp records among those that arrive (see `drain`), parsed.
    public func seccompRecords(timeoutMilliseconds: Int32 = 200) -> [SeccompAuditRecord] {
        drain(timeoutMilliseconds: timeoutMilliseconds).filter { $0.type == Self.seccompRecordType }.flatMap {
            SeccompAuditRecord.parse("type=1326 " + $0.text)
        }
    }
}
