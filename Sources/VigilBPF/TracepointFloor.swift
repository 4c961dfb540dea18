import CVigilBPF
import Foundation

/// The physical limit of Vigil's design, for benchmarks: an empty program on every hook Vigil's
/// programs use, so a loop measured under it pays only the kernel's tracing path (entering the
/// tracepoint, running a program that returns at once). Detached when it goes.
public final class TracepointFloor {
    private var descriptors: [Int32] = []
    private var programs: [Int32] = []
    private var statsFD: Int32 = -1
    /// The hooks, as the programs' section names give them (`tp/CATEGORY/NAME`, `raw_tp/NAME`,
    /// `tp_btf/NAME`); cgroup programs are not tracepoints and are left out.
    public let hooks: [String]

    /// The hooks of `variant`'s programs: the builds differ (`btfCasts` has no open enter programs).
    public init(variant: KernelProbes.ObjectVariant = .forThisKernel) throws {
        hooks = try KernelProbes.hookSections(variant: variant).filter { !$0.hasPrefix("cgroup/") }
        // A syscall this architecture lacks (arm64: open, rename…) has no tracepoint: as
        // KernelProbes does, leave it out.
        let absent = Set(KernelProbes.skippedOnThisArchitecture(hooks))
        do {
            for hook in hooks where !absent.contains(hook) {
                let parts = hook.split(separator: "/").map(String.init)
                let fd: Int32
                var program: Int32 = -1
                switch parts.first {
                case "tp" where parts.count == 3:
                    fd = vigil_bpf_attach_empty(parts[1], parts[2], &program)
                case "raw_tp", "tp_btf":
                    fd = vigil_bpf_attach_empty(nil, parts[1], &program)
                default:
                    throw BPFError("the floor does not know the hook '\(hook)'")
                }
                guard fd >= 0 else { throw BPFError("attaching an empty program at \(hook) failed: \(String(cString: strerror(-fd)))") }
                descriptors.append(fd)
                programs.append(program)
            }
        } catch {
            for fd in descriptors + programs { close(fd) }
            throw error
        }
    }

    /// Turns on the kernel's per-program run-time accounting while the floor lives, so that
    /// `runTime` says what the statistics themselves add to a run (subtract it from the figures
    /// `KernelProbes.programStats` gives). Returns false when the kernel refuses.
    @discardableResult
    public func enableRunTimeStats() -> Bool {
        guard statsFD < 0 else { return true }
        statsFD = bpf_enable_stats(BPF_STATS_RUN_TIME)
        return statsFD >= 0
    }

    /// The empty programs' runs and kernel time, all hooks together (zero until `enableRunTimeStats`).
    public func runTime() -> (runs: UInt64, nanoseconds: UInt64) {
        var total: (runs: UInt64, nanoseconds: UInt64) = (0, 0)
        for program in programs {
            guard let time = KernelProbes.runTime(ofProgram: program) else { continue }
            total.runs += time.runs
            total.nanoseconds += time.nanoseconds
        }
        return total
    }

    /// Empty programs attached (hooks less the syscalls this architecture lacks).
    public var attached: Int { descriptors.count }

    deinit {
        for fd in descriptors + programs { close(fd) }
        if statsFD >= 0 { close(statsFD) }
    }
}
