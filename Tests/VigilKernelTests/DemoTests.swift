import Foundation
import XCTest

/// The README's main job, run as a user runs it: the vigil binary learns the example model
/// server, then monitors it through the scripted attack.
final class DemoTests: XCTestCase {
    func testTheDemoReportsExactlyTheAttackAndItsSeccompProfileRefusesIt() throws {
        try KernelTestSupport.requireRoot()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("/usr/bin/python3 is missing: scripts/setup installs it") }
            throw XCTSkip("needs /usr/bin/python3 (scripts/setup installs it)")
        }
        let vigil = VigilBinary.path
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let demo = Process()
        demo.executableURL = URL(fileURLWithPath: repository + "/examples/model-server/demo.sh")
        demo.arguments = [vigil]
        demo.environment = ["PORT": "18181", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let output = Pipe()
        let log = NSTemporaryDirectory() + "vigil-demo-\(getpid()).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: log) }
        demo.standardOutput = output
        demo.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try demo.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        demo.waitUntilExit()
        XCTAssertEqual(demo.terminationStatus, 0)
        // Step 3: the server under its generated seccomp profile.
        let narration = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(narration.contains("normal requests: answered under the profile"), narration)
        XCTAssertTrue(narration.contains("attack: refused by the kernel"), narration)
        XCTAssertTrue(narration.contains("PermissionError: [Errno 1] Operation not permitted"), narration)

        let anomalies = try data.split(separator: UInt8(ascii: "\n")).map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])
        }
        let rules = anomalies.compactMap { ($0["anomaly"] as? [String: Any])?["rule"] as? String }
        XCTAssertEqual(rules.filter { $0 != "unexpected-syscall" },
                       ["unexpected-exec", "model-artifact-write", "unexpected-egress"], "\(anomalies)")
        XCTAssertLessThanOrEqual(rules.filter { $0 == "unexpected-syscall" }.count, 2)
        let exec = anomalies.first { ($0["anomaly"] as? [String: Any])?["rule"] as? String == "unexpected-exec" }
        let process = (exec?["event"] as? [String: Any])?["process"] as? [String: Any]
        XCTAssertEqual(process?["exe"] as? String, "/usr/bin/dash")
        XCTAssertEqual((process?["parent_exe"] as? String)?.hasPrefix("/usr/bin/python3"), true)
    }
}
