import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilOperations
import VigilProfiles
import VigilRuntime
import VigilTestSupport
import XCTest
import Yams

/// The node agent against real containers started the way containerd would start them:
/// Kubernetes-style cgroup paths, CRI annotations in config.json, runc's state on disk.
final class AgentTests: XCTestCase {
    private func annotations(namespace: String, pod: String) -> [String: String] {
        ["io.kubernetes.cri.sandbox-namespace": namespace, "io.kubernetes.cri.sandbox-name": pod,
         "io.kubernetes.cri.container-name": "server", "io.kubernetes.cri.image-name": "registry/llm:1.4"]
    }

    private func containerID() -> String {
        (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
    }

    func testDiscoversNamesLearnsAndThenReportsAnomaliesPerWorkload() throws {
        try KernelTestSupport.requireRoot()
        try RuncContainer.available()
        let hierarchy = try CgroupHierarchy.system()
        let root = "/vigil-agent-test-\(getpid())"
        _ = try hierarchy.create(root)
        let kubepods = root + "/kubepods"
        _ = try hierarchy.create(kubepods)
        addTeardownBlock { try? hierarchy.remove(root) }
        let work = NSTemporaryDirectory() + "vigil-agent-\(getpid())"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        let stateRoot = work + "/runc"

        var configuration = KernelTestSupport.nodeConfiguration(kubepods: kubepods, work: work)
        configuration.namespaces.exclude = ["kube-system"]
        let probes = try KernelProbes()
        XCTAssertTrue(probes.enableRunTimeStats())
        let sink = MemorySink()
        let agent = try NodeAgent(configuration: configuration, kernel: probes, hierarchy: hierarchy, sink: sink, node: "node-a")
        XCTAssertEqual(try agent.start(), [kubepods])

        // Containers are started after the agent: their cgroups do not exist yet.
        func start(_ namespace: String, pod: String, _ script: String, whileRunning: ((_ cgroup: String) throws -> Void)? = nil) throws {
            let id = containerID()
            let podUID = UUID().uuidString.lowercased()
            let cgroup = "\(kubepods)/besteffort/pod\(podUID)/\(id)"
            let container = try RuncContainer(self, args: ["sh", "-c", script],
                                              cgroupsPath: cgroup, noNewPrivileges: true,
                                              seccomp: RuncContainer.recordingFilter,
                                              annotations: annotations(namespace: namespace, pod: pod), id: id,
                                              stateRoot: stateRoot, writableRoot: true)
            let result = try container.runDetachedAndWait(pipeline: agent.pipeline, whileRunning: whileRunning.map { hook in { try hook(cgroup) } })
            XCTAssertEqual(result.status, 0, result.output)
        }
        let normal = "echo hi > /tmp/cache.json; cat /etc/hostname; true"
        try start("ml", pod: "llm-server-7d9c8f6b5-x2k4p", normal)
        try start("ml", pod: "llm-server-7d9c8f6b5-q8w7e", normal)     // a second replica
        // Excluded: once named, the kernel reports nothing of it but its removal (no more ring traffic).
        try start("kube-system", pod: "coredns-5d78c9869d-abcde", normal + "; sleep 1") { cgroup in
            let id = try hierarchy.id(of: cgroup)
            for _ in 0..<40 where !probes.isQuiet(cgroupID: id) { try agent.poll(timeoutMilliseconds: 25) }
            XCTAssertTrue(probes.isQuiet(cgroupID: id), "an excluded container is still reported by the kernel")
        }
        try agent.tick()
        XCTAssertEqual(agent.workloadStates, ["ml/deployment/llm-server/server": .learning])
        XCTAssertEqual(agent.drops.total, 0, "every event of a started container was attributed: \(agent.drops.nonZero)")
        sleep(3) // the quiet period
        try agent.tick()
        XCTAssertEqual(agent.workloadStates, ["ml/deployment/llm-server/server": .stable])
        agent.waitForWrites()

        let profile = try XCTUnwrap(try DirectoryProfileStore(root: configuration.profiles).latest(workload: "ml/deployment/llm-server/server"))
        XCTAssertEqual(profile.state, .stable)
        XCTAssertEqual(profile.learning.containers, 2, "both replicas merged into one profile")
        XCTAssertTrue(profile.execs.contains(ExecRule(exe: "/bin/busybox", parent: "(runtime)")),
                      "a container started after the agent is watched from its first exec: \(profile.execs)")
        XCTAssertTrue(profile.fileWrites.contains { $0.path == "/tmp/cache.json" })
        let seccompFile = configuration.seccompRoot + "/vigil/ml.deployment.llm-server.server.json"
        let seccomp = try JSONDecoder().decode(OCISeccomp.self, from: Data(contentsOf: URL(fileURLWithPath: seccompFile)))
        XCTAssertEqual(seccomp.defaultAction, "SCMP_ACT_ERRNO")
        let states = try sink.objects.filter { $0["kind"] as? String == "profile.state" }
        XCTAssertEqual(states.first?[path: "profile.id"] as? String, "ml/deployment/llm-server/server")

        // Stopped containers (runc deleted their cgroups) are forgotten, in memory and in the kernel.
        XCTAssertEqual(agent.knownContainers, 0)
        // What is held is what is still there (the roots, the QoS level, the pods' cgroups runc
        // leaves behind): every removed container's cgroup, excluded one included, is forgotten.
        XCTAssertEqual(agent.rememberedCgroups, try hierarchy.subtree(of: kubepods).count)
        for id in probes.syscallBitmaps().keys {
            let path = try XCTUnwrap(hierarchy.path(of: id), "a removed cgroup is still watched")
            XCTAssertTrue(FileManager.default.fileExists(atPath: hierarchy.directory(of: path)), path)
        }

        // Monitoring: a normal third replica is silent; one that spawns a new binary is reported with its pod.
        try start("ml", pod: "llm-server-7d9c8f6b5-z9y8x", normal)
        // A dropper: writes a binary of its own and runs it.
        try start("ml", pod: "llm-server-7d9c8f6b5-a1b2c", normal + "; cp /bin/busybox /tmp/x; /tmp/x ls /")
        try agent.tick()
        let anomalies = try sink.objects.filter { $0["kind"] as? String == "anomaly" }
        XCTAssertEqual(Set(anomalies.compactMap { $0[path: "anomaly.rule"] as? String }.filter { $0 != "unexpected-syscall" }),
                       ["unexpected-file-write", "unexpected-exec"], "\(anomalies)")
        let exec = try XCTUnwrap(anomalies.first { $0[path: "anomaly.rule"] as? String == "unexpected-exec" })
        XCTAssertEqual(exec[path: "workload.namespace"] as? String, "ml")
        XCTAssertEqual(exec[path: "workload.pod"] as? String, "llm-server-7d9c8f6b5-a1b2c")
        XCTAssertEqual(exec[path: "workload.container"] as? String, "server")
        XCTAssertEqual(exec[path: "workload.id"] as? String, "ml/deployment/llm-server/server")
        XCTAssertEqual(exec[path: "workload.image"] as? String, "registry/llm:1.4")
        XCTAssertEqual(exec[path: "event.process.args"] as? [String], ["/tmp/x", "ls", "/"])
        XCTAssertEqual(exec[path: "event.process.exe"] as? String, "/tmp/x")
        // An intruder asks the cloud for the node's role (the container has a network namespace of
        // its own, with no route: nothing leaves the machine).
        // (busybox-static's wget crashes resolving even an address; its nc does the same connect.)
        try start("ml", pod: "llm-server-7d9c8f6b5-m3t4d", normal + "; printf 'GET /latest/meta-data/iam/security-credentials/\\r\\n' | nc 169.254.169.254 80 || true")
        try agent.tick()
        let metadata = try sink.objects.filter { $0[path: "anomaly.rule"] as? String == "metadata-service-access" }
        XCTAssertEqual(metadata.count, 1, "\(metadata)")
        XCTAssertEqual(metadata.first?[path: "anomaly.severity"] as? String, "critical")
        XCTAssertEqual(metadata.first?[path: "workload.pod"] as? String, "llm-server-7d9c8f6b5-m3t4d")
        XCTAssertEqual(metadata.first?[path: "event.network.address"] as? String, "169.254.169.254")
        XCTAssertEqual(metadata.first?[path: "event.network.port"] as? Int, 80)

        // The operations endpoint: metrics from what happened above; read-only.
        let metrics = AgentMetrics()
        metrics.update(agent: agent)
        let server = OperationsServer(registry: metrics.registry)
        let port = try server.start(host: "127.0.0.1", port: 0)
        defer { server.stop() }
        XCTAssertTrue(try HTTP.request("GET", "/readyz", port: port).hasPrefix("HTTP/1.1 503"))
        server.setReady(true)
        XCTAssertTrue(try HTTP.request("GET", "/readyz", port: port).hasPrefix("HTTP/1.1 200"))
        XCTAssertTrue(try HTTP.request("GET", "/healthz", port: port).hasPrefix("HTTP/1.1 200"))
        XCTAssertTrue(try HTTP.request("POST", "/metrics", port: port).hasPrefix("HTTP/1.1 405"))
        let text = try HTTP.request("GET", "/metrics", port: port)
        for expected in [#"vigil_events_total{kind="process.exec"}"#, "vigil_profiles{state=\"stable\"} 1.0\n",
                         "vigil_anomalies_total{rule=\"unexpected-exec\"} 1\n", #"vigil_bpf_program_runs_total{program="vigil_syscall_enter"}"#,
                         #"vigil_bpf_program_run_seconds_total{program="vigil_process_exec"}"#, "vigil_ring_buffer_fill_ratio 0",
                         #"vigil_bpf_program_misses_total{program="vigil_process_exit"}"#] {
            XCTAssertTrue(text.contains(expected), "\(expected) in\n\(text)")
        }
    }

    func testConfigurationErrorsNameTheField() throws {
        let file = NSTemporaryDirectory() + "vigil-config-\(getpid()).yaml"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: file) }
        for (text, expected) in [
            ("learning:\n  minDuration: soon\n", "field 'learning.minDuration'"),
            ("cgroupRoots: [kubepods]\n", "field 'cgroupRoots[0]'"),
            ("profile: /x\n", "field 'profile': is not a configuration field"),
            ("learning:\n  quietPeriod: -5\n", "field 'learning.quietPeriod': must be from 0 to"),
            ("podSelector:\n  matchLabels: {app: llm}\n", "field 'podSelector': needs kubernetes.enabled: true"),
            ("podSelector:\n  matchLabel: {app: llm}\n", "field 'podSelector.matchLabel': is not a field of podSelector"),
            ("kubernetes: {enabled: true}\npodSelector:\n  matchExpressions: [{key: app, operator: In}]\n",
             "field 'podSelector.matchExpressions[0]': In needs at least one value"),
            ("kubernetes: {enabled: true}\npodSelector:\n  matchExpressions: [{key: app, operator: Has}]\n",
             "podSelector.matchExpressions[0].operator"),
            ("kubernetes: {enabled: true, apiServer: 'http://10.0.0.1'}\n", "field 'kubernetes.apiServer': 'http://10.0.0.1' is not https://HOST[:PORT]"),
            ("kubernetes: {enabled: true, apiServer: 'https://10.0.0.1/k8s'}\n", "field 'kubernetes.apiServer'"),
            ("kubernetes: {enabled: true, timeout: 0}\n", "field 'kubernetes.timeout': must be more than 0 and at most 30"),
            ("kubernetes: {enabled: true, timeout: 120}\n", "field 'kubernetes.timeout'"),
            ("kubernetes: {enabled: yes please}\n", "field 'kubernetes.enabled'"),
            ("modelDigests:\n- workload: ml/*/llm/*\n  digests: [sha256:ABC]\n", "field 'modelDigests[0].digests[0]': 'sha256:ABC' is not sha256:"),
            ("serving: {trigger: ready}\n", "field 'serving.trigger': ready needs kubernetes.enabled: true"),
            ("protect:\n- workload: /ml/**\n", "field 'protect[0].workload': '/ml/**' is not a workload pattern"),
            ("protect:\n- workloads: [ml]\n", "protect"),
            ("serving: {trigger: listening}\n", "serving.trigger"),
            ("metadataServices: [metadata.google.internal]\n", "field 'metadataServices[0]': 'metadata.google.internal' is not an IPv4 or IPv6 address"),
            ("kubernetes: {enabled: true}\nserving: {trigger: ready, readyPollInterval: 0}\n", "field 'serving.readyPollInterval': must be from 0.1"),
        ] {
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try AgentConfiguration.load(file: file)) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
        try "namespaces:\n  include: [ml]\nmodelPaths:\n- workload: ml/*/llm-*/*\n  paths: [/models/**]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let config = try AgentConfiguration.load(file: file)
        XCTAssertTrue(config.namespaces.admits("ml"))
        XCTAssertFalse(config.namespaces.admits("default"))
        XCTAssertEqual(config.modelPaths(for: "ml/deployment/llm-server/server"), ["/models/**"])
        XCTAssertEqual(config.modelPaths(for: "ml/deployment/other/server"), [])
        XCTAssertEqual(config.profiles, "/var/lib/vigil/profiles", "defaults stay for what the file does not set")

        // The DaemonSet's configuration loads as it is.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let configMap = try XCTUnwrap(try Yams.load(yaml: String(contentsOfFile: repository + "/deploy/configmap.yaml", encoding: .utf8)) as? [String: Any])
        let agentYAML = try XCTUnwrap((configMap["data"] as? [String: Any])?["agent.yaml"] as? String)
        try agentYAML.write(toFile: file, atomically: true, encoding: .utf8)
        let deployed = try AgentConfiguration.load(file: file)
        XCTAssertEqual(deployed.namespaces.exclude, ["kube-system", "vigil-system"])
        XCTAssertEqual(deployed.metricsHostPort?.port, 9464)
        XCTAssertTrue(deployed.kubernetes.enabled)

        // The published schema names exactly the fields the agent reads.
        let schema = try XCTUnwrap(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: repository + "/deploy/agent-config.schema.json"))) as? [String: Any])
        let properties = schema["properties"] as? [String: Any] ?? [:]
        XCTAssertEqual(Set(properties.keys), Set(AgentConfiguration.fieldNames))
        for (section, fields) in AgentConfiguration.sectionFields {
            let sectionSchema = properties[section] as? [String: Any]
            XCTAssertEqual(Set((sectionSchema?["properties"] as? [String: Any] ?? [:]).keys), Set(fields), section)
        }
        XCTAssertNoThrow(try AgentConfiguration.load(file: repository + "/deploy/examples/agent-local.yaml"))
    }
}

extension RuncContainer {
    /// `runc create` + `runc start`, polling the pipeline while the container runs (as the
    /// agent's loop does, with the container's state and cgroup still there), then `runc delete`.
    func runDetachedAndWait(pipeline: EventPipeline, whileRunning: (() throws -> Void)? = nil,
                            eachPoll: (() throws -> Void)? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc") ? "/usr/sbin/runc" : "/usr/bin/runc")
        process.arguments = ["--root", stateRoot, "create", "--bundle", bundle, id]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return Result(status: process.terminationStatus, output: "runc create failed") }
        try Self.runc(["--root", stateRoot, "start", id])
        try whileRunning?()
        var stopped = false
        for _ in 0..<200 where !stopped {
            try pipeline.poll(timeoutMilliseconds: 50)
            try eachPoll?()
            let state = try Self.runc(["--root", stateRoot, "state", id]).output
            stopped = state.contains("\"status\": \"stopped\"")
        }
        try pipeline.drain()
        try Self.runc(["--root", stateRoot, "delete", "--force", id])
        try? output.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return Result(status: stopped ? 0 : 1, output: text)
    }
}

final class RotatingFileSinkTests: XCTestCase {
    func testRotatesPastTheLimitKeepingOneOldFile() throws {
        let path = NSTemporaryDirectory() + "vigil-events-\(getpid()).jsonl"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path); try? FileManager.default.removeItem(atPath: path + ".1") }
        let sink = try RotatingFileSink(path: path, maxBytes: 4096)
        let line = Array(String(repeating: "x", count: 99).utf8) + [10]
        for _ in 0..<100 { line.withUnsafeBytes { sink.write($0) } }
        sink.flush()
        let current = try Data(contentsOf: URL(fileURLWithPath: path)).count
        let previous = try Data(contentsOf: URL(fileURLWithPath: path + ".1")).count
        XCTAssertLessThanOrEqual(current, 4096)
        XCTAssertLessThanOrEqual(previous, 4096)
        XCTAssertEqual((current + previous) % 100, 0, "lines are never cut")
        XCTAssertGreaterThan(previous, 0)
    }
}

/// `vigil agent --config FILE` as the README starts it, with a sample configuration, and with the
/// Kubernetes API lookup on (a stand-in API server with real TLS and a token).
final class AgentCommandTests: XCTestCase {
    func testTheAgentBinaryLearnsRuncContainersInstallsSeccompAndServesMetrics() throws {
        try KernelTestSupport.requireRoot()
        try RuncContainer.available()
        let hierarchy = try CgroupHierarchy.system()
        let root = "/vigil-agent-cli-\(getpid())"
        let kubepods = root + "/kubepods"
        _ = try hierarchy.create(root)
        _ = try hierarchy.create(kubepods)
        addTeardownBlock { try? hierarchy.remove(root) }
        let work = NSTemporaryDirectory() + "vigil-agent-cli-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        let apiServer = try FakeAPIServer()
        defer { apiServer.stop() }
        let port = 20000 + Int(getpid() % 20000)
        let config = work + "/agent.yaml"
        try """
        node: cli-node
        cgroupRoots: [\(kubepods)]
        runtimeStateRoots: [\(work)/runc]
        profiles: \(work)/profiles
        seccompRoot: \(work)/seccomp
        learning: {minDuration: 0, quietPeriod: 1, checkpointInterval: 1}
        podSelector:
          matchLabels: {app: llm}
        kubernetes:
          enabled: true
          tokenFile: \(apiServer.tokenFile)
          caFile: \(apiServer.caFile)
          retryInterval: 60
        metricsAddress: 127.0.0.1:\(port)
        eventsFile: \(work)/events.jsonl
        """.write(toFile: config, atomically: true, encoding: .utf8)

        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: VigilBinary.path)
        agent.arguments = ["agent", "--config", config]
        // As in a pod: the API server's address comes from the kubelet's environment.
        agent.environment = ProcessInfo.processInfo.environment.merging(
            ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "\(apiServer.port)"]) { $1 }
        agent.standardOutput = FileHandle.nullDevice
        try agent.run()
        defer { if agent.isRunning { agent.terminate() } }
        var ready = false
        for _ in 0..<100 where !ready {
            usleep(100_000)
            ready = (try? HTTP.request("GET", "/readyz", port: port))?.hasPrefix("HTTP/1.1 200") ?? false
        }
        XCTAssertTrue(ready, "the agent never became ready")

        func run(pod: String, labels: [String: String], controller: (kind: String, name: String),
                 uid: String = UUID().uuidString.lowercased()) throws {
            let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
            try apiServer.addPod(namespace: "ml", name: pod, uid: uid, labels: labels, controller: controller)
            let container = try RuncContainer(self, args: ["sh", "-c", "cat /etc/hostname; sleep 0.5"],
                                              cgroupsPath: "\(kubepods)/besteffort/pod\(uid)/\(id)",
                                              noNewPrivileges: true, seccomp: RuncContainer.recordingFilter,
                                              annotations: ["io.kubernetes.cri.sandbox-namespace": "ml", "io.kubernetes.cri.sandbox-name": pod,
                                                            "io.kubernetes.cri.container-name": "server"],
                                              id: id, stateRoot: work + "/runc")
            XCTAssertEqual(try container.run().status, 0)
        }
        // Two replicas of a DaemonSet (their names alone would not say so), and a pod the selector leaves out.
        let firstPod = UUID().uuidString.lowercased()
        try run(pod: "llm-server-x7k2p", labels: ["app": "llm"], controller: ("DaemonSet", "llm-server"), uid: firstPod)
        try run(pod: "llm-server-x7k2p", labels: ["app": "llm"], controller: ("DaemonSet", "llm-server"), uid: firstPod) // restarted
        try run(pod: "llm-server-q8w7e", labels: ["app": "llm"], controller: ("DaemonSet", "llm-server"))
        try run(pod: "vector-db-0", labels: ["app": "db"], controller: ("StatefulSet", "vector-db"))
        var metrics = ""
        for _ in 0..<50 where !metrics.contains(#"vigil_profiles{state="stable"} 1"#) {
            usleep(200_000)
            metrics = (try? HTTP.request("GET", "/metrics", port: port)) ?? ""
        }
        XCTAssertTrue(metrics.contains("vigil_profiles{state=\"stable\"} 1.0\n"), metrics)
        XCTAssertTrue(metrics.contains("vigil_profiles{state=\"learning\"} 0.0\n"), "the unselected pod is not learned: \(metrics)")
        XCTAssertTrue(metrics.contains(#"vigil_events_total{kind="process.exec"}"#), metrics)
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/seccomp/vigil/ml.daemonset.llm-server.server.json"))
        let profile = try XCTUnwrap(try DirectoryProfileStore(root: work + "/profiles").latest(workload: "ml/daemonset/llm-server/server"))
        XCTAssertEqual(profile.learning.containers, 3)
        XCTAssertEqual(apiServer.requests.filter { $0.hasPrefix("GET /api/v1/namespaces/ml/pods/") }.count, 3,
                       "one lookup per pod, not per container: \(apiServer.requests)")
        var events = try String(contentsOfFile: work + "/events.jsonl", encoding: .utf8)
        XCTAssertTrue(events.contains(#""kind":"profile.state""#), events)

        // The API server refuses (RBAC): the next lookup (retryInterval) would come after the
        // container's naming time (60 s), so its events are dropped, and counted, not lost silently.
        apiServer.forbid()
        try run(pod: "llm-server-z9y8x", labels: ["app": "llm"], controller: ("DaemonSet", "llm-server"))
        for _ in 0..<50 where !metrics.contains("vigil_pod_lookup_failures_total 1\n") {
            usleep(200_000)
            metrics = (try? HTTP.request("GET", "/metrics", port: port)) ?? ""
        }
        XCTAssertTrue(metrics.contains("vigil_pod_lookup_failures_total 1\n"), "no lookup within retryInterval: \(metrics)")
        for _ in 0..<20 where !metrics.contains(#"vigil_drops_total{stage="unidentified",kind="process.exec"}"#) {
            usleep(200_000)
            metrics = (try? HTTP.request("GET", "/metrics", port: port)) ?? ""
        }
        XCTAssertTrue(metrics.contains(#"vigil_drops_total{stage="unidentified",kind="process.exec"}"#), metrics)
        XCTAssertTrue(metrics.contains("vigil_pending_events 0.0\n"), metrics)

        XCTAssertTrue(agent.stop(with: SIGINT, within: 30), "the agent stops within 30 s of SIGINT")
        XCTAssertEqual(agent.terminationStatus, 0, "SIGINT/SIGTERM: checkpoint and exit cleanly")
        events = try String(contentsOfFile: work + "/events.jsonl", encoding: .utf8)
        XCTAssertTrue(events.contains(#""stage":"unidentified","event_kind":"process.exec""#), events)
    }
}
