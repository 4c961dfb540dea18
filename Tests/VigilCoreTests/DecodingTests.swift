import CVigilABI
import Foundation
@testable import VigilCore
import VigilTestSupport
import XCTest

final class DecodingTests: XCTestCase {
    func testDecodesExecRecordFields() throws {
        let record = RecordBuilder.exec(exe: "/usr/bin/python3", args: ["python3", "serve.py", "--port=8080"])
        try record.withRawEvent { event in
            XCTAssertEqual(event.kind, .exec)
            XCTAssertEqual(event.pid, 4242)
            XCTAssertEqual(event.tid, 4243)
            XCTAssertEqual(event.ppid, 4200)
            XCTAssertEqual(event.uid, 1000)
            XCTAssertEqual(event.gid, 1001)
            XCTAssertEqual(event.cgroupID, 77)
            XCTAssertEqual(Array(event.comm), Array("python3".utf8))
            XCTAssertEqual(Array(event.exe), Array("/usr/bin/python3".utf8))
            XCTAssertEqual(Array(event.arguments), Array("python3\0serve.py\0--port=8080\0".utf8))
        }
    }

    func testRejectsShortAndUnknownRecords() {
        let exec = RecordBuilder.exec(exe: "/bin/sh", args: ["sh"])
        XCTAssertThrowsError(try Array(exec.prefix(40)).withRawEvent { _ in }) { error in
            XCTAssertTrue("\(error)".contains("shorter than the event header"))
        }
        XCTAssertThrowsError(try Array(exec.prefix(80)).withRawEvent { _ in }) { error in
            XCTAssertTrue("\(error)".contains("expected \(MemoryLayout<vigil_exec_record>.size)"))
        }
        var unknown = exec
        unknown[0] = 99
        XCTAssertThrowsError(try unknown.withRawEvent { _ in }) { error in
            XCTAssertEqual("\(error)", "unknown event kind 99")
        }
    }

    func testPackedStringsFollowOneAnother() throws {
        let record = RecordBuilder.file(op: VIGIL_FILE_RENAME, dir: "/srv", name: "a.tmp", targetDir: "/srv/out",
                                        targetName: "b.bin")
        XCTAssertEqual(record.count, MemoryLayout<vigil_file_record>.size + 4 + 5 + 8 + 5)
        try record.withRawEvent { event in
            XCTAssertEqual(Array(event.filePath.directory), Array("/srv".utf8))
            XCTAssertEqual(Array(event.filePath.name), Array("a.tmp".utf8))
            XCTAssertEqual(Array(event.fileTarget.directory), Array("/srv/out".utf8))
            XCTAssertEqual(Array(event.fileTarget.name), Array("b.bin".utf8))
        }
        let exec = RecordBuilder.exec(exe: "/bin/sh", parent: "/usr/bin/python3", args: ["sh", "-c", "id"])
        try exec.withRawEvent { event in
            XCTAssertEqual(Array(event.exe), Array("/bin/sh".utf8))
            XCTAssertEqual(Array(event.parentExe), Array("/usr/bin/python3".utf8))
            XCTAssertEqual(Array(event.arguments), Array("sh\0-c\0id\0".utf8))
        }
    }

    /// A record is hostile data (a replayed file can be anything): lengths that point past its end,
    /// or past what a string can hold, are refused, never read.
    func testLengthsThatDoNotFitAreRefused() throws {
        let exec = RecordBuilder.exec(exe: "/bin/sh", args: ["sh"])
        XCTAssertThrowsError(try Array(exec.dropLast()).withRawEvent { _ in }) { error in
            XCTAssertTrue("\(error)".contains("cut or damaged"), "\(error)")
        }
        var record = vigil_exec_record()
        record.hdr = RecordBuilder.header(kind: VIGIL_KIND_EXEC)
        record.args_len = 100_000
        let huge = RecordBuilder.bytes(of: record) + [UInt8](repeating: 0x41, count: 100_000)
        XCTAssertThrowsError(try huge.withRawEvent { _ in }) { error in
            XCTAssertTrue("\(error)".contains("more than the \(VIGIL_PATH_LEN)"), "\(error)")
        }
        var file = RecordBuilder.file(op: VIGIL_FILE_CREATE, dir: "", name: "/tmp/x")
        file[MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.target_name_len)!] = 1
        XCTAssertThrowsError(try file.withRawEvent { _ in }) { error in
            XCTAssertTrue("\(error)".contains("says 7 bytes of text"), "\(error)")
        }
    }
}

final class EncodingTests: XCTestCase {
    private func encode(_ records: [[UInt8]], workload: WorkloadIdentity? = WorkloadIdentity(cgroup: "/kubepods/pod1/c1")) throws -> [String] {
        var encoder = EventEncoder(node: "node-a", clock: BootClock(offsetNanoseconds: 1_764_186_684_000_000_000))
        var processes = ProcessTable()
        var lines: [String] = []
        for record in records {
            var out = JSONLineWriter()
            try record.withRawEvent { event in
                processes.observe(event)
                if encoder.encode(event, workload: workload, processes: processes, into: &out) {
                    lines.append(String(decoding: out.bytes, as: UTF8.self))
                }
            }
        }
        return lines
    }

    func testExecLineMatchesTheContract() throws {
        let lines = try encode([
            RecordBuilder.exec(pid: 4200, exe: "/bin/sh", args: ["sh"], boot: 500),
            RecordBuilder.exec(pid: 4242, exe: "/usr/bin/python3", parent: "/bin/sh", args: ["python3", "serve.py"],
                               boot: 123_456_789),
        ])
        XCTAssertEqual(lines[1], """
        {"time":"2025-11-26T19:51:24.123456789Z","node":"node-a","kind":"process.exec","workload":{"cgroup":"/kubepods/pod1/c1"},\
        "process":{"pid":4242,"tid":4243,"ppid":4200,"uid":1000,"gid":1001,"comm":"python3","exe":"/usr/bin/python3",\
        "args":["python3","serve.py"],"exec_id":"4242-123456789","parent_exe":"/bin/sh"}}

        """)
    }

    func testFileEventsJoinRelativeNamesWithTheKernelResolvedDirectory() throws {
        let lines = try encode([
            RecordBuilder.exec(exe: "/usr/bin/python3", args: ["python3"], boot: 7),
            RecordBuilder.file(op: VIGIL_FILE_CREATE, dir: "/models", name: "./tmp/../weights.bin",
                               openFlags: 0o1101),
            RecordBuilder.file(op: VIGIL_FILE_RENAME, dir: "/srv", name: "a", targetDir: "/", targetName: "/etc//passwd"),
            RecordBuilder.file(op: VIGIL_FILE_UNLINK, dir: "", name: "/tmp/x", result: -2),
        ], workload: nil)
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines[1].hasSuffix("""
        "process":{"pid":4242,"tid":4243,"ppid":4200,"uid":1000,"gid":1001,"comm":"python3","exe":"/usr/bin/python3",\
        "exec_id":"4242-7"},"file":{"path":"/models/weights.bin","op":"create","flags":577,"outcome":"success"}}

        """), lines[1])
        XCTAssertTrue(lines[2].contains(#""file":{"path":"/srv/a","op":"rename","target":"/etc/passwd","outcome":"success"}"#), lines[2])
        XCTAssertTrue(lines[3].contains(#""file":{"path":"/tmp/x","op":"unlink","outcome":"failure","errno":"ENOENT"}"#), lines[3])
        XCTAssertFalse(lines[3].contains("workload"))
    }

    func testNetworkEventsNameFamilyProtocolAndLoopback() throws {
        let lines = try encode([
            RecordBuilder.network(family: 2, address: [10, 1, 2, 3], port: 443),
            RecordBuilder.network(op: VIGIL_NET_SENDTO, family: 10, address: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [5],
                                  port: 53, protocol: 17),
            RecordBuilder.network(family: 10, address: Array(repeating: 0, count: 10) + [0xff, 0xff, 127, 0, 0, 1], port: 80,
                                  result: -115),
            RecordBuilder.network(family: 2, address: [127, 0, 0, 1], port: 9, result: -111),
        ])
        XCTAssertTrue(lines[0].contains(#""network":{"protocol":"tcp","family":"ipv4","address":"10.1.2.3","port":443,"op":"connect","loopback":false,"outcome":"success"}"#), lines[0])
        XCTAssertTrue(lines[1].contains(#""network":{"protocol":"udp","family":"ipv6","address":"2001:db8::5","port":53,"op":"sendto","loopback":false"#), lines[1])
        XCTAssertTrue(lines[2].contains(#""address":"::ffff:127.0.0.1","port":80,"op":"connect","loopback":true,"outcome":"in_progress"}"#), lines[2])
        XCTAssertTrue(lines[3].contains(#""loopback":true,"outcome":"failure","errno":"ECONNREFUSED"}"#), lines[3])
    }

    func testExitsAreNotPrintedButForgetTheProcess() throws {
        let lines = try encode([
            RecordBuilder.exec(exe: "/bin/sh", args: ["sh"]),
            RecordBuilder.exit(),
            RecordBuilder.file(op: VIGIL_FILE_CREATE, dir: "/", name: "x"),
        ])
        XCTAssertEqual(lines.count, 2)
        XCTAssertFalse(lines[1].contains("exe"), "a process that exited must not keep its exe")
    }

    func testStringsAreEscapedAndInvalidUTF8Replaced() throws {
        let lines = try encode([RecordBuilder.exec(exe: "/tmp/a\"b\\c\nd", args: ["x\u{1}y"])])
        XCTAssertTrue(lines[0].contains(#""exe":"/tmp/a\"b\\c\nd""#), lines[0])
        XCTAssertTrue(lines[0].contains(#""args":["x\u0001y"]"#), lines[0])

        var out = JSONLineWriter()
        ([0x2f, 0xff, 0x61] as [UInt8]).withUnsafeBytes { out.string($0) }
        XCTAssertEqual(String(decoding: out.bytes, as: UTF8.self), "\"/\u{FFFD}a\"")
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)))
    }

    func testTruncationFlagsAreReported() throws {
        let lines = try encode([
            RecordBuilder.exec(exe: "/bin/sh", args: ["sh", "cut"], flags: UInt32(VIGIL_FLAG_ARGS_TRUNCATED)),
            RecordBuilder.file(op: VIGIL_FILE_CREATE, dir: "", name: "x", flags: UInt32(VIGIL_FLAG_DIR_UNRESOLVED | VIGIL_FLAG_PATH_TRUNCATED)),
        ])
        XCTAssertTrue(lines[0].contains(#""args":["sh","cut"],"args_truncated":true"#))
        XCTAssertTrue(lines[1].contains(#""path_truncated":true,"dir_unresolved":true"#))
    }

    func testDropsLine() {
        let encoder = EventEncoder(node: "n", clock: BootClock(offsetNanoseconds: 0))
        var out = JSONLineWriter()
        encoder.encodeDrops(stage: "ring_buffer_full", kind: "file.write", count: 3, total: 10, atBoot: 0, into: &out)
        XCTAssertEqual(String(decoding: out.bytes, as: UTF8.self), """
        {"time":"1970-01-01T00:00:00.000000000Z","node":"n","kind":"agent.drops","drops":{"stage":"ring_buffer_full","event_kind":"file.write","count":3,"total":10}}

        """)
    }
}

final class PathJoinerTests: XCTestCase {
    private func join(_ dir: String, _ name: String) -> String {
        var joiner = PathJoiner()
        Array(dir.utf8).withUnsafeBytes { d in Array(name.utf8).withUnsafeBytes { n in joiner.join(directory: d, name: n) } }
        return String(decoding: joiner.buffer, as: UTF8.self)
    }

    func testJoinsAndFolds() {
        XCTAssertEqual(join("/work", "f"), "/work/f")
        XCTAssertEqual(join("/work", "/abs/f"), "/abs/f")
        XCTAssertEqual(join("/work", "./a/./b"), "/work/a/b")
        XCTAssertEqual(join("/work/x", "../y"), "/work/y")
        XCTAssertEqual(join("/", "../../etc/passwd"), "/etc/passwd")
        XCTAssertEqual(join("/", "."), "/")
        XCTAssertEqual(join("/a", "b//c/"), "/a/b/c")
        XCTAssertEqual(join("", "rel"), "/rel")
    }
}

final class BootClockTests: XCTestCase {
    func testFormatsRFC3339WithNanoseconds() {
        func text(_ ns: Int64) -> String {
            var out = JSONLineWriter()
            BootClock.writeRFC3339(unixNanoseconds: ns, to: &out)
            return String(decoding: out.bytes, as: UTF8.self)
        }
        XCTAssertEqual(text(0), "\"1970-01-01T00:00:00.000000000Z\"")
        XCTAssertEqual(text(951_782_400_000_000_001), "\"2000-02-29T00:00:00.000000001Z\"")
        XCTAssertEqual(text(1_798_761_599_999_999_999), "\"2026-12-31T23:59:59.999999999Z\"")
    }
}

final class RecordFileTests: XCTestCase {
    func testRoundTripsRecordsAndRefusesCutFiles() throws {
        var file: [UInt8] = []
        let records = [RecordBuilder.exec(exe: "/bin/sh", args: ["sh"]), RecordBuilder.exit()]
        for record in records { record.withUnsafeBytes { RecordFile.append($0, to: &file) } }
        var read: [[UInt8]] = []
        try file.withUnsafeBytes { try RecordFile.forEachRecord(in: $0) { read.append(Array($0)) } }
        XCTAssertEqual(read, records)

        let cut = Array(file.dropLast(10))
        XCTAssertThrowsError(try cut.withUnsafeBytes { try RecordFile.forEachRecord(in: $0) { _ in } }) { error in
            XCTAssertTrue("\(error)".contains("record file cut"), "\(error)")
        }
    }
}
