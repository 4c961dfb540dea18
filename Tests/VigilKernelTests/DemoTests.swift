import Foundation
import VigilTestSupport
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
        let narration = try String(contentsOfFile: log, encoding: .utf8)
        // Step 3: the same attack in protect mode: the shell killed, the connection refused.
        XCTAssertTrue(narration.contains("normal requests before and after the attack: answered"), narration)
        XCTAssertTrue(narration.contains("attack: the shell was killed before it ran (the weights are intact)"), narration)
        let acted = narration.split(separator: "\n").filter { $0.hasPrefix("{") && $0.contains(#""action""#) }
        XCTAssertTrue(acted.contains { $0.contains(#""rule":"unexpected-exec""#) && $0.contains(#""action":"killed""#) }, narration)
        XCTAssertTrue(acted.contains { $0.contains(#""rule":"unexpected-egress""#) && $0.contains(#""action":"denied""#) }, narration)
        XCTAssertFalse(acted.contains { $0.contains("model-artifact-write") }, "the shell never ran, so nothing wrote the weights")
        // Step 4: the server under its generated seccomp profile.
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

    /// The model scenes (demo-models.sh): the server downloads its weights at start; once it
    /// serves, swapped weights, a shell reading them and its downloader run again are reported,
    /// and nothing is for normal requests, a second replica, or a restart.
    func testTheModelScenesReportExactlyTheModelRules() throws {
        try KernelTestSupport.requireRoot()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("/usr/bin/python3 is missing: scripts/setup installs it") }
            throw XCTSkip("needs /usr/bin/python3 (scripts/setup installs it)")
        }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let demo = Process()
        demo.executableURL = URL(fileURLWithPath: repository + "/examples/model-server/demo-models.sh")
        demo.arguments = [VigilBinary.path]
        demo.environment = ["PORT": "18281", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let log = NSTemporaryDirectory() + "vigil-demo-models-\(getpid()).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: log) }
        demo.standardOutput = FileHandle.nullDevice
        demo.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try demo.run()
        demo.waitUntilExit()
        let narration = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertEqual(demo.terminationStatus, 0, narration)
        XCTAssertTrue(narration.contains("normal requests done: 0 anomalies on A, 0 on B"), narration)

        func lines(_ replica: String) throws -> [[String: Any]] {
            let data = try Data(contentsOf: URL(fileURLWithPath: "/tmp/vigil-demo-models/replica-\(replica).jsonl"))
            return try data.split(separator: UInt8(ascii: "\n")).map {
                try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])
            }
        }
        func anomalies(_ replica: String) throws -> [[String: Any]] { try lines(replica).filter { $0["kind"] as? String == "anomaly" } }
        let second = try anomalies("b"), restarted = try anomalies("restart")
        XCTAssertEqual(second.count, 0, "a second replica loading the same weights: \(second)")
        XCTAssertEqual(restarted.count, 0, "a restart downloads and loads again: \(restarted)")
        XCTAssertEqual(try lines("restart").filter { $0["kind"] as? String == "model.load" }.count, 1, "which model it loaded, said")

        let attacked = try anomalies("a")
        let rules = Set(attacked.compactMap { $0[path: "anomaly.rule"] as? String })
        // Besides: the shell's own exec, its cat's, its `> /dev/null`, and syscalls of theirs.
        XCTAssertEqual(rules.subtracting(["unexpected-exec", "unexpected-syscall", "unexpected-file-write"]),
                       ["model-changed", "model-artifact-read", "startup-only-behaviour"], "\(attacked)")
        func first(_ rule: String) -> [String: Any]? { attacked.first { $0[path: "anomaly.rule"] as? String == rule } }
        XCTAssertEqual(first("model-changed")?[path: "event.model.path"] as? String, "/tmp/vigil-demo-models/models/weights.json")
        XCTAssertEqual(first("model-artifact-read")?[path: "event.file.reader_exe"] as? String, "/usr/bin/cat")
        let startup = attacked.filter { $0[path: "anomaly.rule"] as? String == "startup-only-behaviour" }
        XCTAssertTrue(startup.contains { ($0[path: "anomaly.startup_rule.exec.exe"] as? String)?.hasPrefix("/usr/bin/python3") == true },
                      "the downloader's exec: \(startup)")
        XCTAssertTrue(startup.contains { $0[path: "anomaly.startup_rule.egress.port"] as? Int == 18291 }, "the registry: \(startup)")
        let execs = attacked.filter { $0[path: "anomaly.rule"] as? String == "unexpected-exec" }.compactMap { $0[path: "event.process.exe"] as? String }
        XCTAssertEqual(Set(execs), ["/usr/bin/dash", "/usr/bin/cat"], "the shell and its cat; the downloader is not unexpected")
    }
}
