import ArgumentParser
import CVigilSys
import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilRuntime

/// What to watch and how to load the kernel side: shared by trace, learn and monitor.
struct CaptureOptions: ParsableArguments {
    @Option(name: .long, help: "Watch this cgroup v2 and its descendants: a path inside the hierarchy (/kubepods/...) or a directory under its mount.")
    var cgroup: String?

    @Option(name: .long, help: "Load vigil.bpf.o (vigil-task-btf.bpf.o before Linux 6.2, vigil-compat.bpf.o before 5.12) from this directory instead of the objects built into vigil.")
    var bpfDir: String?

    @Option(name: .long, help: "Kernel ring-buffer size in bytes (a power of two, at least 4096).")
    var ringBufferSize: UInt32 = 4 << 20

    @Option(name: .long, help: "Node name written in each event (default: the host name).")
    var node: String?

    @Argument(parsing: .postTerminator, help: "The command to run (in a new cgroup) and watch.")
    var command: [String] = []

    /// `watchAll`: --all was given (trace only, where `allowAll` is true).
    func validate(watchAll: Bool = false, allowAll: Bool = false) throws {
        let modes = [cgroup != nil, watchAll, !command.isEmpty].filter { $0 }.count
        guard modes == 1 else {
            throw ValidationError(allowAll ? "give exactly one of: -- COMMAND, --cgroup PATH, --all"
                                           : "give exactly one of: -- COMMAND, --cgroup PATH")
        }
        if let cgroup, cgroup.isEmpty || cgroup.utf8.contains(0) {
            throw ValidationError("--cgroup must name a cgroup (an empty path would watch the whole host: use --all for that)")
        }
        if let first = command.first, first.isEmpty { throw ValidationError("the command after -- is empty") }
        guard ringBufferSize >= 4096, ringBufferSize & (ringBufferSize - 1) == 0 else {
            throw ValidationError("--ring-buffer-size must be a power of two of at least 4096 (got \(ringBufferSize))")
        }
    }

    var nodeName: String { node ?? ProcessInfo.processInfo.hostName }

    func loadProbes(watchAll: Bool = false) throws -> KernelProbes {
        let probes = try KernelProbes(options: .init(watchAll: watchAll, ringBufferBytes: ringBufferSize, objectDirectory: bpfDir))
        for refusal in probes.refusedBuilds {
            FileHandle.standardError.write(Data("vigil: this kernel refused a faster build, \(refusal); loaded \(probes.variant.rawValue)\n".utf8))
        }
        return probes
    }
}

/// Runs a capture until its command exits (with --cgroup/--all: until SIGINT, SIGTERM or
/// SIGHUP), calling `tick` about once a second. Returns the command's exit status (0 without one).
struct CaptureLoop {
    let options: CaptureOptions
    let hierarchy: CgroupHierarchy
    let pipeline: EventPipeline
    var profileID: UInt32 = 0
    /// Return true to stop (e.g. learning reached stable with --until-stable).
    var tick: () throws -> Bool = { false }
    /// Called for each cgroup once it is watched, before the command starts in it (protect mode
    /// is set up here, so it holds from the command's first exec): its id and its directory.
    var watched: (_ cgroupID: UInt64, _ directory: String) throws -> Void = { _, _ in }

    func run() throws -> Int32 {
        let kernel = pipeline.kernel
        // The signals that end a capture are kept for the loop instead of killing vigil with
        // events still in the ring buffer; the command starts with the default handlers.
        try StopSignals.catchThem()

        var child: LaunchedProcess?
        var ownCgroup: String?
        // The cgroup made for the command goes when the capture does, whatever way it ends; the
        // kernel's record of its removal (with its last syscalls) is read after.
        defer {
            if let ownCgroup {
                do { try hierarchy.remove(ownCgroup) } catch {
                    FileHandle.standardError.write(Data("vigil: \(error) (processes the command left behind are still in it)\n".utf8))
                }
                _ = try? pipeline.drain()
            }
        }
        if let cgroup = options.cgroup {
            let path = try Self.cgroupPath(cgroup, in: hierarchy)
            try hierarchy.forEachInSubtree(of: path) { subtreePath, id in
                try kernel.watch(cgroupID: id, profileID: profileID)
                try watched(id, hierarchy.directory(of: subtreePath))
            }
        } else if !options.command.isEmpty {
            OwnCgroups.removeAbandoned(in: hierarchy)
            let path = OwnCgroups.path(for: getpid())
            let id = try hierarchy.create(path)
            ownCgroup = path
            try kernel.watch(cgroupID: id, profileID: profileID)
            try watched(id, hierarchy.directory(of: path))
            child = try LaunchedProcess.start(options.command, cgroupDirectory: hierarchy.directory(of: path))
        }

        var status: Int32 = 0
        var lastTick = BootClock.nowBootNanoseconds()
        loop: while true {
            try pipeline.poll(timeoutMilliseconds: 100)
            if pipeline.outputFailure != nil { break loop } // nowhere to write: stop rather than watch unreported
            if let signal = StopSignals.takePending() {
                if let child { kill(child.pid, signal) } else { break loop }
            }
            if let child {
                let state = child.status(block: false)
                if state != .running {
                    status = state.shellStatus
                    break loop
                }
            }
            let now = BootClock.nowBootNanoseconds()
            if now - lastTick > 1_000_000_000 {
                pipeline.reportDrops()
                if try tick() { break loop }
                lastTick = now
            }
        }
        try pipeline.drain()
        pipeline.reportDrops()
        if let child, status == 0, child.status(block: false) == .running {
            kill(child.pid, SIGTERM) // stopped early (--until-stable, or the output failed): the command goes too
            status = child.status(block: true).shellStatus
        }
        if let failure = pipeline.outputFailure {
            throw CommandFailure("stopped: \(failure.description); nothing more could be reported")
        }
        return status
    }

    /// A --cgroup flag as a path inside the hierarchy: a path under the cgroup v2 mount, or a
    /// path inside it; it must exist and be a cgroup.
    static func cgroupPath(_ flag: String, in hierarchy: CgroupHierarchy) throws -> String {
        let path: String
        if flag.hasPrefix(hierarchy.mountPoint + "/") || flag == hierarchy.mountPoint {
            path = try hierarchy.cgroupPath(ofDirectory: flag)
        } else if flag.hasPrefix("/sys/fs/cgroup/") {
            throw CommandFailure("--cgroup \(flag) is not in the cgroup v2 hierarchy (mounted at \(hierarchy.mountPoint)): "
                + "a cgroup v1 path? give the cgroup's path inside the v2 hierarchy, e.g. /kubepods/...")
        } else {
            path = flag.hasPrefix("/") ? flag : "/" + flag
        }
        let directory = hierarchy.directory(of: path)
        var info = stat()
        guard stat(directory, &info) == 0 else {
            throw CommandFailure("--cgroup \(flag): no such cgroup (looked for the directory \(directory))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR, FileManager.default.fileExists(atPath: directory + "/cgroup.procs") else {
            throw CommandFailure("--cgroup \(flag): \(directory) is not a cgroup directory")
        }
        return path
    }
}

/// The cgroups `vigil trace|learn|monitor -- COMMAND` makes, one per vigil process: `/vigil-<pid>`.
/// A vigil killed with SIGKILL cannot remove its own (its command dies with it: PDEATHSIG), so
/// the next one removes those whose vigil is gone and that hold no process.
enum OwnCgroups {
    static func path(for pid: pid_t) -> String { "/vigil-\(pid)" }

    static func removeAbandoned(in hierarchy: CgroupHierarchy) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: hierarchy.mountPoint) else { return }
        for name in names where name.hasPrefix("vigil-") {
            guard let pid = pid_t(name.dropFirst("vigil-".count)), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue } // its vigil still runs (or a process of that pid does)
            try? hierarchy.remove("/" + name) // fails, harmlessly, while a process is left in it
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, kept by a handler and taken by polling: the capture loop ends
/// cleanly (drains the ring buffer, saves the profile) on whichever thread the signal lands.
enum StopSignals {
    static func catchThem() throws {
        guard vigil_catch_stop_signals() == 0 else { throw CommandFailure("cannot handle SIGINT/SIGTERM: \(String(cString: strerror(errno)))") }
    }

    /// The stop signal received since the last call, if any.
    static func takePending() -> Int32? {
        let signal = vigil_take_stop_signal()
        return signal > 0 ? signal : nil
    }
}

/// "90s", "10m", "1h", "1.5h", "0s": a duration flag, from 0 to 10 years.
struct DurationArgument: ExpressibleByArgument {
    let seconds: Double
    static let maximumSeconds: Double = 10 * 365 * 86400

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where argument.hasSuffix(suffix) {
            let number = argument.dropLast(suffix.count)
            // Digits and one point only: no "inf", "nan", "1e400", hex floats or signs.
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  number.filter({ $0 == "." }).count <= 1, let value = Double(number) else { return nil }
            let total = value * scale
            guard total.isFinite, total <= Self.maximumSeconds else { return nil }
            seconds = total
            return
        }
        return nil
    }

    init(seconds: Double) { self.seconds = seconds }

    var defaultValueDescription: String { "\(seconds)s" }
}
