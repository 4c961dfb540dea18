import CVigilSeccomp
import Foundation
import VigilCore

public struct SeccompError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// An OCI seccomp profile compiled by libseccomp into the classic-BPF program the kernel loads
/// (what runc does with `linux.seccomp`), for `vigil seccomp verify` to run a command under it.
public struct SeccompFilter: Sendable {
    /// struct sock_filter[], as seccomp(SECCOMP_SET_MODE_FILTER) takes it.
    public let program: [UInt8]
    /// Names in the profile that libseccomp does not know for these architectures (skipped).
    public let unknownNames: [String]

    public init(_ profile: OCISeccomp) throws {
        let defaultAction = try Self.action(profile.defaultAction, errno: profile.defaultErrnoRet)
        guard let ctx = seccomp_init(defaultAction) else { throw SeccompError("seccomp_init failed") }
        defer { seccomp_release(ctx) }

        let abis: [String: SyscallABI] = ["SCMP_ARCH_X86_64": .x86_64, "SCMP_ARCH_X32": .x32, "SCMP_ARCH_X86": .i386]
        for name in profile.architectures {
            guard let abi = abis[name] else { throw SeccompError("architecture \(name) is not supported (x86_64, x32, x86)") }
            let token = vigil_seccomp_arch(Int32(abi.rawValue))
            if seccomp_arch_exist(ctx, token) != 0 {
                let rc = seccomp_arch_add(ctx, token)
                guard rc == 0 else { throw SeccompError("adding architecture \(name): \(String(cString: strerror(-rc)))") }
            }
        }
        var unknown: [String] = []
        for rule in profile.syscalls {
            let action = try Self.action(rule.action, errno: rule.errnoRet)
            guard action != defaultAction else { continue } // libseccomp refuses rules that change nothing
            for name in rule.names {
                let number = seccomp_syscall_resolve_name(name)
                guard number != __NR_SCMP_ERROR else {
                    unknown.append(name)
                    continue
                }
                let rc = seccomp_rule_add_array(ctx, action, number, 0, nil)
                guard rc == 0 else { throw SeccompError("rule for \(name): \(String(cString: strerror(-rc)))") }
            }
        }
        let fd = vigil_memfd("vigil-seccomp")
        guard fd >= 0 else { throw SeccompError("memfd_create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let rc = seccomp_export_bpf(ctx, fd)
        guard rc == 0 else { throw SeccompError("seccomp_export_bpf: \(String(cString: strerror(-rc)))") }
        let size = lseek(fd, 0, SEEK_END)
        lseek(fd, 0, SEEK_SET)
        var program = [UInt8](repeating: 0, count: Int(size))
        guard read(fd, &program, program.count) == program.count else { throw SeccompError("reading the exported filter failed") }
        self.program = program
        unknownNames = unknown
    }

    static func action(_ name: String, errno: UInt32?) throws -> UInt32 {
        switch name {
        case "SCMP_ACT_ALLOW": return 0x7fff_0000
        case "SCMP_ACT_ERRNO": return 0x0005_0000 | ((errno ?? 1) & 0xffff)
        case "SCMP_ACT_LOG": return 0x7ffc_0000
        case "SCMP_ACT_KILL_PROCESS": return 0x8000_0000
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return 0
        case "SCMP_ACT_TRAP": return 0x0003_0000
        default: throw SeccompError("unknown seccomp action \(name)")
        }
    }
}

extension SeccompSyscallResolver {
    /// How many syscalls the architecture has (libseccomp's table): the denominator of tightness.
    public func count(abi: SyscallABI) -> Int {
        (0..<SyscallBitmap.slots).filter { name(of: $0, abi: abi) != nil }.count
    }
}
