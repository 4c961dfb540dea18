import Foundation
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilSeccomp
import VigilTestSupport
import XCTest

/// The agent's own pod runs under a seccomp profile Vigil learned from the agent itself
/// (`deploy/vigil-agent-profile.yaml`; the DaemonSet's init container installs it), and it is
/// proven the way Vigil proves others: the agent lives its whole life under it — loads its
/// programs, asks the API server about pods over TLS, learns containers, installs their seccomp
/// profiles, serves its endpoints, stops on SIGTERM with exit 0.
///
/// `VIGIL_LEARN_AGENT_PROFILE=1` runs the same life under `vigil learn` instead and writes the
/// profile back into deploy/ (`scripts/learn-agent-profile`).
final class AgentSelfProfileTests: XCTestCase {
    static let workload = "vigil-system/daemonset/vigil/agent"
    static var profileFile: String { ServerWorkloads.repository + "/deploy/vigil-agent-profile.yaml" }

    func testTheAgentLivesItsWholeLifeUnderItsOwnProfile() throws {
        try KernelTestSupport.requireRoot()
        try RuncContainer.available()
        let work = try KernelTestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        let learning = ProcessInfo.processInfo.environment["VIGIL_LEARN_AGENT_PROFILE"] == "1"
        let launcher: [String]
        if learning {
            // Learning lasts the agent's whole life (it never becomes stable on its own); the
            // profile is promoted after.
            launcher = [VigilBinary.path, "learn", "--workload", Self.workload, "--profiles", work + "/self",
                        "--min-duration", "1h", "--"]
        } else {
            let profile = try DirectoryProfileStore.load(file: Self.profileFile)
            XCTAssertEqual(profile.workload, Self.workload)
            // The DaemonSet names the file its init container installs.
            let daemonset = try String(contentsOfFile: ServerWorkloads.repository + "/deploy/daemonset.yaml", encoding: .utf8)
            XCTAssertTrue(daemonset.contains("localhostProfile: \(SeccompExport.localhostProfile(workload: profile.workload))"),
                          "deploy/daemonset.yaml uses \(SeccompExport.localhostProfile(workload: profile.workload))")
            try SeccompPolicy.oci(profile, mode: .enforce).json().write(to: URL(fileURLWithPath: work + "/agent.json"))
            // As the DaemonSet runs it: no_new_privs (allowPrivilegeEscalation: false), then the filter.
            launcher = [VigilBinary.path, "seccomp", "run", "--profile", work + "/agent.json", "--"]
        }
        try AgentLife.live(self, launcher: launcher, work: work)
        if learning {
            var learner = Learner(profile: try XCTUnwrap(try DirectoryProfileStore(root: work + "/self").latest(workload: Self.workload)),
                                  resolver: SeccompSyscallResolver())
            learner.stabilize(now: Date())
            let learned = learner.profile
            XCTAssertTrue(learned.syscalls.x86_64.contains("perf_event_open") && learned.syscalls.x86_64.contains("accept4"),
                          "the agent's whole life was learned: \(learned.syscalls.x86_64)")
            // Only its syscalls are used (for its seccomp filter): the paths of this test's run are not kept.
            var merged = learned
            merged.execs = []
            merged.fileWrites = []
            merged.egress = []
            // Learning adds to what earlier runs (the debug and the release build) learned.
            if let earlier = try? DirectoryProfileStore.load(file: Self.profileFile) {
                for abi in SyscallABI.allCases { merged.syscalls[abi] = Array(Set(earlier.syscalls[abi] + learned.syscalls[abi])).sorted() }
            }
            try ProfileCodec.encode(merged).write(toFile: Self.profileFile, atomically: true, encoding: .utf8)
            print("wrote \(Self.profileFile): \(merged.syscalls.x86_64.count) x86_64 syscalls")
        }
    }
}

/// A vigil agent's life on a node, as the DaemonSet lives it, started through `launcher`.
enum AgentLife {
    static func live(_ test: XCTestCase, launcher: [String], work: String) throws {
        let hierarchy = try CgroupHierarchy.system()
        let root = "/vigil-self-\(getpid())"
        let kubepods = root + "/kubepods"
        _ = try hierarchy.create(root)
        _ = try hierarchy.create(kubepods)
        test.addTeardownBlock { try? hierarchy.remove(root) }
        let apiServer = try FakeAPIServer()
        defer { apiServer.stop() }
        let port = 30000 + Int(getpid() % 20000)
        try """
        node: self-node
        cgroupRoots: [\(kubepods)]
        runtimeStateRoots: [\(work)/runc]
        profiles: \(work)/profiles
        seccompRoot: \(work)/seccomp
        learning: {minDuration: 0, quietPeriod: 1, checkpointInterval: 1}
        kubernetes:
          enabled: true
          apiServer: https://127.0.0.1:\(apiServer.port)
          tokenFile: \(apiServer.tokenFile)
          caFile: \(apiServer.caFile)
        cluster: {enabled: true, syncInterval: 1}
        modelPaths:
        - workload: ml/*/*/*
          paths: [/models/**]
        metricsAddress: 127.0.0.1:\(port)
        eventsFile: \(work)/events.jsonl
        """.write(toFile: work + "/agent.yaml", atomically: true, encoding: .utf8)
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: launcher[0])
        agent.arguments = Array(launcher.dropFirst()) + [VigilBinary.path, "agent", "--config", work + "/agent.yaml"]
        _ = FileManager.default.createFile(atPath: work + "/agent.log", contents: nil)
        agent.standardOutput = FileHandle.nullDevice
        agent.standardError = FileHandle(forWritingAtPath: work + "/agent.log")
        try agent.run()
        defer { agent.stop(with: SIGKILL, within: 5) }
        var log: String { (try? String(contentsOfFile: work + "/agent.log", encoding: .utf8)) ?? "" }
        var ready = false
        for _ in 0..<150 where !ready && agent.isRunning {
            usleep(100_000)
            ready = (try? HTTP.request("GET", "/readyz", port: port))?.hasPrefix("HTTP/1.1 200") ?? false
        }
        XCTAssertTrue(ready, "the agent never became ready:\n\(log)")

        for pod in ["llm-server-7d9c8f6b5-x2k4p", "llm-server-7d9c8f6b5-q8w7e"] {
            let uid = UUID().uuidString.lowercased()
            let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
            try apiServer.addPod(namespace: "ml", name: pod, uid: uid, labels: ["app": "llm"], controller: ("ReplicaSet", "llm-server-7d9c8f6b5"))
            // It loads its model once named (the agent then finds its model directory and hashes
            // the weights through the container's root: openat2, fstat, read under its own filter).
            let container = try RuncContainer(test, args: ["sh", "-c", "echo hi > /tmp/x; cat /etc/hostname; sleep 1; cat /models/weights.bin; sleep 0.3"],
                                              cgroupsPath: "\(kubepods)/besteffort/pod\(uid)/\(id)", noNewPrivileges: true,
                                              seccomp: RuncContainer.recordingFilter,
                                              annotations: ["io.kubernetes.cri.sandbox-namespace": "ml", "io.kubernetes.cri.sandbox-name": pod,
                                                            "io.kubernetes.cri.container-name": "server"],
                                              id: id, stateRoot: work + "/runc", writableRoot: true,
                                              files: ["/models/weights.bin": "weights"])
            XCTAssertEqual(try container.run().status, 0)
        }
        var installed = false
        for _ in 0..<60 where !installed {
            usleep(200_000)
            let events = (try? String(contentsOfFile: work + "/events.jsonl", encoding: .utf8)) ?? ""
            installed = events.contains(#""seccomp":"installed""#)
        }
        XCTAssertTrue(installed, "the agent learned the pods and installed their seccomp profile:\n\(log)")
        let events = (try? String(contentsOfFile: work + "/events.jsonl", encoding: .utf8)) ?? ""
        XCTAssertTrue(events.contains(#""kind":"model.load""#), "the agent hashed the pods' model:\n\(log)")
        XCTAssertFalse(log.contains("was not hashed"), log)
        for (method, path, status) in [("GET", "/metrics", "200"), ("GET", "/healthz", "200"), ("GET", "/nowhere", "404"), ("POST", "/metrics", "405")] {
            let response = (try? HTTP.request(method, path, port: port)) ?? ""
            XCTAssertTrue(response.hasPrefix("HTTP/1.1 \(status)"), "\(method) \(path): \(response.prefix(80))")
        }
        XCTAssertTrue(agent.stop(with: SIGTERM, within: 30), "the agent stops within 30 s of SIGTERM:\n\(log)")
        XCTAssertEqual(agent.terminationStatus, 0, "SIGTERM: checkpoint and exit 0:\n\(log)")
        XCTAssertTrue(log.contains("agent stopped"), log)
    }
}
