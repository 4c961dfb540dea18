import Foundation

/// A containerd of the test's own — its root, state and socket in a private directory, its CRI
/// plugin on (runc v2 shim, cgroupfs driver) — driven over the CRI `runtime.v1` gRPC API the way a
/// kubelet drives it (`cri/cri.py` is the gRPC client). Pods are host-network (no CNI), images are
/// built here (`cri/image.py`) and imported with `ctr`: nothing is pulled. runc keeps its state
/// where containerd's shim always has it, `/run/containerd/runc/k8s.io`, as on a node.
///
/// `stop()` (also at deinit) removes every pod it started, the pod cgroups (as a kubelet would),
/// the daemon and its shims, its mounts and its directory.
public final class Containerd {
    public let directory: String
    public var socket: String { directory + "/containerd.sock" }
    private let daemon: Process
    private var client: CRIClient!
    private var pods: [RunningPod] = []
    private var createdCgroupDirectories: [String] = []
    private let cgroupMount: String
    private var stopped = false

    /// The image every test pod runs: a small layer (the example model server, its weights,
    /// nginx's configuration, /etc/passwd) over the host's /usr mounted read-only, since no
    /// registry can be reached: python3, nginx and busybox are the host's own binaries.
    public static let appImage = "localhost/vigil-test/app:1"
    public static let pauseImage = "localhost/vigil-test/pause:1"

    /// Why containerd cannot be run here (containerd, ctr, the shim, runc or the Python gRPC
    /// tools missing), or nil.
    public static func unavailableReason() -> String? {
        let fm = FileManager.default
        var missing: [String] = []
        for binary in ["containerd", "ctr", "containerd-shim-runc-v2", "runc"]
        where !["/usr/bin/", "/usr/sbin/", "/usr/local/bin/"].contains(where: { fm.isExecutableFile(atPath: $0 + binary) }) {
            missing.append(binary)
        }
        if run(["python3", "-c", "import grpc, grpc_tools"]).status != 0 { missing.append("python3 grpcio grpcio-tools") }
        return missing.isEmpty ? nil : "needs \(missing.joined(separator: ", ")) (scripts/setup installs them)"
    }

    /// `/srv/index.html` in the image.
    public static let indexHTML = "<html>model card</html>\n"

    public init(cgroupMount: String) throws {
        self.cgroupMount = cgroupMount
        var template = Array((NSTemporaryDirectory() + "vigil-containerd-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { throw TestSupportError(description: "mkdtemp failed") }
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        try """
        version = 2
        root = "\(directory)/root"
        state = "\(directory)/state"
        [grpc]
          address = "\(directory)/containerd.sock"
        [ttrpc]
          address = "\(directory)/containerd.sock.ttrpc"
        [plugins."io.containerd.grpc.v1.cri"]
          sandbox_image = "\(Self.pauseImage)"
          # Root here lacks CAP_SYS_RESOURCE: runc cannot give a sandbox the -998 it would ask for.
          restrict_oom_score_adj = true
          disable_apparmor = true
          [plugins."io.containerd.grpc.v1.cri".containerd]
            snapshotter = "overlayfs"
            default_runtime_name = "runc"
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
              runtime_type = "io.containerd.runc.v2"
              [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
                SystemdCgroup = false
          [plugins."io.containerd.grpc.v1.cri".cni]
            bin_dir = "\(directory)/cni-bin"
            conf_dir = "\(directory)/cni-conf"
        """.write(toFile: directory + "/config.toml", atomically: true, encoding: .utf8)
        daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        daemon.arguments = ["containerd", "--config", directory + "/config.toml"]
        _ = FileManager.default.createFile(atPath: directory + "/containerd.log", contents: nil)
        let log = FileHandle(forWritingAtPath: directory + "/containerd.log")
        daemon.standardOutput = log
        daemon.standardError = log
        try daemon.run()
        do {
            // A kubelet makes its QoS cgroups when it starts, long before a pod: so the node agent
            // finds its root there (a root that appears later is CRITests' own case). Without them,
            // the first pod would make /kubepods and could be running before the agent's next look.
            for path in ["/kubepods", "/kubepods/besteffort", "/kubepods/burstable"] where !FileManager.default.fileExists(atPath: cgroupMount + path) {
                guard mkdir(cgroupMount + path, 0o755) == 0 else {
                    throw TestSupportError(description: "cannot make the QoS cgroup \(cgroupMount + path): \(String(cString: strerror(errno)))")
                }
                createdCgroupDirectories.append(cgroupMount + path)
            }
            for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(100_000) }
            client = try CRIClient(socket: socket)
            _ = try client.call("RuntimeService", "Version", ["version": "v1"])
            try importImages()
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// containerd's own log, for failure messages.
    public var log: String { (try? String(contentsOfFile: directory + "/containerd.log", encoding: .utf8)) ?? "" }

    private func importImages() throws {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let builder = here.appendingPathComponent("cri/image.py").path
        let examples = here.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("examples/model-server").path
        let pause = directory + "/pause.tar", app = directory + "/app.tar"
        try Self.check(Self.run(["python3", builder, pause, "--name", Self.pauseImage, "--file", "/bin/busybox:/bin/busybox:0755",
                                 "--entrypoint", #"["/bin/busybox","sleep","2147483647"]"#]))
        var arguments = ["python3", builder, app, "--name", Self.appImage]
        for link in ["bin=usr/bin", "lib=usr/lib", "lib64=usr/lib64", "sbin=usr/sbin"] { arguments += ["--symlink", link] }
        for dir in ["usr", "tmp", "proc", "sys", "dev", "etc", "run", "var/log/nginx", "var/lib/nginx", "srv"] { arguments += ["--dir", dir] }
        arguments += ["--text", "etc/passwd=root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                      + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                      "--text", "etc/group=root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n",
                      "--text", "srv/index.html=\(Self.indexHTML)",
                      "--file", examples + "/server.py:/app/server.py",
                      "--file", examples + "/models/weights.json:/models/weights.json"]
        try Self.check(Self.run(arguments))
        for image in [pause, app] {
            try Self.check(Self.run(["ctr", "--address", socket, "-n", "k8s.io", "images", "import", image]))
        }
    }

    // MARK: pods

    public enum SeccompProfile: Equatable, Sendable {
        /// The Kubernetes default when a pod sets no seccompProfile.
        case unconfined
        case runtimeDefault
        /// An absolute path, as the kubelet passes `<seccomp root>/<localhostProfile>`.
        case localhost(String)
    }

    /// A pod of one container, as a kubelet would ask for it.
    public struct PodRequest: Sendable {
        public var namespace = "ml"
        public var name: String
        public var uid = UUID().uuidString.lowercased()
        public var container = "server"
        public var image = Containerd.appImage
        public var command: [String]
        /// Host directories mounted read-only (container path: host path), as a ConfigMap volume
        /// would be; the host's /usr is always mounted (see `appImage`).
        public var mounts: [String: String] = [:]
        public var seccomp: SeccompProfile = .unconfined
        /// `allowPrivilegeEscalation: false`.
        public var noNewPrivileges = false
        public var labels: [String: String] = [:]
        /// The container's environment (`env:` in its spec) and working directory (`workingDir:`).
        public var environment: [String: String] = [:]
        public var workingDirectory = ""
        /// The kubelet's cgroup parent is `<root>/<qos>/pod<uid>` (cgroupfs driver).
        public var cgroupRoot = "/kubepods"
        public var qos = "besteffort"

        public init(name: String, command: [String]) {
            self.name = name
            self.command = command
        }

        public var cgroupParent: String { "\(cgroupRoot)/\(qos)/pod\(uid)" }
    }

    public struct RunningPod: Sendable {
        public let request: PodRequest
        public let sandboxID: String
        public let containerID: String
        /// The container's cgroup, inside the cgroup v2 hierarchy.
        public var cgroup: String { "\(request.cgroupParent)/\(containerID)" }
    }

    public struct ContainerStatus: Sendable {
        public var state: String
        public var exitCode: Int
        public var reason: String
        public var message: String
        public var pid: Int?
        public var startedAt: Int64
        public var finishedAt: Int64
    }

    /// RunPodSandbox, CreateContainer, StartContainer. A CRI error is thrown as `CRIError` with
    /// the message the kubelet would put in the pod's status.
    @discardableResult
    public func runPod(_ request: PodRequest) throws -> RunningPod {
        let sandboxConfig = sandboxConfiguration(request)
        rememberCgroupDirectories(request)
        let sandboxID = try client.call("RuntimeService", "RunPodSandbox", ["config": sandboxConfig])["podSandboxId"] as? String ?? ""
        pods.append(RunningPod(request: request, sandboxID: sandboxID, containerID: ""))
        let containerID = try startContainer(request, sandboxID: sandboxID, attempt: 0)
        let pod = RunningPod(request: request, sandboxID: sandboxID, containerID: containerID)
        pods[pods.count - 1] = pod
        return pod
    }

    /// What a kubelet does when a pod's container exits or fails its liveness probe: the next
    /// attempt, a new container (and cgroup) in the same sandbox; the old one is removed.
    @discardableResult
    public func restartContainer(_ pod: RunningPod, attempt: Int, timeout: Int = 10) throws -> RunningPod {
        _ = try stopContainer(pod, timeout: timeout)
        _ = try client.call("RuntimeService", "RemoveContainer", ["containerId": pod.containerID])
        let containerID = try startContainer(pod.request, sandboxID: pod.sandboxID, attempt: attempt)
        let restarted = RunningPod(request: pod.request, sandboxID: pod.sandboxID, containerID: containerID)
        if let index = pods.firstIndex(where: { $0.sandboxID == pod.sandboxID }) { pods[index] = restarted }
        return restarted
    }

    /// CreateContainer and StartContainer; the container's id.
    private func startContainer(_ request: PodRequest, sandboxID: String, attempt: Int) throws -> String {
        let sandboxConfig = sandboxConfiguration(request)
        var security: [String: Any] = ["namespaceOptions": ["network": "NODE", "pid": "CONTAINER", "ipc": "POD"],
                                       "noNewPrivs": request.noNewPrivileges]
        switch request.seccomp {
        case .unconfined: security["seccomp"] = ["profileType": "Unconfined"]
        case .runtimeDefault: security["seccomp"] = ["profileType": "RuntimeDefault"]
        case .localhost(let path): security["seccomp"] = ["profileType": "Localhost", "localhostRef": path]
        }
        let container: [String: Any] = [
            "metadata": ["name": request.container, "attempt": attempt],
            "image": ["image": request.image],
            "command": request.command,
            "envs": request.environment.sorted { $0.key < $1.key }.map { ["key": $0.key, "value": $0.value] },
            "workingDir": request.workingDirectory,
            "mounts": [["containerPath": "/usr", "hostPath": "/usr", "readonly": true]]
                + request.mounts.sorted { $0.key < $1.key }.map { ["containerPath": $0.key, "hostPath": $0.value, "readonly": true] },
            "logPath": "\(request.container)/\(attempt).log",
            "labels": ["io.kubernetes.container.name": request.container, "io.kubernetes.pod.name": request.name,
                       "io.kubernetes.pod.namespace": request.namespace, "io.kubernetes.pod.uid": request.uid],
            "annotations": ["io.kubernetes.container.restartCount": "\(attempt)", "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                            "io.kubernetes.container.terminationMessagePolicy": "File", "io.kubernetes.pod.terminationGracePeriod": "30"],
            "linux": ["securityContext": security],
        ]
        let containerID = try client.call("RuntimeService", "CreateContainer",
                                          ["podSandboxId": sandboxID, "config": container, "sandboxConfig": sandboxConfig])["containerId"] as? String ?? ""
        if let index = pods.firstIndex(where: { $0.sandboxID == sandboxID }) {
            pods[index] = RunningPod(request: request, sandboxID: sandboxID, containerID: containerID) // removed with the pod if Start fails
        }
        _ = try client.call("RuntimeService", "StartContainer", ["containerId": containerID])
        return containerID
    }

    private func sandboxConfiguration(_ request: PodRequest) -> [String: Any] {
        // What a kubelet sends for a host-network pod: no hostname (the pod has no UTS
        // namespace of its own), the kubelet's labels and annotations, the cgroup parent.
        [
            "metadata": ["name": request.name, "uid": request.uid, "namespace": request.namespace, "attempt": 0],
            "logDirectory": "\(directory)/pods/\(request.namespace)_\(request.name)_\(request.uid)",
            "labels": request.labels.merging(["io.kubernetes.pod.name": request.name, "io.kubernetes.pod.namespace": request.namespace,
                                              "io.kubernetes.pod.uid": request.uid]) { $1 },
            "annotations": ["kubernetes.io/config.source": "api", "kubernetes.io/config.seen": ISO8601DateFormatter().string(from: Date())],
            "linux": [
                "cgroupParent": request.cgroupParent,
                "securityContext": ["namespaceOptions": ["network": "NODE", "pid": "CONTAINER", "ipc": "POD"]],
            ],
        ]
    }

    /// The cgroup directories runc will create for the pod that do not exist yet: a kubelet
    /// removes a pod's cgroup when the pod goes; the test removes those it caused.
    private func rememberCgroupDirectories(_ request: PodRequest) {
        var path = ""
        for component in request.cgroupParent.split(separator: "/") {
            path += "/" + component
            let full = cgroupMount + path
            if !FileManager.default.fileExists(atPath: full) && !createdCgroupDirectories.contains(full) {
                createdCgroupDirectories.append(full)
            }
        }
    }

    public func status(_ pod: RunningPod) throws -> ContainerStatus {
        let response = try client.call("RuntimeService", "ContainerStatus", ["containerId": pod.containerID, "verbose": true])
        let status = response["status"] as? [String: Any] ?? [:]
        var pid: Int?
        if let infoText = (response["info"] as? [String: Any])?["info"] as? String,
           let info = try? JSONSerialization.jsonObject(with: Data(infoText.utf8)) as? [String: Any] {
            pid = (info["pid"] as? NSNumber)?.intValue
        }
        return ContainerStatus(state: status["state"] as? String ?? "CONTAINER_CREATED",
                               exitCode: (status["exitCode"] as? NSNumber)?.intValue ?? 0,
                               reason: status["reason"] as? String ?? "", message: status["message"] as? String ?? "", pid: pid,
                               startedAt: Int64(status["startedAt"] as? String ?? "0") ?? 0,
                               finishedAt: Int64(status["finishedAt"] as? String ?? "0") ?? 0)
    }

    /// StopContainer: SIGTERM, then SIGKILL after `timeout` seconds, as at a rollout.
    public func stopContainer(_ pod: RunningPod, timeout: Int = 10) throws -> ContainerStatus {
        _ = try client.call("RuntimeService", "StopContainer", ["containerId": pod.containerID, "timeout": timeout],
                            timeout: Double(timeout + 30))
        return try status(pod)
    }

    /// Stops and removes the pod (container and sandbox) and its pod cgroup.
    public func removePod(_ pod: RunningPod) {
        if !pod.containerID.isEmpty {
            _ = try? client.call("RuntimeService", "StopContainer", ["containerId": pod.containerID, "timeout": 0])
            _ = try? client.call("RuntimeService", "RemoveContainer", ["containerId": pod.containerID])
        }
        _ = try? client.call("RuntimeService", "StopPodSandbox", ["podSandboxId": pod.sandboxID])
        _ = try? client.call("RuntimeService", "RemovePodSandbox", ["podSandboxId": pod.sandboxID])
        pods.removeAll { $0.sandboxID == pod.sandboxID }
        rmdir(cgroupMount + pod.request.cgroupParent)
    }

    public func stop() {
        guard !stopped else { return }
        stopped = true
        for pod in pods { removePod(pod) }
        client = nil
        if daemon.isRunning {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        // Shims outlive containerd by design; ours name our socket on their command line.
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                  String(decoding: cmdline, as: UTF8.self).contains(socket) else { continue }
            kill(pid, SIGKILL)
        }
        // Mounts left under our directory (rootfs of containers a crash left behind).
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n").reversed() {
            let fields = line.split(separator: " ")
            if fields.count > 4, fields[4].hasPrefix(directory) { umount2(String(fields[4]), Int32(MNT_DETACH)) }
        }
        for path in createdCgroupDirectories.reversed() { rmdir(path) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: processes

    static func run(_ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (127, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func check(_ result: (status: Int32, output: String)) throws {
        guard result.status == 0 else { throw TestSupportError(description: result.output) }
    }
}

/// A CRI call the runtime refused: the gRPC status and message, as the kubelet reports them.
public struct CRIError: Error, CustomStringConvertible {
    public var code: String
    public var message: String
    public var description: String { "\(code): \(message)" }
}

/// cri/cri.py, kept running: one JSON request per line in, one response per line out.
final class CRIClient {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer = Data()

    init(socket: String) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("cri/cri.py").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--socket", socket]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    func call(_ service: String, _ method: String, _ request: [String: Any], timeout: Double = 60) throws -> [String: Any] {
        let line = try JSONSerialization.data(withJSONObject: ["service": service, "method": method, "request": request, "timeout": timeout])
        input.fileHandleForWriting.write(line + Data("\n".utf8))
        while !buffer.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw TestSupportError(description: "cri.py exited") }
            buffer.append(chunk)
        }
        let end = buffer.firstIndex(of: UInt8(ascii: "\n"))!
        let reply = buffer[buffer.startIndex..<end]
        buffer = Data(buffer[buffer.index(after: end)...])
        guard let object = try JSONSerialization.jsonObject(with: reply) as? [String: Any] else {
            throw TestSupportError(description: "cri.py: not a JSON object")
        }
        guard object["ok"] as? Bool == true else {
            throw CRIError(code: object["code"] as? String ?? "?", message: object["message"] as? String ?? "")
        }
        return object["response"] as? [String: Any] ?? [:]
    }
}
