import Foundation
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilTestSupport
import XCTest

/// The product claim, end to end, with the real parts a node has: containerd's CRI plugin driven
/// over gRPC as a kubelet drives it, runc under its v2 shim, `vigil agent` (the binary, with the
/// default cgroup roots and runtime state roots) learning the pods, and the seccomp profile it
/// installs given back to containerd as `Localhost` — enforced by the kernel.
final class CRITests: XCTestCase {
    /// One node: containerd and a vigil agent watching it.
    final class Node {
        let containerd: Containerd
        let work: String
        let port: Int
        let agent = Process()
        let agentLog: String
        var seccompRoot: String { work + "/seccomp" }
        var profiles: String { work + "/profiles" }
        var eventsFile: String { work + "/events.jsonl" }

        /// `agent`: start a vigil agent too.
        init(_ test: XCTestCase, configuration: String = "", minDuration: Int = 0, quietPeriod: Int = 4, agent startAgent: Bool = true) throws {
            try KernelTestSupport.requireRoot()
            if let reason = Containerd.unavailableReason() {
                if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(reason) }
                throw XCTSkip(reason)
            }
            work = try KernelTestSupport.temporaryDirectory()
            containerd = try Containerd(cgroupMount: try CgroupHierarchy.system().mountPoint)
            port = 21000 + Int(getpid() % 9000) + Int.random(in: 0..<500)
            agentLog = work + "/agent.log"
            try """
            node: cri-node
            profiles: \(work)/profiles
            seccompRoot: \(work)/seccomp
            learning: {minDuration: \(minDuration), quietPeriod: \(quietPeriod), checkpointInterval: 1}
            metricsAddress: 127.0.0.1:\(port)
            eventsFile: \(work)/events.jsonl
            \(configuration)
            """.write(toFile: work + "/agent.yaml", atomically: true, encoding: .utf8)
            agent.executableURL = URL(fileURLWithPath: VigilBinary.path)
            agent.arguments = ["agent", "--config", work + "/agent.yaml"]
            _ = FileManager.default.createFile(atPath: agentLog, contents: nil)
            agent.standardOutput = FileHandle.nullDevice
            agent.standardError = FileHandle(forWritingAtPath: agentLog)
            if startAgent { try agent.run() }
            let (agent, containerd, work) = (agent, containerd, work)
            test.addTeardownBlock {
                agent.stop(with: SIGTERM, within: 30)
                containerd.stop()
                try? FileManager.default.removeItem(atPath: work)
            }
            for _ in 0..<100 where startAgent && readyz == nil { usleep(100_000) }
        }

        /// /readyz's status line and body, nil while the agent does not answer.
        var readyz: String? { try? HTTP.request("GET", "/readyz", port: port) }
        var metrics: String { (try? HTTP.request("GET", "/metrics", port: port)) ?? "" }

        var events: [[String: Any]] {
            let text = (try? String(contentsOfFile: eventsFile, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        /// Waits for the agent's `profile.state` line about a workload (timeout 0: looks once).
        func profileState(_ workload: String, timeout: Double = 40) -> [String: Any]? {
            let deadline = Date().addingTimeInterval(timeout)
            repeat {
                if let state = events.first(where: { $0["kind"] as? String == "profile.state" && $0[path: "profile.id"] as? String == workload }) {
                    return state
                }
                if timeout > 0 { usleep(200_000) }
            } while Date() < deadline
            return nil
        }

        var log: String { (try? String(contentsOfFile: agentLog, encoding: .utf8)) ?? "" }
    }

    // MARK: workloads

    /// The example model server (Python), on its own port (pods share the node's network).
    static func modelServer(port: Int) -> [String] {
        ["/usr/bin/python3", "-B", "/app/server.py", "--models", "/models", "--port", "\(port)", "--cache", "/tmp/cache"]
    }

    /// nginx from Debian (a master and two workers), its configuration mounted from the host as
    /// a ConfigMap volume would be.
    func nginx(_ node: Node, port: Int) throws -> Containerd.PodRequest {
        let directory = node.work + "/nginx-\(port)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try ServerWorkloads.nginxConfiguration(port: port, directory: "/tmp", root: "/srv")
            .write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        var request = Containerd.PodRequest(name: podName("nginx"), command: ["/usr/sbin/nginx", "-c", "/etc/vigil-nginx/nginx.conf"])
        request.mounts = ["/etc/vigil-nginx": directory]
        return request
    }

    static func modelServerTraffic(port: Int) throws -> [String] { try ServerWorkloads.traffic(.modelServer, port: port) }
    static func nginxTraffic(port: Int) throws -> [String] { try ServerWorkloads.traffic(.nginx, port: port) }

    private func podName(_ deployment: String) -> String {
        let letters = Array("bcdfghjklmnpqrstvwxz2456789")
        return "\(deployment)-7d9c8f6b5-" + String((0..<5).map { _ in letters.randomElement()! })
    }

    private func seccompMode(pid: Int) throws -> (seccomp: String, noNewPrivs: String) {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func field(_ name: String) -> String {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { $0.split(separator: "\t").last.map(String.init) ?? "" } ?? ""
        }
        return (field("Seccomp"), field("NoNewPrivs"))
    }

    // MARK: tests

    /// Learned from pods with no seccompProfile (Kubernetes' default, Unconfined) and from pods
    /// under RuntimeDefault; the installed profile then starts replicas as Localhost, with
    /// no_new_privs off and on, which answer the same requests under the filter and stop on
    /// SIGTERM with exit 0. The server handles signals only at shutdown, and no container stopped
    /// while it learned: the asynchronous baseline is what lets the handler return.
    func testModelServerProfilesStartServeAndStopUnderContainerd() throws {
        let node = try Node(self)
        for (learnedUnder, deployment) in [(Containerd.SeccompProfile.unconfined, "llm-server"), (.runtimeDefault, "llm-default")] {
            let workload = "ml/deployment/\(deployment)/server"
            var learning = Containerd.PodRequest(name: podName(deployment), command: Self.modelServer(port: node.port + 1000))
            learning.seccomp = learnedUnder
            let learningPod = try node.containerd.runPod(learning)
            let expected = try Self.modelServerTraffic(port: node.port + 1000)
            XCTAssertEqual(expected.count, 9)
            let state = try XCTUnwrap(node.profileState(workload), "\(learnedUnder): never stable\n\(node.log)")
            XCTAssertEqual(state[path: "profile.seccomp"] as? String, "installed", "\(state)\n\(node.log)")
            XCTAssertEqual(state[path: "profile.stopped_containers"] as? Int, 0, "learned without seeing a shutdown")
            let file = node.seccompRoot + "/" + (try XCTUnwrap(state[path: "profile.seccomp_profile"] as? String))
            let profile = try XCTUnwrap(try DirectoryProfileStore(root: node.profiles).latest(workload: workload))
            XCTAssertEqual(profile.learning.runtimes, [ObservedRuntime(runtime: "runc", noNewPrivileges: false)])
            XCTAssertFalse(profile.syscalls.x86_64.contains("capset"), "runc's own calls are not the workload's")
            XCTAssertTrue(try XCTUnwrap(profile.seccomp).runtime.contains("capset"), "runc's post-filter calls are allowed for it")
            Tightness.report("model server, pod learned under \(learnedUnder)", profile)

            for noNewPrivileges in [false, true] {
                let port = node.port + 1001 + (noNewPrivileges ? 1 : 0)
                var replica = Containerd.PodRequest(name: podName(deployment), command: Self.modelServer(port: port))
                replica.seccomp = .localhost(file)
                replica.noNewPrivileges = noNewPrivileges
                let pod = try node.containerd.runPod(replica)
                XCTAssertEqual(try Self.modelServerTraffic(port: port), expected, "\(learnedUnder), no_new_privs \(noNewPrivileges)")
                let pid = try XCTUnwrap(try node.containerd.status(pod).pid)
                let mode = try seccompMode(pid: pid)
                XCTAssertEqual(mode.seccomp, "2", "the replica runs under the filter")
                XCTAssertEqual(mode.noNewPrivs, noNewPrivileges ? "1" : "0")
                let stopping = Date()
                let stopped = try node.containerd.stopContainer(pod, timeout: 10)
                XCTAssertEqual(stopped.state, "CONTAINER_EXITED")
                XCTAssertEqual(stopped.exitCode, 0, "SIGTERM handled under the filter: \(stopped)")
                XCTAssertLessThan(Date().timeIntervalSince(stopping), 5, "stopped by its handler, not killed after the grace period")
                node.containerd.removePod(pod)
            }
            node.containerd.removePod(learningPod)
        }
        let anomalies = node.events.filter { $0["kind"] as? String == "anomaly" }
        XCTAssertEqual(anomalies.count, 0, "normal traffic, restarts and stops are not anomalies: \(anomalies)")
        XCTAssertFalse(node.events.contains { $0["kind"] as? String == "agent.drops" }, "a plain pod start drops nothing")
    }
}

extension CRITests {
    /// A second real server, nginx from Debian (a master and two workers). Its shutdown does what its serving never does (the master signals its workers
    /// and reaps them), so it is learned the way a cluster shows it: a replica stops while the
    /// workload learns (a rollout). Replicas then run and stop under the profile.
    func testNginxProfileStartsServesAndStopsUnderContainerd() throws {
        // Starting the second replica and serving it must fit within the quiet period, or learning
        // ends before the rollout's stop; 4 s was too short for a freshly started CI containerd.
        let node = try Node(self, quietPeriod: 12)
        let workload = "web/deployment/nginx/server"
        var learning: [Containerd.RunningPod] = []
        var expected: [String] = []
        for replica in 0..<2 {
            var request = try nginx(node, port: node.port + 1100 + replica)
            request.namespace = "web"
            learning.append(try node.containerd.runPod(request))
            expected = try Self.nginxTraffic(port: node.port + 1100 + replica)
        }
        XCTAssertEqual(expected.first, "ok")
        XCTAssertFalse(node.events.contains { $0["kind"] as? String == "profile.state" }, "learning ended before the rollout's stop: the setup outlasted the quiet period")
        XCTAssertEqual(try node.containerd.stopContainer(learning[1], timeout: 10).exitCode, 0, "unconfined nginx stops cleanly")
        let state = try XCTUnwrap(node.profileState(workload), "never stable\n\(node.log)")
        XCTAssertEqual(state[path: "profile.seccomp"] as? String, "installed", "\(state)")
        XCTAssertEqual(state[path: "profile.stopped_containers"] as? Int, 1, "the rollout's stop was learned")
        let file = node.seccompRoot + "/" + (try XCTUnwrap(state[path: "profile.seccomp_profile"] as? String))
        Tightness.report("nginx, pods learned under unconfined", try XCTUnwrap(try DirectoryProfileStore(root: node.profiles).latest(workload: workload)))
        for noNewPrivileges in [false, true] {
            let port = node.port + 1102 + (noNewPrivileges ? 1 : 0)
            var request = try nginx(node, port: port)
            request.namespace = "web"
            request.seccomp = .localhost(file)
            request.noNewPrivileges = noNewPrivileges
            let pod = try node.containerd.runPod(request)
            XCTAssertEqual(try Self.nginxTraffic(port: port), expected, "no_new_privs \(noNewPrivileges)")
            let pid = try XCTUnwrap(try node.containerd.status(pod).pid)
            XCTAssertEqual(try seccompMode(pid: pid).seccomp, "2")
            let stopping = Date()
            let stopped = try node.containerd.stopContainer(pod, timeout: 10)
            XCTAssertEqual(stopped.exitCode, 0, "no_new_privs \(noNewPrivileges): \(stopped)")
            XCTAssertLessThan(Date().timeIntervalSince(stopping), 5, "stopped by nginx, not killed after the grace period")
            node.containerd.removePod(pod)
        }
        for pod in learning { node.containerd.removePod(pod) }
        let anomalies = node.events.filter { $0["kind"] as? String == "anomaly" }
        XCTAssertEqual(anomalies.count, 0, "\(anomalies)")
    }
}

extension CRITests {
    /// A node whose pod cgroup root does not exist when the agent starts (the kubelet creates it
    /// later): the agent says so in /readyz, watches the root the moment it appears, and learns
    /// the pods below it. A plain pod start loses nothing: no `agent.drops`, no drop counted.
    func testAgentWatchesACgroupRootThatAppearsLaterAndAPodStartDropsNothing() throws {
        let root = "/vigil-late-\(getpid())/kubepods"
        let node = try Node(self, configuration: "cgroupRoots: [\(root)]")
        let waiting = try XCTUnwrap(node.readyz)
        XCTAssertTrue(waiting.hasPrefix("HTTP/1.1 503"), waiting)
        XCTAssertTrue(waiting.contains("waiting for a cgroup root to appear: none of \(root) exists yet"), waiting)

        var request = Containerd.PodRequest(name: podName("late"), command: Self.modelServer(port: node.port + 1200))
        request.cgroupRoot = root
        let pod = try node.containerd.runPod(request)
        _ = try Self.modelServerTraffic(port: node.port + 1200)
        for _ in 0..<30 where !(node.readyz ?? "").hasPrefix("HTTP/1.1 200") { usleep(100_000) }
        XCTAssertTrue((node.readyz ?? "").hasPrefix("HTTP/1.1 200"), "\(node.readyz ?? "")")
        XCTAssertTrue(node.log.contains("cgroup root appeared: watching it"), node.log)
        _ = try Self.modelServerTraffic(port: node.port + 1200) // what it does from now on is seen
        let state = try XCTUnwrap(node.profileState("ml/deployment/late/server"), node.log)
        XCTAssertEqual(state[path: "profile.seccomp"] as? String, "installed")
        // A pod started under the watched root: the runtime's own short-lived helpers end before
        // the container has a name; they are not the workload, and not losses.
        var second = Containerd.PodRequest(name: podName("late"), command: Self.modelServer(port: node.port + 1201))
        second.cgroupRoot = root
        let secondPod = try node.containerd.runPod(second)
        _ = try Self.modelServerTraffic(port: node.port + 1201)
        node.containerd.removePod(secondPod)
        usleep(1_500_000) // a tick: drops are reported once a second
        let metrics = node.metrics
        XCTAssertFalse(metrics.contains("vigil_drops_total{"), "a pod start drops nothing: \(metrics)")
        XCTAssertFalse(node.events.contains { $0["kind"] as? String == "agent.drops" }, "\(node.events)")
        node.containerd.removePod(pod)
    }

    /// The safety net: a stable profile whose seccomp section lacks what runc calls after
    /// installing the filter (written by an older vigil, or edited) is not installed; the agent
    /// says why. And such a filter, given to containerd anyway, fails the pod the way the kubelet
    /// reports it.
    func testAgentRefusesAProfileThatCannotStartThePodAndContainerdFailsOnOne() throws {
        let node = try Node(self)
        let workload = "ml/deployment/stale/server"
        let start = Date(timeIntervalSinceNow: -3600)
        var stale = Profile(workload: workload, version: 1, state: .stable,
                            learning: LearningEvidence(started: start, lastNew: start, stableSince: start, minDuration: 0, quietPeriod: 0))
        stale.execs = [ExecRule(exe: "/usr/bin/python3.11", parent: "(runtime)")]
        stale.syscalls.x86_64 = ["read", "write"]
        stale.seccomp = SeccompAdditions(runtimes: ["runc"], runtime: ["execve"], baseline: ["exit_group"])
        try DirectoryProfileStore(root: node.profiles).save(stale)

        let pod = try node.containerd.runPod(Containerd.PodRequest(name: podName("stale"), command: Self.modelServer(port: node.port + 1300)))
        let state = try XCTUnwrap(node.profileState(workload), node.log)
        XCTAssertEqual(state[path: "profile.seccomp"] as? String, "refused")
        let reason = try XCTUnwrap(state[path: "profile.reason"] as? String)
        XCTAssertTrue(reason.contains("runc (no_new_privs off) needs") && reason.contains("capset"), reason)
        XCTAssertTrue(node.log.contains("seccomp profile refused"), node.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: node.seccompRoot + "/vigil/ml.deployment.stale.server.json"))
        node.containerd.removePod(pod)

        // What the kubelet would have met: the filter lacks runc's own calls, so runc cannot
        // finish setting the container up.
        let tight = node.work + "/tight.json"
        try SeccompPolicy.oci(stale).json().write(to: URL(fileURLWithPath: tight))
        var request = Containerd.PodRequest(name: podName("tight"), command: Self.modelServer(port: node.port + 1301))
        request.seccomp = .localhost(tight)
        XCTAssertThrowsError(try node.containerd.runPod(request)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("runc create failed") && message.contains("operation not permitted"), message)
        }
    }
}

extension CRITests {
    /// Profiles learned outside any container runtime (`vigil learn -- COMMAND` on the host),
    /// exported, and given to containerd as `Localhost`: the runtime's post-filter calls were
    /// never seen while learning, and the replicas still start, serve, and stop on SIGTERM.
    func testProfilesLearnedOutsideARuntimeStartServeAndStopUnderContainerd() throws {
        let node = try Node(self, agent: false)
        for (index, server) in ServerWorkloads.Server.allCases.enumerated() {
            let base = node.port + 1400 + 10 * index
            let learned = try ServerWorkloads.learn(server, workload: server.rawValue, profiles: node.profiles, port: base)
            XCTAssertNil(learned.profile.learning.runtimes, "learned outside a runtime")
            Tightness.report("\(server.rawValue), learned outside a runtime", learned.profile)
            let file = node.work + "/\(server.rawValue).json"
            try SeccompPolicy.oci(learned.profile).json().write(to: URL(fileURLWithPath: file))
            for noNewPrivileges in [false, true] {
                let port = base + 1 + (noNewPrivileges ? 1 : 0)
                var request = server == .nginx ? try nginx(node, port: port)
                    : Containerd.PodRequest(name: podName(server.rawValue), command: Self.modelServer(port: port))
                request.seccomp = .localhost(file)
                request.noNewPrivileges = noNewPrivileges
                let pod = try node.containerd.runPod(request)
                XCTAssertEqual(try ServerWorkloads.traffic(server, port: port), learned.replies, "\(server), no_new_privs \(noNewPrivileges)")
                XCTAssertEqual(try seccompMode(pid: try XCTUnwrap(try node.containerd.status(pod).pid)).seccomp, "2")
                let stopping = Date()
                let stopped = try node.containerd.stopContainer(pod, timeout: 10)
                XCTAssertEqual(stopped.exitCode, 0, "\(server), no_new_privs \(noNewPrivileges): \(stopped)")
                XCTAssertLessThan(Date().timeIntervalSince(stopping), 5)
                node.containerd.removePod(pod)
            }
        }
    }
}

extension CRITests {
    /// Protect mode with the real parts: the agent (the binary, `protect` in its configuration)
    /// learns the model server from a pod, then a replica started by containerd is protected from
    /// its naming on: its normal traffic is answered with nothing refused, and the demo's attack
    /// (the unsafe /predict runs a shell and connects out) finds the shell killed before it runs
    /// and the connection refused — the server keeps answering, and the events and metrics say so.
    func testProtectModeUnderContainerdKillsTheShellAndRefusesTheConnection() throws {
        let workload = "ml/deployment/llm-guarded/server"
        let node = try Node(self, configuration: "protect:\n- workload: ml/deployment/llm-guarded/*")
        let learning = try node.containerd.runPod(Containerd.PodRequest(name: podName("llm-guarded"), command: Self.modelServer(port: node.port + 1000)))
        let expected = try Self.modelServerTraffic(port: node.port + 1000)
        XCTAssertNotNil(node.profileState(workload), "never stable\n\(node.log)")
        node.containerd.removePod(learning)

        let port = node.port + 1001
        let replica = try node.containerd.runPod(Containerd.PodRequest(name: podName("llm-guarded"), command: Self.modelServer(port: port)))
        XCTAssertEqual(try Self.modelServerTraffic(port: port), expected, "learned traffic, protected")
        var protected = ""
        for _ in 0..<50 where !protected.contains("vigil_protected_containers 1") {
            protected = node.metrics
            usleep(100_000)
        }
        XCTAssertTrue(protected.contains("vigil_protected_containers 1"), protected + node.log)

        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let attack = Process()
        attack.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        attack.arguments = ["-B", repository + "/examples/model-server/attack.py", "\(port)", "/models"]
        attack.standardError = FileHandle.nullDevice
        try attack.run()
        attack.waitUntilExit()
        XCTAssertEqual(attack.terminationStatus, 0, "the server answered the attack's request")
        XCTAssertEqual(try Self.modelServerTraffic(port: port), expected, "and serves on")

        func acted(_ rule: String) -> [String: Any]? {
            node.events.first {
                $0["kind"] as? String == "anomaly" && $0[path: "anomaly.rule"] as? String == rule && $0[path: "workload.pod"] as? String == replica.request.name
            }
        }
        let deadline = Date().addingTimeInterval(15)
        while (acted("unexpected-exec") == nil || acted("unexpected-egress") == nil) && Date() < deadline { usleep(200_000) }
        let exec = try XCTUnwrap(acted("unexpected-exec"), "\(node.events)")
        XCTAssertEqual(exec[path: "anomaly.action"] as? String, "killed")
        XCTAssertEqual(exec[path: "event.process.exe"] as? String, "/usr/bin/dash")
        let egress = try XCTUnwrap(acted("unexpected-egress"))
        XCTAssertEqual(egress[path: "anomaly.action"] as? String, "denied")
        XCTAssertEqual(egress[path: "event.network.errno"] as? String, "EPERM")
        XCTAssertFalse(node.events.contains { $0["kind"] as? String == "anomaly" && $0[path: "anomaly.rule"] as? String == "model-artifact-write" },
                       "the shell never ran, so nothing wrote the weights")
        var metrics = ""
        for _ in 0..<30 where !metrics.contains(#"rule="unexpected-exec",action="killed"} 1"#) {
            metrics = node.metrics
            usleep(200_000)
        }
        XCTAssertTrue(metrics.contains(#"vigil_protect_actions_total{workload="\#(workload)",rule="unexpected-exec",action="killed"} 1"#), metrics)
        XCTAssertTrue(metrics.contains(#"vigil_protect_actions_total{workload="\#(workload)",rule="unexpected-egress",action="denied"} 1"#), metrics)
        node.containerd.removePod(replica)
    }
}
