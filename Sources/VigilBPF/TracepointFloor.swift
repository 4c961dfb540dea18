import CVigilBPF
import Foundation

/// The physical limit of Vigil's design, for benchmarks: an empty program on every hook Vigil's
/// programs use, so a loop measured under it pays only the kernel's tracing path (entering the
/// tracepoint, running a program that returns at once). Detached when it goes.
public final class TracepointFloor {
    private var descriptors: [Int32] = []
    /// The hooks, as the programs' section names give them (`tp/CATEGORY/NAME`, `raw_tp/NAME`,
    /// `tp_btf/NAME`); cgroup programs are not tracepoints and are left out.
    public let hooks: [String]

    public init() throws {
        hooks = try KernelProbes.hookSections().filter { !$0.hasPrefix("cgroup/") }
        // A syscall this architecture lacks (arm64: open, rename…) has no tracepoint: as
        // KernelProbes does, leave it out.
        let absent = Set(KernelProbes.skippedOnThisArchitecture(hooks))
        do {
            for hook in hooks where !absent.contains(hook) {
                let parts = hook.split(separator: "/").map(String.init)
                let fd: Int32
                switch parts.first {
                case "tp" where parts.count == 3:
                    fd = vigil_bpf_attach_empty(parts[1], parts[2])
                case "raw_tp", "tp_btf":
                    fd = vigil_bpf_attach_empty(nil, parts[1])
                default:
                    throw BPFError("the floor does not know the hook '\(hook)'")
                }
                guard fd >= 0 else { throw BPFError("attaching an empty program at \(hook) failed: \(String(cString: strerror(-fd)))") }
                descriptors.append(fd)
            }
        } catch {
            for fd in descriptors { close(fd) }
            throw error
        }
    }

    /// Empty programs attached (hooks less the syscalls this architecture lacks).
    public var attached: Int { descriptors.count }

    deinit { for fd in descriptors { close(fd) } }
}
