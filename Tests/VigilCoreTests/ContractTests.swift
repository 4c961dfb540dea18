import CVigilABI
import Foundation
@testable import VigilCore
import VigilSeccomp
import VigilTestSupport
import XCTest

/// The JSON-lines contract, one golden line per kind, all written by `EventEncoder` (the reporter
/// and the registry only decide when). A change to any of these lines is a change to what every
/// consumer of Vigil's output parses: make it on purpose, and say so in the README.
final class ContractTests: XCTestCase {
    private let clock = BootClock(offsetNanoseconds: 1_764_186_684_000_000_000) // 2025-11-26T19:51:24Z at boot 0
    private let pod = WorkloadIdentity(id: "ml/deployment/llm/server", namespace: "ml", pod: "llm-7d9c8f6b5-x2k4p", container: "server",
                                       containerID: "c0ffee", image: "registry.local/llm:1.4", cgroup: "/kubepods/pod1/c0ffee")

    /// The stable profile the anomaly lines name.
    private let profile = Profile(workload: "ml/deployment/llm/server", version: 3, state: .stable,
                                  learning: LearningEvidence(started: Date(), lastNew: Date(), minDuration: 0, quietPeriod: 0))

    private func line(_ record: [UInt8], processes: ProcessTable = ProcessTable()) throws -> String {
        var encoder = EventEncoder(node: "node-a", clock: clock)
        var out = JSONLineWriter()
        try record.withRawEvent { event in
            XCTAssertTrue(encoder.encode(event, workload: pod, processes: processes, into: &out))
        }
        return String(decoding: out.bytes, as: UTF8.self)
    }

    private func text(_ out: JSONLineWriter) -> String {
        String(decoding: out.bytes, as: UTF8.self)
    }

    func testProcessExec() throws {
        XCTAssertEqual(try line(RecordBuilder.exec(pid: 4242, exe: "/usr/bin/python3", parent: "/bin/sh", args: ["python3", "serve.py"],
                                                   boot: 123_456_789)), """
        {"time":"2025-11-26T19:51:24.123456789Z","node":"node-a","kind":"process.exec","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},"process":{"pid":4242,"tid":4243,"ppid":4200,"uid":1000,"gid":1001,"comm":"python3",\
        "exe":"/usr/bin/python3","args":["python3","serve.py"],"exec_id":"4242-123456789","parent_exe":"/bin/sh"}}

        """)
    }

    func testFileWrite() throws {
        XCTAssertEqual(try line(RecordBuilder.file(op: VIGIL_FILE_CREATE, dir: "/srv", name: "cache/out.json",
                                                   openFlags: UInt32(O_WRONLY | O_CREAT))), """
        {"time":"2025-11-26T19:51:25.000000000Z","node":"node-a","kind":"file.write","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},"process":{"pid":4242,"tid":4243,"ppid":4200,"uid":1000,"gid":1001,"comm":"python3"},\
        "file":{"path":"/srv/cache/out.json","op":"create","flags":65,"outcome":"success"}}

        """)
    }

    func testModelFileRead() throws {
        XCTAssertEqual(try line(RecordBuilder.file(op: VIGIL_FILE_READ_MODEL, dir: "", name: "/models/llm/weights.safetensors",
                                                   targetName: "/usr/bin/python3", result: 5, openFlags: UInt32(O_RDONLY), inode: 1234, device: 2049)), """
        {"time":"2025-11-26T19:51:25.000000000Z","node":"node-a","kind":"file.read","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},\
        "process":{"pid":4242,"tid":4243,"ppid":4200,"uid":1000,"gid":1001,"comm":"python3"},\
        "file":{"path":"/models/llm/weights.safetensors","op":"read_model","flags":0,"reader_exe":"/usr/bin/python3","inode":1234,"device":2049,"outcome":"success"}}

        """)
    }

    func testModelLoadAndModelChanged() throws {
        let model = EventEncoder.ModelFile(path: "/models/llm/weights.safetensors", sha256: "sha256:" + String(repeating: "ab", count: 32),
                                           size: 4_294_967_296, modifiedNanoseconds: 1_764_000_000_123_456_789,
                                           version: FileVersion(identity: FileIdentity(device: 2049, inode: 1234),
                                                                size: 4_294_967_296, changeNanoseconds: 1_764_000_000_123_456_789))
        let read = Array(#"{"kind":"file.read"}"#.utf8)
        let encoder = EventEncoder(node: "node-a", clock: clock)
        var out = JSONLineWriter()
        encoder.encodeModelLoad(model, workload: pod, read: read, atBoot: 3_000_000_000, into: &out)
        var changed = model
        changed.previous = ["sha256:" + String(repeating: "cd", count: 32)]
        var evidence = JSONLineWriter()
        encoder.encodeModelEvidence(changed, read: read, into: &evidence)
        encoder.encodeAnomaly(rule: .modelChanged, count: 1, firstSeen: 3_000_000_000, lastSeen: 3_000_000_000,
                              profile: .init(profile), workload: pod, event: evidence.bytes, into: &out)
        XCTAssertEqual(text(out), """
        {"time":"2025-11-26T19:51:27.000000000Z","node":"node-a","kind":"model.load","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},\
        "model":{"path":"/models/llm/weights.safetensors","sha256":"sha256:abababababababababababababababababababababababababababababababab",\
        "size":4294967296,"mtime_ns":1764000000123456789,"inode":1234,"device":2049},"event":{"kind":"file.read"}}
        {"time":"2025-11-26T19:51:27.000000000Z","node":"node-a","kind":"anomaly","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},\
        "anomaly":{"rule":"model-changed","severity":"critical","count":1,"first_seen":"2025-11-26T19:51:27.000000000Z",\
        "last_seen":"2025-11-26T19:51:27.000000000Z","profile":{"id":"ml/deployment/llm/server","version":3,"state":"stable"}},\
        "event":{"model":{"path":"/models/llm/weights.safetensors","sha256":"sha256:abababababababababababababababababababababababababababababababab",\
        "size":4294967296,"mtime_ns":1764000000123456789,"inode":1234,"device":2049,\
        "previous":["sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"]},"read":{"kind":"file.read"}}}

        """)
    }

    func testNetworkConnect() throws {
        XCTAssertEqual(try line(RecordBuilder.network(family: UInt16(VIGIL_AF_INET6), address: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [7],
                                                      port: 443, result: -111)), """
        {"time":"2025-11-26T19:51:25.000000000Z","node":"node-a","kind":"network.connect","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},"process":{"pid":4242,"tid":4243,"ppid":4200,"uid":1000,"gid":1001,"comm":"python3"},\
        "network":{"protocol":"tcp","family":"ipv6","address":"2001:db8::7","port":443,"op":"connect","loopback":false,\
        "outcome":"failure","errno":"ECONNREFUSED"}}

        """)
    }

    func testAnomaly() throws {
        var reporter = AnomalyReporter(profile: profile, node: "node-a", clock: clock)
        var out = JSONLineWriter()
        try RecordBuilder.exec(pid: 4242, exe: "/tmp/x", parent: "/bin/sh", args: ["/tmp/x"], boot: 2_000_000_000).withRawEvent {
            reporter.report(Finding(rule: .unexpectedExec, key: 1), event: $0, workload: pod, processes: ProcessTable(), into: &out)
        }
        XCTAssertEqual(text(out), """
        {"time":"2025-11-26T19:51:26.000000000Z","node":"node-a","kind":"anomaly","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},"anomaly":{"rule":"unexpected-exec","severity":"high","count":1,\
        "first_seen":"2025-11-26T19:51:26.000000000Z","last_seen":"2025-11-26T19:51:26.000000000Z",\
        "profile":{"id":"ml/deployment/llm/server","version":3,"state":"stable"}},"event":{"time":"2025-11-26T19:51:26.000000000Z",\
        "node":"node-a","kind":"process.exec","process":{"pid":4242,"tid":4243,"ppid":4200,"uid":1000,"gid":1001,"comm":"python3","exe":"/tmp/x","args":["/tmp/x"],\
        "exec_id":"4242-2000000000","parent_exe":"/bin/sh"}}}

        """)
    }

    /// What the detector finds of a connection to the metadata service, as the agent writes it.
    func testMetadataServiceAccess() throws {
        var detector = Detector(profile: profile, resolver: SeccompSyscallResolver())
        var reporter = AnomalyReporter(profile: profile, node: "node-a", clock: clock)
        var out = JSONLineWriter()
        try RecordBuilder.network(family: UInt16(VIGIL_AF_INET), address: [169, 254, 169, 254], port: 80, result: -101,
                                  boot: 2_000_000_000).withRawEvent { event in
            let finding = try XCTUnwrap(detector.check(event))
            reporter.report(Finding(rule: finding.rule, key: finding.key, outcome: .wouldDeny), event: event, workload: pod,
                            processes: ProcessTable(), into: &out)
        }
        XCTAssertEqual(text(out), """
        {"time":"2025-11-26T19:51:26.000000000Z","node":"node-a","kind":"anomaly","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},"anomaly":{"rule":"metadata-service-access","severity":"critical","count":1,\
        "first_seen":"2025-11-26T19:51:26.000000000Z","last_seen":"2025-11-26T19:51:26.000000000Z",\
        "profile":{"id":"ml/deployment/llm/server","version":3,"state":"stable"},"would_action":"deny"},\
        "event":{"time":"2025-11-26T19:51:26.000000000Z","node":"node-a","kind":"network.connect","process":{"pid":4242,"tid":4243,\
        "ppid":4200,"uid":1000,"gid":1001,"comm":"python3"},"network":{"protocol":"tcp","family":"ipv4","address":"169.254.169.254",\
        "port":80,"op":"connect","loopback":false,"outcome":"failure","errno":"ENETUNREACH"}}}

        """)
    }

    func testStartupOnlyBehaviour() throws {
        var reporter = AnomalyReporter(profile: profile, node: "node-a", clock: clock)
        var out = JSONLineWriter()
        let rule = ExecRule(exe: "/usr/bin/curl", parent: "/usr/bin/python3")
        try RecordBuilder.exec(pid: 4242, exe: "/usr/bin/curl", parent: "/usr/bin/python3", args: ["curl"], boot: 2_000_000_000).withRawEvent {
            reporter.report(Finding(rule: .startupOnlyBehaviour, key: 1, startupRule: .exec(rule)), event: $0, workload: pod,
                            processes: ProcessTable(), into: &out)
        }
        XCTAssertEqual(text(out), """
        {"time":"2025-11-26T19:51:26.000000000Z","node":"node-a","kind":"anomaly","workload":{"id":"ml/deployment/llm/server",\
        "namespace":"ml","pod":"llm-7d9c8f6b5-x2k4p","container":"server","container_id":"c0ffee","image":"registry.local/llm:1.4",\
        "cgroup":"/kubepods/pod1/c0ffee"},"anomaly":{"rule":"startup-only-behaviour","severity":"high","count":1,\
        "first_seen":"2025-11-26T19:51:26.000000000Z","last_seen":"2025-11-26T19:51:26.000000000Z",\
        "profile":{"id":"ml/deployment/llm/server","version":3,"state":"stable"},\
        "startup_rule":{"exec":{"exe":"/usr/bin/curl","parent":"/usr/bin/python3"}}},"event":{"time":"2025-11-26T19:51:26.000000000Z",\
        "node":"node-a","kind":"process.exec","process":{"pid":4242,"tid":4243,"ppid":4200,"uid":1000,"gid":1001,"comm":"python3",\
        "exe":"/usr/bin/curl","args":["curl"],"exec_id":"4242-2000000000","parent_exe":"/usr/bin/python3"}}}

        """)
    }

    func testAgentDrops() {
        var out = JSONLineWriter()
        EventEncoder(node: "node-a", clock: clock).encodeDrops(stage: "ring_buffer_full", kind: "file.write", count: 3, total: 10,
                                                                atBoot: 0, into: &out)
        XCTAssertEqual(text(out), """
        {"time":"2025-11-26T19:51:24.000000000Z","node":"node-a","kind":"agent.drops","drops":{"stage":"ring_buffer_full",\
        "event_kind":"file.write","count":3,"total":10}}

        """)
    }

    func testAgentThrottle() {
        var out = JSONLineWriter()
        let encoder = EventEncoder(node: "node-a", clock: clock)
        encoder.encodeThrottle(started: true, profile: "ml/deployment/llm/server", suppressed: 0, limitPerSecond: 5, atBoot: 0, into: &out)
        encoder.encodeThrottle(started: false, profile: "ml/deployment/llm/server", suppressed: 7, limitPerSecond: 5,
                               atBoot: 1_000_000_000, into: &out)
        XCTAssertEqual(text(out), """
        {"time":"2025-11-26T19:51:24.000000000Z","node":"node-a","kind":"agent.throttle","throttle":{"state":"started",\
        "profile":"ml/deployment/llm/server","limit_per_second":5}}
        {"time":"2025-11-26T19:51:25.000000000Z","node":"node-a","kind":"agent.throttle","throttle":{"state":"ended",\
        "profile":"ml/deployment/llm/server","suppressed":7,"limit_per_second":5}}

        """)
    }

    func testProfileState() {
        var out = JSONLineWriter()
        let encoder = EventEncoder(node: "node-a", clock: clock)
        var stable = Profile(workload: "ml/deployment/llm/server", version: 2, state: .stable,
                             learning: LearningEvidence(started: Date(), lastNew: Date(), minDuration: 0, quietPeriod: 0))
        stable.learning.containers = 3
        stable.learning.events = 1200
        stable.learning.stoppedContainers = 1
        encoder.encodeProfileState(.init(stable, seccomp: .installed(localhostProfile: "vigil/ml.deployment.llm.server.json")),
                                   atBoot: 0, into: &out)
        encoder.encodeProfileState(.init(stable, seccomp: .refused(reason: "no allowance was measured for crun")), atBoot: 0, into: &out)
        encoder.encodeProfileState(.init(workload: "ml/deployment/llm/server", version: 2, problem: "could not be saved: disk full"),
                                   atBoot: 0, into: &out)
        XCTAssertEqual(text(out), """
        {"time":"2025-11-26T19:51:24.000000000Z","node":"node-a","kind":"profile.state","profile":{"id":"ml/deployment/llm/server",\
        "version":2,"state":"stable","containers":3,"events":1200,"stopped_containers":1,"seccomp":"installed",\
        "seccomp_profile":"vigil/ml.deployment.llm.server.json"}}
        {"time":"2025-11-26T19:51:24.000000000Z","node":"node-a","kind":"profile.state","profile":{"id":"ml/deployment/llm/server",\
        "version":2,"state":"stable","containers":3,"events":1200,"stopped_containers":1,"seccomp":"refused",\
        "reason":"no allowance was measured for crun"}}
        {"time":"2025-11-26T19:51:24.000000000Z","node":"node-a","kind":"profile.state","profile":{"id":"ml/deployment/llm/server",\
        "version":2,"problem":"could not be saved: disk full"}}

        """)
    }

    /// Bookkeeping records (exits, cgroups made and removed) are never lines.
    func testBookkeepingRecordsAreNotLines() throws {
        var encoder = EventEncoder(node: "node-a", clock: clock)
        var out = JSONLineWriter()
        for record in [RecordBuilder.exit(), RecordBuilder.cgroupMade(9, parent: 8, name: "c"), RecordBuilder.cgroupRemoved(9, parent: 8, name: "c")] {
            try record.withRawEvent { XCTAssertFalse(encoder.encode($0, workload: pod, processes: ProcessTable(), into: &out)) }
        }
        XCTAssertTrue(out.bytes.isEmpty)
    }

    /// Constants both sides use come from vigil_abi.h, so they cannot drift.
    func testSwiftUsesTheABIHeadersConstants() {
        XCTAssertEqual(SyscallABI.x86_64.rawValue, Int(VIGIL_SYSCALL_ABI_NATIVE.rawValue))
        XCTAssertEqual(SyscallABI.x32.rawValue, Int(VIGIL_SYSCALL_ABI_X32.rawValue))
        XCTAssertEqual(SyscallABI.i386.rawValue, Int(VIGIL_SYSCALL_ABI_COMPAT.rawValue))
        XCTAssertEqual(SyscallABI.allCases.count, Int(VIGIL_SYSCALL_ABI_COUNT.rawValue))
        XCTAssertEqual(SyscallBitmap().words.map(\.count), Array(repeating: Int(VIGIL_SYSCALL_WORDS), count: SyscallABI.allCases.count))
        XCTAssertEqual(BehaviourHash.fnv1a(""), VIGIL_FNV_OFFSET)
        XCTAssertEqual(BehaviourHash.fnv1a("a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a 64 of \"a\"")
    }

    /// The text hash as vigil_abi.h defines it, worked out separately (a few lines of Python over
    /// the definition) with the key k[i] = 0x0123456789abcdef * (i + 1): an empty text, one
    /// partial word, two whole words, three and a partial, and one longer than the key (whose
    /// words past the 128th take the key's words again).
    func testTheTextHashIsTheOneTheABIHeaderDefines() {
        let key = (0..<Int(VIGIL_TEXT_HASH_WORDS)).map { UInt64(0x0123_4567_89ab_cdef) &* UInt64($0 + 1) }
        func hash(_ text: String) -> UInt64 {
            key.withUnsafeBufferPointer { key in Array(text.utf8).withUnsafeBytes { BehaviourHash.text($0, key: key) } }
        }
        XCTAssertEqual(hash(""), 0)
        XCTAssertEqual(hash("a"), 0x9c_a39e_37ab_9231)
        XCTAssertEqual(hash("/usr/bin/python3"), 0x8a5a_5f79_5354_2e6f)
        XCTAssertEqual(hash("/dev/shm/vigil-bench-loop/f"), 0x3350_b4ab_ee9c_0805)
        XCTAssertEqual(hash(String(repeating: "x", count: 1100)), 0xdb8e_2e99_08a1_257f)
    }

    /// Texts that differ in one byte at any place in a word, or only by trailing zero bytes (the
    /// padding of the last word), hash differently.
    func testTheTextHashSeesEveryByteAndTheLength() {
        let base = Array("/var/lib/models/llama-3-8b/config.json".utf8)
        let hashOf = { (bytes: [UInt8]) in bytes.withUnsafeBytes { BehaviourHash.text($0) } }
        var seen: Set<UInt64> = [hashOf(base)]
        for index in base.indices {
            var changed = base
            changed[index] ^= 0x20
            XCTAssertTrue(seen.insert(hashOf(changed)).inserted, "byte \(index)")
        }
        for padding in 1...8 {
            XCTAssertTrue(seen.insert(hashOf(base + Array(repeating: 0, count: padding))).inserted, "\(padding) zero bytes")
        }
    }
}
