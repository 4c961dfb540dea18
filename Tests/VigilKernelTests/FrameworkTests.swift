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
/// and unloaded through KServe's repository API, workers killed and respawned, containers
/// restarted, replicas rolled out) until stable, each learned two or three times side by side
/// as workloads of their own: their profiles are the same. Then held to that profile through the same life
/// for `monitorSeconds` (two minutes in CI): no anomaly. Then a poisoned model (its unpickling
/// runs a shell, sends the model to an address never used, drops and runs a binary, opens a
/// reverse shell) reaches each, by the repository API (KServe) and by a rollout (BentoML): each
/// step is an anomaly naming the workload, killed or refused. `Sizing` has the environment that
/// makes the run longer (the README's measurement with the default quiet period).
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

    /// The sizes of a run: CI's by default; longer ones by environment, as the README's
    /// measurement with the default quiet period sets them.
    struct Sizing {
        /// The agent's `learning.minDuration` (s): at least a round of life for every deployment,
        /// as an hour of a cluster's holds (else a profile can be stable before its first
        /// respawn). Two deployments live at a time, about 40 s a round: 90 s for four, 130 for six.
        var minDuration: Int?
        var deployments: Int { 2 * learningRuns }
        var effectiveMinDuration: Int { minDuration ?? 40 * ((deployments + 1) / 2) + 10 }
        /// The agent's `learning.quietPeriod` (s): BentoML's arbiter's 10 s respawn check fits in it.
        var quietPeriod = 25
        /// Workloads learned side by side per framework, with the same life: their profiles are
        /// compared (two in CI; the README's three by VIGIL_FRAMEWORK_LEARNING_RUNS=3).
        var learningRuns = 2
        /// Seconds of monitored life (traffic, kills, restarts, rollouts) with no anomaly.
        var monitorSeconds = 120.0

        static var current: Sizing {
            let environment = ProcessInfo.processInfo.environment
            var sizing = Sizing()
            if let value = environment["VIGIL_FRAMEWORK_MIN_DURATION"].flatMap(Int.init) { sizing.minDuration = value }
            if let value = environment["VIGIL_FRAMEWORK_QUIET_PERIOD"].flatMap(Int.init) { sizing.quietPeriod = value }
            if let value = environment["VIGIL_FRAMEWORK_LEARNING_RUNS"].flatMap(Int.init) { sizing.learningRuns = max(1, value) }
            if let value = environment["VIGIL_FRAMEWORK_MONITOR_SECONDS"].flatMap(Double.init) { sizing.monitorSeconds = value }
            return sizing
        }
    }

    struct Replica {
        var pod: Containerd.RunningPod
        var port: Int
        var attempt = 0
    }

    /// One Deployment of a framework, a workload of its own: its replicas, and how far its life got.
    final class Deployment: @unchecked Sendable {
        let framework: Framework
        let name: String
        var replicas: [Replica] = []
        var rounds = 0
        var workload: String { "ml/deployment/\(name)/server" }

        init(_ framework: Framework, name: String) {
            self.framework = framework
            self.name = name
        }
    }

    /// The node's CRI as the kubelet drives it for several pods at once: one call at a time.
    final class Kubelet: @unchecked Sendable {
        let node: CRITests.Node
        private let lock = NSLock()
        private var nextPort: Int

        init(_ node: CRITests.Node) {
            self.node = node
            nextPort = node.port + 2000
        }

        func start(_ deployment: Deployment, replicaSet: String, models: String) throws -> Replica {
            let framework = deployment.framework
            let port = lock.withLock { () -> Int in
                defer { nextPort += 10 }
                return nextPort
            }
            var request = Containerd.PodRequest(name: "\(deployment.name)-\(replicaSet)-\(FrameworkTests.randomName(5))",
                                                command: framework.command(port))
            request.mounts = [FrameworkTests.venv: FrameworkTests.venv, "/app": FrameworkTests.frameworks, "/models": models]
            request.environment = framework.environment
            request.workingDirectory = framework.workingDirectory
            return Replica(pod: try lock.withLock { try node.containerd.runPod(request) }, port: port)
        }

        /// The kubelet's next attempt of the replica's container, in the same sandbox.
        func restart(_ replica: inout Replica) throws {
            replica.attempt += 1
            let (pod, attempt) = (replica.pod, replica.attempt)
            replica.pod = try lock.withLock { try node.containerd.restartContainer(pod, attempt: attempt) }
        }

        func remove(_ replica: Replica) {
            lock.withLock { node.containerd.removePod(replica.pod) }
        }
    }

    static func randomName(_ count: Int) -> String {
        let letters = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<count).map { _ in letters.randomElement()! })
    }

    /// A ReplicaSet's hash, as a rollout makes a new one.
    static func replicaSetHash() -> String { randomName(8) + "4" }

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
        func workers() -> [(pid: Int32, command: String)] {
            processes(of: pod, cgroupMount: cgroupMount).filter { $0.command.contains(framework.workerMarker) }
        }
        let before = workers()
        guard before.count == 2, let victim = before.first else {
            throw TestSupportError(description: "\(framework.name): not two workers in \(processes(of: pod, cgroupMount: cgroupMount))")
        }
        kill(victim.pid, SIGKILL)
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline {
            let now = workers()
            if now.count == before.count && !now.contains(where: { $0.pid == victim.pid }) { return }
            usleep(200_000)
        }
        throw TestSupportError(description: "\(framework.name): the killed worker was not respawned within 40 s")
    }

    /// User and system CPU seconds the agent has used (`/proc/PID/stat`, clock ticks of 1/100 s).
    private func agentCPU(_ node: CRITests.Node) -> Double {
        let stat = (try? String(contentsOfFile: "/proc/\(node.agent.processIdentifier)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / 100
    }

    /// Runs `body` for each deployment at once (a node's pods live at the same time); the first
    /// error after all have ended.
    private func concurrently(_ deployments: [Deployment], _ body: (Deployment) throws -> Void) throws {
        // Each deployment is touched by its own iteration only; what `body` reads besides is not
        // written while it runs.
        try withoutActuallyEscaping(body) { body in
            final class Run: @unchecked Sendable {
                let body: (Deployment) throws -> Void
                let lock = NSLock()
                var errors: [Error] = []
                init(_ body: @escaping (Deployment) throws -> Void) { self.body = body }
            }
            let run = Run(body)
            DispatchQueue.concurrentPerform(iterations: deployments.count) { i in
                do { try run.body(deployments[i]) } catch { run.lock.withLock { run.errors.append(error) } }
            }
            if let error = run.errors.first { throw error }
        }
    }

    func testFrameworksAreLearnedWithoutFalsePositivesAndEveryPoisonedModelIsCaught() throws {
        try KernelTestSupport.requireRoot()
        if let reason = Self.frameworksUnavailable() {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        let sizing = Sizing.current
        let frameworks = [Framework.bentoml, Framework.kserve]
        let node = try CRITests.Node(self, configuration: "protect:\n" + frameworks.map { "- workload: \($0.workload)" }.joined(separator: "\n"),
                                     minDuration: sizing.effectiveMinDuration, quietPeriod: sizing.quietPeriod)
        let kubelet = Kubelet(node)
        let cgroupMount = try CgroupHierarchy.system().mountPoint
        let models = node.work + "/models", poisoned = node.work + "/poisoned"
        for name in ["iris", "iris-b"] { _ = try run([Self.python, "-B", Self.frameworks + "/train.py", models, "--name", name]) }
        chmod(node.work, 0o755)
        // The attacker's listeners: what reaches them got out.
        let exfil = try LoopbackCatcher(address: "127.0.0.2"), shell = try LoopbackCatcher(address: "127.0.0.2")
        let attack = ["--poison", "--exfil", "127.0.0.2:\(exfil.port)", "--shell", "127.0.0.2:\(shell.port)"]

        // The answers every replica must give, from the first traffic to each framework.
        var expected: [String: String] = [:]
        /// traffic.py against a replica; when it fails, the error says what the server logged.
        func traffic(_ framework: Framework, _ replica: Replica, rounds: Int) throws -> String {
            do {
                return try self.traffic(framework, port: replica.port, rounds: rounds)
            } catch {
                let request = replica.pod.request
                let log = node.containerd.directory + "/pods/\(request.namespace)_\(request.name)_\(request.uid)/\(request.container)/\(replica.attempt).log"
                let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.prefix(12000) ?? "no log at \(log)"
                throw TestSupportError(description: "\(error)\n\(request.name)'s log:\n\(tail)")
            }
        }
        func answer(_ framework: Framework, _ replica: Replica, rounds: Int) throws {
            let answer = try traffic(framework, replica, rounds: rounds)
            guard answer == expected[framework.name] else {
                throw TestSupportError(description: "\(framework.name) on \(replica.port) answered \(answer), not \(expected[framework.name] ?? "")")
            }
        }
        /// A stretch of a deployment's life: every other time a replica replaced by a pod of a new
        /// ReplicaSet (a rollout), traffic to each replica, a worker of one SIGKILLed (its
        /// supervisor respawns it), the other's container restarted (the kubelet's next attempt).
        func live(_ deployment: Deployment, rounds: Int, models: String) throws {
            let framework = deployment.framework
            let (killed, restarted) = deployment.rounds % 2 == 0 ? (0, 1) : (1, 0)
            if deployment.rounds % 2 == 1 {
                let old = deployment.replicas[killed]
                deployment.replicas[killed] = try kubelet.start(deployment, replicaSet: Self.replicaSetHash(), models: models)
                kubelet.remove(old)
            }
            deployment.rounds += 1
            for replica in deployment.replicas { try answer(framework, replica, rounds: rounds) }
            try killAWorker(framework, of: deployment.replicas[killed].pod, cgroupMount: cgroupMount)
            try answer(framework, deployment.replicas[killed], rounds: rounds)
            try kubelet.restart(&deployment.replicas[restarted])
            try answer(framework, deployment.replicas[restarted], rounds: rounds)
        }

        // Learning: each framework learned `learningRuns` times side by side, as workloads of
        // their own with the same life, two replicas each, until each profile is stable.
        let learningStarted = Date()
        let deployments = frameworks.flatMap { framework in
            (1...sizing.learningRuns).map { Deployment(framework, name: $0 == 1 ? framework.deployment : "\(framework.deployment)-run\($0)") }
        }
        // Two deployments' pods start at a time (`concurrently` runs as many as there are CPUs):
        // twelve Python servers started at once on two cores starve KServe's workers past the 5 s
        // its supervisor waits for an answer to its ping, and it kills and respawns them forever.
        func start(_ deployment: Deployment) throws {
            for _ in 0..<2 { deployment.replicas.append(try kubelet.start(deployment, replicaSet: "5f8d7c9b4", models: models)) }
        }
        let firsts = deployments.filter { $0.name == $0.framework.deployment }
        try concurrently(firsts) { deployment in
            try start(deployment)
            _ = try traffic(deployment.framework, deployment.replicas[0], rounds: 5)
        }
        for deployment in firsts { expected[deployment.framework.name] = try traffic(deployment.framework, deployment.replicas[0], rounds: 1) }
        try concurrently(deployments) { deployment in
            if deployment.replicas.isEmpty { try start(deployment) }
            for replica in deployment.replicas { try answer(deployment.framework, replica, rounds: 5) }
        }
        let deadline = Date().addingTimeInterval(Double(sizing.effectiveMinDuration + sizing.quietPeriod) + 360)
        var learning = deployments
        while !learning.isEmpty && Date() < deadline {
            try concurrently(learning) { try live($0, rounds: 3, models: models) }
            learning.removeAll { node.profileState($0.workload, timeout: 0) != nil }
        }
        XCTAssertEqual(learning.map(\.workload), [], "never stable while they lived:\n\(node.log.suffix(3000))")
        if !learning.isEmpty { return }

        print("framework: learning took \(Int(Date().timeIntervalSince(learningStarted))) s; the agent's CPU so far \(agentCPU(node)) s")
        let store = try DirectoryProfileStore(root: node.profiles)
        var learnedProfiles: [String: [Profile]] = [:]
        for deployment in deployments {
            let framework = deployment.framework
            let profile = try XCTUnwrap(try store.latest(workload: deployment.workload))
            XCTAssertEqual(profile.state, .stable)
            learnedProfiles[framework.name, default: []].append(profile)
            let stableSince = try XCTUnwrap(profile.learning.stableSince)
            print("framework: \(deployment.name): stable \(Int(stableSince.timeIntervalSince(learningStarted))) s after the first pod, "
                + "the last new behaviour at +\(Int(profile.learning.lastNew.timeIntervalSince(learningStarted))) s, after \(deployment.rounds) rounds of life; "
                + "\(profile.execs.count) execs, \(profile.fileWrites.count) file-write rules, \(profile.egress.count) destinations, "
                + "\(profile.syscalls.x86_64.count) syscalls")
            // The stability evidence `vigil profile show` prints: what was new last, and when.
            let recent = try XCTUnwrap(profile.learning.recentlyNew, "\(framework.name): the profile says what was new")
            XCTAssertLessThanOrEqual(recent.last!.at, profile.learning.lastNew)
            for new in recent {
                print("framework: \(deployment.name): new at +\(Int(new.at.timeIntervalSince(learningStarted))) s: \(new.kind) \(new.rule)")
            }
            guard deployment.name == framework.deployment else { continue }
            for rule in profile.fileWrites { print("framework: \(framework.name): write \(rule.path) \(rule.ops)") }
            for exec in profile.execs { print("framework: \(framework.name): exec \(exec.exe) from \(exec.parent)") }
            for destination in profile.egress { print("framework: \(framework.name): egress \(destination)") }
        }
        // Learned side by side, with the same life: the same profile each time, but for the
        // asynchronous baseline (a contended lock's sched_yield, a signal's rt_sigreturn: seen
        // or not by timing, and allowed by every filter and by monitoring whether seen or not).
        let timingOnly = SeccompAllowances.asynchronousBaseline
        for (framework, profiles) in learnedProfiles {
            for (run, profile) in profiles.enumerated().dropFirst() {
                let first = profiles[0]
                func difference<T: Hashable & Comparable>(_ what: String, _ rules: (Profile) -> [T]) -> String? {
                    let (a, b) = (Set(rules(first)), Set(rules(profile)))
                    return a == b ? nil : "\(what): only in run 1 \(a.subtracting(b).sorted()), only in run \(run + 1) \(b.subtracting(a).sorted())"
                }
                let differences = [difference("execs") { $0.execs }, difference("file writes") { $0.fileWrites },
                                   difference("egress") { $0.egress }, difference("syscalls") { $0.syscalls.x86_64.filter { !timingOnly.contains($0) } },
                                   difference("startup-only file writes") { $0.startupOnly?.fileWrites ?? [] },
                                   difference("startup-only execs") { $0.startupOnly?.execs ?? [] }].compactMap { $0 }
                XCTAssertEqual(differences, [], "\(framework): learned twice with the same life, two profiles")
            }
        }

        // Monitoring (protected): a rollout to a new ReplicaSet, then the same life with a
        // rollout every other round, for `monitorSeconds`.
        let served = deployments.filter { $0.name == $0.framework.deployment }
        for deployment in deployments {
            let old = deployment.replicas
            if served.contains(where: { $0 === deployment }) {
                let replicaSet = Self.replicaSetHash()
                deployment.replicas = try (0..<2).map { _ in try kubelet.start(deployment, replicaSet: replicaSet, models: models) }
            }
            old.forEach(kubelet.remove)
        }
        let monitorStarted = Date()
        var monitorRounds = 0
        repeat {
            try concurrently(served) { try live($0, rounds: 10, models: models) }
            monitorRounds += 1
        } while Date().timeIntervalSince(monitorStarted) < sizing.monitorSeconds
        usleep(1_500_000)
        print("framework: monitored \(Int(Date().timeIntervalSince(monitorStarted))) s, \(monitorRounds) rounds of life; the agent's CPU so far \(agentCPU(node)) s")
        let falsePositives = node.events.filter { $0["kind"] as? String == "anomaly" }
        XCTAssertEqual(falsePositives.count, 0, "normal traffic, rollouts, respawns and restarts are not anomalies:\n"
            + falsePositives.map { "\($0)" }.joined(separator: "\n"))

        // The poisoned model: loaded through KServe's repository API; rolled out to BentoML.
        _ = try run([Self.python, "-B", Self.frameworks + "/train.py", models, "--name", "iris-next", "--model-file", "/models/iris-next/model.joblib"] + attack)
        _ = try run([Self.python, "-B", Self.frameworks + "/train.py", poisoned, "--model-file", "/models/iris/model.joblib"] + attack)
        let kserve = try XCTUnwrap(served.first { $0.framework.name == "kserve" }).replicas[0]
        _ = try? HTTP.request("POST", "/v2/repository/models/iris-next/load", port: kserve.port)
        let bentoml = try XCTUnwrap(served.first { $0.framework.name == "bentoml" })
        let bento = try kubelet.start(bentoml, replicaSet: Self.replicaSetHash(), models: poisoned)
        _ = try? traffic(.bentoml, bento, rounds: 1)

        for (framework, pod) in [(Framework.kserve, kserve.pod), (.bentoml, bento.pod)] {
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
