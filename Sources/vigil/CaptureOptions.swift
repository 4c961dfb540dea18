import ArgumentParser
import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilRuntime

/// What to watch and how to load the kernel side: shared by trace, learn and monitor.
struct CaptureOptions: ParsableArguments {
    @Option(name: .long, help: "Watch this cgroup v2 and its descendants: a path inside the hierarchy (/kubepods/...) or a directory under its mount.")
    var cgroup: String?

    @Option(name: .long, help: "Load vigil.bpf.o from this directory instead of the object built into vigil.")
    var bpfDir: String?

    @Option(name: .long, help: "Kernel ring-buffer size in bytes (a power of two, at least 4096).")
    var ringBufferSize: UInt32 = 16 << 20

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
        guard ringBufferSize >= 4096, ringBufferSize & (ringBufferSize - 1) == 0 else {
            throw ValidationError("--ring-buffer-size must be a power of two of at least 4096 (got \(ringBufferSize))")
        }
    }

    var nodeName: String { node ?? ProcessInfo.processInfo.hostName }

    func loadProbes(watchAll: Bool = false) throws -> KernelProbes {
        try KernelProbes(options: .init(watchAll: watchAll, ringBufferBytes: ringBufferSize, objectDirectory: bpfDir))
    }
}

/// Runs a capture until its command exits (with --cgroup/--all: until SIGINT, SIGTERM or
/// SIGHUP), calling `tick` about once a second. Returns the command's exit status (0 without one).
struct CaptureLoop {
    let options: CaptureOptions
    let hierarchy: CgroupHierarchy
    let probes: KernelProbes
    let session: CaptureSession
    var profileID: UInt32 = 0
    /// Return true to stop (e.g. learning reached stable with --until-stable).
    var tick: () throws -> Bool = { false }

    func run() throws -> Int32 {
        // Block the signals that end a capture so the loop sees them instead of dying with
        // events still in the ring buffer; the command starts with them unblocked.
        let stopSignals = SignalSet([SIGINT, SIGTERM, SIGHUP])
        stopSignals.block()

        var child: LaunchedProcess?
        var ownCgroup: String?
        if let cgroup = options.cgroup {
            let path = cgroup.hasPrefix(hierarchy.mountPoint) ? try hierarchy.cgroupPath(ofDirectory: cgroup) : cgroup
            for (_, id) in try hierarchy.subtree(of: path) {
                try probes.watch(cgroupID: id, profileID: profileID)
            }
        } else if !options.command.isEmpty {
            let path = "/vigil-\(getpid())"
            let id = try hierarchy.create(path)
            ownCgroup = path
            try probes.watch(cgroupID: id, profileID: profileID)
            child = try LaunchedProcess.start(options.command, cgroupDirectory: hierarchy.directory(of: path))
        }

        var status: Int32 = 0
        var lastTick = BootClock.nowBootNanoseconds()
        loop: while true {
            try session.poll(timeoutMilliseconds: 100)
            if let signal = stopSignals.takePending() {
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
                session.reportDrops()
                if try tick() { break loop }
                lastTick = now
            }
        }
        try session.drain()
        session.reportDrops()
        if let child, status == 0, child.status(block: false) == .running {
            kill(child.pid, SIGTERM) // stopped early (--until-stable): the command goes too
            status = child.status(block: true).shellStatus
        }
        if let ownCgroup {
            do { try hierarchy.remove(ownCgroup) } catch {
                FileHandle.standardError.write(Data("vigil: \(error) (processes the command left behind are still in it)\n".utf8))
            }
        }
        return status
    }
}

/// A set of signals delivered by polling instead of by handler.
struct SignalSet {
    private var set = sigset_t()

    init(_ signals: [Int32]) {
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
    }

    func block() {
        var copy = set
        pthread_sigmask(SIG_BLOCK, &copy, nil)
    }

    /// A pending signal of the set, taken without waiting.
    func takePending() -> Int32? {
        var copy = set
        var zero = timespec()
        let signal = sigtimedwait(&copy, nil, &zero)
        return signal > 0 ? signal : nil
    }
}

/// "90s", "10m", "1h", "1.5h", "0s": a duration flag.
struct Duration: ExpressibleByArgument {
    let seconds: Double

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where argument.hasSuffix(suffix) {
            guard let value = Double(argument.dropLast(suffix.count)), value >= 0 else { return nil }
            seconds = value * scale
            return
        }
        return nil
    }

    init(seconds: Double) { self.seconds = seconds }

    var defaultValueDescription: String { "\(seconds)s" }
}
