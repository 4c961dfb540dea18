import ArgumentParser
import Foundation
import VigilBPF

/// Whether this node's kernel takes Vigil's programs, before anything depends on it: the demo's
/// first step, an init container's, the kernel matrix's (scripts/kernel-matrix).
struct CheckKernel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-kernel",
        abstract: "Load and attach Vigil's programs into this kernel, say which build it took, and unload them.",
        discussion: """
        Prints one line: the kernel release, the build loaded (vigil.bpf.o, vigil-task-btf.bpf.o or
        vigil-compat.bpf.o) and the faster builds the kernel refused, each with the verifier's reason.
        Exits 2, naming every build's refusal, when none loads (with --build, when that one does not).
        """
    )

    @Option(name: .long, help: "Load the objects from this directory instead of those built into vigil.") var bpfDir: String?
    @Option(name: .long, help: "Load only this build (vigil.bpf.o, vigil-task-btf.bpf.o or vigil-compat.bpf.o): no fallback.") var build: String?

    func validate() throws {
        if let build, KernelProbes.ObjectVariant(rawValue: build) == nil {
            throw ValidationError("--build \(build): one of " + KernelProbes.ObjectVariant.allCases.map(\.rawValue).joined(separator: ", "))
        }
    }

    func run() throws {
        try reportingFailures {
            let probes = try KernelProbes(options: .init(ringBufferBytes: 1 << 16, objectDirectory: bpfDir,
                                                         variant: build.flatMap(KernelProbes.ObjectVariant.init(rawValue:))))
            let refused = probes.refusedBuilds.isEmpty ? "" : "; refused: " + probes.refusedBuilds.map(\.description).joined(separator: "; ")
            print("kernel=\(KernelProbes.kernelRelease) programs=\(probes.variant.rawValue)\(refused)")
        }
    }
}
