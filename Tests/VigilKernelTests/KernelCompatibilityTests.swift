import Foundation
@testable import VigilBPF
import VigilTestSupport
import XCTest

/// What keeps Vigil loadable on the kernels nodes run: the build-time stack check (bpf/check-stack)
/// against objects made to pass and fail it, and against this kernel's own verdict; and the
/// loader, which goes on to the next build when the kernel refuses one, and says what each
/// refusal was when it refuses them all.
final class KernelCompatibilityTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    private static let fixtures = repository + "/Tests/VigilKernelTests/Fixtures"

    private struct Result {
        var status: Int32
        var output: String
    }

    private func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    private func clang(_ source: String, _ object: String, _ flags: [String]) throws {
        let result = try run("/usr/bin/env", ["clang", "-target", "bpf", "-O2", "-g", "-Wall", "-Werror", "-D__TARGET_ARCH_x86",
                                              "-I", Self.repository + "/bpf", "-idirafter", "/usr/include"] + flags
                                 + ["-c", source, "-o", object])
        XCTAssertEqual(result.status, 0, "clang \(source): \(result.output)")
    }

    private func link(_ object: String, _ inputs: [String]) throws {
        let result = try run("/usr/bin/env", ["bpftool", "gen", "object", object] + inputs)
        XCTAssertEqual(result.status, 0, "bpftool gen object: \(result.output)")
    }

    private func checkStack(_ objects: [String]) throws -> Result {
        try run("/usr/bin/env", ["python3", Self.repository + "/bpf/check-stack"] + objects)
    }

    /// A chain of four 160-byte frames — a program, a global function, a static function and the
    /// bpf_loop callback it passes — is 640 bytes: the check refuses it, naming the chain, and so
    /// does this kernel's verifier, with the same sum. The same chain of 64-byte frames passes both.
    func testTheStackCheckCountsEveryFrameOfAChainAsTheVerifierDoes() throws {
        try KernelTestSupport.requireRoot()
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        for (frame, fits) in [(160, false), (64, true)] {
            let compiled = "\(work)/chain\(frame).o", linked = "\(work)/chain\(frame).bpf.o"
            try clang(Self.fixtures + "/stack_chain.bpf.c", compiled, ["-DFRAME=\(frame)"])
            try link(linked, [compiled])

            let check = try checkStack([linked])
            XCTAssertEqual(check.status, fits ? 0 : 1, check.output)
            let chain = "fixture_program (\(frame)) -> fixture_global (\(frame)) -> fixture_static (\(frame)) -> fixture_callback (\(frame))"
            XCTAssertTrue(check.output.contains("worst stack chain \(4 * frame) of 512 bytes: \(chain)"), check.output)
            if !fits {
                XCTAssertTrue(check.output.contains("error: fixture_program needs 640 bytes of stack"), check.output)
            }

            // bpftool pins what it loads; a bpffs of the test's own, since a machine need not
            // have /sys/fs/bpf mounted (this kind boots without it).
            let pins = "\(work)/bpffs\(frame)"
            try FileManager.default.createDirectory(atPath: pins, withIntermediateDirectories: false)
            guard mount("bpf", pins, "bpf", 0, nil) == 0 else {
                throw TestSupportError(description: "mount -t bpf \(pins): \(String(cString: strerror(errno)))")
            }
            defer { umount2(pins, Int32(MNT_DETACH)) }
            let load = try run("/usr/bin/env", ["bpftool", "prog", "loadall", linked, pins + "/fixture"])
            if fits {
                XCTAssertEqual(load.status, 0, "this kernel refused a chain the check passes: \(load.output.suffix(800))")
            } else {
                XCTAssertNotEqual(load.status, 0, "this kernel took a 640-byte chain: it gives private stacks, so it cannot confirm the check")
                XCTAssertTrue(load.output.contains("combined stack size of 4 calls is 640"), String(load.output.suffix(800)))
            }
        }
    }

    /// The real programs, each build with one more program that every verifier refuses (a helper
    /// size it cannot bound): `variants` are the builds so spoilt, in the directory returned.
    /// One build of the real objects for every test here that spoils some (a build takes ~8 s).
    nonisolated(unsafe) private static var realObjects: String?

    override class func tearDown() {
        if let realObjects { try? FileManager.default.removeItem(atPath: realObjects) }
        realObjects = nil
        super.tearDown()
    }

    private func objects(spoiling variants: Set<KernelProbes.ObjectVariant>) throws -> String {
        if Self.realObjects == nil {
            let base = try KernelTestSupport.temporaryDirectory()
            let build = try run("/bin/sh", [Self.repository + "/bpf/build.sh", base])
            XCTAssertEqual(build.status, 0, build.output)
            Self.realObjects = base
        }
        let base = try XCTUnwrap(Self.realObjects)
        let work = try KernelTestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        let sources: [KernelProbes.ObjectVariant: (directory: String, flags: [String])] = [
            .btfCasts: ("objects", ["-DVIGIL_TASK_BTF", "-DVIGIL_BTF_CASTS"]),
            .taskBTF: ("objects-task-btf", ["-DVIGIL_TASK_BTF"]),
            .compat: ("objects-compat", []),
        ]
        for variant in KernelProbes.ObjectVariant.allCases {
            let target = "\(work)/\(variant.rawValue)"
            guard variants.contains(variant) else {
                try FileManager.default.copyItem(atPath: "\(base)/\(variant.rawValue)", toPath: target)
                continue
            }
            let (directory, defines) = try XCTUnwrap(sources[variant])
            let fixture = "\(work)/refused-\(directory).o"
            try clang(Self.fixtures + "/refused_by_verifier.bpf.c", fixture, defines)
            let inputs = try FileManager.default.contentsOfDirectory(atPath: "\(base)/\(directory)").filter { $0.hasSuffix(".o") }
                .sorted().map { "\(base)/\(directory)/\($0)" }
            try link(target, inputs + [fixture])
        }
        return work
    }

    /// The check fails the build itself: bpf/build.sh, run on the sources with one more program
    /// whose chain is over the limit, stops with the chain named.
    func testAProgramOverTheLimitFailsTheBuild() throws {
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let sources = work + "/bpf"
        try FileManager.default.copyItem(atPath: Self.repository + "/bpf", toPath: sources)
        try FileManager.default.copyItem(atPath: Self.fixtures + "/stack_chain.bpf.c", toPath: sources + "/zz_stack_chain.bpf.c")
        let build = try run("/bin/sh", [sources + "/build.sh", work + "/out"])
        XCTAssertNotEqual(build.status, 0, "the build passed a 640-byte chain: \(build.output)")
        XCTAssertTrue(build.output.contains("error: fixture_program needs 640 bytes of stack"), build.output)
        XCTAssertTrue(build.output.contains("error: vigil.bpf.o (x86): a program needs more stack than every kernel allows"), build.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/out/EmbeddedBPFObject.swift"), "an object over the limit was embedded")
    }

    /// The fastest build refused: the next one loads and attaches, and the refusal is kept with the
    /// program and the verifier's words, for the agent's log.
    func testARefusedBuildGivesWayToTheNextOneWithTheVerifiersReason() throws {
        try KernelTestSupport.requireRoot()
        let fastest = KernelProbes.ObjectVariant.forThisKernel
        let candidates = KernelProbes.ObjectVariant.candidatesForThisKernel
        guard candidates.count > 1 else {
            throw XCTSkip("this kernel takes only \(fastest.rawValue): there is no older build to fall back to")
        }
        let directory = try objects(spoiling: [fastest])
        let probes = try KernelProbes(options: .init(ringBufferBytes: 1 << 16, objectDirectory: directory))
        XCTAssertEqual(probes.variant, candidates[1])
        XCTAssertEqual(probes.refusedBuilds.map(\.variant), [fastest])
        let refusal = try XCTUnwrap(probes.refusedBuilds.first)
        XCTAssertEqual(refusal.program, "vigil_fixture_unbounded")
        // The call the verifier stopped at, and what it said of its size argument (R2): worded
        // differently across kernels.
        XCTAssertTrue(refusal.reason.contains("call bpf_probe_read_kernel") && refusal.reason.contains("R2 "), refusal.reason)
        XCTAssertFalse(refusal.reason.contains("\n"), "one line for the log: \(refusal.reason)")
    }

    /// Every build refused: no probes, and an error naming the kernel and each build's program and
    /// reason. The commands say it and exit 2; the agent exits before it serves /readyz.
    func testWhenEveryBuildIsRefusedTheCommandsSayWhyAndExit() throws {
        try KernelTestSupport.requireRoot()
        let directory = try objects(spoiling: Set(KernelProbes.ObjectVariant.allCases))
        let release = KernelProbes.kernelRelease
        XCTAssertThrowsError(try KernelProbes(options: .init(ringBufferBytes: 1 << 16, objectDirectory: directory))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("no build of Vigil's BPF programs loads on Linux \(release)"), message)
            for variant in KernelProbes.ObjectVariant.candidatesForThisKernel {
                XCTAssertTrue(message.contains("\(variant.rawValue): program 'vigil_fixture_unbounded': "), message)
            }
            XCTAssertTrue(message.contains("call bpf_probe_read_kernel"), message)
        }

        let check = try VigilBinary.run(["check-kernel", "--bpf-dir", directory])
        XCTAssertEqual(check.status, 2, check.output + check.error)
        XCTAssertTrue(check.error.hasPrefix("vigil: no build of Vigil's BPF programs loads on Linux \(release)"), check.error)

        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let port = try LoopbackSocket.freePort()
        let config = """
            cgroupRoots: [\(work)/kubepods]
            profiles: \(work)/profiles
            seccompRoot: \(work)/seccomp
            metricsAddress: 127.0.0.1:\(port)
            """
        try config.write(toFile: work + "/agent.yaml", atomically: true, encoding: .utf8)
        let agent = try VigilBinary.run(["agent", "--config", work + "/agent.yaml", "--bpf-dir", directory])
        XCTAssertEqual(agent.status, 2, agent.error)
        XCTAssertTrue(agent.error.contains("no build of Vigil's BPF programs loads on Linux \(release)"), agent.error)
        XCTAssertThrowsError(try HTTP.request("GET", "/readyz", port: Int(port)), "something answered /readyz after the agent failed to load")
    }

    /// The reason an operator reads: the verifier's last lines, not its thousands; libbpf's own
    /// complaint when the verifier never ran.
    func testTheVerifierLogIsReducedToTheProgramAndItsReason() {
        let stack = VerifierLog("""
            libbpf: prog 'vigil_open_exit': BPF program load failed: Permission denied
            libbpf: prog 'vigil_open_exit': -- BEGIN PROG LOAD LOG --
            0: R1=ctx() R10=fp0
            ; int vigil_open_exit(struct trace_event_raw_sys_exit *ctx) @ file_open.bpf.c:180
            0: (bf) r6 = r1
            combined stack size of 2 calls is 864. Too large
            processed 2346 insns (limit 1000000) max_states_per_insn 3 total_states 95 peak_states 95 mark_read 49
            -- END PROG LOAD LOG --
            libbpf: prog 'vigil_open_exit': failed to load: -13
            libbpf: failed to load object 'vigil'
            """)
        XCTAssertEqual(stack.program, "vigil_open_exit")
        XCTAssertEqual(stack.reason, "0: (bf) r6 = r1 / combined stack size of 2 calls is 864. Too large")

        let kfunc = VerifierLog("""
            libbpf: extern (func ksym) 'bpf_rdonly_cast': not found in kernel or module BTFs
            libbpf: failed to load object 'vigil'
            """)
        XCTAssertNil(kfunc.program)
        XCTAssertEqual(kfunc.reason, "extern (func ksym) 'bpf_rdonly_cast': not found in kernel or module BTFs")
        XCTAssertNil(VerifierLog("").reason)
    }
}
