import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilSeccomp
import VigilTestSupport
import XCTest

/// Learning and monitoring against the real kernel: syscall bitmaps, in-kernel suppression of
/// known behaviour, and learn → monitor end to end with real processes in real cgroups.
final class LearnMonitorTests: XCTestCase {
    let resolver = SeccompSyscallResolver()
    private var getppid: Int { resolver.number(of: "getppid", abi: .x86_64)! }
    private var chdir: Int { resolver.number(of: "chdir", abi: .x86_64)! }
    private var ptrace: Int { resolver.number(of: "ptrace", abi: .x86_64)! }

    /// `vigil learn`'s or `vigil monitor`'s registry and pipeline for one workload run as a command.
    func commandRegistry(_ kernel: KernelProbes, hierarchy: CgroupHierarchy, store: DirectoryProfileStore, workload: String,
                         sink: MemorySink, opening: WorkloadRegistry.Opening) throws -> (WorkloadRegistry, EventPipeline) {
        var settings = WorkloadRegistry.Settings()
        settings.retireAfter = .infinity
        let registry = WorkloadRegistry(kernel: kernel, sink: sink, node: "n", resolver: resolver,
                                        runtimeExes: [KernelTestSupport.realpath("/proc/self/exe")],
                                        settings: settings, writer: ProfileWriter(store: store)) { _ in (opening, []) }
        registry.workload(workload)
        let pipeline = try EventPipeline(kernel: kernel, directory: CommandDirectory(hierarchy: hierarchy, workload: workload),
                                         consumer: registry, sink: sink, node: "n")
        return (registry, pipeline)
    }

    private func run(_ hierarchy: CgroupHierarchy, _ cgroup: String, _ actions: [String]) throws {
        let process = try LaunchedProcess.start([KernelTestSupport.workload] + actions, cgroupDirectory: hierarchy.directory(of: cgroup))
        XCTAssertEqual(process.status(block: true), .exited(0), "workload \(actions)")
    }

    /// The kernel fills a bitmap of the syscalls each watched cgroup makes, per ABI; nothing
    /// goes through the ring buffer for it.
    func testSyscallBitmapHoldsWhatTheWorkloadCalled() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        let probes = try KernelProbes()
        let cgroup = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
        try probes.watch(cgroupID: cgroup.id)
        let other = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
        try probes.watch(cgroupID: other.id)
        let udp = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_DGRAM.rawValue))

        try run(hierarchy, cgroup.path, ["udp4:\(udp.port)", "syscall:\(getppid)"])
        try run(hierarchy, other.path, ["chdir:/"])
        let bitmaps = probes.syscallBitmaps()
        let recorded = try XCTUnwrap(bitmaps[cgroup.id])
        let mine = recorded.workload
        func names(_ bitmap: SyscallBitmap) -> Set<String> {
            Set((0..<SyscallBitmap.slots).filter { bitmap.contains($0, abi: .x86_64) }.compactMap { resolver.name(of: $0, abi: .x86_64) })
        }
        XCTAssertTrue(names(mine).isSuperset(of: ["socket", "sendto", "close", "getppid", "exit_group"]), "\(names(mine).sorted())")
        XCTAssertFalse(names(mine).contains("ptrace"))
        // The launcher moved itself into the cgroup: a process that moves itself is the workload,
        // never the runtime (else a workload could hide behind that), so nothing is runtime's here.
        XCTAssertTrue(names(mine).contains("execve"))
        XCTAssertTrue(recorded.runtimeBeforeFilter.isEmpty)
        XCTAssertTrue(recorded.runtimeAfterFilter.isEmpty)
        XCTAssertTrue((0..<SyscallBitmap.slots).allSatisfy { !mine.contains($0, abi: .i386) && !mine.contains($0, abi: .x32) })
        let theirs = try XCTUnwrap(bitmaps[other.id]).workload
        XCTAssertFalse(theirs.contains(getppid, abi: .x86_64), "each cgroup has its own bitmap")
        XCTAssertTrue(theirs.contains(chdir, abi: .x86_64))
    }

    /// The kernel remembers the syscalls that need nothing more for their cgroup (the bit is set,
    /// or the cgroup is not watched): a cgroup watched after it ran unwatched, or watched anew with
    /// an empty bitmap, has its syscalls recorded again.
    func testSyscallsAreRecordedAgainWhenACgroupIsWatchedAnew() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        let probes = try KernelProbes()
        let cgroup = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
        func callGetppid() throws { try run(hierarchy, cgroup.path, ["syscall:\(getppid)"]) }
        func recorded() -> Bool { probes.syscallBitmaps()[cgroup.id]?.workload.contains(getppid, abi: .x86_64) ?? false }

        try callGetppid()
        try probes.watch(cgroupID: cgroup.id)
        try callGetppid()
        XCTAssertTrue(recorded(), "watched after it ran unwatched")
        probes.unwatch(cgroupID: cgroup.id)
        try probes.watch(cgroupID: cgroup.id)
        XCTAssertFalse(recorded(), "a new state")
        try callGetppid()
        XCTAssertTrue(recorded(), "watched anew")
    }

    /// Behaviour loaded as known never reaches the ring buffer; new behaviour does.
    func testKnownBehaviourCausesNoRingBufferTraffic() throws {
        let traced = try TracedCgroup(self)
        let (hierarchy, probes, sink, pipeline) = (traced.hierarchy, traced.probes, traced.sink, traced.pipeline)
        let cgroup = (path: traced.path, id: traced.id)
        let directory = try KernelTestSupport.temporaryDirectory()
        let known = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let unknown = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let testBinary = KernelTestSupport.realpath("/proc/self/exe")
        let knownDestination = [UInt8]([127, 0, 0, 1]).withUnsafeBytes {
            Destination(family: 2, ipProtocol: 6, port: known.port, address: $0)
        }
        try probes.loadKnownBehaviour(KnownBehaviour(
            execHashes: [BehaviourHash.exec(exe: KernelTestSupport.workload, parent: testBinary)],
            files: [KnownBehaviour.FileKey(kind: BehaviourHash.fileKind(.create), hash: BehaviourHash.text("\(directory)/known"))],
            destinations: [knownDestination]), profileID: 7)
        try probes.watch(cgroupID: cgroup.id, profileID: 7)

        try run(hierarchy, cgroup.path, ["writes:50:\(directory)/known", "chdir:\(directory)", "writes:10:known",
                                         "connects:5:\(known.port)", "write:\(directory)/new", "tcp4:\(unknown.port)"])
        try pipeline.drain()

        XCTAssertEqual(pipeline.received[.exec, default: 0], 0, "the known exec was dropped in the kernel")
        XCTAssertEqual(pipeline.received[.file, default: 0], 1, "only the new write reached userspace")
        XCTAssertEqual(pipeline.received[.network, default: 0], 1, "only the new destination reached userspace")
        let suppressed = probes.suppressedCounts()
        XCTAssertEqual(suppressed[.exec], 1)
        XCTAssertEqual(suppressed[.file], 60, "absolute and relative names of the known path")
        XCTAssertEqual(suppressed[.network], 5)
        let events = try sink.objects
        XCTAssertEqual(events.compactMap { $0[path: "file.path"] as? String }, ["\(directory)/new"])
        XCTAssertEqual(events.compactMap { $0[path: "network.port"] as? Int }, [Int(unknown.port)])
    }

    /// A write open is decided at its exit from two memories (bpf/file_open.bpf.c): recorded_syscalls
    /// says whether the cgroup is watched, known_writes which writes its profile had. Neither may
    /// outlive what it remembers: a known write stops being dropped once the profile no longer has
    /// it, and only in the cgroup whose profile had it; a cgroup watched after its opens were
    /// remembered as unwatched has its next write reported.
    func testRememberedWritesAndCgroupsAreForgottenWhenTheyChange() throws {
        let traced = try TracedCgroup(self)
        let directory = try KernelTestSupport.temporaryDirectory()
        let path = "\(directory)/known"
        try traced.probes.loadKnownBehaviour(KnownBehaviour(
            execHashes: [], files: [KnownBehaviour.FileKey(kind: BehaviourHash.fileKind(.create), hash: BehaviourHash.text(path))],
            destinations: []), profileID: 7)
        try traced.probes.watch(cgroupID: traced.id, profileID: 7)
        func fileRecords(after actions: [String], in cgroup: String) throws -> Int {
            try traced.pipeline.drain()
            let before = traced.pipeline.received[.file, default: 0]
            try traced.run(actions, in: cgroup)
            try traced.pipeline.drain()
            return Int(traced.pipeline.received[.file, default: 0] - before)
        }

        let other = try KernelTestSupport.makeCgroup(self, hierarchy: traced.hierarchy)
        try traced.probes.watch(cgroupID: other.id, profileID: 8) // before: no generation between the two
        XCTAssertEqual(try fileRecords(after: ["writes:20:\(path)"], in: traced.path), 0, "known, remembered after the first")
        XCTAssertEqual(traced.probes.suppressedCounts()[.file], 20)
        XCTAssertEqual(try fileRecords(after: ["openat2-write:\(path)"], in: traced.path), 0, "openat2 too")
        XCTAssertEqual(try fileRecords(after: ["openat2-write:\(path)"], in: other.path), 1)
        XCTAssertEqual(try fileRecords(after: ["writes:2:\(path)"], in: other.path), 2, "another profile lacks it")
        traced.probes.unloadKnownBehaviour(profileID: 7)
        XCTAssertEqual(try fileRecords(after: ["writes:3:\(path)"], in: traced.path), 3, "the profile no longer has it")

        let unwatched = try KernelTestSupport.makeCgroup(self, hierarchy: traced.hierarchy)
        XCTAssertEqual(try fileRecords(after: ["writes:5:\(directory)/u"], in: unwatched.path), 0)
        try traced.probes.watch(cgroupID: unwatched.id)
        XCTAssertEqual(try fileRecords(after: ["writes:2:\(directory)/u"], in: unwatched.path), 2, "watched now")
        traced.probes.unwatch(cgroupID: unwatched.id)
        XCTAssertEqual(try fileRecords(after: ["writes:2:\(directory)/u"], in: unwatched.path), 0, "unwatched again")
    }

    /// The kernel hashes a path a word at a time, a relative one joined to its directory: it must
    /// agree with userspace for every length of directory and of name modulo a word (8 bytes),
    /// up to paths of ~500 bytes, or known writes would reach userspace.
    func testTheKernelHashesPathsOfEveryLengthAsUserspaceDoes() throws {
        let traced = try TracedCgroup(self)
        let directory = try KernelTestSupport.temporaryDirectory()
        var directories = (1...8).map { "\(directory)/" + String(repeating: "d", count: $0) }
        directories.append("\(directory)/" + String(repeating: "l", count: 250) + "/" + String(repeating: "m", count: 200))
        var known: [String] = []
        var actions: [String] = []
        for place in directories {
            try FileManager.default.createDirectory(atPath: place, withIntermediateDirectories: true)
            let names = (1...9).map { String(repeating: "f", count: $0) } + [String(repeating: "g", count: min(255, 499 - place.utf8.count))]
            actions.append("chdir:\(place)")
            for name in names where place.utf8.count + 1 + name.utf8.count <= 500 {
                known.append("\(place)/\(name)")
                actions += ["write:\(place)/\(name)", "write:\(name)"]
            }
        }
        actions.append("write:\(directory)/unknown")
        try traced.probes.loadKnownBehaviour(KnownBehaviour(
            execHashes: [], files: Set(known.map { KnownBehaviour.FileKey(kind: BehaviourHash.fileKind(.create), hash: BehaviourHash.text($0)) }),
            destinations: []), profileID: 7)
        try traced.probes.watch(cgroupID: traced.id, profileID: 7)

        try run(traced.hierarchy, traced.path, actions)
        try traced.pipeline.drain()

        XCTAssertEqual(traced.probes.suppressedCounts()[.file], UInt64(2 * known.count), "each known path, absolute and relative")
        let reported = try traced.sink.objects.compactMap { $0[path: "file.path"] as? String }
        XCTAssertEqual(reported, ["\(directory)/unknown"])
    }

    /// vigil learn then vigil monitor, as the CLI wires them: a normal run after learning is
    /// silent; each attack kind yields exactly its anomaly.
    func testLearnThenMonitorReportsExactlyTheAttacks() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        // Letters only: a directory name with digits would itself be generalised (`vigil-test-*`).
        let directory = "/tmp/vigil-learn-" + String((0..<10).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let models = directory + "/models"
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        let service = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let elsewhere = try LoopbackSocket(family: AF_INET6, type: Int32(SOCK_STREAM.rawValue))
        let normal = ["chdir:\(directory)", "write:cache.json", "writes:3:\(directory)/tmp\(UInt32.random(in: 1000...9999))abc.json",
                      "connects:3:\(service.port)", "syscall:\(getppid)"]
        let store = DirectoryProfileStore(root: directory + "/profiles")

        // Learn from two runs (two containers), then stabilise: `vigil learn`'s registry and pipeline.
        let runtimeExes = [KernelTestSupport.realpath("/proc/self/exe")]
        func registry(_ kernel: KernelProbes, sink: MemorySink, opening: WorkloadRegistry.Opening) throws -> (WorkloadRegistry, EventPipeline) {
            try commandRegistry(kernel, hierarchy: hierarchy, store: store, workload: "demo", sink: sink, opening: opening)
        }
        do {
            let probes = try KernelProbes()
            let learner = Learner.start(workload: "demo", modelPaths: ["\(models)/**"], minDuration: 0, quietPeriod: 0,
                                        now: Date(), resolver: resolver, runtimeExes: runtimeExes)
            let (learning, pipeline) = try registry(probes, sink: MemorySink(), opening: .learn(learner))
            for _ in 0..<2 {
                let cgroup = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
                try probes.watch(cgroupID: cgroup.id)
                try run(hierarchy, cgroup.path, normal)
            }
            try pipeline.drain()
            learning.tick()
            learning.waitForWrites()
            XCTAssertEqual(learning.workloadStates["demo"], .stable)
        }
        let profile = try XCTUnwrap(try store.latest(workload: "demo"))
        XCTAssertEqual(profile.state, .stable)
        XCTAssertEqual(profile.learning.containers, 2)
        XCTAssertEqual(profile.execs, [ExecRule(exe: KernelTestSupport.workload, parent: "(runtime)")])
        XCTAssertEqual(profile.fileWrites, [FileWriteRule(path: "\(directory)/cache.json", ops: ["create"]),
                                            FileWriteRule(path: "\(directory)/tmp*.json", ops: ["create"])])
        XCTAssertEqual(profile.egress, [EgressRule(address: "127.0.0.1", port: Int(service.port), protocol: "tcp")])
        XCTAssertTrue(profile.syscalls.x86_64.contains("getppid"))

        // Monitor (`vigil monitor`'s registry): each run in a new container of the workload.
        let probes = try KernelProbes()
        let sink = MemorySink()
        let (monitoring, pipeline) = try registry(probes, sink: sink, opening: .monitor(profile))
        let profileID = monitoring.workload("demo").profileID
        func monitored(_ actions: [String]) throws -> [String] {
            let before = monitoring.findings
            let cgroup = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
            try probes.watch(cgroupID: cgroup.id, profileID: profileID)
            try run(hierarchy, cgroup.path, actions)
            try pipeline.drain()
            monitoring.tick()
            return monitoring.findings.compactMap { rule, count in count > before[rule, default: 0] ? rule.rawValue : nil }.sorted()
        }
        XCTAssertEqual(try monitored(normal), [], "normal behaviour, new temporary names: no anomaly")
        XCTAssertEqual(try monitored(normal + ["exec:/bin/true"]).filter { $0 != "unexpected-syscall" }, ["unexpected-exec"])
        XCTAssertEqual(try monitored(["write:\(models)/weights.bin"]), ["model-artifact-write"])
        XCTAssertEqual(try monitored(["write:\(directory)/dropper.sh"]), ["unexpected-file-write"])
        XCTAssertEqual(try monitored(["tcp6:\(elsewhere.port)"]), ["unexpected-egress"])
        XCTAssertEqual(try monitored(["syscall:\(ptrace)"]), ["unexpected-syscall"])
        XCTAssertGreaterThan(probes.suppressedCounts()[.file, default: 0], 0, "known writes were dropped in the kernel")

        let anomalies = try sink.objects.filter { $0["kind"] as? String == "anomaly" }
        let ptrace = anomalies.first { ($0[path: "event.syscalls"] as? [[String: Any]])?.contains { $0["name"] as? String == "ptrace" } ?? false }
        XCTAssertNotNil(ptrace, "the ptrace anomaly names the syscall")
        let weights = anomalies.first { $0[path: "anomaly.rule"] as? String == "model-artifact-write" }
        XCTAssertEqual(weights?[path: "anomaly.severity"] as? String, "critical")
        XCTAssertEqual(weights?[path: "event.file.path"] as? String, "\(models)/weights.bin")
        XCTAssertEqual(weights?[path: "anomaly.profile.id"] as? String, "demo")
    }
}

extension LearnMonitorTests {
    /// A server's startup and its serving are learned apart: the kernel says when a container
    /// first accepts a connection; what only containers starting up did (fetch the weights from
    /// the registry, write them into the model directory) is an anomaly once a container serves,
    /// and allowed again in the next container's startup.
    func testWhatOnlyStartupDidIsAnAnomalyOnceServing() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        let directory = "/tmp/vigil-phases-" + String((0..<10).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let models = directory + "/models"
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        let modelRegistry = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let backend = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let startup = ["chdir:\(directory)", "tcp4:\(modelRegistry.port)", "write:models/weights.bin"]
        let serving = ["write:cache.json", "connects:2:\(backend.port)"]
        let store = DirectoryProfileStore(root: directory + "/profiles")
        let runtimeExes = [KernelTestSupport.realpath("/proc/self/exe")]

        func registry(_ kernel: KernelProbes, sink: MemorySink, opening: WorkloadRegistry.Opening) throws -> (WorkloadRegistry, EventPipeline) {
            try commandRegistry(kernel, hierarchy: hierarchy, store: store, workload: "server", sink: sink, opening: opening)
        }
        /// One container: `before`, then (when `serves`) it accepts a connection from the test, then `after`.
        func container(_ probes: KernelProbes, profileID: UInt32, _ before: [String], serves: Bool = true, _ after: [String] = []) throws {
            let cgroup = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
            try probes.watch(cgroupID: cgroup.id, profileID: profileID)
            let port = try LoopbackSocket.freePort()
            let actions = before + (serves ? ["serve:\(port)"] : []) + after
            let process = try LaunchedProcess.start([KernelTestSupport.workload] + actions, cgroupDirectory: hierarchy.directory(of: cgroup.path))
            if serves { XCTAssertTrue(LoopbackSocket.connect(port: port), "the server listened") }
            XCTAssertEqual(process.status(block: true), .exited(0), "workload \(actions)")
        }

        do {
            let probes = try KernelProbes()
            let learner = Learner.start(workload: "server", modelPaths: ["\(models)/**"], minDuration: 0, quietPeriod: 0,
                                        now: Date(), resolver: resolver, runtimeExes: runtimeExes)
            let (learning, pipeline) = try registry(probes, sink: MemorySink(), opening: .learn(learner))
            for _ in 0..<2 { try container(probes, profileID: 0, startup, serving) }
            try pipeline.drain()
            learning.tick()
            learning.waitForWrites()
            XCTAssertEqual(learning.workloadStates["server"], .stable)
        }
        let profile = try XCTUnwrap(try store.latest(workload: "server"))
        let registryRule = EgressRule(address: "127.0.0.1", port: Int(modelRegistry.port), protocol: "tcp")
        // The entrypoint's own exec is startup too: the same binary started again in a serving
        // container (`kubectl exec`) is not what a server does.
        XCTAssertEqual(profile.startupOnly, StartupRules(execs: [ExecRule(exe: KernelTestSupport.workload, parent: "(runtime)")],
                                                         fileWrites: [FileWriteRule(path: "\(models)/weights.bin", ops: ["create"])],
                                                         egress: [registryRule]))
        XCTAssertTrue(profile.egress.contains(registryRule), "startup-only rules are the profile's own")

        let probes = try KernelProbes()
        let sink = MemorySink()
        let (monitoring, pipeline) = try registry(probes, sink: sink, opening: .monitor(profile))
        let profileID = monitoring.workload("server").profileID
        func monitored(_ before: [String], serves: Bool = true, _ after: [String] = []) throws -> [String] {
            let found = monitoring.findings
            try container(probes, profileID: profileID, before, serves: serves, after)
            try pipeline.drain()
            monitoring.tick()
            return monitoring.findings.compactMap { rule, count in count > found[rule, default: 0] ? rule.rawValue : nil }.sorted()
        }
        XCTAssertEqual(try monitored(startup, serving), [], "a replica starting up and serving as learned")
        XCTAssertEqual(try monitored(startup + startup, serves: false), [], "a container still starting up may fetch again")
        XCTAssertEqual(try monitored(startup, serving + ["tcp4:\(modelRegistry.port)"]), ["startup-only-behaviour"])
        XCTAssertEqual(try monitored(startup, serving + ["write:models/weights.bin"]), ["startup-only-behaviour"],
                       "a write into the model directory the profile allows only at startup")
        let anomalies = try sink.objects.filter { $0[path: "anomaly.rule"] as? String == "startup-only-behaviour" }
        XCTAssertEqual(anomalies.first?[path: "anomaly.startup_rule.egress.port"] as? Int, Int(modelRegistry.port))
        XCTAssertEqual(anomalies.first?[path: "anomaly.severity"] as? String, "high")
        XCTAssertEqual(anomalies.last?[path: "anomaly.startup_rule.fileWrite.path"] as? String, "\(models)/weights.bin")
        XCTAssertEqual(anomalies.last?[path: "event.file.path"] as? String, "\(models)/weights.bin")
    }
}

final class RuntimeIdentificationTests: XCTestCase {
    /// A process that moves itself into a watched cgroup (as a shell can with `echo $$ >
    /// cgroup.procs`) is the workload: its file writes before any exec are reported.
    func testAProcessMovingItselfIsNotTakenForTheRuntime() throws {
        let traced = try TracedCgroup(self)
        let directory = try KernelTestSupport.temporaryDirectory()
        let shell = try LaunchedProcess.start(
            ["/bin/sh", "-c", "echo $$ > \(traced.hierarchy.directory(of: traced.path))/cgroup.procs && echo x > \(directory)/hidden"],
            cgroupDirectory: nil)
        XCTAssertEqual(shell.status(block: true), .exited(0))
        try traced.pipeline.drain()
        let writes = try traced.sink.objects.compactMap { $0[path: "file.path"] as? String }
        XCTAssertEqual(writes, ["\(directory)/hidden"])
    }

    /// runc's init re-executes runc's own binary (from a read-only bind mount of it: the same
    /// inode, linked) before it sets the container up, and under load runc create moves it into
    /// the cgroup before that exec, not after. A runtime here: a shell outside the watched cgroups
    /// that moves its child in, after which the child re-executes the shell's binary, writes (its
    /// setup), forks (runc's stages), writes again and execs busybox. Only busybox is the
    /// workload; taking the re-exec for the entrypoint put runc's setup in profiles.
    func testARuntimeReexecutingItsOwnBinaryAfterTheMoveIsStillTheRuntime() throws {
        let traced = try TracedCgroup(self)
        let directory = try KernelTestSupport.temporaryDirectory()
        let runtime = try startRuntime(into: traced, directory: directory, entrypoint: "echo w > \(directory)/workload; echo > \(directory)/done")
        XCTAssertEqual(runtime.status(block: true), .exited(0))
        try traced.pipeline.drain()
        let events = try traced.sink.objects
        XCTAssertEqual(events.compactMap { $0[path: "file.path"] as? String }, ["\(directory)/workload", "\(directory)/done"],
                       "the runtime's writes are not the workload's")
        XCTAssertEqual(events.filter { $0["kind"] as? String == "process.exec" }.compactMap { $0[path: "process.exe"] as? String },
                       [Self.busybox], "the runtime's re-exec is not reported")
        XCTAssertEqual(traced.entrypoints, [Self.busybox])
    }

    /// A pod sandbox's cgroup is quiet (watched only for its removal): its init still leaves the
    /// runtime's table at its entrypoint's exec, not when it ends — while any process is in that
    /// table, every watched syscall pays a lookup more.
    func testAQuietCgroupsEntrypointLeavesTheRuntimeTableAtItsExec() throws {
        let traced = try TracedCgroup(self)
        traced.probes.quiet(cgroupID: traced.id)
        let directory = try KernelTestSupport.temporaryDirectory()
        XCTAssertEqual(mkfifo("\(directory)/stop", 0o600), 0)
        let runtime = try startRuntime(into: traced, directory: directory, entrypoint: "echo > \(directory)/done; read x < \(directory)/stop")
        XCTAssertEqual(runtime.status(block: true), .exited(0), "the entrypoint runs")
        // The stand-in's stage parent ends a moment after it forked, as runc's do.
        let deadline = Date().addingTimeInterval(5)
        while traced.probes.runtimeProcessCount() != 0 && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(traced.probes.runtimeProcessCount(), 0, "the sandbox's entrypoint is still held as the runtime's")
        try "stop\n".write(toFile: "\(directory)/stop", atomically: false, encoding: .utf8)
        try traced.pipeline.drain()
        XCTAssertEqual(try traced.sink.objects.filter { ["file.write", "process.exec"].contains($0["kind"] as? String) }.count, 0,
                       "a quiet cgroup reports nothing")
    }

    static let busybox = URL(fileURLWithPath: "/bin/busybox").resolvingSymlinksInPath().path

    /// Starts the stand-in runtime of the tests above, with busybox running `entrypoint` as the
    /// entrypoint. The mover ends when something writes to the fifo `done` (the entrypoint should);
    /// busybox may still be running then.
    private func startRuntime(into traced: TracedCgroup, directory: String, entrypoint: String) throws -> LaunchedProcess {
        try RuncContainer.available() // busybox-static (and runc): fails under CI=true, skips elsewhere
        let procs = "\(traced.hierarchy.directory(of: traced.path))/cgroup.procs"
        let stages = "echo s > \(directory)/setup; "
            + "(echo t > \(directory)/stage; exec \(Self.busybox) sh -c '\(entrypoint)') & exit 0"
        let runtime = """
            mkfifo \(directory)/go \(directory)/done
            ( read x < \(directory)/go; exec /bin/sh -c "\(stages)" ) &
            echo $! > \(procs)
            echo go > \(directory)/go
            read x < \(directory)/done
            """
        return try LaunchedProcess.start(["/bin/sh", "-c", runtime], cgroupDirectory: nil)
    }
}
