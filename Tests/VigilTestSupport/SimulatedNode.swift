import CVigilABI
import Foundation
import VigilAgent
import VigilCore
import VigilProfiles
import VigilRuntime

/// A Kubernetes node as the agent sees it, without a kernel or root: a directory stands in for the
/// cgroup v2 mount (a cgroup's id is its directory's inode number, as on cgroupfs), another for
/// runc's state directory (state.json with the CRI annotations), and a `RecordedKernel` is fed the
/// records the BPF programs would send. Containers start and stop as the kubelet and containerd
/// make them: the pod's cgroup, then the container's, each announced by a cgroup_mkdir record,
/// the runtime's state, the records of what the container does; cgroup_rmdir records when they go.
public final class SimulatedNode {
    public let kernel = RecordedKernel()
    public let hierarchy: CgroupHierarchy
    public let sink = MemorySink()
    /// The node's own temporary directory (removed by `remove()`).
    public let directory: String
    public let kubepods = "/kubepods"
    public var stateRoot: String { directory + "/runc" }
    private let qosPath = "/kubepods/besteffort"
    private let qosID: UInt64

    /// A container this node runs.
    public struct Container: Sendable {
        public var namespace: String
        public var pod: String
        public var name: String
        public var podUID: String
        public var containerID: String
        public var podPath: String
        public var podCgroupID: UInt64
        public var path: String
        public var cgroupID: UInt64
    }

    public init() throws {
        var template = Array((NSTemporaryDirectory() + "vigil-node-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TestSupportError(description: "mkdtemp: \(errno)") }
        directory = String(cString: made)
        try FileManager.default.createDirectory(atPath: directory + "/cgroup", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: directory + "/runc", withIntermediateDirectories: false)
        hierarchy = CgroupHierarchy(mountPoint: directory + "/cgroup")
        _ = try hierarchy.create(kubepods)
        qosID = try hierarchy.create(qosPath)
    }

    /// Removes the node's files.
    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The agent's configuration for this node: its cgroups, state, profile store and seccomp root.
    public func configuration() -> AgentConfiguration {
        AgentConfiguration.testNode(kubepods: kubepods, stateRoot: stateRoot, work: directory)
    }

    /// A started agent on this node's kernel.
    public func agent(_ configuration: AgentConfiguration? = nil, runtimeExes: [String] = ["/usr/bin/runc"], node: String = "sim",
                      clusterProfiles: ClusterProfileStore? = nil, podMetadata: PodMetadataSource? = nil) throws -> NodeAgent {
        let agent = try NodeAgent(configuration: configuration ?? self.configuration(), kernel: kernel, hierarchy: hierarchy,
                                  sink: sink, node: node, podMetadata: podMetadata, clusterProfiles: clusterProfiles, runtimeExes: runtimeExes)
        try agent.start()
        return agent
    }

    // MARK: what the kubelet and the runtime do

    /// Starts a container in a pod of its own: the pod's and the container's cgroups (announced
    /// as the kernel would), and — unless `writeState` is false — runc's state for it.
    public func startContainer(namespace: String, pod: String, name: String = "server", noNewPrivileges: Bool = false,
                               writeState: Bool = true) throws -> Container {
        let podUID = UUID().uuidString.lowercased()
        let containerID = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        let podName = "pod" + podUID
        let podPath = qosPath + "/" + podName
        let podID = try hierarchy.create(podPath)
        kernel.enqueue(RecordBuilder.cgroupMade(podID, parent: qosID, name: podName))
        let path = podPath + "/" + containerID
        let id = try hierarchy.create(path)
        kernel.enqueue(RecordBuilder.cgroupMade(id, parent: podID, name: containerID))
        let container = Container(namespace: namespace, pod: pod, name: name, podUID: podUID, containerID: containerID,
                                  podPath: podPath, podCgroupID: podID, path: path, cgroupID: id)
        if writeState { try self.writeState(container, noNewPrivileges: noNewPrivileges) }
        return container
    }

    /// runc's state.json for the container, with the annotations containerd's CRI plugin sets.
    public func writeState(_ container: Container, noNewPrivileges: Bool = false) throws {
        let labels = ["io.kubernetes.cri.container-type=container", "io.kubernetes.cri.sandbox-namespace=\(container.namespace)",
                      "io.kubernetes.cri.sandbox-name=\(container.pod)", "io.kubernetes.cri.container-name=\(container.name)",
                      "io.kubernetes.cri.image-name=registry.local/\(container.name):1"]
        var config: [String: Any] = ["labels": labels]
        if noNewPrivileges { config["no_new_privileges"] = true }
        let state: [String: Any] = ["id": container.containerID, "init_process_pid": 1, "config": config]
        let directory = "\(stateRoot)/\(container.containerID)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: state).write(to: URL(fileURLWithPath: directory + "/state.json"))
    }

    /// Stops the container and removes its pod: cgroup_rmdir records (the container's with the
    /// syscalls it made since its bitmaps were last read, x86_64 numbers), then the files go.
    public func stopContainer(_ container: Container, lastSyscalls: [Int] = []) throws {
        kernel.enqueue(RecordBuilder.cgroupRemoved(container.cgroupID, parent: container.podCgroupID, name: container.containerID,
                                                   syscalls: lastSyscalls))
        kernel.enqueue(RecordBuilder.cgroupRemoved(container.podCgroupID, parent: qosID, name: String(container.podPath.split(separator: "/").last!)))
        try hierarchy.remove(container.podPath)
        try? FileManager.default.removeItem(atPath: "\(stateRoot)/\(container.containerID)")
    }

    // MARK: what a container does

    public func exec(_ container: Container, pid: UInt32 = 100, exe: String, parent: String = "/usr/bin/containerd-shim-runc-v2",
                     args: [String]? = nil) {
        kernel.enqueue(RecordBuilder.exec(pid: pid, exe: exe, parent: parent, args: args ?? [exe], boot: BootClock.nowBootNanoseconds(),
                                          cgroup: container.cgroupID))
    }

    /// Opens (creating) and writes `path`.
    public func write(_ container: Container, pid: UInt32 = 100, path: String) {
        let slash = path.lastIndex(of: "/")!
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        kernel.enqueue(RecordBuilder.file(pid: pid, op: VIGIL_FILE_CREATE, dir: directory, name: String(path[path.index(after: slash)...]),
                                          openFlags: UInt32(O_WRONLY | O_CREAT), boot: BootClock.nowBootNanoseconds(),
                                          cgroup: container.cgroupID))
    }

    /// Connects to an IPv4 address.
    /// An open of a model file as the kernel reports it: the path it resolved, the file's
    /// identity, its size and ctime now, and the opening process's executable. `pid` names the
    /// process whose root the agent reads the file through.
    public func readModel(_ container: Container, pid: UInt32, exe: String, path: String, identity: FileIdentity,
                          heldAcrossExec: Bool = false) {
        var status = stat()
        let found = stat(path, &status) == 0
        kernel.enqueue(RecordBuilder.file(pid: pid, op: VIGIL_FILE_READ_MODEL, dir: "", name: path, targetName: exe, result: 3,
                                          openFlags: UInt32(O_RDONLY), flags: heldAcrossExec ? UInt32(VIGIL_FLAG_INHERITED_FD) : 0,
                                          boot: BootClock.nowBootNanoseconds(), cgroup: container.cgroupID,
                                          inode: identity.inode, device: identity.device,
                                          size: found ? UInt64(status.st_size) : 0,
                                          changeNanoseconds: found ? UInt64(status.st_ctim.tv_sec) * 1_000_000_000 + UInt64(status.st_ctim.tv_nsec) : 0))
    }

    /// A process of the container accepts its first connection: the container serves.
    public func serve(_ container: Container, pid: UInt32 = 100) {
        kernel.enqueue(RecordBuilder.serving(container.cgroupID, pid: pid, boot: BootClock.nowBootNanoseconds()))
    }

    public func connect(_ container: Container, pid: UInt32 = 100, to address: [UInt8], port: UInt16) {
        kernel.enqueue(RecordBuilder.network(pid: pid, family: UInt16(AF_INET), address: address, port: port,
                                             boot: BootClock.nowBootNanoseconds(), cgroup: container.cgroupID))
    }

    /// The process exits (the kernel's exit record).
    public func exit(_ container: Container, pid: UInt32 = 100) {
        kernel.enqueue(RecordBuilder.exit(pid: pid, cgroup: container.cgroupID))
    }

    /// Polls the agent until every record is handled and every container it asked about is named.
    public func settle(_ agent: NodeAgent, timeout: Double = 10) throws {
        try agent.settle(timeout: timeout)
        if kernel.pendingRecords > 0 { try agent.settle(timeout: timeout) }
    }
}

extension NodeAgent {
    /// Polls until the records ready are handled and every container asked about is named (the
    /// namer answers on a thread of its own), so a test can look at what the agent made of them.
    public func settle(timeout: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            try poll(timeoutMilliseconds: 0)
            if directory.unresolved == 0 && pipeline.pendingEvents.events == 0 {
                try pipeline.drain()
                return
            }
            usleep(1000)
        } while Date() < deadline
        throw TestSupportError(description: "the agent did not settle in \(timeout)s: \(directory.unresolved) containers being named")
    }
}

extension AgentConfiguration {
    /// A test node's configuration: one cgroup root, one runtime state root, and the profile
    /// store and seccomp root under the test's own directory; no namespace excluded.
    public static func testNode(kubepods: String, stateRoot: String, work: String) -> AgentConfiguration {
        var configuration = AgentConfiguration()
        configuration.cgroupRoots = [kubepods]
        configuration.runtimeStateRoots = [stateRoot]
        configuration.profiles = work + "/profiles"
        configuration.seccompRoot = work + "/seccomp"
        configuration.namespaces.exclude = []
        return configuration
    }
}
