/// A kernel seccomp audit record (type 1326), as the kernel prints it to its log when auditd is
/// not running (`audit: type=1326 audit(…): auid=… pid=42 comm="sh" exe="/bin/busybox" sig=0
/// arch=c000003e syscall=165 compat=0 ip=… code=0x7ffc0000`) or as auditd writes it
/// (`type=SECCOMP msg=audit(…): …`, and with `log_format = ENRICHED` more fields after a 0x1d).
public struct SeccompAuditRecord: Equatable, Sendable {
    public var pid: Int
    /// The thread's name (comm) when the call was made.
    public var comm: String
    public var exe: String
    public var abi: SyscallABI
    public var syscall: Int
    /// The filter's action (SECCOMP_RET_*): 0x7ffc0000 is SCMP_ACT_LOG.
    public var code: UInt32

    public var isLogAction: Bool { code & 0xffff_0000 == 0x7ffc_0000 }

    /// AUDIT_ARCH_X86_64 and AUDIT_ARCH_I386 (x32 calls report x86_64 with the x32 bit set).
    static let archX86_64 = "c000003e"
    static let archI386 = "40000003"

    /// The kernel writes a string it cannot trust (comm, exe) in quotes, or as hex digits when it
    /// holds a space, a quote or a control character (audit_log_untrustedstring).
    static func untrusted(_ value: Substring) -> String {
        if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { return String(value.dropFirst().dropLast()) }
        guard value.count % 2 == 0, value.allSatisfy(\.isHexDigit) else { return String(value) }
        var bytes: [UInt8] = []
        var index = value.startIndex
        while index < value.endIndex {
            let next = value.index(index, offsetBy: 2)
            bytes.append(UInt8(value[index..<next], radix: 16) ?? 0)
            index = next
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func parse(_ log: String) -> [SeccompAuditRecord] {
        log.split(separator: "\n").compactMap { line -> SeccompAuditRecord? in
            guard line.contains("type=1326") || line.contains("type=SECCOMP") else { return nil }
            var fields: [Substring: Substring] = [:]
            for token in line.split(whereSeparator: { $0 == " " || $0 == "\u{1d}" }) {
                guard let eq = token.firstIndex(of: "=") else { continue }
                fields[token[..<eq]] = token[token.index(after: eq)...]
            }
            guard let arch = fields["arch"], let number = fields["syscall"].flatMap({ Int($0) }),
                  let pid = fields["pid"].flatMap({ Int($0) }), let codeText = fields["code"],
                  let code = UInt32(codeText.dropFirst(2), radix: 16) else { return nil }
            var abi: SyscallABI
            var syscall = number
            switch arch {
            case archX86_64: abi = .x86_64
            case archI386: abi = .i386
            default: return nil
            }
            if abi == .x86_64 && number & 0x4000_0000 != 0 {
                abi = .x32
                syscall = number & ~0x4000_0000
            }
            return SeccompAuditRecord(pid: pid, comm: fields["comm"].map(untrusted) ?? "", exe: fields["exe"].map(untrusted) ?? "",
                                      abi: abi, syscall: syscall, code: code)
        }
    }
}
