import CVigilSeccomp
import Foundation
import VigilCore

/// Syscall names from libseccomp's tables, per architecture: never a hand-written list, and an
/// i386 number is never named through the x86_64 table.
public struct SeccompSyscallResolver: SyscallResolver {
    /// x32 numbers carry this bit in libseccomp (and the kernel); the bitmap stores them without.
    static let x32Bit = 0x4000_0000

    public init() {}

    public func name(of number: Int, abi: SyscallABI) -> String? {
        let arch = vigil_seccomp_arch(Int32(abi.rawValue))
        let raw = abi == .x32 ? number | Self.x32Bit : number
        guard let name = seccomp_syscall_resolve_num_arch(arch, Int32(raw)) else { return nil }
        defer { free(name) }
        return String(cString: name)
    }

    public func number(of name: String, abi: SyscallABI) -> Int? {
        let arch = vigil_seccomp_arch(Int32(abi.rawValue))
        let number = seccomp_syscall_resolve_name_arch(arch, name)
        guard number >= 0 else { return nil } // __NR_SCMP_ERROR, or a pseudo-syscall (negative)
        return abi == .x32 ? Int(number) & ~Self.x32Bit : Int(number)
    }
}
