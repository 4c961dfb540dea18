/// A kernel seccomp audit record (type=1326), as printed to the kernel log when auditd is not
/// running: `audit: type=1326 audit(…): auid=… uid=0 … pid=42 comm="sh" exe="/bin/busybox" sig=0
/// arch=c000003e syscall=165 compat=0 ip=… code=0x7ffc0000`.
public struct SeccompAuditRecord: Equatable, Sendable {
    public var pid: Int
    public var exe: String
    public var abi: SyscallABI
    public var syscall: Int
    /// The filter's action (SECCOMP_RET_*): 0x7ffc0000 is SCMP_ACT_LOG.
    public var code: UInt32

    public var isLogAction: Bool { code & 0xffff_0000 == 0x7ffc_0000 }

    /// AUDIT_ARCH_X86_64 and AUDIT_ARCH_I386 (x32 calls report x86_64 with the x32 bit set).
    static let archX86_64 = "c000003e"
    static let archI386 = "40000003"

    public static func parse(_ log: String) -> [SeccompAuditRecord] {
        log.split(separator: "\n").compactMap { line -> SeccompAuditRecord? in
            guard line.contains("type=1326") else { return nil }
            var fields: [Substring: Substring] = [:]
            for token in line.split(separator: " ") {
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
            let exe = fields["exe"].map { String($0.filter { $0 != "\"" }) } ?? ""
            return SeccompAuditRecord(pid: pid, exe: exe, abi: abi, syscall: syscall, code: code)
        }
    }
}
