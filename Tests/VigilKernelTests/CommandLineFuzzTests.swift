import Foundation
import VigilTestSupport
import XCTest

/// Random command lines — every subcommand, every option, values from a pool of awkward ones and
/// random bytes — give a result or an error a person can act on: never a crash, a trap, or a raw
/// Foundation error. Paths stay inside a directory of the test's own. Seeded (seed in messages).
final class CommandLineFuzzTests: XCTestCase {
    static let commands: [(words: [String], options: [String], flags: [String], takesCommand: Bool)] = [
        (["trace"], ["--cgroup", "--bpf-dir", "--ring-buffer-size", "--node", "--record"], ["--all"], true),
        (["learn"], ["--workload", "--profiles", "--min-duration", "--quiet-period", "--checkpoint-interval", "--model-path", "--ring-buffer-size"],
         ["--relearn", "--until-stable"], true),
        (["monitor"], ["--workload", "--profiles", "--rate-limit", "--burst"], ["--no-kernel-suppression"], true),
        (["profile", "show"], ["--profiles"], [], false),
        (["profile", "diff"], ["--profiles"], [], false),
        (["profile", "promote"], ["--profiles"], [], false),
        (["profile", "check"], ["--profiles"], [], false),
        (["seccomp", "export"], ["--workload", "--profiles", "--format", "--mode", "--namespace", "--out"], [], false),
        (["seccomp", "verify"], ["--profile"], [], true),
        (["seccomp", "run"], ["--profile"], [], true),
        (["seccomp", "install"], ["--workload", "--profiles", "--seccomp-root", "--mode"], [], false),
        (["seccomp", "absorb-log"], ["--workload", "--profiles", "--log"], [], false),
        (["agent"], ["--config", "--bpf-dir", "--ring-buffer-size"], [], false),
    ]
    static let pathOptions: Set<String> = ["--bpf-dir", "--record", "--profiles", "--out", "--profile", "--seccomp-root", "--log", "--config"]

    func testRandomCommandLinesNeverCrashNorPrintRawErrors() throws {
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "x\n".write(toFile: work + "/file", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: work + "/dir", withIntermediateDirectories: true)
        mkfifo(work + "/fifo", 0o600)
        let seed = UInt64(ProcessInfo.processInfo.environment["VIGIL_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        var random = SeededRandom(seed: seed)
        let values = Fuzz.scalars.filter { !$0.hasPrefix("/") && !$0.contains("\u{0}") } + ["1s", "0s", "10m", "4096", "oci", "spo", "kill",
                                                                                             "complain", "w", "w@1", "ns/kind/name/c"]
        let paths = [work + "/file", work + "/dir", work + "/fifo", work + "/new", work + "/dir/x.json", "/dev/null", "/dev/full",
                     "relative", "", "\(work)/\u{202e}", "\(work)/" + String(repeating: "n", count: 300)]
        let deadline = Date().addingTimeInterval(15) // a budget, not a target: CI runs it every time (VIGIL_FUZZ_SEED repeats a run)
        var runs = 0
        while runs < 300 && Date() < deadline {
            runs += 1
            let command = Self.commands.randomElement(using: &random)!
            var arguments = command.words
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                if Bool.random(using: &random), let flag = command.flags.randomElement(using: &random) {
                    arguments.append(flag)
                    continue
                }
                let option = command.options.randomElement(using: &random)!
                let value: String
                switch Int.random(in: 0...9, using: &random) {
                case 0: value = String(decoding: Fuzz.bytes(&random, count: Int.random(in: 0...20, using: &random)), as: UTF8.self)
                    .replacingOccurrences(of: "\u{0}", with: "").replacingOccurrences(of: "/", with: "_")
                case 1...3 where Self.pathOptions.contains(option): value = paths.randomElement(using: &random)!
                default: value = Self.pathOptions.contains(option) ? paths.randomElement(using: &random)! : values.randomElement(using: &random)!
                }
                arguments += [option, value]
            }
            if Int.random(in: 0...3, using: &random) == 0 { arguments.append(values.randomElement(using: &random)!) }
            if command.takesCommand && Bool.random(using: &random) {
                arguments += ["--"] + [["true"], ["/nonexistent"], [""], ["/bin/busybox", "echo", "x"]].randomElement(using: &random)!
            }
            try check(arguments, in: work, seed: seed)
        }
        print("command-line fuzz: \(runs) command lines, seed \(seed)")
    }

    private func check(_ arguments: [String], in directory: String, seed: UInt64) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: VigilBinary.path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": directory]
        let error = Pipe()
        process.standardError = error
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Commands that watch until stopped (trace --all, agent) are stopped as a user would.
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        let stopped = process.isRunning
        if stopped {
            process.terminate()
            let stop = Date().addingTimeInterval(10)
            while process.isRunning && Date() < stop { usleep(10_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                XCTFail("seed \(seed): vigil \(arguments) ignored SIGTERM")
            }
        }
        process.waitUntilExit()
        let text = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // Stopped by SIGTERM before its loop took over signals (still loading its programs, or
        // blocked opening a pipe nobody writes): the default, and harmless. Any other signal is
        // a crash or a trap.
        if !(stopped && process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGTERM) {
            XCTAssertEqual(process.terminationReason, .exit, "seed \(seed): vigil \(arguments) died of signal \(process.terminationStatus): \(text)")
        }
        for raw in ["NSCocoaErrorDomain", "Fatal error", "NSPOSIXErrorDomain", "Error Domain="] {
            XCTAssertFalse(text.contains(raw), "seed \(seed): vigil \(arguments): \(text)")
        }
    }
}
