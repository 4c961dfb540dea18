import ArgumentParser
import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilRuntime

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the execs, file writes and egress connections of a command, a cgroup or the host as JSON lines.",
        discussion: """
        vigil trace -- COMMAND [ARGS...]   run COMMAND in a cgroup of its own; exit with its status
        vigil trace --cgroup PATH          watch an existing cgroup v2 (and its descendants) until interrupted
        vigil trace --all                  watch every process but vigil itself until interrupted
        """
    )

    @Option(name: .long, help: "Watch this cgroup v2 and its descendants: a path inside the hierarchy (/kubepods/...) or a directory under its mount.")
    var cgroup: String?

    @Flag(name: .long, help: "Watch every process on the host (but vigil itself).")
    var all = false

    @Option(name: .long, help: "Load vigil.bpf.o from this directory instead of the object built into vigil.")
    var bpfDir: String?

    @Option(name: .long, help: "Kernel ring-buffer size in bytes (a power of two, at least 4096).")
    var ringBufferSize: UInt32 = 16 << 20

    @Option(name: .long, help: "Node name written in each event (default: the host name).")
    var node: String?

    @Option(name: .long, help: "Also save the raw kernel records to this file, for replay (length-prefixed records).")
    var record: String?

    @Argument(parsing: .postTerminator, help: "The command to run and watch.")
    var command: [String] = []

    func validate() throws {
        let modes = [cgroup != nil, all, !command.isEmpty].filter { $0 }.count
        guard modes == 1 else {
            throw ValidationError("give exactly one of: -- COMMAND, --cgroup PATH, --all")
        }
        guard ringBufferSize >= 4096, ringBufferSize & (ringBufferSize - 1) == 0 else {
            throw ValidationError("--ring-buffer-size must be a power of two of at least 4096 (got \(ringBufferSize))")
        }
    }

    func run() throws {
        let status = try reportingFailures { try trace() }
        throw ExitCode(status)
    }

    private func trace() throws -> Int32 {
        let hierarchy = try CgroupHierarchy.system()
        // Block the signals that end a trace, so the poll loop sees them instead of dying with
        // events still in the ring buffer; the command starts with them unblocked.
        let stopSignals = SignalSet([SIGINT, SIGTERM, SIGHUP])
        stopSignals.block()

        let probes = try KernelProbes(options: .init(watchAll: all, ringBufferBytes: ringBufferSize, objectDirectory: bpfDir))
        let session = try TraceSession(probes: probes, hierarchy: hierarchy,
                                       node: node ?? ProcessInfo.processInfo.hostName, sink: FileDescriptorSink())

        if let record {
            let fd = open(record, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw CommandFailure("cannot write --record file \(record): \(String(cString: strerror(errno)))")
            }
            session.recordSink = FileDescriptorSink(fd: fd)
        }

        var child: LaunchedProcess?
        var ownCgroup: String?
        if let cgroup {
            let path = cgroup.hasPrefix(hierarchy.mountPoint) ? try hierarchy.cgroupPath(ofDirectory: cgroup) : cgroup
            for (_, id) in try hierarchy.subtree(of: path) {
                try probes.watch(cgroupID: id)
            }
        } else if !command.isEmpty {
            let path = "/vigil-trace-\(getpid())"
            let id = try hierarchy.create(path)
            ownCgroup = path
            try probes.watch(cgroupID: id)
            child = try LaunchedProcess.start(command, cgroupDirectory: hierarchy.directory(of: path))
        }

        var status: Int32 = 0
        var lastDropCheck = BootClock.nowBootNanoseconds()
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
            if now - lastDropCheck > 1_000_000_000 {
                session.reportDrops()
                lastDropCheck = now
            }
        }
        try session.drain()
        session.reportDrops()
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
