/// Turns findings into `anomaly` lines: the first occurrence of a behaviour at once, its
/// repeats folded into one line per fold window (`count`, `first_seen`, `last_seen`), and all of
/// it rate limited per workload, with `agent.throttle` lines when limiting starts and ends.
public struct AnomalyReporter: Sendable {
    public struct Settings: Sendable {
        /// Repeats of one behaviour are reported at most once per window.
        public var foldWindowNanoseconds: UInt64 = 10_000_000_000
        /// Token bucket per workload: burst, and lines per second after it.
        public var burst: Double = 20
        public var perSecond: Double = 5

        public init() {}
    }

    private struct Fold {
        var rule: AnomalyRule
        var count: UInt64
        var reported: UInt64
        var firstSeen: UInt64
        var lastSeen: UInt64
        var lastReport: UInt64
        var event: [UInt8]          // the first triggering event, as its JSON object
        var workload: WorkloadIdentity?
    }

    public let settings: Settings
    private var encoder: EventEncoder
    private var folds: [UInt64: Fold] = [:]
    private var reportedSyscalls: Set<UInt64> = []
    private var tokens: Double
    private var lastRefill: UInt64 = 0
    private var throttled = false
    private var suppressed: UInt64 = 0
    private var scratch = JSONLineWriter()
    private let profileID: String
    private let profileVersion: Int
    private let profileState: String

    public init(profile: Profile, node: String, clock: BootClock, settings: Settings = Settings()) {
        self.settings = settings
        encoder = EventEncoder(node: node, clock: clock)
        tokens = settings.burst
        profileID = profile.workload
        profileVersion = profile.version
        profileState = profile.state.rawValue
    }

    /// Anomaly lines emitted and lines held back by the rate limit, since start.
    public private(set) var emitted: [AnomalyRule: UInt64] = [:]
    public var suppressedLines: UInt64 { suppressed }

    /// Records a finding for an event; writes a line to `out` when one is due now.
    public mutating func report(_ finding: Finding, event: RawEvent, workload: WorkloadIdentity?,
                                processes: ProcessTable, into out: inout JSONLineWriter) {
        let time = event.bootNanoseconds
        let foldKey = finding.key ^ UInt64(finding.rule.hashValue & 0xffff)
        if var fold = folds[foldKey] {
            fold.count += 1
            fold.lastSeen = time
            folds[foldKey] = fold
            return
        }
        scratch.removeAll()
        encoder.encode(event, workload: nil, processes: processes, into: &scratch, newline: false)
        folds[foldKey] = Fold(rule: finding.rule, count: 1, reported: 0, firstSeen: time, lastSeen: time,
                              lastReport: time, event: scratch.bytes, workload: workload)
        emit(foldKey, now: time, into: &out)
    }

    /// Syscalls the kernel saw that the profile lacks (read from its bitmap, so there is no
    /// triggering record): each is reported once, and those found together in one line.
    public mutating func reportSyscalls(_ syscalls: [(abi: SyscallABI, number: Int, name: String)], workload: WorkloadIdentity?,
                                        now: UInt64, into out: inout JSONLineWriter) {
        let fresh = syscalls.filter { reportedSyscalls.insert(UInt64($0.abi.rawValue) << 32 | UInt64($0.number)).inserted }
        guard !fresh.isEmpty else { return }
        scratch.removeAll()
        scratch.raw("{"); scratch.key("syscalls"); scratch.raw("[")
        for (i, syscall) in fresh.enumerated() {
            if i > 0 { scratch.raw(",") }
            scratch.raw("{"); scratch.key("name"); scratch.string(syscall.name)
            scratch.raw(","); scratch.key("number"); scratch.unsigned(UInt64(syscall.number))
            scratch.raw(","); scratch.key("abi"); scratch.string(syscall.abi.name)
            scratch.raw("}")
        }
        scratch.raw("]}")
        let foldKey = 0x5359_0000_0000_0000 | now
        folds[foldKey] = Fold(rule: .unexpectedSyscall, count: UInt64(fresh.count), reported: 0, firstSeen: now,
                              lastSeen: now, lastReport: now, event: scratch.bytes, workload: workload)
        emit(foldKey, now: now, into: &out)
    }

    /// Emits the folded repeats whose window has passed, and ends throttling when the bucket has
    /// refilled. Call about once a second.
    public mutating func flush(now: UInt64, into out: inout JSONLineWriter) {
        for key in folds.keys {
            guard let fold = folds[key], fold.count > fold.reported,
                  now &- fold.lastReport >= settings.foldWindowNanoseconds else { continue }
            emit(key, now: now, into: &out)
        }
        refill(now: now)
        if throttled && tokens >= settings.burst / 2 {
            throttled = false
            writeThrottle(started: false, now: now, into: &out)
            suppressed = 0
        }
    }

    private mutating func refill(now: UInt64) {
        if lastRefill != 0 {
            tokens = min(settings.burst, tokens + Double(now &- lastRefill) / 1e9 * settings.perSecond)
        }
        lastRefill = now
    }

    private mutating func emit(_ key: UInt64, now: UInt64, into out: inout JSONLineWriter) {
        refill(now: now)
        guard var fold = folds[key] else { return }
        guard tokens >= 1 else {
            suppressed += 1
            if !throttled {
                throttled = true
                writeThrottle(started: true, now: now, into: &out)
            }
            return
        }
        tokens -= 1
        fold.reported = fold.count
        fold.lastReport = now
        folds[key] = fold
        emitted[fold.rule, default: 0] += 1

        out.raw("{"); out.key("time"); encoder.clock.writeTimestamp(boot: fold.lastSeen, to: &out)
        out.raw(","); out.key("node"); out.string(encoder.node)
        out.raw(","); out.key("kind"); out.string("anomaly")
        if let workload = fold.workload {
            out.raw(","); encoder.writeWorkload(workload, to: &out)
        }
        out.raw(","); out.key("anomaly"); out.raw("{")
        out.key("rule"); out.string(fold.rule.rawValue)
        out.raw(","); out.key("severity"); out.string(fold.rule.severity)
        out.raw(","); out.key("count"); out.unsigned(fold.count)
        out.raw(","); out.key("first_seen"); encoder.clock.writeTimestamp(boot: fold.firstSeen, to: &out)
        out.raw(","); out.key("last_seen"); encoder.clock.writeTimestamp(boot: fold.lastSeen, to: &out)
        out.raw(","); out.key("profile"); out.raw("{")
        out.key("id"); out.string(profileID)
        out.raw(","); out.key("version"); out.unsigned(UInt64(profileVersion))
        out.raw(","); out.key("state"); out.string(profileState)
        out.raw("}}")
        out.raw(","); out.key("event")
        fold.event.withUnsafeBytes { out.rawBytes($0) }
        out.raw("}")
        out.newline()
    }

    private mutating func writeThrottle(started: Bool, now: UInt64, into out: inout JSONLineWriter) {
        out.raw("{"); out.key("time"); encoder.clock.writeTimestamp(boot: now, to: &out)
        out.raw(","); out.key("node"); out.string(encoder.node)
        out.raw(","); out.key("kind"); out.string("agent.throttle")
        out.raw(","); out.key("throttle"); out.raw("{")
        out.key("state"); started ? out.string("started") : out.string("ended")
        out.raw(","); out.key("profile"); out.string(profileID)
        if !started {
            out.raw(","); out.key("suppressed"); out.unsigned(suppressed)
        }
        out.raw(","); out.key("limit_per_second"); out.unsigned(UInt64(settings.perSecond))
        out.raw("}}")
        out.newline()
    }
}
