import Foundation
import VigilTestSupport
import XCTest

/// Every `vigil-bench` benchmark, once, at a small size: they are not part of pass/fail (CI
/// machines are noisy, and their figures are not asserted), but they must keep running, so that
/// the figures in the README can be measured again. What is checked is that each one finishes
/// and prints its table.
final class BenchmarkSmokeTests: XCTestCase {
    private var bench: String { (KernelTestSupport.workload as NSString).deletingLastPathComponent + "/vigil-bench" }

    private func run(_ arguments: [String], expecting header: String, status: Int32 = 0, timeout: TimeInterval = 300) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bench)
        process.arguments = arguments
        let log = try KernelTestSupport.temporaryDirectory() + "/bench.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let output = try XCTUnwrap(FileHandle(forWritingAtPath: log))
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        let finishedInTime = !process.isRunning
        if !finishedInTime { process.stop(with: SIGINT, within: 10) } // its cleanup (cgroups, containerd) runs
        try output.close()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: (log as NSString).deletingLastPathComponent)
        XCTAssertTrue(finishedInTime && process.terminationStatus == status, "vigil-bench \(arguments.joined(separator: " ")) failed:\n\(text)")
        XCTAssertTrue(text.contains(header), "vigil-bench \(arguments.joined(separator: " ")) printed no table:\n\(text)")
    }

    /// A mistyped option (or --help) must not start minutes of benchmark with the defaults.
    func testAnUnknownOptionIsRefusedAndHelpPrintsTheUsage() throws {
        try run(["overhead", "--program-stat"], expecting: "unknown option --program-stat for overhead", status: 2, timeout: 10)
        try run(["fleet", "--containers"], expecting: "--containers needs a value", status: 2, timeout: 10)
        try run(["fleet", "--help"], expecting: "usage: vigil-bench decode", timeout: 10)
    }

    func testUserspaceBenchmarksRun() throws {
        try run(["checkpoint", "--rules", "200"], expecting: "| rules | collapse (s) |")
        try run(["model-hash", "--mib", "8"], expecting: "| pace | wall (s) |")
        try run(["soak", "--minutes", "0.05", "--containers-per-second", "2"], expecting: "| minute | RSS (MiB) |")
    }

    func testKernelBenchmarksRun() throws {
        try KernelTestSupport.requireRoot()
        try run(["decode", "--seconds", "0.2"], expecting: "decode + JSON:")
        try run(["detect", "--seconds", "0.2"], expecting: "detect (decode + check against the profile)")
        try run(["overhead", "--runs", "1", "--scale", "0.01", "--program-stats"],
                expecting: "| loop | floor | unwatched | monitor | watched | bpftrace |")
    }

    func testFleetBenchmarkRuns() throws {
        try KernelTestSupport.requireRoot()
        if let reason = Containerd.unavailableReason() {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        try run(["fleet", "--containers", "4", "--workloads", "2", "--seconds", "6", "--events-per-second", "2000", "--load-pods", "1"],
                expecting: "| phase | agent RSS (MiB) |")
    }
}
