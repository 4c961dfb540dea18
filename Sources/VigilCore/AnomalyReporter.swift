/// Decides when a finding becomes an `anomaly` line: the first occurrence of a behaviour at
/// once, its repeats folded into one line per fold window (`count`, `first_seen`, `last_seen`),
/// and all of it rate limited per workload, with `agent.throttle` lines when limiting starts and
/// ends. What the lines say is `EventEncoder`'s business. Bounded: a behaviour whose repeats
/// were all reported and that has not recurred for `forgetIdleNanoseconds` is forgotten, and at
/// most `maximumFolds` behaviours are remembered (past that, the one seen longest ago goes). A
/// forgotten behaviour's next occurrence is reported anew, with a count from 1 — the same line it
/// would have had anyway, since repeats are reported at least once per window.
public struct AnomalyReporter: Sendable {
    public struct Settings: Sendable {
        /// Repeats of one behaviour are reported at most once per window.
        public var foldWindowNanoseconds: UInt64 = 10_000_000_000
        /// Token bucket per workload: burst, and lines per second after it.
        public var burst: Double = 20
        public var perSecond: Double = 5
        /// Distinct behaviours remembered for folding.
        public var maximumFolds = 512
        /// A fully reported behaviour not seen for this long is forgotten (six windows).
        public var forgetIdleNanoseconds: UInt64 = 60_000_000_000

        public init() {}
    }

    private struct Fold: Sendable {
        var rule: AnomalyRule
        var count: UInt64
        var reported: UInt64
        var firstSeen: UInt64
        var lastSeen: UInt64
        var lastReport: UInt64
        var event: [UInt8]          // the first triggering event, as its JSON object
        var workload: WorkloadIdentity?
        var startupRule: StartupRule? = nil
        var outcome: Finding.Outcome? = nil
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
    private let profile: EventEncoder.ProfileReference

    public init(profile: Profile, node: String, clock: BootClock, settings: Settings = Settings()) {
        self.settings = settings
        encoder = EventEncoder(node: node, clock: clock)
        tokens = settings.burst
        self.profile = EventEncoder.ProfileReference(profile)
    }

    /// Anomaly lines emitted and lines held back by the rate limit, since start.
    public private(set) var emitted: [AnomalyRule: UInt64] = [:]
    public var suppressedLines: UInt64 { suppressed }
    /// Behaviours forgotten to stay within `maximumFolds`.
    public private(set) var evictedFolds: UInt64 = 0
    /// Behaviours remembered now.
    public var foldCount: Int { folds.count }

    /// Records a finding for an event; writes a line to `out` when one is due now.
    public mutating func report(_ finding: Finding, event: RawEvent, workload: WorkloadIdentity?,
                                processes: ProcessTable, into out: inout JSONLineWriter) {
        let time = event.bootNanoseconds
        // A refused or killed behaviour folds apart from the same one let through.
        let foldKey = finding.key ^ UInt64(finding.rule.hashValue & 0xffff) ^ (finding.outcome?.foldSalt ?? 0)
        if var fold = folds[foldKey] {
            fold.count += 1
            fold.lastSeen = time
            folds[foldKey] = fold
            return
        }
        scratch.removeAll()
        encoder.encode(event, workload: nil, processes: processes, into: &scratch, newline: false)
        remember(foldKey, Fold(rule: finding.rule, count: 1, reported: 0, firstSeen: time, lastSeen: time,
                               lastReport: time, event: scratch.bytes, workload: workload, startupRule: finding.startupRule,
                               outcome: finding.outcome))
        emit(foldKey, now: time, into: &out)
    }

    /// Syscalls the kernel saw that the profile lacks (read from its bitmap, so there is no
    /// triggering record): each is reported once, and those found together in one line.
    public mutating func reportSyscalls(_ syscalls: [(abi: SyscallABI, number: Int, name: String)], workload: WorkloadIdentity?,
                                        now: UInt64, into out: inout JSONLineWriter) {
        let fresh = syscalls.filter { reportedSyscalls.insert(UInt64($0.abi.rawValue) << 32 | UInt64($0.number)).inserted }
        guard !fresh.isEmpty else { return }
        scratch.removeAll()
        encoder.encodeSyscalls(fresh, into: &scratch)
        let foldKey = 0x5359_0000_0000_0000 | now
        remember(foldKey, Fold(rule: .unexpectedSyscall, count: UInt64(fresh.count), reported: 0, firstSeen: now,
                               lastSeen: now, lastReport: now, event: scratch.bytes, workload: workload))
        emit(foldKey, now: now, into: &out)
    }

    private mutating func remember(_ key: UInt64, _ fold: Fold) {
        if folds.count >= settings.maximumFolds {
            // An eighth at a time, oldest first, preferring behaviours whose repeats were all
            // reported: a tenant with a stream of distinct anomalies pays one sort per 64 of
            // them, not a scan of every fold per anomaly.
            let order = folds.map { (key: $0.key, unreported: $0.value.count > $0.value.reported ? 1 : 0, lastSeen: $0.value.lastSeen) }
                .sorted { ($0.unreported, $0.lastSeen) < ($1.unreported, $1.lastSeen) }
            for doomed in order.prefix(max(1, settings.maximumFolds / 8)) { folds[doomed.key] = nil }
            evictedFolds += UInt64(max(1, settings.maximumFolds / 8))
        }
        folds[key] = fold
    }

    /// Emits the folded repeats whose window has passed, forgets behaviours long idle, and ends
    /// throttling when the bucket has refilled. Call about once a second.
    public mutating func flush(now: UInt64, into out: inout JSONLineWriter) {
        for key in folds.keys {
            guard let fold = folds[key] else { continue }
            if fold.count == fold.reported {
                if now &- fold.lastSeen >= settings.forgetIdleNanoseconds { folds[key] = nil }
                continue
            }
            guard now &- fold.lastReport >= settings.foldWindowNanoseconds else { continue }
            emit(key, now: now, into: &out)
        }
        refill(now: now)
        if throttled && tokens >= settings.burst / 2 {
            throttled = false
            encoder.encodeThrottle(started: false, profile: profile.id, suppressed: suppressed, limitPerSecond: settings.perSecond,
                                   atBoot: now, into: &out)
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
                encoder.encodeThrottle(started: true, profile: profile.id, suppressed: 0, limitPerSecond: settings.perSecond,
                                       atBoot: now, into: &out)
            }
            return
        }
        tokens -= 1
        fold.reported = fold.count
        fold.lastReport = now
        folds[key] = fold
        emitted[fold.rule, default: 0] += 1
        encoder.encodeAnomaly(rule: fold.rule, count: fold.count, firstSeen: fold.firstSeen, lastSeen: fold.lastSeen, profile: profile,
                              workload: fold.workload, event: fold.event, startupRule: fold.startupRule, outcome: fold.outcome,
                              into: &out)
    }
}
