import Foundation
import XCTest

/// The vigil binary as a user runs it.
final class CommandLineTests: XCTestCase {
    private var vigil: String { (KernelTestSupport.workload as NSString).deletingLastPathComponent + "/vigil" }

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: vigil)
        process.arguments = arguments
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    func testFlagsAreValidatedWithAClearError() throws {
        var result = try run(["trace"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.error.contains("give exactly one of: -- COMMAND, --cgroup PATH, --all"), result.error)
        result = try run(["trace", "--all", "--", "true"])
        XCTAssertTrue(result.error.contains("give exactly one of"), result.error)
        result = try run(["trace", "--ring-buffer-size", "1000", "--", "true"])
        XCTAssertTrue(result.error.contains("must be a power of two"), result.error)
        result = try run(["learn", "--workload", "w", "--min-duration", "soon", "--", "true"])
        XCTAssertTrue(result.error.contains("min-duration"), result.error)
        result = try run(["monitor", "--workload", "nobody", "--profiles", NSTemporaryDirectory() + "none", "--", "true"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("no profile for nobody"), result.error)
        XCTAssertTrue(result.error.contains("vigil learn --workload nobody"), result.error)
    }

    /// `vigil trace --cgroup PATH` watches an existing cgroup until it is told to stop.
    func testTraceWatchesAnExistingCgroupUntilInterrupted() throws {
        try KernelTestSupport.requireRoot()
        let traced = try TracedCgroup(self) // only for the cgroup and the workload
        let directory = try KernelTestSupport.temporaryDirectory()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: vigil)
        process.arguments = ["trace", "--cgroup", traced.hierarchy.directory(of: traced.path), "--node", "cli"]
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        sleep(5) // loading and attaching the programs takes a second or two
        try traced.run(["write:\(directory)/probe"])
        usleep(500_000)
        process.interrupt()
        let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, errors)
        XCTAssertTrue(lines.contains("\"path\":\"\(directory)/probe\""), lines)
        XCTAssertTrue(lines.contains("\"node\":\"cli\""))
    }
}
