import Prometheus
import VigilAgent
import VigilCore

/// The agent's Prometheus metrics, updated once a tick from counters the pipeline keeps anyway
/// (nothing is added to the per-event path).
public final class AgentMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    // Last values seen, to turn totals into counter increments. Touched only by `update`, which
    // the agent loop calls from one thread.
    private var lastEvents: [EventKind: UInt64] = [:]
    private var lastDrops = DropCounts()
    private var lastSuppressed: [EventKind: UInt64] = [:]
    private var lastAnomalies: [AnomalyRule: UInt64] = [:]
    private var lastEnforced: [WorkloadRegistry.EnforcedAction: UInt64] = [:]
    private var lastPodLookupFailures: UInt64 = 0
    private var lastCounts: [String: UInt64] = [:]
    private var lastWriteFailures: UInt64 = 0
    private var lastOutputLost: UInt64 = 0
    private var lastPrograms: [String: ProgramStats] = [:]

    public init() {}

    /// `vigil_<name>_<unit>`, with its help text.
    private func counter(_ name: String, unit: String = "total", _ labels: [(String, String)], help: String) -> Counter {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "vigil", metricName: name, unitName: unit, helpText: help),
                             labels: labels)
    }

    private func gauge(_ name: String, unit: String = "", _ labels: [(String, String)], help: String) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "vigil", metricName: name, unitName: unit, helpText: help),
                           labels: labels)
    }

    public func update(agent: NodeAgent, outputFailure: SinkFailure? = nil) {
        let (pipeline, kernel) = (agent.pipeline, agent.kernel)
        if let lost = outputFailure?.lostLines, lost > lastOutputLost {
            counter("output_lost_lines", [], help: "Event lines an output (stdout, eventsFile) could not take (the log says why)")
                .increment(by: Int64(lost - lastOutputLost))
            lastOutputLost = lost
        }
        for (kind, total) in pipeline.received {
            let delta = total - (lastEvents[kind] ?? 0)
            if delta > 0 {
                counter("events", [("kind", kind.contractName)], help: "Events received from the kernel, by kind").increment(by: Int64(delta))
            }
            lastEvents[kind] = total
        }
        let drops = pipeline.dropCounts()
        for (stage, kind, total) in drops.nonZero where total > lastDrops[stage, kind] {
            counter("drops", [("stage", stage.name), ("kind", kind.contractName)], help: "Events lost, by where and what").increment(by: Int64(total - lastDrops[stage, kind]))
        }
        lastDrops = drops
        for (kind, total) in kernel.suppressedCounts() where total > (lastSuppressed[kind] ?? 0) {
            counter("suppressed", [("kind", kind.contractName)], help: "Known behaviour dropped in the kernel, by kind").increment(by: Int64(total - (lastSuppressed[kind] ?? 0)))
            lastSuppressed[kind] = total
        }
        for (action, total) in agent.registry.enforced where total > (lastEnforced[action] ?? 0) {
            counter("protect_actions", [("workload", action.workload), ("rule", action.rule.rawValue), ("action", action.action.rawValue)],
                    help: "What protect mode did, by workload and rule: execs killed, connects and datagrams denied")
                .increment(by: Int64(total - (lastEnforced[action] ?? 0)))
            lastEnforced[action] = total
        }
        gauge("protected_containers", [], help: "Containers in protect mode on this node")
            .set(Double(agent.registry.workloads.values.reduce(0) { $0 + $1.protectedContainers.count }))
        for (rule, total) in agent.anomaliesEmitted where total > (lastAnomalies[rule] ?? 0) {
            counter("anomalies", [("rule", rule.rawValue)], help: "Anomaly lines emitted, by rule").increment(by: Int64(total - (lastAnomalies[rule] ?? 0)))
            lastAnomalies[rule] = total
        }
        if agent.podLookupFailures > lastPodLookupFailures {
            counter("pod_lookup_failures", [], help: "Pod lookups the Kubernetes API server did not answer (retried)")
                .increment(by: Int64(agent.podLookupFailures - lastPodLookupFailures))
            lastPodLookupFailures = agent.podLookupFailures
        }
        if agent.writeFailures > lastWriteFailures {
            counter("profile_write_failures", [], help: "Profiles the agent could not save (retried; the log says why)")
                .increment(by: Int64(agent.writeFailures - lastWriteFailures))
            lastWriteFailures = agent.writeFailures
        }
        if let models = agent.registry.modelHashing {
            for (name, value, help) in [
                ("model_hashes", models.hashed, "Model files read and hashed (SHA-256)"),
                ("model_hashed_bytes", models.bytesHashed, "Bytes of model files hashed"),
                ("model_hash_cached", models.cached, "Opens of a model file already hashed (same inode, size, mtime): not read again"),
                ("model_hash_failures", models.failures, "Model files that could not be hashed as opened (the log says why)"),
                ("model_hash_dropped", models.dropped, "Model file opens not hashed: too many were waiting"),
            ] where value > lastCounts[name, default: 0] {
                counter(name, [], help: help).increment(by: Int64(value - lastCounts[name, default: 0]))
                lastCounts[name] = value
            }
            gauge("model_hash_pending_bytes", [], help: "Bytes of model files waiting to be hashed or being hashed").set(Double(models.pendingBytes))
        }
        if let cluster = agent.cluster?.counts {
            for (name, value, help) in [
                ("cluster_writes", cluster.writes, "WorkloadProfile writes (a merge that added something, or ended learning)"),
                ("cluster_failures", cluster.failures, "WorkloadProfile merges and reads that failed (retried next round; the log says why)"),
                ("cluster_seccomp_installs", cluster.installs, "Seccomp filters installed from the cluster's stable profiles"),
                ("cluster_seccomp_removals", cluster.removals, "Seccomp filters removed because their WorkloadProfile was deleted"),
                ("cluster_watch_events", cluster.watchEvents, "Changes to stable WorkloadProfiles the watch reported"),
                ("cluster_watch_expiries", cluster.watchExpiries, "Watches restarted from a new list because their resourceVersion expired (410)"),
            ] where value > lastCounts[name, default: 0] {
                counter(name, [], help: help).increment(by: Int64(value - lastCounts[name, default: 0]))
                lastCounts[name] = value
            }
        }
        gauge("pending_events", [], help: "Events waiting for their container to be named").set(Double(agent.pipeline.pendingEvents.events))
        gauge("containers", [], help: "Containers of watched workloads on this node").set(Double(agent.knownContainers))
        let states = agent.workloadStates.values
        for state in [LearningState.learning, .stable] {
            gauge("profiles", [("state", state.rawValue)], help: "Workload profiles, by state")
                .set(Double(states.filter { $0 == state }.count))
        }
        gauge("ring_buffer_fill", unit: "ratio", [], help: "How full the kernel ring buffer is (0 to 1) when sampled").set(kernel.ringBufferFill())
        for program in kernel.programStats() {
            let last = lastPrograms[program.name] ?? ProgramStats(name: program.name, runs: 0, nanoseconds: 0, misses: 0)
            if program.runs > last.runs {
                counter("bpf_program_runs", [("program", program.name)], help: "Times each kernel program ran").increment(by: Int64(program.runs - last.runs))
                counter("bpf_program_run_seconds", [("program", program.name)],
                        help: "Kernel time spent in each program (BPF run-time stats)")
                    .increment(by: Double(program.nanoseconds - last.nanoseconds) / 1e9)
            }
            // Always there (zero too): a skipped run is a silent loss unless it is counted.
            counter("bpf_program_misses", [("program", program.name)],
                    help: "Runs of each kernel program the kernel skipped (another BPF program held the CPU): what they would have recorded is lost")
                .increment(by: Int64(program.misses > last.misses ? program.misses - last.misses : 0))
            lastPrograms[program.name] = program
        }
    }
}
