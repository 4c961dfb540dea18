import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilRuntime
import VigilTestSupport
import XCTest

final class CaptureTests: XCTestCase {
    /// A workload in its own cgroup execs, writes by a relative path, renames, unlinks (once
    /// failing), connects over TCP on IPv4 and IPv6 and sends UDP datagrams on both; every event
    /// is reported with exact fields, in order. A process outside the cgroup is not reported.
    /// The benchmark's floor attaches an empty program to every tracepoint Vigil's programs use
    /// (so `vigil-bench overhead` cannot drift from the hooks it is the floor of), and they run.
    func testTheFloorAttachesAnEmptyProgramToEveryHook() throws {
        try KernelTestSupport.requireRoot()
        let floor = try TracepointFloor()
        XCTAssertTrue(floor.hooks.contains("tp/syscalls/sys_exit_openat"), "\(floor.hooks)")
        XCTAssertTrue(floor.hooks.contains("tp/syscalls/sys_enter_connect"), "\(floor.hooks)")
        XCTAssertTrue(floor.hooks.contains("tp/sched/sched_process_exec"))
        XCTAssertFalse(floor.hooks.contains { $0.hasPrefix("cgroup/") }, "the egress guard is no tracepoint")
        XCTAssertEqual(floor.attached, floor.hooks.count - KernelProbes.skippedOnThisArchitecture(floor.hooks).count)
        // vigil.bpf.o decides opens at their exit alone; the builds before it keep an enter
        // program on each open, and so does their floor.
        if KernelProbes.ObjectVariant.forThisKernel == .btfCasts {
            XCTAssertFalse(floor.hooks.contains("tp/syscalls/sys_enter_openat"), "\(floor.hooks)")
        }
        XCTAssertTrue(try TracepointFloor(variant: .taskBTF).hooks.contains("tp/syscalls/sys_enter_openat"))
    }

    func testReportsEachSyscallOfAWatchedWorkloadExactly() throws {
        try KernelTestSupport.requireRoot()
        // 6.18 here: the newest build (typed reads through bpf_rdonly_cast, Linux 6.2+) is the one loaded.
        XCTAssertEqual(KernelProbes.ObjectVariant.forThisKernel, .btfCasts)
        try reportsEachSyscallExactly(variant: nil)
    }

    /// The builds for older kernels, loaded here on purpose: the same events, field for field.
    /// Linux 5.12-6.1: the task through its BTF type, open files through helpers.
    func testTheTaskBTFBuildReportsEachSyscallExactly() throws {
        try reportsEachSyscallExactly(variant: .taskBTF)
    }

    /// Linux 5.8-5.11: helpers, a hash table for syscalls in flight.
    func testTheCompatibleBuildReportsEachSyscallExactly() throws {
        try reportsEachSyscallExactly(variant: .compat)
    }

    private func reportsEachSyscallExactly(variant: KernelProbes.ObjectVariant?) throws {
        let traced = try TracedCgroup(self, node: "test-node", options: .init(variant: variant))
        XCTAssertEqual(traced.probes.variant, variant ?? .btfCasts)
        let (hierarchy, sink, pipeline, cgroup) = (traced.hierarchy, traced.sink, traced.pipeline, (path: traced.path, id: traced.id))

        let tcp4 = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let tcp6 = try LoopbackSocket(family: AF_INET6, type: Int32(SOCK_STREAM.rawValue))
        let udp4 = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_DGRAM.rawValue))
        let udp6 = try LoopbackSocket(family: AF_INET6, type: Int32(SOCK_DGRAM.rawValue))
        let directory = try KernelTestSupport.temporaryDirectory()
        let outsideDirectory = try KernelTestSupport.temporaryDirectory()
        let workload = KernelTestSupport.workload
        let trueBinary = KernelTestSupport.realpath("/bin/true")
        // A model directory beside the files the workload writes (one filesystem: each read's
        // file is checked, its ancestors walked): reads of the weights are reported (twice: the
        // second open finds no remembered verdict, a model file's never is), the notes' are not
        // (twice too: the second finds the first's "not below a model directory").
        try FileManager.default.createDirectory(atPath: directory + "/models", withIntermediateDirectories: false)
        try Data("weights".utf8).write(to: URL(fileURLWithPath: directory + "/models/weights.bin"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: directory + "/notes.txt"))
        let models = ModelFiles.directories(pid: UInt32(getpid()), patterns: [directory + "/models/**"])
        XCTAssertEqual(models.missing, [])
        try traced.probes.setModelDirectories(cgroupID: traced.id, models.found)

        let arguments = [
            workload, "chdir:\(directory)", "write:f", "rename:f:g", "unlink:g", "unlink?:missing",
            "tcp4:\(tcp4.port)", "tcp6:\(tcp6.port)", "udp4:\(udp4.port)", "udp6:\(udp6.port)",
            "reads:2:notes.txt", "reads:2:models/weights.bin", "exec:/bin/true",
        ]
        let outsider = try LaunchedProcess.start([workload, "chdir:\(outsideDirectory)", "write:f", "tcp4:\(tcp4.port)"],
                                                 cgroupDirectory: nil)
        let watched = try LaunchedProcess.start(arguments, cgroupDirectory: hierarchy.directory(of: cgroup.path))
        XCTAssertEqual(watched.status(block: true), .exited(0))
        XCTAssertEqual(outsider.status(block: true), .exited(0))
        try pipeline.drain()

        let events = try sink.objects
        XCTAssertFalse(events.contains { $0[path: "process.pid"] as? Int == Int(outsider.pid) },
                       "a process outside the watched cgroup was reported")
        let mine = events.filter { $0[path: "process.pid"] as? Int == Int(watched.pid) }
        let summary = mine.map { event -> String in
            let kind = event["kind"] as! String
            switch kind {
            case "file.write": return "\(kind) \(event[path: "file.op"]!) \(event[path: "file.path"]!)"
            case "network.connect": return "\(kind) \(event[path: "network.protocol"]!) \(event[path: "network.address"]!)"
            case "file.read": return "\(kind) \(event[path: "file.op"]!) \(event[path: "file.path"]!)"
            default: return "\(kind) \(event[path: "process.exe"]!)"
            }
        }
        XCTAssertEqual(summary, [
            "process.exec \(workload)",
            "file.write create \(directory)/f",
            "file.write rename \(directory)/f",
            "file.write unlink \(directory)/g",
            "file.write unlink \(directory)/missing",
            "network.connect tcp 127.0.0.1",
            "network.connect tcp ::1",
            "network.connect udp 127.0.0.1",
            "network.connect udp ::1",
            "file.read read_model \(directory)/models/weights.bin",
            "file.read read_model \(directory)/models/weights.bin",
            "process.exec \(trueBinary)",
        ])
        guard mine.count == 12 else { return }

        for event in mine {
            XCTAssertEqual(event["node"] as? String, "test-node")
            XCTAssertEqual(event[path: "workload.cgroup"] as? String, cgroup.path)
            XCTAssertEqual(event[path: "process.ppid"] as? Int, Int(getpid()))
            XCTAssertEqual(event[path: "process.uid"] as? Int, 0)
        }
        XCTAssertEqual(mine[0][path: "process.args"] as? [String], arguments)
        XCTAssertEqual(mine[0][path: "process.comm"] as? String, "vigil-workload")
        let testBinary = KernelTestSupport.realpath("/proc/self/exe")
        XCTAssertEqual(mine[0][path: "process.parent_exe"] as? String, testBinary, "the parent's binary, from the kernel")
        let firstExecID = try XCTUnwrap(mine[0][path: "process.exec_id"] as? String)
        XCTAssertTrue(firstExecID.hasPrefix("\(watched.pid)-"))
        for event in mine[1..<11] {
            XCTAssertEqual(event[path: "process.exec_id"] as? String, firstExecID, "later events name their exec")
            XCTAssertEqual(event[path: "process.exe"] as? String, workload)
        }

        XCTAssertEqual(mine[1][path: "file.flags"] as? Int, Int(O_WRONLY | O_CREAT | O_TRUNC))
        XCTAssertEqual(mine[1][path: "file.outcome"] as? String, "success")
        XCTAssertEqual(mine[2][path: "file.target"] as? String, "\(directory)/g")
        XCTAssertEqual(mine[2][path: "file.outcome"] as? String, "success")
        XCTAssertEqual(mine[3][path: "file.outcome"] as? String, "success")
        XCTAssertEqual(mine[4][path: "file.outcome"] as? String, "failure")
        XCTAssertEqual(mine[4][path: "file.errno"] as? String, "ENOENT")

        let expectedNetwork: [(String, String, UInt16, String)] = [
            ("ipv4", "127.0.0.1", tcp4.port, "connect"), ("ipv6", "::1", tcp6.port, "connect"),
            ("ipv4", "127.0.0.1", udp4.port, "sendto"), ("ipv6", "::1", udp6.port, "sendto"),
        ]
        for (event, expected) in zip(mine[5..<9], expectedNetwork) {
            XCTAssertEqual(event[path: "network.family"] as? String, expected.0)
            XCTAssertEqual(event[path: "network.address"] as? String, expected.1)
            XCTAssertEqual(event[path: "network.port"] as? Int, Int(expected.2))
            XCTAssertEqual(event[path: "network.op"] as? String, expected.3)
            XCTAssertEqual(event[path: "network.loopback"] as? Bool, true)
            XCTAssertEqual(event[path: "network.outcome"] as? String, "success")
        }

        let weights = try FileManager.default.attributesOfItem(atPath: directory + "/models/weights.bin")
        for read in mine[9..<11] {
            XCTAssertEqual(read[path: "file.reader_exe"] as? String, workload)
            XCTAssertEqual(read[path: "file.inode"] as? Int, (weights[.systemFileNumber] as? NSNumber)?.intValue)
            XCTAssertEqual(read[path: "file.outcome"] as? String, "success")
        }

        XCTAssertEqual(mine[11][path: "process.args"] as? [String], ["/bin/true"])
        XCTAssertEqual(mine[11][path: "process.parent_exe"] as? String, testBinary, "same pid: its parent is still the test")
        XCTAssertNotEqual(mine[11][path: "process.exec_id"] as? String, firstExecID)
    }

    /// A refused connection and a connect to an unbound port report the kernel's errno.
    func testReportsFailedConnectWithErrno() throws {
        let traced = try TracedCgroup(self)
        // Bound but not listening: the port is ours, and a TCP connect to it is refused.
        let closed = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_DGRAM.rawValue))
        try traced.run(["tcp4?:\(closed.port)"])
        try traced.pipeline.drain()
        let connects = try traced.sink.objects.filter { $0["kind"] as? String == "network.connect" }
        XCTAssertEqual(connects.count, 1)
        XCTAssertEqual(connects.first?[path: "network.outcome"] as? String, "failure")
        XCTAssertEqual(connects.first?[path: "network.errno"] as? String, "ECONNREFUSED")
        XCTAssertEqual(connects.first?[path: "network.port"] as? Int, Int(closed.port))
    }

    /// Cgroups created below a watched one are watched from their creation, in the kernel,
    /// before a process can enter them; their processes are reported with their own path.
    func testWatchesCgroupsCreatedBelowAWatchedOne() throws {
        let traced = try TracedCgroup(self)
        let (hierarchy, probes, sink, pipeline) = (traced.hierarchy, traced.probes, traced.sink, traced.pipeline)
        let parent = (path: traced.path, id: traced.id)

        let childPath = parent.path + "/pod/container"
        _ = try hierarchy.create(parent.path + "/pod")
        let childID = try hierarchy.create(childPath)
        XCTAssertTrue(probes.isWatched(cgroupID: childID), "the kernel did not add the new child cgroup")

        let sibling = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
        XCTAssertFalse(probes.isWatched(cgroupID: sibling.id), "an unrelated new cgroup was watched")

        let directory = try KernelTestSupport.temporaryDirectory()
        try traced.run(["write:\(directory)/child"], in: childPath)
        try pipeline.drain()
        let writes = try sink.objects.filter { $0["kind"] as? String == "file.write" }
        XCTAssertEqual(writes.map { $0[path: "file.path"] as? String }, ["\(directory)/child"])
        XCTAssertEqual(writes.first?[path: "workload.cgroup"] as? String, childPath)
    }

    /// The reader is woken once per batch of records, not for each: a lone record waits for the
    /// poll's timeout (and is then read), a burst past the batch wakes the reader at once. (Execs
    /// and cgroup records, the container's first accept among them, wake it at once.)
    func testTheReaderIsWokenByTheBatchAndTheTimeoutReadsTheRest() throws {
        let traced = try TracedCgroup(self, options: .init(ringBufferBytes: 1 << 20, wakeupBatchBytes: 64 << 10))
        let (sink, pipeline) = (traced.sink, traced.pipeline)
        let cgroupDirectory = traced.hierarchy.directory(of: traced.path)
        // The cgroup's first accept, its "serving" record, out of the way.
        let first = try LoopbackSocket.freePort()
        let firstServer = try LaunchedProcess.start([KernelTestSupport.workload, "serve:\(first)"], cgroupDirectory: cgroupDirectory)
        XCTAssertTrue(LoopbackSocket.connect(port: first))
        XCTAssertEqual(firstServer.status(block: true), .exited(0))
        let port = try LoopbackSocket.freePort()
        let directory = try KernelTestSupport.temporaryDirectory()
        let server = try LaunchedProcess.start([KernelTestSupport.workload, "serve:\(port)", "write:\(directory)/served"],
                                               cgroupDirectory: cgroupDirectory)
        usleep(200_000)
        try pipeline.drain() // the execs, the first server's exit
        // One small record while the reader sleeps: the server's write, once a client came.
        Thread.detachNewThread {
            usleep(200_000)
            LoopbackSocket.connect(port: port)
        }
        var start = Date()
        try pipeline.poll(timeoutMilliseconds: 1500)
        XCTAssertGreaterThan(Date().timeIntervalSince(start), 1.3, "a lone record woke the reader")
        XCTAssertEqual(server.status(block: true), .exited(0))
        try pipeline.poll(timeoutMilliseconds: 0)
        XCTAssertTrue(try sink.objects.contains { $0[path: "file.path"] as? String == "\(directory)/served" }, "the timeout's read took it")

        // A burst of ~2 MiB of records (file writes, after a client came): woken at the first
        // 64 KiB, long before the timeout.
        let burstPort = try LoopbackSocket.freePort()
        let writer = try LaunchedProcess.start([KernelTestSupport.workload, "serve:\(burstPort)", "writes:1000:\(directory)/f"],
                                               cgroupDirectory: cgroupDirectory)
        usleep(200_000)
        try pipeline.drain() // its exec
        Thread.detachNewThread {
            usleep(200_000)
            LoopbackSocket.connect(port: burstPort)
        }
        start = Date()
        let handled = try pipeline.poll(timeoutMilliseconds: 10_000)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "a full batch did not wake the reader")
        XCTAssertGreaterThan(handled, 0)
        XCTAssertEqual(writer.status(block: true), .exited(0))
    }

    /// With a ring buffer far too small for a burst, every event is either received or counted
    /// as dropped, per kind — and the drop is reported as an agent.drops line.
    func testFloodOverflowingTheRingBufferIsFullyAccountedFor() throws {
        let traced = try TracedCgroup(self, options: .init(ringBufferBytes: 16 << 10))
        let (probes, sink, pipeline) = (traced.probes, traced.sink, traced.pipeline)
        let directory = try KernelTestSupport.temporaryDirectory()

        let writes = 2000
        // Nothing reads the ring buffer until the workload has finished.
        try traced.run(["writes:\(writes):\(directory)/f"])
        XCTAssertGreaterThan(probes.ringBufferFill(), 0.5, "the ring buffer is full before it is read")
        try pipeline.drain()
        XCTAssertEqual(probes.ringBufferFill(), 0, "and empty after")
        let drops = pipeline.reportDrops()

        let generated: [EventKind: UInt64] = [.exec: 1, .file: UInt64(writes), .exit: 1]
        for (kind, count) in generated {
            XCTAssertEqual(pipeline.received[kind, default: 0] + drops[.ringBufferFull, kind], count,
                           "\(kind): received + dropped must equal what the workload did")
        }
        XCTAssertGreaterThan(drops[.ringBufferFull, .file], 0, "the ring buffer was expected to overflow")
        XCTAssertEqual(drops[.pendingFull, .file], 0)

        let reported = try sink.objects.filter { $0["kind"] as? String == "agent.drops" }
        let fileDrops = reported.first { $0[path: "drops.event_kind"] as? String == "file.write" }
        XCTAssertEqual(fileDrops?[path: "drops.stage"] as? String, "ring_buffer_full")
        XCTAssertEqual(fileDrops?[path: "drops.total"] as? Int, Int(drops[.ringBufferFull, .file]))
        let printedWrites = try sink.objects.filter { $0["kind"] as? String == "file.write" }.count
        XCTAssertEqual(UInt64(printedWrites), pipeline.received[.file])
    }
}
