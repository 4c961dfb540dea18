// vigil-bench: Vigil's benchmarks (not tests: they measure, they do not assert).
//
//   vigil-bench decode [--records FILE] [--seconds S]
//       records a real workload through the kernel programs (or replays FILE from
//       `vigil trace --record`), then decodes — and decodes + encodes to JSON — those records in a
//       loop on one core: records/s.
//   vigil-bench detect [--seconds S]
//       records a workload as `decode` does, learns its profile, then checks the recorded events
//       against it in a loop on one core (the monitor's userspace work): events/s.
//   vigil-bench overhead [--runs R] [--scale F] [--model-dir DIR] [--program-stats] [--variant V]
//                        (DIR: where the monitored run's model directory is; the default shares
//                        the loops' tmpfs, the worst case; --program-stats: each monitored run's
//                        busiest programs, ns per run, from the kernel's BPF run-time statistics,
//                        and the floor's empty programs' (what the statistics add to a run);
//                        V: the build of the programs, btfCasts, taskBTF or compat, default the
//                        fastest this kernel takes)
//       the open-write-close, exec and connect loops of vigil-workload, timed alone, under empty
//       programs on the same tracepoints (the floor: the kernel's tracing path alone), beside a
//       running agent that does not watch them, watched by it (trace), captured by bpftrace (the
//       peer, when installed), and monitored against a
//       profile learned from them, with and without in-kernel suppression, suppressed without the
//       model directory (what the model-read filter itself costs), and in protect mode (the egress
//       guard and the exec check on top); median of R runs each.
//   vigil-bench model-hash [--mib N]
//       hashing an N MiB model file as the agent does (unpaced and paced), and reopening it.
//   vigil-bench soak [--minutes M] [--containers-per-second N]
//       the node agent on a simulated node (a recorded kernel, no root): N containers a second of
//       30 deployments start, work and stop, one-off jobs come and go, stable workloads are sent
//       distinct anomalies; the agent's resident memory and what it holds, once a minute.
//   vigil-bench fleet [--containers N] [--workloads W] [--seconds S] [--events-per-second E] [--load-pods P]
//       a node as a kubelet runs it: containerd's CRI plugin starts N pods of W deployments (a
//       shell writing a file and running a program every second), watched by `vigil agent` (the
//       release binary beside this one); the agent's memory (VmRSS, VmHWM) and CPU once they run,
//       then under E events/s (paced file writes from P more pods) for S seconds: events
//       received per second, the agent's CPU per 10,000 events/s, drops, memory every 10 s.
//   vigil-bench checkpoint [--rules N]
//       a profile with N distinct file-write rules (a tenant writing N files in directories of
//       random names, so none collapse):
//       the time to collapse them (learning's snapshot), encode the YAML, save it, load it back.
//
// Run as root, in release: swift build -c release && sudo .build/release/vigil-bench decode
import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilRuntime
import VigilProfiles
import VigilSeccomp
import VigilTestSupport

func option(_ name: String, default value: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return value
}

func now() -> Double {
    Double(BootClock.nowBootNanoseconds()) / 1e9
}

let workload: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return (exe as NSString).deletingLastPathComponent + "/vigil-workload"
}()

/// Null sink for the pipeline under test.
final class DiscardSink: EventSink {
    var bytes = 0
    func write(_ lines: UnsafeRawBufferPointer) { bytes += lines.count }
    func flush() {}
}

final class CollectSink: EventSink {
    var data: [UInt8] = []
    func write(_ lines: UnsafeRawBufferPointer) { data.append(contentsOf: lines) }
    func flush() {}
}

/// A TCP listener on loopback that accepts and closes, for the connect loop.
final class Acceptor {
    let fd: Int32
    let port: UInt16
    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        listen(fd, 4096)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = UInt16(bigEndian: addr.sin_port)
        Thread.detachNewThread {
            while true {
                let c = accept(fd, nil, nil)
                if c >= 0 { close(c) }
            }
        }
    }
}

/// bpftrace, the peer: the capture `vigil trace` prints for the loops (write opens with their
/// path, flags and result, execs, exits, connects with their destination and result, and the set
/// of syscalls, counted in a map), for one cgroup, printed to a pipe this process reads and
/// discards, as the trace column's events are encoded and discarded.
final class BpftracePeer: @unchecked Sendable {
    static var isInstalled: Bool {
        ["/usr/bin/bpftrace", "/usr/sbin/bpftrace", "/usr/local/bin/bpftrace"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private let process = Process()
    private let output = Pipe()
    private let lock = NSLock()
    private var text = ""
    private var bytes = 0
    private var lost = 0
    private let finished = DispatchSemaphore(value: 0)

    init(cgroupDirectory: String) throws {
        let inCgroup = "cgroup == cgroupid(\"\(cgroupDirectory)\")"
        let script = """
            BEGIN { printf("ready\\n"); }
            tracepoint:raw_syscalls:sys_enter /\(inCgroup)/ { @syscalls[args->id] = count(); }
            tracepoint:syscalls:sys_enter_openat /\(inCgroup) && (args->flags & 0x243)/ { @name[tid] = args->filename; @flags[tid] = args->flags; }
            tracepoint:syscalls:sys_exit_openat /@name[tid]/ { printf("open %d %d %s %d %d\\n", pid, tid, str(@name[tid]), @flags[tid], args->ret); delete(@name[tid]); delete(@flags[tid]); }
            tracepoint:sched:sched_process_exec /\(inCgroup)/ { printf("exec %d %d %s\\n", pid, tid, str(args->filename)); }
            tracepoint:sched:sched_process_exit /\(inCgroup)/ { printf("exit %d\\n", pid); }
            tracepoint:syscalls:sys_enter_connect /\(inCgroup)/ { @addr[tid] = args->uservaddr; }
            tracepoint:syscalls:sys_exit_connect /@addr[tid]/ { $sa = (struct sockaddr_in *)@addr[tid]; printf("connect %d %d %d %d %d\\n", pid, tid, $sa->sin_addr.s_addr, $sa->sin_port, args->ret); delete(@addr[tid]); }
            """
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bpftrace", "-e", script]
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let handle = output.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                // "Lost N events": its perf buffers overflowed (a line split across reads is missed)
                let lostNow = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("Lost ") }
                    .compactMap { Int($0.split(separator: " ")[1]) }.reduce(0, +)
                lock.withLock {
                    bytes += data.count
                    lost += lostNow
                    if text.utf8.count < 4096 { text += String(decoding: data.prefix(4096), as: UTF8.self) }
                }
            }
            finished.signal()
        }
        let deadline = Date().addingTimeInterval(60)
        while !lock.withLock({ text.contains("ready\n") }) {
            guard process.isRunning, Date() < deadline else {
                throw CgroupError("bpftrace did not start: \(lock.withLock { text })")
            }
            usleep(50_000)
        }
    }

    /// Stops bpftrace; returns the bytes it printed and the events it reported lost.
    func stop() -> (bytes: Int, lost: Int) {
        process.interrupt()
        process.waitUntilExit()
        finished.wait()
        return lock.withLock { (bytes, lost) }
    }
}

/// Runs the workload and returns the CPU time it used (user + system, its children included):
/// what the kernel programs cost it, less sensitive than wall time to what else the 2 cores do.
func runWorkload(_ arguments: [String], cgroupDirectory: String?) throws -> Double {
    let process = try LaunchedProcess.start([workload] + arguments, cgroupDirectory: cgroupDirectory)
    var status: Int32 = 0
    var usage = rusage()
    guard wait4(process.pid, &status, 0, &usage) == process.pid, status == 0 else {
        throw CgroupError("workload failed: \(arguments)")
    }
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// This process's CPU time so far (user + system, every thread).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Polls a pipeline on its own thread until stopped, as `vigil trace` does.
final class Poller: @unchecked Sendable {
    private let pipeline: EventPipeline
    private let lock = NSLock()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    init(_ pipeline: EventPipeline) {
        self.pipeline = pipeline
        Thread.detachNewThread { [self] in
            while !isStopping { _ = try? self.pipeline.poll(timeoutMilliseconds: 50) }
            _ = try? self.pipeline.drain()
            done.signal()
        }
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    func stop() {
        lock.withLock { stopping = true }
        done.wait()
    }
}

/// A pipeline that prints every event of the watched cgroups (`vigil trace`) into `sink`.
func tracePipeline(_ kernel: KernelFacade, _ hierarchy: CgroupHierarchy, sink: EventSink) throws -> EventPipeline {
    try EventPipeline(kernel: kernel, directory: CommandDirectory(hierarchy: hierarchy, workload: nil),
                      consumer: EventPrinter(node: "bench", sink: sink), sink: sink, node: "bench")
}

/// The registry `vigil learn|monitor --workload bench` uses, opening the workload as `opening`.
func benchRegistry(_ kernel: KernelFacade, store: String, suppressInKernel: Bool = true, protect: Bool = false,
                   opening: WorkloadRegistry.Opening) -> WorkloadRegistry {
    var settings = WorkloadRegistry.Settings()
    settings.protect = { _ in protect }
    settings.checkpointInterval = 3600
    settings.retireAfter = .infinity
    settings.suppressInKernel = suppressInKernel
    return WorkloadRegistry(kernel: kernel, sink: DiscardSink(), node: "bench", resolver: SeccompSyscallResolver(),
                            runtimeExes: RuntimeExecutables.onThisHost(), settings: settings,
                            writer: ProfileWriter(store: DirectoryProfileStore(root: store))) { _ in (opening, []) }
}

/// Raw records of a real workload run: from --records FILE, or recorded now through the kernel.
func recordWorkload() throws -> [UInt8] {
    var records: [UInt8] = []
    if let path = CommandLine.arguments.firstIndex(of: "--records").map({ CommandLine.arguments[$0 + 1] }) {
        records = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    } else {
        let hierarchy = try CgroupHierarchy.system()
        let probes = try KernelProbes()
        let pipeline = try tracePipeline(probes, hierarchy, sink: DiscardSink())
        let recorder = CollectSink()
        pipeline.recordSink = recorder
        let path = "/vigil-bench-\(getpid())"
        try probes.watch(cgroupID: try hierarchy.create(path))
        defer { try? hierarchy.remove(path) }
        let acceptor = Acceptor()
        let dir = NSTemporaryDirectory() + "vigil-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = try runWorkload(["chdir:\(dir)", "writes:2000:out", "rename:out:moved", "connects:1000:\(acceptor.port)",
                             "udp4:\(acceptor.port)", "execs:50:/bin/true"], cgroupDirectory: hierarchy.directory(of: path))
        try pipeline.drain()
        records = recorder.data
        try? FileManager.default.removeItem(atPath: dir)
    }
    return records
}

func decodeBenchmark() throws {
    let records = try recordWorkload()
    var count = 0
    var byKind: [EventKind: Int] = [:]
    try records.withUnsafeBytes { data in
        try RecordFile.forEachRecord(in: data) { record in
            count += 1
            byKind[try RawEvent(decoding: record).kind, default: 0] += 1
        }
    }
    print("records: \(count) (\(byKind.map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", ")))")
    let seconds = Double(option("--seconds", default: "3"))!

    // Decode only: validate the record and read the fields a filter would (kind, pid, cgroup).
    var checksum: UInt64 = 0
    var decoded = 0
    var start = now()
    while now() - start < seconds {
        try records.withUnsafeBytes { data in
            try RecordFile.forEachRecord(in: data) { record in
                let event = try RawEvent(decoding: record)
                checksum &+= event.cgroupID &+ UInt64(event.pid) &+ UInt64(event.kind.rawValue)
                decoded += 1
            }
        }
    }
    let decodeRate = Double(decoded) / (now() - start)

    // Decode + JSON line, as `vigil trace` does per event (cgroup path from a warm cache).
    var encoder = EventEncoder(node: "bench-node", clock: .system())
    var processes = ProcessTable()
    var line = JSONLineWriter()
    let workload = WorkloadIdentity(cgroup: "/kubepods/burstable/pod0/container")
    var encoded = 0
    var bytes = 0
    start = now()
    while now() - start < seconds {
        try records.withUnsafeBytes { data in
            try RecordFile.forEachRecord(in: data) { record in
                let event = try RawEvent(decoding: record)
                processes.observe(event)
                line.removeAll()
                encoder.encode(event, workload: workload, processes: processes, into: &line)
                bytes += line.bytes.count
                encoded += 1
            }
        }
    }
    let encodeRate = Double(encoded) / (now() - start)
    print(String(format: "decode:          %.2f M records/s (one core)", decodeRate / 1e6))
    print(String(format: "decode + JSON:   %.2f M records/s, %.0f MB/s of JSON (one core)", encodeRate / 1e6,
                 Double(bytes) / (now() - start) / 1e6))
    if checksum == 42 { print("") } // keeps the decode loop from being optimised away
}

func detectBenchmark() throws {
    let records = try recordWorkload()
    let resolver = SeccompSyscallResolver()
    var learner = Learner.start(workload: "bench", modelPaths: [], minDuration: 0, quietPeriod: 0, now: Date(), resolver: resolver)
    var count = 0
    try records.withUnsafeBytes { data in
        try RecordFile.forEachRecord(in: data) { learner.observe(try RawEvent(decoding: $0), now: Date()); count += 1 }
    }
    learner.stabilize(now: Date())
    var detector = Detector(profile: learner.profile, resolver: resolver)
    let seconds = Double(option("--seconds", default: "3"))!
    var checked = 0
    var findings = 0
    let start = now()
    while now() - start < seconds {
        try records.withUnsafeBytes { data in
            try RecordFile.forEachRecord(in: data) { record in
                if detector.check(try RawEvent(decoding: record)) != nil { findings += 1 }
                checked += 1
            }
        }
    }
    let rate = Double(checked) / (now() - start)
    print("records: \(count); profile: \(learner.profile.execs.count) execs, \(learner.profile.fileWrites.count) file rules, "
        + "\(learner.profile.egress.count) destinations; findings on replay: \(findings)")
    print(String(format: "detect (decode + check against the profile): %.2f M events/s (one core)", rate / 1e6))
}

func overheadBenchmark() throws {
    let runs = Int(option("--runs", default: "5"))!
    let programStats = CommandLine.arguments.contains("--program-stats")
    // --variant: another build of the programs than this kernel's fastest (btfCasts, taskBTF, compat).
    let variantName = option("--variant", default: "\(KernelProbes.ObjectVariant.forThisKernel)")
    guard let variant = KernelProbes.ObjectVariant.allCases.first(where: { "\($0)" == variantName }) else {
        throw CgroupError("--variant \(variantName): one of \(KernelProbes.ObjectVariant.allCases.map { "\($0)" })")
    }
    func loadProbes() throws -> KernelProbes { try KernelProbes(options: .init(variant: variant)) }
    print("programs: \(variant.rawValue)")
    let hierarchy = try CgroupHierarchy.system()
    let acceptor = Acceptor()
    // tmpfs, so the loop measures the syscalls and not the disk (ext4 flushes on truncate); no
    // digits in the name, so the learned profile has the exact path (kernel-suppressible).
    let dir = "/dev/shm/vigil-bench-loop"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // --scale shrinks the loops (CI runs the benchmark once, small, so that it cannot rot).
    let scale = Double(option("--scale", default: "1"))!
    let (writes, execs, connects) = (max(1, Int(200_000 * scale)), max(1, Int(2000 * scale)), max(1, Int(20000 * scale)))
    let loops: [(String, [String], Int)] = [
        ("open-write-close", ["writes:\(writes):\(dir)/f"], writes),
        // Read-only opens of a file outside any model directory: what every process pays for the
        // model-read filter (its watched-cgroup lookup at enter; in the monitored run, whose
        // cgroup has a model directory, also the walk of the file's ancestors at exit).
        ("open-read-close", ["write:\(dir)/r", "reads:\(writes):\(dir)/r"], writes),
        ("exec", ["execs:\(execs):/bin/true"], execs),
        ("connect", ["connects:\(connects):\(acceptor.port)"], connects),
    ]
    let modelDirectory = option("--model-dir", default: "/dev/shm/vigil-bench-models")
    try FileManager.default.createDirectory(atPath: modelDirectory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: modelDirectory) }
    let watchedPath = "/vigil-bench-watched-\(getpid())"
    let unwatchedPath = "/vigil-bench-unwatched-\(getpid())"
    let watchedID = try hierarchy.create(watchedPath)
    _ = try hierarchy.create(unwatchedPath)
    defer { try? hierarchy.remove(watchedPath); try? hierarchy.remove(unwatchedPath) }

    func measure(_ arguments: [String], in path: String) throws -> Double {
        _ = try runWorkload(arguments, cgroupDirectory: hierarchy.directory(of: path)) // warm-up
        return median(try (0..<runs).map { _ in try runWorkload(arguments, cgroupDirectory: hierarchy.directory(of: path)) })
    }

    var alone: [Double] = []
    for (_, arguments, _) in loops { alone.append(try measure(arguments, in: unwatchedPath)) }
    // The floor: an empty program on every tracepoint Vigil uses, nothing else.
    var floor: [Double] = []
    try {
        let empty = try TracepointFloor(variant: variant)
        if programStats { empty.enableRunTimeStats() }
        for (_, arguments, _) in loops { floor.append(try measure(arguments, in: unwatchedPath)) }
        if programStats {
            // What the statistics add to each run: the figures below include it.
            let (runs, nanoseconds) = empty.runTime()
            print(String(format: "programs, floor (empty, every hook): %llu runs %.0f ns/run", runs,
                         runs > 0 ? Double(nanoseconds) / Double(runs) : 0))
        }
        withExtendedLifetime(empty) {}
    }()

    var probes: KernelProbes? = try loadProbes()
    let sink = DiscardSink()
    var pipeline: EventPipeline? = try tracePipeline(probes!, hierarchy, sink: sink)
    var poller: Poller? = Poller(pipeline!)
    var unwatched: [Double] = []
    for (_, arguments, _) in loops { unwatched.append(try measure(arguments, in: unwatchedPath)) }
    try probes!.watch(cgroupID: watchedID)
    var watched: [Double] = []
    for (_, arguments, _) in loops { watched.append(try measure(arguments, in: watchedPath)) }
    poller!.stop()
    let drops = probes!.dropCounts().total
    poller = nil
    pipeline = nil
    probes = nil // detaches every program

    // The peer, on the same cgroup, alone.
    var bpftrace: [Double]? = nil
    var bpftraceOutput = (bytes: 0, lost: 0)
    var bpftraceMissing = "not installed"
    if BpftracePeer.isInstalled {
        do {
            let peer = try BpftracePeer(cgroupDirectory: hierarchy.directory(of: watchedPath))
            defer { bpftraceOutput = peer.stop() }
            bpftrace = try loops.map { try measure($0.1, in: watchedPath) }
        } catch {
            bpftraceMissing = "did not run"
            print("bpftrace: \(error)") // the rest of the table still stands
        }
    }

    // Monitor mode: learn the loops' profile, then check them against it, with the profile in
    // userspace only and with its exact behaviour loaded into the kernel.
    let resolver = SeccompSyscallResolver()
    let monitorPath = "/vigil-bench-monitor-\(getpid())"
    let monitorID = try hierarchy.create(monitorPath)
    defer { try? hierarchy.remove(monitorPath) }
    let profile: Profile = try {
        let probes = try loadProbes()
        let learner = Learner.start(workload: "bench", modelPaths: [], minDuration: 0, quietPeriod: 0, now: Date(),
                                    resolver: resolver, runtimeExes: RuntimeExecutables.onThisHost())
        let registry = benchRegistry(probes, store: dir + "/profiles", opening: .learn(learner))
        registry.workload("bench")
        let pipeline = try EventPipeline(kernel: probes, directory: CommandDirectory(hierarchy: hierarchy, workload: "bench"),
                                         consumer: registry, sink: DiscardSink(), node: "bench")
        try probes.watch(cgroupID: monitorID)
        let poller = Poller(pipeline)
        for (_, arguments, _) in loops { _ = try runWorkload(arguments, cgroupDirectory: hierarchy.directory(of: monitorPath)) }
        poller.stop()
        registry.tick()
        registry.stabilize("bench")
        registry.waitForWrites()
        return registry.workloads["bench"]!.profile!
    }()
    func monitored(suppress: Bool, modelFilter: Bool = true, protect: Bool = false) throws -> ([Double], UInt64) {
        let probes = try loadProbes()
        let registry = benchRegistry(probes, store: dir + "/profiles", suppressInKernel: suppress, protect: protect, opening: .monitor(profile))
        let workload = registry.workload("bench") // its known behaviour in the kernel, when suppressing
        let directory = CommandDirectory(hierarchy: hierarchy, workload: "bench")
        let pipeline = try EventPipeline(kernel: probes, directory: directory, consumer: registry, sink: DiscardSink(), node: "bench")
        try probes.watch(cgroupID: monitorID, profileID: suppress ? workload.profileID : 0)
        if protect { // as `vigil monitor --protect` does: the guard, then the cgroup protected
            try probes.guardEgress(cgroupDirectory: hierarchy.directory(of: monitorPath))
            if case .container(let container) = directory.lookup(monitorID) { registry.containerNamed(monitorID, container: container) }
            guard workload.protectedContainers.contains(monitorID) else { throw CgroupError("protect mode could not be set up") }
        }
        // The model-read filter on: a model directory (not the one the loops read from), given to
        // the kernel as the agent gives it (with its filesystem's device marker).
        if modelFilter {
            let model = ModelFiles.directories(pid: UInt32(getpid()), patterns: [modelDirectory + "/**"])
            guard model.missing.isEmpty else { throw CgroupError("no model directory at \(modelDirectory)") }
            try probes.setModelDirectories(cgroupID: monitorID, model.found)
        }
        let poller = Poller(pipeline)
        if programStats { _ = probes.enableRunTimeStats() }
        var times: [Double] = []
        for (_, arguments, _) in loops { times.append(try measure(arguments, in: monitorPath)) }
        poller.stop()
        if programStats {
            // Where the kernel time went (the statistics themselves add a little to each run).
            let busiest = probes.programStats().filter { $0.runs > 0 }.sorted { $0.nanoseconds > $1.nanoseconds }.prefix(8)
            print("programs, monitor (\(suppress ? "kernel suppression" : "userspace check")\(modelFilter ? "" : ", no model directory")):")
            for program in busiest {
                print(String(format: "  %-28@ %10llu runs %7.0f ns/run %8.1f ms", program.name as NSString, program.runs,
                             Double(program.nanoseconds) / Double(program.runs), Double(program.nanoseconds) / 1e6))
            }
        }
        return (times, registry.findings.values.reduce(0, +))
    }
    let (userspaceCheck, userspaceFindings) = try monitored(suppress: false)
    let (kernelSuppressed, kernelFindings) = try monitored(suppress: true)
    let (withoutModels, _) = try monitored(suppress: true, modelFilter: false)
    let (protected, protectedFindings) = try monitored(suppress: true, protect: true)

    // Alone again, after: the baseline is the mean of before and after, so drift is not overhead.
    for (i, (_, arguments, _)) in loops.enumerated() { alone[i] = (alone[i] + (try measure(arguments, in: unwatchedPath))) / 2 }

    print("CPU time of the workload (user + system), ms, and overhead against alone:")
    print("| loop | iterations | alone | floor (empty programs) | unwatched | watched (trace) | bpftrace, the same capture | monitor, userspace check | monitor, kernel suppression | the same, no model directory | protect |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (i, (name, _, iterations)) in loops.enumerated() {
        func cell(_ v: Double) -> String { String(format: "%.1f (%+.1f%%)", v * 1000, (v / alone[i] - 1) * 100) }
        print("| \(name) | \(iterations) | \(String(format: "%.1f", alone[i] * 1000)) | \(cell(floor[i])) | \(cell(unwatched[i])) | "
            + "\(cell(watched[i])) | \(bpftrace.map { cell($0[i]) } ?? bpftraceMissing) | \(cell(userspaceCheck[i])) | "
            + "\(cell(kernelSuppressed[i])) | \(cell(withoutModels[i])) | \(cell(protected[i])) |")
    }
    print("throughput against alone (alone / with; 1.00: no cost):")
    print("| loop | floor | unwatched | monitor | watched | bpftrace |")
    print("|---|---:|---:|---:|---:|---:|")
    for (i, (name, _, _)) in loops.enumerated() {
        func ratio(_ v: Double) -> String { String(format: "%.2f", alone[i] / v) }
        print("| \(name) | \(ratio(floor[i])) | \(ratio(unwatched[i])) | \(ratio(kernelSuppressed[i])) | \(ratio(watched[i])) | "
            + "\(bpftrace.map { ratio($0[i]) } ?? "-") |")
    }
    if bpftrace != nil {
        print("bpftrace printed \(bpftraceOutput.bytes / 1024) KiB; events it reported lost: \(bpftraceOutput.lost)")
    }
    print("anomalies found while monitoring the learned loops: \(userspaceFindings) (userspace check), \(kernelFindings) (kernel suppression), "
        + "\(protectedFindings) (protect)")
    print("median of \(runs) runs each; events printed while watched: \(sink.bytes / 1024) KiB of JSON; kernel drops: \(drops)")
}

/// Resident memory of this process, in MiB (VmRSS).
func residentMiB() -> Double {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Double(line.split(separator: " ").dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
}

func soakBenchmark() throws {
    let minutes = Double(option("--minutes", default: "10"))!
    let perSecond = Int(option("--containers-per-second", default: "20"))!
    let node = try SimulatedNode()
    defer { node.remove() }
    var configuration = node.configuration()
    configuration.learning.minDuration = 60
    configuration.learning.quietPeriod = 20
    configuration.learning.retireAfter = 30
    let agent = try node.agent(configuration)
    let deployments = (0..<30).map { "app\($0)" }
    var running: [(container: SimulatedNode.Container, stopAt: Double, deployment: Int)] = []
    var random = SystemRandomNumberGenerator()
    func podSuffix() -> String {
        String((0..<9).map { _ in "bcdfghjklmnpqrstvwxz2456789".randomElement(using: &random)! }) + "-"
            + String((0..<5).map { _ in "bcdfghjklmnpqrstvwxz2456789".randomElement(using: &random)! })
    }
    let start = now()
    var started = 0, jobs = 0, events = 0, anomaliesSent = 0
    var lastReport = start, lastTick = start
    print("| minute | RSS (MiB) | containers started | events | anomalies sent | workloads (stable) | retired | containers held | cgroups held | processes held | folds | pending |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    func report(_ minute: Int) {
        let stable = agent.workloadStates.values.filter { $0 == .stable }.count
        print("| \(minute) | \(String(format: "%.1f", residentMiB())) | \(started) | \(events) | \(anomaliesSent) | "
            + "\(agent.registry.workloads.count) (\(stable)) | \(agent.registry.retiredWorkloads) | \(agent.knownContainers) | "
            + "\(agent.rememberedCgroups) | \(agent.pipeline.processes.entries.count) | \(agent.registry.foldCount) | \(agent.pipeline.pendingEvents.events) |")
        fflush(nil) // a line a minute, seen as it comes when piped
    }
    report(0)
    while now() - start < minutes * 60 {
        let t = now()
        // New replicas of the deployments, and a one-off job of a name never seen again.
        for _ in 0..<perSecond {
            let deployment = Int.random(in: 0..<deployments.count, using: &random)
            let container = try node.startContainer(namespace: "soak", pod: "\(deployments[deployment])-\(podSuffix())")
            running.append((container, t + Double.random(in: 1...3, using: &random), deployment))
            started += 1
        }
        let job = try node.startContainer(namespace: "batch", pod: "job-\(jobs)-\(podSuffix())", name: "task")
        running.append((job, t + 0.5, -1))
        jobs += 1
        // What each running container does this turn: a process runs its deployment's usual
        // behaviour, and, once the profile is stable, now and then something it never did; then exits.
        for (container, _, deployment) in running {
            let pid = UInt32.random(in: 100...30000, using: &random)
            let name = deployment >= 0 ? deployments[deployment] : "job"
            node.exec(container, pid: pid, exe: "/usr/bin/\(name)")
            for file in 0..<4 { node.write(container, pid: pid, path: "/var/lib/\(name)/state\(file).db") }
            node.connect(container, pid: pid, to: [10, 0, UInt8(max(deployment, 0)), 1], port: 5432)
            events += 6
            if deployment >= 0, agent.workloadStates["soak/deployment/\(name)/server"] == .stable, Int.random(in: 0..<4, using: &random) == 0 {
                node.write(container, pid: pid, path: "/tmp/dropped-\(UInt64.random(in: 0...UInt64.max, using: &random))")
                events += 1
                anomaliesSent += 1
            }
            node.exit(container, pid: pid)
            events += 1
        }
        try node.settle(agent)
        // Stopped ones go, with their last syscalls.
        let stopping = running.filter { $0.stopAt <= t }
        running.removeAll { $0.stopAt <= t }
        for (container, _, _) in stopping { try node.stopContainer(container, lastSyscalls: [0, 1, 3, 202]) }
        try node.settle(agent)
        if now() - lastTick >= 1 {
            agent.pipeline.reportDrops()
            try agent.tick()
            node.sink.removeAll()
            lastTick = now()
        }
        if now() - lastReport >= 60 {
            lastReport = now()
            report(Int(((lastReport - start) / 60).rounded()))
        }
        let spent = now() - t
        if spent < 1 { usleep(UInt32((1 - spent) * 1_000_000)) }
    }
    report(Int(((now() - start) / 60).rounded()))
    print("drops: \(agent.drops.total); findings: \(agent.registry.findings.values.reduce(0, +)); anomaly lines: "
        + "\(agent.anomaliesEmitted.values.reduce(0, +)); kernel: \(node.kernel.watchedCount) cgroups watched, "
        + "\(node.kernel.knownEntries) known-behaviour entries")
}

/// What `/proc/PID` says of a process: resident memory now and at its peak (MiB), CPU seconds used.
struct ProcessSample {
    var residentMiB = 0.0, peakMiB = 0.0, anonymousMiB = 0.0, proportionalMiB = 0.0, cpuSeconds = 0.0

    init(pid: Int32) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func kib(_ field: String) -> Double {
            let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
            return Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        residentMiB = kib("VmRSS") / 1024
        peakMiB = kib("VmHWM") / 1024
        anonymousMiB = kib("RssAnon") / 1024
        // PSS counts a page once however often it is mapped (the ring buffer's data twice), and
        // shares the libraries' pages among the processes that map them.
        let rollup = (try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8)) ?? ""
        let pss = rollup.split(separator: "\n").first { $0.hasPrefix("Pss:") } ?? ""
        proportionalMiB = (Double(pss.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
        // utime and stime: fields 14 and 15, counted after the ")" that ends the command name
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        if fields.count > 12 {
            cpuSeconds = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
            cpuSeconds /= Double(sysconf(Int32(_SC_CLK_TCK)))
        }
    }
}

/// The sum of a Prometheus counter or gauge over all its label sets.
func metricSum(_ text: String, _ name: String) -> Double {
    text.split(separator: "\n").filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
        .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
}

/// A node as a kubelet runs it: containerd's CRI plugin starts the pods, `vigil agent` (the release
/// binary beside this one, as the DaemonSet runs it) watches them.
func fleetBenchmark() throws {
    let containers = Int(option("--containers", default: "100"))!
    let workloads = Int(option("--workloads", default: "20"))!
    let seconds = Int(option("--seconds", default: "60"))!
    let rate = Int(option("--events-per-second", default: "100000"))!
    let loadPods = max(1, Int(option("--load-pods", default: "2"))!)
    if let reason = Containerd.unavailableReason() { throw CgroupError("containerd: \(reason)") }
    var template = Array((NSTemporaryDirectory() + "vigil-bench-fleet-XXXXXX").utf8CString)
    guard mkdtemp(&template) != nil else { throw CgroupError("mkdtemp failed") }
    let work = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer { try? FileManager.default.removeItem(atPath: work) }
    let containerd = try Containerd(cgroupMount: try CgroupHierarchy.system().mountPoint)
    defer { containerd.stop() }

    // Learning never ends here (quietPeriod): every event the pods cause reaches the agent.
    let port = 22000 + Int(getpid() % 5000)
    try """
    node: bench-fleet
    profiles: \(work)/profiles
    seccompRoot: \(work)/seccomp
    learning: {minDuration: 0, quietPeriod: 3600, checkpointInterval: 30}
    metricsAddress: 127.0.0.1:\(port)
    eventsFile: \(work)/events.jsonl
    """.write(toFile: work + "/agent.yaml", atomically: true, encoding: .utf8)
    let agent = Process()
    agent.executableURL = URL(fileURLWithPath: (workload as NSString).deletingLastPathComponent + "/vigil")
    agent.arguments = ["agent", "--config", work + "/agent.yaml"]
    agent.standardOutput = FileHandle.nullDevice
    _ = FileManager.default.createFile(atPath: work + "/agent.log", contents: nil)
    agent.standardError = FileHandle(forWritingAtPath: work + "/agent.log")
    try agent.run()
    defer { agent.stop(with: SIGTERM, within: 30) }
    func metrics() -> String { (try? HTTP.request("GET", "/metrics", port: port)) ?? "" }
    for _ in 0..<100 where (try? HTTP.request("GET", "/readyz", port: port)) == nil { usleep(100_000) }
    guard agent.isRunning else { throw CgroupError("the agent did not start: \((try? String(contentsOfFile: work + "/agent.log", encoding: .utf8)) ?? "")") }
    let idle = ProcessSample(pid: agent.processIdentifier)

    // N pods of W deployments: each a shell that writes its state and runs a program every second.
    let letters = Array("bcdfghjklmnpqrstvwxz2456789")
    func podName(_ deployment: String) -> String { "\(deployment)-7d9c8f6b5-" + String((0..<5).map { _ in letters.randomElement()! }) }
    var t = now()
    for i in 0..<containers {
        let request = Containerd.PodRequest(name: podName("app\(i % workloads)"),
                                            command: ["/bin/sh", "-c", "while true; do echo $$ > /tmp/state; /bin/true; sleep 1; done"])
        try containerd.runPod(request)
    }
    let startSeconds = now() - t
    var named = 0.0
    for _ in 0..<600 {
        named = metricSum(metrics(), "vigil_containers")
        if named >= Double(containers) { break }
        usleep(100_000)
    }
    let window = UInt32(min(seconds, 20)) // short runs (CI's) shorten the steady phase too
    sleep(window / 2)
    let settledAt = (ProcessSample(pid: agent.processIdentifier), metricSum(metrics(), "vigil_events_total"), now())
    sleep(window)
    let settled = ProcessSample(pid: agent.processIdentifier)
    let steadyRate = (metricSum(metrics(), "vigil_events_total") - settledAt.1) / (now() - settledAt.2)
    let steadyCPU = (settled.cpuSeconds - settledAt.0.cpuSeconds) / (now() - settledAt.2)
    print("fleet: \(containers) containers of \(workloads) workloads started through CRI in \(String(format: "%.0f", startSeconds)) s; "
        + "the agent names \(Int(named))")
    // RSS counts the ring buffer's pages twice (the kernel maps its data area twice, so a record
    // that wraps reads as one): 2 x 16 MiB of it with the default size; "anonymous" is the memory
    // the agent allocates itself.
    print("| phase | agent RSS (MiB) | peak RSS (MiB) | PSS (MiB) | anonymous (MiB) | events/s received | agent CPU (% of a core) | CPU per 10,000 events/s | drops |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    func row(_ phase: String, _ sample: ProcessSample, rate: Double, cpu: Double, drops: Double) {
        print(String(format: "| %@ | %.1f | %.1f | %.1f | %.1f | %.0f | %.1f | %@ | %.0f |", phase as NSString, sample.residentMiB, sample.peakMiB,
                     sample.proportionalMiB, sample.anonymousMiB, rate, cpu * 100,
                     (rate > 100 ? String(format: "%.1f %%", cpu * 100 / (rate / 10000)) : "-") as NSString, drops))
    }
    row("started, no containers", idle, rate: 0, cpu: 0, drops: 0)
    row("\(containers) containers, steady", settled, rate: steadyRate, cpu: steadyCPU, drops: metricSum(metrics(), "vigil_drops_total"))
    fflush(nil)

    // Sustained load: paced file writes from load pods (each a new event the agent learns from).
    let bin = (workload as NSString).deletingLastPathComponent
    var loaders: [Containerd.RunningPod] = []
    for i in 0..<loadPods {
        var request = Containerd.PodRequest(name: podName("load\(i)"),
                                            command: ["/vigil-bin/vigil-workload", "paced-writes:\(rate / loadPods):\(seconds):/dev/shm/load"])
        request.mounts = ["/vigil-bin": bin, "/opt/swift": "/opt/swift"]
        loaders.append(try containerd.runPod(request))
    }
    t = now()
    var last = (ProcessSample(pid: agent.processIdentifier), metricSum(metrics(), "vigil_events_total"), t)
    var loadRates: [Double] = []
    while now() - t < Double(seconds) {
        sleep(window / 2)
        let sample = ProcessSample(pid: agent.processIdentifier)
        let events = metricSum(metrics(), "vigil_events_total")
        let elapsed = now() - last.2
        let rate = (events - last.1) / elapsed
        loadRates.append(rate)
        row(String(format: "load, %.0f s", now() - t), sample, rate: rate, cpu: (sample.cpuSeconds - last.0.cpuSeconds) / elapsed,
            drops: metricSum(metrics(), "vigil_drops_total"))
        fflush(nil)
        last = (sample, events, now())
    }
    for loader in loaders { _ = try? containerd.stopContainer(loader, timeout: 1) }
    print(String(format: "load: %.0f events/s asked (paced file writes on the pods' /dev/shm), %.0f received on average", Double(rate),
                 loadRates.reduce(0, +) / Double(max(loadRates.count, 1))))
    let drops = metrics().split(separator: "\n").filter { $0.hasPrefix("vigil_drops_total{") && !$0.hasSuffix(" 0") }
    print("drops: \(drops.isEmpty ? "none" : drops.joined(separator: ", "))")
}

func checkpointBenchmark() throws {
    let counts = option("--rules", default: "1000,2500,10000,40000").split(separator: ",").compactMap { Int($0) }
    let directory = NSTemporaryDirectory() + "vigil-bench-checkpoint-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    print("| rules | collapse (s) | encode (s) | save (s) | load (s) | YAML (KiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in counts {
        var random = SystemRandomNumberGenerator()
        let rules = (0..<count).map { _ -> FileWriteRule in
            let name = String((0..<12).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement(using: &random)! })
            // Each in a directory of its own: nothing to collapse, every rule stays.
            return FileWriteRule(path: "/data/\(name)/state", ops: ["create"])
        }
        let generalizer = Generalizer(modelPaths: [])
        var t = now()
        let collapsed = generalizer.collapse(rules)
        let collapse = now() - t
        let start = Date()
        let profile = Profile(workload: "bench", learning: LearningEvidence(started: start, lastNew: start, minDuration: 0, quietPeriod: 0),
                              fileWrites: collapsed)
        t = now()
        let text = try ProfileCodec.encode(profile)
        let encode = now() - t
        let store = DirectoryProfileStore(root: directory)
        t = now()
        try store.save(profile)
        let save = now() - t
        t = now()
        _ = try store.load(workload: "bench", version: 1)
        let load = now() - t
        print(String(format: "| %d | %.3f | %.3f | %.3f | %.3f | %d |", count, collapse, encode, save, load, text.utf8.count / 1024))
    }
}

/// Hashing model files (ModelFiles, the agent's `vigil.model-hash` thread): a file of --mib MiB
/// on tmpfs (the disk is not what is measured), hashed unpaced and at the agent's default pace,
/// through this process's /proc/<pid>/root as the agent reads a container's; then a reopen of the
/// same version (the cache).
func modelHashBenchmark() throws {
    let mib = Int(option("--mib", default: "512"))!
    let path = "/dev/shm/vigil-bench-model-\(getpid()).bin"
    defer { unlink(path) }
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    for i in chunk.indices { chunk[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
    guard let out = FileHandle(forWritingAtPath: path) ?? {
        FileManager.default.createFile(atPath: path, contents: nil)
        return FileHandle(forWritingAtPath: path)
    }() else { throw CgroupError("cannot write \(path)") }
    for _ in 0..<mib { out.write(Data(chunk)) }
    try out.close()
    var status = stat()
    guard stat(path, &status) == 0 else { throw CgroupError("stat \(path)") }
    let version = FileVersion(identity: FileIdentity(statDevice: UInt64(status.st_dev), inode: UInt64(status.st_ino)),
                              size: UInt64(status.st_size),
                              changeNanoseconds: UInt64(status.st_ctim.tv_sec) * 1_000_000_000 + UInt64(status.st_ctim.tv_nsec))
    print("model hashing, \(mib) MiB on tmpfs (SHA-256, 1 MiB reads):")
    print("| pace | wall (s) | MiB/s | CPU (s) |")
    print("|---|---:|---:|---:|")
    for (name, pace) in [("unpaced", Double.infinity), ("default (128 MiB/s)", 128 * 1024 * 1024)] {
        let files = ModelFiles(bytesPerSecond: pace)
        let job = ModelFiles.Job(workload: "bench", container: WorkloadIdentity(id: "bench"), pids: [UInt32(getpid())], path: path,
                                 version: version, read: [], bootNanoseconds: 0)
        let (cpu0, t0) = (cpuSeconds(), now())
        files.submit(job)
        files.waitUntilIdle(timeout: 3600)
        let (wall, cpu) = (now() - t0, cpuSeconds() - cpu0)
        guard case .hashed? = files.takeResults().first?.outcome else { throw CgroupError("the file was not hashed") }
        print(String(format: "| %@ | %.2f | %.0f | %.2f |", name, wall, Double(mib) / wall, cpu))
        if pace.isFinite {
            let t1 = now()
            files.submit(job)
            files.waitUntilIdle()
            print(String(format: "| reopened (cached: a stat) | %.4f | | |", now() - t1))
        }
    }
}

let usage = "usage: vigil-bench decode [--records FILE] [--seconds S] | detect [--seconds S] | overhead [--runs R] [--scale F] [--model-dir DIR] [--program-stats] [--variant V] | model-hash [--mib N] | soak [--minutes M] [--containers-per-second N] | fleet [--containers N] [--workloads W] [--seconds S] [--events-per-second E] [--load-pods P] | checkpoint [--rules N,...]"

/// Each benchmark's options: a value follows each, but for the switches. Anything else is refused,
/// so a mistyped option (or --help) does not start a run of minutes with the defaults.
let benchmarkOptions: [String: (values: Set<String>, switches: Set<String>)] = [
    "decode": (["--records", "--seconds"], []),
    "detect": (["--seconds"], []),
    "overhead": (["--runs", "--scale", "--model-dir", "--variant"], ["--program-stats"]),
    "model-hash": (["--mib"], []),
    "soak": (["--minutes", "--containers-per-second"], []),
    "fleet": (["--containers", "--workloads", "--seconds", "--events-per-second", "--load-pods"], []),
    "checkpoint": (["--rules"], []),
]

func checkArguments() {
    let args = Array(CommandLine.arguments.dropFirst())
    if args.contains("--help") || args.contains("-h") {
        print(usage)
        exit(0)
    }
    guard let name = args.first, let options = benchmarkOptions[name] else {
        FileHandle.standardError.write(Data((usage + "\n").utf8))
        exit(2)
    }
    var index = 1
    while index < args.count {
        let arg = args[index]
        if options.switches.contains(arg) {
            index += 1
        } else if options.values.contains(arg), index + 1 < args.count {
            index += 2
        } else {
            let problem = options.values.contains(arg) ? "\(arg) needs a value" : "unknown option \(arg) for \(name)"
            FileHandle.standardError.write(Data("vigil-bench: \(problem)\n\(usage)\n".utf8))
            exit(2)
        }
    }
}

checkArguments()
do {
    switch CommandLine.arguments.dropFirst().first {
    case "model-hash": try modelHashBenchmark()
    case "checkpoint": try checkpointBenchmark()
    case "decode": try decodeBenchmark()
    case "overhead": try overheadBenchmark()
    case "detect": try detectBenchmark()
    case "soak": try soakBenchmark()
    case "fleet": try fleetBenchmark()
    default:
        FileHandle.standardError.write(Data((usage + "\n").utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("vigil-bench: \(error)\n".utf8))
    exit(1)
}
