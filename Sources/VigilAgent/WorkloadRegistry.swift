import Foundation
import Logging
import VigilCore
import VigilProfiles

/// Every workload the capture meets, each with its profile's phase: events go to the one whose
/// container they come from (to learn from, or to check), the kernel's syscall bitmaps are folded
/// in once a tick, profiles move from learning to monitoring when the rule says, are saved by the
/// writer, installed as seccomp profiles when stable (the agent), and workloads none of whose
/// containers ran for `retireAfter` are retired (checkpointed, their known behaviour taken out of
/// the kernel, forgotten). The one learning and monitoring path of `vigil learn`, `vigil monitor`
/// and `vigil agent`.
public final class WorkloadRegistry: EventConsumer {
    public struct Settings: Sendable {
        public var checkpointInterval: Double = 30
        /// Seconds a workload with no container left is kept in memory (and its known behaviour
        /// in the kernel) before it is retired.
        public var retireAfter: Double = 600
        public var reporter = AnomalyReporter.Settings()
        /// Load stable profiles' exact behaviour into the kernel (off: every event is checked here).
        public var suppressInKernel = true
        /// End learning by this node's own evidence. Off when the cluster decides (`ClusterSync`):
        /// a workload then turns stable when its cluster profile does (`adopt`), or at a limit.
        public var promoteLocally = true
        /// Model contents declared per workload (`modelDigests`): a load of another is
        /// `model-unverified` (as it is when its pod declares others in `vigil.dev/model-digests`).
        public var declaredModelDigests: @Sendable (_ workload: String) -> Set<String> = { _ in [] }
        /// What ends a container's startup: the kernel's first-accept record, or (`.ready`) the
        /// directory's word that its pod says it is ready (`containerServes`); the other is ignored.
        public var servingTrigger: AgentConfiguration.Serving.Trigger = .accept
        /// Workloads whose containers are protected once the profile is stable (`protect` in the
        /// configuration; `vigil monitor --protect`). A pod's annotation can ask too.
        public var protect: @Sendable (_ workload: String) -> Bool = { _ in false }
        /// Unlearned destinations there are `metadata-service-access` (`metadataServices`).
        public var metadataServices = MetadataServices.standard
        public init() {}
    }

    /// How a workload met for the first time begins.
    public enum Opening {
        case learn(Learner)
        case monitor(Profile)
    }

    public typealias Opener = (_ workload: String) -> (opening: Opening, problems: [String])

    private let kernel: KernelFacade
    private let sink: EventSink
    private var encoder: EventEncoder
    private let resolver: SyscallResolver
    private let runtimeExes: [String]
    public let settings: Settings
    private let writer: ProfileWriter
    private let installer: SeccompInstaller?
    private let open: Opener
    private let logger = Logger(label: "vigil.workloads")
    private var line = JSONLineWriter()
    private var modelScratch = JSONLineWriter()
    /// Made at the first model read: most nodes' registries never need its thread.
    private var modelFilesIfStarted: ModelFiles?
    private var modelFiles: ModelFiles {
        if let modelFilesIfStarted { return modelFilesIfStarted }
        let made = ModelFiles()
        modelFilesIfStarted = made
        return made
    }

    /// The model hasher's counts (nil before the first model read).
    public var modelHashing: ModelFiles.Counters? { modelFilesIfStarted?.counts }

    /// Waits for the model files opened so far to be hashed (tests; the last tick at stop).
    public func waitForModelHashes() { modelFilesIfStarted?.waitUntilIdle() }

    public private(set) var workloads: [String: Workload] = [:]
    /// Which workload each watched container belongs to.
    private var members: [UInt64: String] = [:]
    /// Containers whose pod said they are ready before any event of theirs arrived (`.ready`
    /// trigger); one entry per live container at most, gone with its cgroup.
    private var readyBeforeJoining: Set<UInt64> = []
    /// Why the egress guard could not be attached (then no container is protected), if it could not.
    public var egressGuardUnavailable: String?
    /// What protect mode did since start: refused connects and killed execs, by workload and rule.
    public private(set) var enforced: [EnforcedAction: UInt64] = [:]

    public struct EnforcedAction: Hashable, Sendable {
        public var workload: String
        public var rule: AnomalyRule
        public var action: Finding.Outcome

        public init(workload: String, rule: AnomalyRule, action: Finding.Outcome) {
            self.workload = workload
            self.rule = rule
            self.action = action
        }
    }
    private var nextProfileID: UInt32 = 1
    /// Profiles the writer could not save, for the metrics.
    public private(set) var writeFailures: UInt64 = 0
    /// Model anomaly lines (said once per content, not through a workload's reporter).
    private var modelAnomalyLines: [AnomalyRule: UInt64] = [:]
    /// Anomaly lines of retired workloads, so the totals only grow.
    private var retiredAnomalies: [AnomalyRule: UInt64] = [:]
    public private(set) var retiredWorkloads: UInt64 = 0
    /// Events checked against a stable profile in userspace (those the kernel did not drop as known).
    public private(set) var checkedEvents: UInt64 = 0
    /// Departures from a profile found, by rule (before folding and rate limiting make them lines).
    public private(set) var findings: [AnomalyRule: UInt64] = [:]

    public init(kernel: KernelFacade, sink: EventSink, node: String, clock: BootClock = .system(), resolver: SyscallResolver,
                runtimeExes: [String], settings: Settings = Settings(), writer: ProfileWriter, installer: SeccompInstaller? = nil,
                open: @escaping Opener) {
        self.kernel = kernel
        self.sink = sink
        self.encoder = EventEncoder(node: node, clock: clock)
        self.resolver = resolver
        self.runtimeExes = runtimeExes
        self.settings = settings
        self.writer = writer
        self.installer = installer
        self.open = open
    }

    // MARK: events

    public func consume(_ event: RawEvent, container: Container, processes: ProcessTable) {
        guard let key = container.workload else { return }
        let workload = workloads[key] ?? make(key)
        if workload.containers[event.cgroupID] == nil {
            join(workload, event.cgroupID, container, pid: event.pid)
        } else if workload.firstPids[event.cgroupID] == 0 {
            // joined at naming (protect mode), before its first process was seen
            workload.firstPids[event.cgroupID] = event.pid
            findModelDirectories(workload, event.cgroupID, pid: event.pid)
        }
        if event.kind == .cgroup {
            // The only cgroup record a consumer gets: the container accepted its first connection.
            if event.cgroupOperation == .serving && settings.servingTrigger == .accept { serves(workload, event.cgroupID) }
            return
        }
        if event.isModelRead {
            guard event.fileResult >= 0 else { return }
            // Who reads the model is learned, and checked, at once; what it reads once hashed.
            let exe = event.modelReaderExe.isEmpty ? "(unknown)" : String(decoding: event.modelReaderExe, as: UTF8.self)
            workload.withLearner { $0.observeModelReader(exe, now: Date()) }
            workload.withMonitor { monitor in
                guard let finding = monitor.detector.checkModelReader(exe) else { return }
                findings[finding.rule, default: 0] += 1
                line.removeAll()
                monitor.reporter.report(finding, event: event, workload: container.identity, processes: processes, into: &line)
                if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
            }
            modelRead(event, workload: workload, container: container, processes: processes)
            return
        }
        let digest = event.kind == .exec ? processes[event.pid]?.execDigest : nil
        let serving = workload.servingContainers.contains(event.cgroupID)
        let handled = workload.withLearner { $0.observe(event, now: Date(), execDigest: digest, serving: serving) }
        guard handled == nil else { return }
        checkedEvents += 1
        workload.withMonitor { monitor in
            guard var finding = monitor.detector.check(event, execDigest: digest, serving: serving) else { return }
            // The kernel kills a file writer only below a model directory (by the file opened,
            // whatever name reached it: a symlink, a bind mount).
            if event.kind == .file && event.wasKilled && finding.rule == .unexpectedFileWrite { finding.rule = .modelArtifactWrite }
            finding.outcome = monitor.enforcement.outcome(of: finding, event: event,
                                                          protecting: workload.protectedContainers.contains(event.cgroupID))
            countEnforcement(workload, finding)
            findings[finding.rule, default: 0] += 1
            line.removeAll()
            monitor.reporter.report(finding, event: event, workload: container.identity, processes: processes, into: &line)
            if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
        }
    }

    /// A container of the workload is met for the first time.
    public func containerServes(_ cgroupID: UInt64, container: Container) {
        guard settings.servingTrigger == .ready, let key = container.workload else { return }
        guard let workload = workloads[key], workload.containers[cgroupID] != nil else {
            // No event of it has reached here yet (all known behaviour, dropped in the kernel):
            // it serves from when it does.
            readyBeforeJoining.insert(cgroupID)
            return
        }
        serves(workload, cgroupID)
    }

    /// The container's startup is over: what it does from now on is checked against (and learned
    /// as) serving behaviour.
    private func serves(_ workload: Workload, _ cgroupID: UInt64) {
        guard workload.servingContainers.insert(cgroupID).inserted else { return }
        workload.withLearner { $0.observeServing(now: Date()) }
        logger.debug("container serves", metadata: ["workload": "\(workload.key)", "cgroup": "\(cgroupID)"])
    }

    private func join(_ workload: Workload, _ cgroupID: UInt64, _ container: Container, pid: UInt32) {
        workload.containers[cgroupID] = container
        workload.emptySince = nil
        members[cgroupID] = workload.key
        workload.firstPids[cgroupID] = pid
        if pid != 0 { findModelDirectories(workload, cgroupID, pid: pid) }
        if readyBeforeJoining.remove(cgroupID) != nil { serves(workload, cgroupID) }
        workload.runtimes.insert(container.runtime)
        if let runtime = container.runtime { workload.withLearner { $0.observeRuntime(runtime) } }
        guard let profile = workload.withMonitor({ $0.detector.profile }) else { return }
        if settings.suppressInKernel { try? kernel.watch(cgroupID: cgroupID, profileID: workload.profileID) }
        applyProtection(workload, cgroupID)
        // A stable profile from the store, or a container started differently from those it learned
        // from (allowPrivilegeEscalation changed): its filter must let it start.
        if !workload.seccompCheckedFor.contains(container.runtime) { installSeccomp(workload, profile) }
    }

    // MARK: models

    /// Tells the kernel where the container's model directories are, so that it reports the
    /// opens of files below them; those that do not exist yet are looked for at each tick.
    private func findModelDirectories(_ workload: Workload, _ cgroupID: UInt64, pid: UInt32) {
        guard let patterns = workload.profile?.modelPaths, !patterns.isEmpty else { return }
        let (found, missing) = ModelFiles.directories(pid: pid, patterns: patterns)
        workload.modelDirectoriesMissing[cgroupID] = missing.isEmpty ? nil : pid
        guard !found.isEmpty else { return }
        do {
            try kernel.setModelDirectories(cgroupID: cgroupID, found, paths: Set(patterns.compactMap(PathPattern.fixedDirectory)))
        } catch {
            problem(workload.key, version: workload.profile?.version, "model reads cannot be watched: \(error)")
        }
    }

    /// A model file opened: hashed off the loop, judged at a tick (`takeModelHashes`).
    private func modelRead(_ event: RawEvent, workload: Workload, container: Container, processes: ProcessTable) {
        guard event.fileResult >= 0 else { return }
        modelScratch.removeAll()
        encoder.encode(event, workload: nil, processes: processes, into: &modelScratch, newline: false)
        let name = event.filePath.name
        let pids = [event.pid, event.ppid, workload.firstPids[event.cgroupID] ?? 0]
        let job = ModelFiles.Job(workload: workload.key, container: container.identity, pids: pids,
                                 path: String(decoding: name, as: UTF8.self), version: event.fileVersion,
                                 read: modelScratch.bytes, bootNanoseconds: event.bootNanoseconds,
                                 declared: container.declaredModelDigests)
        if !modelFiles.submit(job), firstTime("queue full", workload) {
            problem(workload.key, version: workload.profile?.version,
                    "model file opens are not all hashed: \(ModelFiles.maximumQueued) were waiting (counted in vigil_model_hash_dropped_total)")
        }
    }

    /// Model contents hashed since the last tick: learned while learning, checked while
    /// monitoring; the first sight of each content is a `model.load` line.
    private func takeModelHashes(now: Date) {
        for (job, outcome) in modelFilesIfStarted?.takeResults() ?? [] {
            guard let workload = workloads[job.workload] else { continue }
            guard case .hashed(let model) = outcome else {
                if case .failed(let why) = outcome, firstTime(job.path + ": " + why, workload) {
                    logger.warning("a model file was not hashed (said once; counted in vigil_model_hash_failures_total)",
                                   metadata: ["workload": "\(job.workload)", "path": "\(job.path)", "why": "\(why)"])
                }
                continue
            }
            workload.withLearner { $0.observeModel(ModelRule(path: model.path, sha256: model.sha256), now: now) }
            // nil: not monitoring; .some(nil): a content the profile knows.
            let verdict = workload.withMonitor { $0.detector.checkModel(path: model.path, sha256: model.sha256) }
            if case .some(.some(let previous)) = verdict {
                var changed = model
                changed.previous = previous
                reportModel(.modelChanged, changed, job, workload)
            }
            let declared = settings.declaredModelDigests(job.workload).union(job.declared)
            let undeclared = !declared.isEmpty && !declared.contains(model.sha256)
            if undeclared {
                var unverified = model
                unverified.declared = declared.sorted()
                reportModel(.modelUnverified, unverified, job, workload)
            }
            // Verified, and what was hashed is the version opened: its next opens by a known
            // reader stay in the kernel until a write changes it.
            if case .some(.none) = verdict, !undeclared, model.version == job.version, settings.suppressInKernel {
                try? kernel.loadKnownModel(job.version, profileID: workload.profileID)
            }
            if firstSaid("load", model.sha256, workload) {
                encoder.encodeModelLoad(model, workload: job.container, read: job.read, atBoot: job.bootNanoseconds, into: &line)
            }
        }
    }

    /// Whether a model-hashing problem is new for the workload (logged once, not per open).
    private func firstTime(_ problem: String, _ workload: Workload) -> Bool {
        guard workload.modelProblemsSaid.count < 64 else { return false }
        return workload.modelProblemsSaid.insert(problem).inserted
    }

    /// A model anomaly, said once per content (it has no repeats to fold: a content is hashed once).
    private func reportModel(_ rule: AnomalyRule, _ model: EventEncoder.ModelFile, _ job: ModelFiles.Job, _ workload: Workload) {
        guard let profile = workload.profile, firstSaid(rule.rawValue, model.sha256, workload) else { return }
        findings[rule, default: 0] += 1
        modelAnomalyLines[rule, default: 0] += 1
        modelScratch.removeAll()
        encoder.encodeModelEvidence(model, read: job.read, into: &modelScratch)
        encoder.encodeAnomaly(rule: rule, count: 1, firstSeen: job.bootNanoseconds, lastSeen: job.bootNanoseconds,
                              profile: EventEncoder.ProfileReference(profile), workload: job.container,
                              event: modelScratch.bytes, into: &line)
    }

    /// Whether this is the first time the workload says `what` of this content; bounded, so a
    /// tenant swapping contents without end cannot grow the agent (past the bound: not said again).
    private func firstSaid(_ what: String, _ digest: String, _ workload: Workload) -> Bool {
        guard workload.reportedModels.count < 4 * Learner.maximumModels else { return false }
        return workload.reportedModels.insert(what + " " + digest).inserted
    }

    public func cgroupRemoved(_ cgroupID: UInt64, lastSyscalls: CgroupSyscalls) {
        readyBeforeJoining.remove(cgroupID)
        guard let key = members.removeValue(forKey: cgroupID), let workload = workloads[key] else { return }
        try? kernel.setModelDirectories(cgroupID: cgroupID, [])
        workload.modelDirectoriesMissing[cgroupID] = nil
        workload.firstPids[cgroupID] = nil
        workload.servingContainers.remove(cgroupID)
        workload.protectedContainers.remove(cgroupID)
        observeSyscalls(workload, lastSyscalls, now: Date())
        workload.withLearner { $0.observeContainerStop() }
        workload.containers[cgroupID] = nil
        if workload.containers.isEmpty { workload.emptySince = Date() }
    }

    /// The workload, made now if the registry has not met it yet (`vigil learn|monitor` open theirs
    /// at start, so a command that does nothing still has a profile).
    @discardableResult
    public func workload(_ key: String) -> Workload {
        workloads[key] ?? make(key)
    }

    private func make(_ key: String) -> Workload {
        let (opening, problems) = open(key)
        let id = nextProfileID
        nextProfileID = nextProfileID == UInt32.max ? 1 : nextProfileID + 1
        let workload: Workload
        switch opening {
        case .learn(let learner):
            workload = Workload(key: key, profileID: id, phase: .learning(learner))
        case .monitor(let profile):
            workload = Workload(key: key, profileID: id, phase: .retired)
            startMonitoring(workload, profile)
        }
        workloads[key] = workload
        for text in problems { problem(key, version: nil, text) }
        logger.info("new workload", metadata: ["workload": "\(key)", "mode": "\(workload.state == .stable ? "monitoring" : "learning")"])
        return workload
    }

    private func startMonitoring(_ workload: Workload, _ profile: Profile) {
        let detector = Detector(profile: profile, resolver: resolver, runtimeExes: runtimeExes, metadataServices: settings.metadataServices)
        if settings.suppressInKernel {
            do {
                try kernel.loadKnownBehaviour(detector.knownBehaviour, profileID: workload.profileID)
            } catch {
                logger.warning("known behaviour stays in userspace", metadata: ["workload": "\(profile.workload)", "error": "\(error)"])
            }
        }
        workload.startMonitoring(Workload.Monitor(detector: detector, reporter: AnomalyReporter(
            profile: profile, node: encoder.node, clock: encoder.clock, settings: settings.reporter),
            enforcement: Enforcement(profile: profile, runtimeExes: runtimeExes)))
    }

    // MARK: protect mode

    public func containerNamed(_ cgroupID: UInt64, container: Container) {
        // Protection starts at naming (before the entrypoint, under CRI: containerd creates the
        // container, then starts it), not at the first event.
        guard let key = container.workload, let workload = workloads[key] ?? (settings.protect(key) || container.protectRequested ? make(key) : nil),
              workload.containers[cgroupID] == nil, wantsProtection(workload, container) else { return }
        join(workload, cgroupID, container, pid: container.rootPid)
    }

    /// A container is protected while its workload's profile is stable and the configuration,
    /// the command or its pod asks for it.
    private func wantsProtection(_ workload: Workload, _ container: Container) -> Bool {
        guard case .monitoring = workload.phase else { return false }
        return container.protectRequested || settings.protect(workload.key)
    }

    /// Turns protect mode on or off for one container, as `wantsProtection` says now. A failure
    /// leaves the container monitored (never half-protected) and is logged.
    private func applyProtection(_ workload: Workload, _ cgroupID: UInt64) {
        guard let container = workload.containers[cgroupID] else { return }
        let wanted = wantsProtection(workload, container)
        if wanted, let reason = egressGuardUnavailable {
            logger.error("protect mode unavailable: the container stays monitored", metadata: ["workload": "\(workload.key)", "error": "\(reason)"])
            return
        }
        guard wanted != workload.protectedContainers.contains(cgroupID) else { return }
        guard wanted, let enforcement = workload.withMonitor({ $0.enforcement }) else {
            try? kernel.protect(cgroupID: cgroupID, .none)
            workload.protectedContainers.remove(cgroupID)
            return
        }
        do {
            if !workload.enforcementLoaded {
                try kernel.loadEnforcement(enforcement, profileID: workload.profileID)
                workload.enforcementLoaded = true
                if !enforcement.killsExecs {
                    logger.warning("protect mode reports execs outside the profile but does not kill them: some exec rules are patterns the kernel cannot match", metadata: [
                        "workload": "\(workload.key)", "rules": "\(enforcement.unenforceableExecs.prefix(5).map { "\($0.exe) (parent \($0.parent))" }.joined(separator: ", "))",
                    ])
                }
            }
            try kernel.watch(cgroupID: cgroupID, profileID: workload.profileID)
            try kernel.protect(cgroupID: cgroupID, Protection(enforcement))
            workload.protectedContainers.insert(cgroupID)
            logger.info("container protected", metadata: ["workload": "\(workload.key)", "container": "\(container.identity.containerID ?? "")"])
        } catch {
            try? kernel.protect(cgroupID: cgroupID, .none)
            logger.error("protect mode unavailable: the container stays monitored", metadata: ["workload": "\(workload.key)", "error": "\(error)"])
        }
    }

    /// The workload leaves monitoring (relearned, retired): none of its containers stays protected.
    private func endProtection(_ workload: Workload) {
        for id in workload.protectedContainers { try? kernel.protect(cgroupID: id, .none) }
        workload.protectedContainers = []
        if workload.enforcementLoaded { kernel.unloadEnforcement(profileID: workload.profileID) }
        workload.enforcementLoaded = false
    }

    /// Counts what protect mode did, by workload, rule and action (the agent's metrics).
    private func countEnforcement(_ workload: Workload, _ finding: Finding) {
        guard let outcome = finding.outcome, outcome.acted else { return }
        enforced[EnforcedAction(workload: workload.key, rule: finding.rule, action: outcome), default: 0] += 1
    }

    // MARK: once a tick

    /// Folds the kernel's syscall bitmaps into each workload, applies the end-of-learning rule,
    /// checkpoints, reports unexpected syscalls and folded repeats, and retires workloads that
    /// have had no container for `retireAfter`.
    public func tick(now: Date = Date()) {
        takeWriterOutcomes(now: now)
        let bitmaps = kernel.syscallBitmaps()
        line.removeAll()
        takeModelHashes(now: now)
        for workload in workloads.values {
            for (cgroupID, pid) in workload.modelDirectoriesMissing { findModelDirectories(workload, cgroupID, pid: pid) }
            var seen = CgroupSyscalls(workload: SyscallBitmap())
            for id in workload.containers.keys { if let syscalls = bitmaps[id] { seen.formUnion(syscalls) } }
            observeSyscalls(workload, seen, now: now)
            var stable: Profile?
            if let cap = workload.withLearner({ $0.capReached }) ?? nil {
                // A workload that grows past a limit is broken or hostile: its learning ends
                // here (cluster or not), and whatever it does beyond the profile is an anomaly.
                stable = workload.withLearner { learner -> Profile in
                    learner.stabilize(now: now)
                    return learner.profile
                }
                problem(workload.key, version: workload.profile?.version,
                        "learning ended early: the profile reached its limit of \(cap); it is monitored from now on")
            } else if settings.promoteLocally {
                stable = workload.withLearner({ $0.evaluate(now: now) == .stable ? $0.profile : nil }) ?? nil
            }
            if let profile = stable {
                promote(workload, profile)
            } else if case .learning(let learner) = workload.phase,
                      now.timeIntervalSince(workload.lastCheckpoint) >= settings.checkpointInterval {
                writer.checkpoint(learner)
                workload.lastCheckpoint = now
            }
            if let unsaved = workload.unsaved, now.timeIntervalSince(workload.lastCheckpoint) >= settings.checkpointInterval {
                workload.unsaved = nil
                workload.lastCheckpoint = now
                writer.promote(unsaved)
            }
            workload.withMonitor { $0.reporter.flush(now: BootClock.nowBootNanoseconds(), into: &line) }
        }
        if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
        for workload in workloads.values {
            if let since = workload.emptySince, now.timeIntervalSince(since) >= settings.retireAfter { retire(workload) }
        }
        sink.flush()
    }

    /// Syscalls a workload's containers made: learned, or checked.
    private func observeSyscalls(_ workload: Workload, _ seen: CgroupSyscalls, now: Date) {
        if workload.withLearner({ $0.observeSyscalls(seen, now: now) }) != nil { return }
        workload.withMonitor { monitor in
            let unexpected = monitor.detector.unexpectedSyscalls(seen.workload, namedBy: resolver)
            guard !unexpected.isEmpty else { return }
            findings[.unexpectedSyscall, default: 0] += UInt64(unexpected.count)
            var out = JSONLineWriter()
            monitor.reporter.reportSyscalls(unexpected, workload: workload.someContainer, now: BootClock.nowBootNanoseconds(), into: &out)
            if !out.bytes.isEmpty { out.bytes.withUnsafeBytes { sink.write($0) } }
        }
    }

    /// A workload's profile became stable: saved (by the writer), monitored from now on (its known
    /// behaviour loaded into the kernel), its seccomp profile installed (the agent).
    private func promote(_ workload: Workload, _ profile: Profile) {
        writer.promote(profile)
        if let beyond = workload.withLearner({ $0.runtimeCallsBeyondAllowance }), !beyond.isEmpty {
            logger.warning("the container runtime made calls after installing the seccomp filter that no measured allowance lists; they are allowed in this profile", metadata: [
                "workload": "\(profile.workload)", "calls": "\(beyond.joined(separator: ","))",
            ])
        }
        startMonitoring(workload, profile)
        if settings.suppressInKernel {
            for id in workload.containers.keys { try? kernel.watch(cgroupID: id, profileID: workload.profileID) }
        }
        for id in workload.containers.keys { applyProtection(workload, id) }
        logger.info("profile stable", metadata: [
            "workload": "\(profile.workload)", "version": "\(profile.version)", "containers": "\(profile.learning.containers)",
            "stopped": "\(profile.learning.stoppedContainers ?? 0)",
        ])
        if installer == nil { state(EventEncoder.ProfileState(profile)) }
        installSeccomp(workload, profile)
    }

    private func installSeccomp(_ workload: Workload, _ profile: Profile) {
        guard let installer else { return }
        let runtimes = workload.runtimes.union((profile.learning.runtimes ?? []).map(Optional.some))
        workload.seccompCheckedFor.formUnion(runtimes)
        let outcome = installer.install(profile, runtimes: runtimes)
        state(EventEncoder.ProfileState(profile, seccomp: outcome))
        switch outcome {
        case .installed(let relative):
            logger.info("seccomp profile installed", metadata: ["workload": "\(profile.workload)", "localhostProfile": "\(relative)"])
        case .refused(let reason):
            logger.error("seccomp profile refused", metadata: ["workload": "\(profile.workload)", "version": "\(profile.version)", "reason": "\(reason)"])
        }
    }

    /// Retires a workload none of whose containers is left: a learning profile is checkpointed, a
    /// stable one's known behaviour leaves the kernel's maps; the workload leaves memory. A
    /// container of it met later brings it back from the store.
    private func retire(_ workload: Workload) {
        if case .learning(let learner) = workload.phase { writer.checkpoint(learner) }
        if let unsaved = workload.unsaved { writer.promote(unsaved) }
        if case .monitoring(let monitor) = workload.phase {
            if settings.suppressInKernel { kernel.unloadKnownBehaviour(profileID: workload.profileID) }
            retiredAnomalies.merge(monitor.reporter.emitted, uniquingKeysWith: +)
        }
        endProtection(workload)
        workload.retire()
        workloads[workload.key] = nil
        retiredWorkloads += 1
        logger.info("workload retired", metadata: ["workload": "\(workload.key)"])
    }

    /// What the writer did since the last tick: failures stay with their workload (a log line, a
    /// `profile.state` line; a stable profile is saved again later), never stop the agent.
    private func takeWriterOutcomes(now: Date) {
        for outcome in writer.takeOutcomes() {
            guard case let .failed(key, error) = outcome else { continue }
            writeFailures += 1
            problem(key, version: nil, "could not be saved: \(error)")
            if let workload = workloads[key], case .monitoring(let monitor) = workload.phase {
                workload.unsaved = monitor.detector.profile
                workload.lastCheckpoint = now
            }
        }
    }

    /// Writes every learning profile (and any stable one not yet saved) and waits for the writer
    /// (at exit): a restart continues from here.
    public func checkpointAll() {
        for workload in workloads.values {
            if case .learning(let learner) = workload.phase { writer.checkpoint(learner) }
            if let unsaved = workload.unsaved { writer.promote(unsaved) }
        }
        waitForWrites()
    }

    /// Waits until every profile handed to the writer is on disk.
    public func waitForWrites() {
        writer.drain()
        takeWriterOutcomes(now: Date())
        sink.flush()
    }

    /// A cluster profile that turned stable (`ClusterSync`): a workload of it still learning here
    /// is monitored from now on against the cluster's profile, saved to the node's store as its
    /// cache. A profile of an older version than the one learning here is not taken.
    public func adopt(_ cluster: Profile) {
        guard cluster.state == .stable, let workload = workloads[cluster.workload],
              let version = workload.withLearner({ $0.profile.version }), cluster.version >= version else { return }
        promote(workload, cluster)
    }

    /// A newer version of the workload's profile started elsewhere (a person's relearn): this
    /// node learns it from now on — a monitored workload's known behaviour leaves the kernel and
    /// its containers' events come to userspace again. Its installed seccomp filter stays (its
    /// pods name it) until the new version is stable.
    public func relearn(from newer: Profile) {
        guard let workload = workloads[newer.workload], let current = workload.profile, newer.version > current.version else { return }
        endProtection(workload) // a relearn turns protect mode back to monitoring, then learning
        if case .monitoring = workload.phase, settings.suppressInKernel {
            kernel.unloadKnownBehaviour(profileID: workload.profileID)
            for id in workload.containers.keys { try? kernel.watch(cgroupID: id) }
        }
        workload.startLearning(Learner(profile: newer, resolver: resolver, runtimeExes: runtimeExes))
        for runtime in workload.runtimes.compactMap({ $0 }) { workload.withLearner { $0.observeRuntime(runtime) } }
        logger.info("relearning: a newer version was started in the cluster", metadata: [
            "workload": "\(newer.workload)", "version": "\(newer.version)",
        ])
    }

    /// A cluster profile still learning: what other nodes learned joins this node's learner.
    public func absorb(_ cluster: Profile) {
        workloads[cluster.workload]?.withLearner { $0.absorb(cluster) }
    }

    /// The learners of every workload still learning (values: copies, cheap until they change).
    public var learners: [Learner] {
        workloads.values.compactMap { workload in
            if case .learning(let learner) = workload.phase { return learner }
            return nil
        }
    }

    /// Ends a learning workload's learning now (`--until-stable`, `vigil profile promote`).
    public func stabilize(_ key: String, now: Date = Date()) {
        guard let workload = workloads[key], let profile = workload.withLearner({ learner -> Profile in
            learner.stabilize(now: now)
            return learner.profile
        }) else { return }
        promote(workload, profile)
    }

    // MARK: what the registry says

    private func state(_ line: EventEncoder.ProfileState) {
        var out = JSONLineWriter()
        encoder.encodeProfileState(line, atBoot: BootClock.nowBootNanoseconds(), into: &out)
        out.bytes.withUnsafeBytes { sink.write($0) }
    }

    /// Something is wrong with one workload's profile: a log line and a `profile.state` line
    /// with `problem`; the others go on.
    private func problem(_ workload: String, version: Int?, _ text: String) {
        logger.error("profile problem", metadata: ["workload": "\(workload)", "problem": "\(text)"])
        state(EventEncoder.ProfileState(workload: workload, version: version, problem: text))
    }

    deinit {
        modelFilesIfStarted?.stop()
    }

    /// Anomaly lines emitted so far, by rule, over every workload (retired ones included).
    public var anomaliesEmitted: [AnomalyRule: UInt64] {
        var total = retiredAnomalies.merging(modelAnomalyLines, uniquingKeysWith: +)
        for workload in workloads.values {
            if case .monitoring(let monitor) = workload.phase { total.merge(monitor.reporter.emitted, uniquingKeysWith: +) }
        }
        return total
    }

    public var workloadStates: [String: LearningState] {
        workloads.compactMapValues(\.state)
    }

    /// Containers in the registry, over every workload.
    public var containerCount: Int { members.count }

    /// Behaviours remembered for folding, over every workload.
    public var foldCount: Int {
        workloads.values.reduce(0) { total, workload in
            if case .monitoring(let monitor) = workload.phase { return total + monitor.reporter.foldCount }
            return total
        }
    }
}
