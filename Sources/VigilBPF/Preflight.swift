import Foundation

/// Checks what the kernel programs need before trying to load them, so that a missing piece is
/// reported as what to do rather than as a libbpf error code.
enum Preflight {
    static let btfPath = "/sys/kernel/btf/vmlinux"

    static func check() throws {
        #if !arch(x86_64)
        // The kernel side builds for arm64, but profiles, seccomp generation and the syscall
        // bitmaps are named through the x86 tables: loading here would name syscalls wrongly.
        throw BPFError("this vigil was built for an architecture other than x86_64; its kernel programs build for "
            + "arm64 (VIGIL_BPF_ARCH=arm64 sh bpf/build.sh), but profiles and seccomp generation name syscalls "
            + "with the x86 tables only: run vigil on x86_64 nodes")
        #endif
        guard FileManager.default.fileExists(atPath: btfPath) else {
            throw BPFError("this kernel has no BTF (\(btfPath) is missing): Vigil's programs are CO-RE and need a "
                + "kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux 5.8 or later; most distributions ship it)")
        }
        if geteuid() != 0 && !hasCapabilities() {
            throw BPFError("vigil needs root, or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE, "
                + "to load its kernel programs: run it with sudo")
        }
        try mountTracefsIfNeeded()
    }

    /// The running kernel's release (`uname -r`), for messages about what it refused.
    static func kernelRelease() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "(unknown release)" }
        return withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// CAP_BPF (39) and CAP_PERFMON (38) in the effective set, read from /proc/self/status.
    private static func hasCapabilities() -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << 39) != 0 && mask & (1 << 38) != 0
    }

    /// Syscall tracepoints attach through tracefs (libbpf reads each tracepoint's id there).
    /// Many hosts mount it; where none is, mount it where libbpf looks first.
    private static func mountTracefsIfNeeded() throws {
        let candidates = ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"]
        if candidates.contains(where: { FileManager.default.fileExists(atPath: $0) }) { return }
        if mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nil) != 0 {
            let reason = String(cString: strerror(errno))
            throw BPFError("tracefs is not mounted and mounting it at /sys/kernel/tracing failed (\(reason)): "
                + "mount it with `mount -t tracefs nodev /sys/kernel/tracing`, or in a container mount the host's "
                + "/sys/kernel/tracing")
        }
    }
}
