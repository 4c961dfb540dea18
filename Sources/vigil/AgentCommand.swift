import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import VigilAgent
import VigilBPF
import VigilCore
import VigilKubernetes
import VigilOperations
import VigilProfiles
import VigilRuntime

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "The node daemon: learn every pod's workload until stable, then monitor it; install its seccomp profile.",
        discussion: """
        Watches the pods' cgroups (cgroupRoots) and everything created below them, names each container from its
        cgroup path and its runtime's state (CRI annotations), folds replicas of a workload into one profile, and
        prints anomalies and agent.* events as JSON lines. SIGTERM or SIGINT checkpoints the profiles and exits.
        See deploy/ for the configuration and the DaemonSet.
        """
    )

    @Option(name: .long, help: "The agent's configuration (YAML).") var config: String
    @Option(name: .long, help: "Load vigil.bpf.o (vigil-task-btf.bpf.o before Linux 6.2, vigil-compat.bpf.o before 5.12) from this directory instead of the objects built into vigil.") var bpfDir: String?
    @Option(name: .long, help: "Kernel ring-buffer size in bytes (a power of two, at least 4096; ~200 bytes a file record). Default 2 MiB: the agent mostly receives what its profiles do not drop in the kernel.") var ringBufferSize: UInt32 = 2 << 20

    func run() async throws {
        let logger = Logger(label: "vigil.agent")
        do {
            let configuration = try AgentConfiguration.load(file: config)
            let node = configuration.node ?? ProcessInfo.processInfo.environment["NODE_NAME"] ?? ProcessInfo.processInfo.hostName
            // Where the agent writes is checked now, not at the first stable profile an hour later.
            try DirectoryProfileStore(root: configuration.profiles).checkWritable()
            do {
                try SafeDirectory.open(configuration.seccompRoot, create: true).subdirectory("vigil", create: true).checkWritable()
            } catch let error as FileError {
                throw CommandFailure("seccompRoot: \(error)")
            }
            let hierarchy = try CgroupHierarchy.system()
            let probes = try KernelProbes(options: .init(ringBufferBytes: ringBufferSize, objectDirectory: bpfDir))
            for refusal in probes.refusedBuilds {
                logger.warning("this kernel refused a faster build of the programs; a slower one is loaded", metadata: [
                    "refused": "\(refusal.variant.rawValue)", "program": "\(refusal.program ?? "-")", "reason": "\(refusal.reason)",
                    "loaded": "\(probes.variant.rawValue)", "kernel": "\(KernelProbes.kernelRelease)",
                ])
            }
            var sinks: [EventSink] = [FileDescriptorSink()]
            if let file = configuration.eventsFile {
                sinks.append(try RotatingFileSink(path: file, maxBytes: configuration.eventsFileMaxBytes))
            }
            let sink = TeeSink(sinks)
            let metrics = AgentMetrics()
            let operations = OperationsServer(registry: metrics.registry)
            // AgentConfiguration.load has checked metricsAddress.
            guard case let (host, port)? = configuration.metricsHostPort else {
                throw CommandFailure("metricsAddress is not host:port")
            }
            let boundPort: Int
            do {
                boundPort = try operations.start(host: host, port: port)
            } catch {
                throw CommandFailure("metricsAddress \(configuration.metricsAddress): cannot listen: \(error) "
                    + "(another process has the port? choose another metricsAddress)")
            }
            let sysctl = (try? String(contentsOfFile: "/proc/sys/kernel/bpf_stats_enabled", encoding: .utf8))?.hasPrefix("1") ?? false
            if !probes.enableRunTimeStats() && !sysctl {
                logger.notice("no per-program run-time metrics: enabling BPF stats needs CAP_SYS_ADMIN; `sysctl kernel.bpf_stats_enabled=1` on the node turns them on for every program")
            }
            let agent = try NodeAgent(configuration: configuration, kernel: probes, hierarchy: hierarchy, sink: sink, node: node,
                                      podMetadata: try podMetadataSource(configuration.kubernetes),
                                      clusterProfiles: try clusterProfileStore(configuration))
            let roots = try agent.start()
            logger.info("agent started", metadata: [
                "node": "\(node)", "operations": "\(host):\(boundPort)", "programs": "\(probes.variant.rawValue)", "kernel": "\(KernelProbes.kernelRelease)",
                "watching": "\(roots.isEmpty ? "nothing yet: none of \(configuration.cgroupRoots) exists; checked every second" : roots.joined(separator: ","))",
                "profiles": "\(configuration.profiles)", "seccomp": "\(configuration.seccompRoot)/vigil",
                "kubernetes": "\(configuration.kubernetes.enabled ? "pods' labels and owners from the API server" : "off")",
                "cluster": "\(configuration.cluster.enabled ? "profiles shared through WorkloadProfile objects" : "off (profiles are this node's)")",
            ])
            if !probes.absentSyscallHooks.isEmpty {
                logger.info("syscalls this architecture does not have are not hooked (their *at forms are)",
                            metadata: ["tracepoints": "\(probes.absentSyscallHooks.joined(separator: ","))"])
            }
            let loop = AgentLoop(agent: agent, operations: operations, metrics: metrics, sink: sink, logger: logger)
            let group = ServiceGroup(configuration: .init(
                services: [OperationsService(server: operations), loop],
                gracefulShutdownSignals: [.sigterm, .sigint, .sighup], logger: logger))
            try await group.run()
            logger.info("agent stopped; learning profiles checkpointed")
        } catch {
            FileHandle.standardError.write(Data("vigil: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// The API server client when `kubernetes.enabled`; its CA and token are checked now.
    private func podMetadataSource(_ kubernetes: AgentConfiguration.Kubernetes) throws -> PodMetadataSource? {
        guard kubernetes.enabled else { return nil }
        return CachedPodMetadataSource(try KubernetesPodClient(endpoint: try apiEndpoint(kubernetes)))
    }

    /// The WorkloadProfile client when `cluster.enabled` (which needs `kubernetes.enabled`).
    private func clusterProfileStore(_ configuration: AgentConfiguration) throws -> ClusterProfileStore? {
        guard configuration.cluster.enabled else { return nil }
        return try WorkloadProfileClient(endpoint: try apiEndpoint(configuration.kubernetes))
    }

    private func apiEndpoint(_ kubernetes: AgentConfiguration.Kubernetes) throws -> APIEndpoint {
        guard let server = kubernetes.apiServer ?? APIEndpoint.apiServerFromEnvironment() else {
            throw CommandFailure("kubernetes.enabled, but KUBERNETES_SERVICE_HOST is not set (not in a pod?): set kubernetes.apiServer")
        }
        return APIEndpoint(apiServer: server, tokenFile: kubernetes.tokenFile, caFile: kubernetes.caFile, timeout: kubernetes.timeout)
    }
}

/// The agent's event loop as a service: it runs on a thread of its own (ring_buffer__poll blocks,
/// which a cooperative thread must not), turns about ten times a second, ticks once a second, and
/// on graceful shutdown drains, checkpoints every learning profile and returns.
final class AgentLoop: Service, @unchecked Sendable {
    private let agent: NodeAgent
    private let operations: OperationsServer
    private let metrics: AgentMetrics
    private let sink: EventSink
    private let logger: Logger
    private let stopping = NSLock()
    private var stopRequested = false

    init(agent: NodeAgent, operations: OperationsServer, metrics: AgentMetrics, sink: EventSink, logger: Logger) {
        self.agent = agent
        self.operations = operations
        self.metrics = metrics
        self.sink = sink
        self.logger = logger
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let thread = Thread { [self] in
                    do {
                        try loop()
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "vigil-events"
                thread.start()
            }
        } onGracefulShutdown: { [self] in
            stopping.withLock { stopRequested = true }
        }
    }

    private func loop() throws {
        var reportedOutputFailure: String?
        var lastTick = BootClock.nowBootNanoseconds()
        updateReadiness()
        agent.cluster?.startWatching()
        while !stopping.withLock({ stopRequested }) {
            operations.heartbeat()
            try agent.poll(timeoutMilliseconds: 100)
            let now = BootClock.nowBootNanoseconds()
            guard now - lastTick >= 1_000_000_000 else { continue }
            lastTick = now
            agent.pipeline.reportDrops()
            try agent.tick()
            updateReadiness()
            metrics.update(agent: agent, outputFailure: sink.failure)
            // The agent goes on when an output fails (the other still works); it says so, once per cause.
            if let failure = sink.failure, failure.problem != reportedOutputFailure {
                logger.error("event output failing: lines are lost", metadata: ["problem": "\(failure.problem)"])
                reportedOutputFailure = failure.problem
            }
        }
        try agent.stop()
    }

    private func updateReadiness() {
        operations.setReadiness(notReadyBecause: agent.isReady ? nil
            : "waiting for a cgroup root to appear: none of \(agent.awaitedRoots.joined(separator: ", ")) exists yet")
    }
}

/// The operations endpoint (/metrics, /healthz, /readyz) as a service: listening until shutdown.
struct OperationsService: Service {
    let server: OperationsServer

    func run() async throws {
        try? await gracefulShutdown()
        server.stop()
    }
}
