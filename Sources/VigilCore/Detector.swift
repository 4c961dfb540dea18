#if canImport(Glibc)
import Glibc
#endif

/// What the detector found wrong with an event.
public enum AnomalyRule: String, Sendable, CaseIterable {
    case unexpectedExec = "unexpected-exec"
    case unexpectedFileWrite = "unexpected-file-write"
    case unexpectedEgress = "unexpected-egress"
    case unexpectedSyscall = "unexpected-syscall"
    case modelArtifactWrite = "model-artifact-write"
    /// A binary with no file behind it (memfd_create, a deleted file) the profile does not have
    /// exactly, name and content.
    case filelessExec = "fileless-exec"
    /// A model file whose content (SHA-256) the profile never saw loaded: weights swapped.
    case modelChanged = "model-changed"
    /// A model file whose content is not among those declared for the workload (`modelDigests`).
    case modelUnverified = "model-unverified"
    /// A model file opened by an executable that never opened one while the profile learned.
    case modelArtifactRead = "model-artifact-read"
    /// Behaviour the profile saw only before its containers served (fetching weights, writing
    /// into the model directory, running the downloader), by a container that serves.
    case startupOnlyBehaviour = "startup-only-behaviour"
    /// A connection to the cloud's instance metadata service (`MetadataServices`) the profile
    /// never learned: asking for the node's cloud credentials.
    case metadataServiceAccess = "metadata-service-access"

    public var severity: String {
        switch self {
        case .modelArtifactWrite, .modelChanged, .modelUnverified, .metadataServiceAccess: "critical"
        case .unexpectedExec, .unexpectedEgress, .filelessExec, .modelArtifactRead, .startupOnlyBehaviour: "high"
        case .unexpectedFileWrite, .unexpectedSyscall: "medium"
        }
    }
}

public struct Finding: Equatable, Sendable {
    public var rule: AnomalyRule
    /// Identifies the behaviour, so that repeats of it fold into one anomaly.
    public var key: UInt64
    /// `startup-only-behaviour`: the rule the behaviour is under (allowed before serving).
    public var startupRule: StartupRule?
    /// What protect mode did (or, in monitor mode, would have done) about it.
    public var outcome: Outcome?

    public enum Outcome: String, Sendable {
        case denied, killed
        case wouldDeny = "deny", wouldKill = "kill"

        /// Protect mode acted (`action` in the anomaly), or monitor mode says what it would have
        /// done (`would_action`).
        public var acted: Bool { self == .denied || self == .killed }

        var foldSalt: UInt64 {
            switch self {
            case .denied: 1 << 32
            case .killed: 2 << 32
            case .wouldDeny: 3 << 32
            case .wouldKill: 4 << 32
            }
        }
    }

    public init(rule: AnomalyRule, key: UInt64, startupRule: StartupRule? = nil, outcome: Outcome? = nil) {
        self.rule = rule
        self.key = key
        self.startupRule = startupRule
        self.outcome = outcome
    }
}

/// Checks events against a profile (monitor mode). Exact behaviour is found by hash — the same
/// hashes the kernel suppresses on — and the rest by pattern; nothing here allocates per event.
/// A container that serves is held to the profile without its startup-only rules.
public struct Detector: Sendable {
    public let profile: Profile
    /// Every rule of the profile.
    private let rules: RuleSet
    /// The rules less the startup-only ones (nil: the profile has no phases).
    private let servingRules: RuleSet?
    private let startupRules: StartupRuleIndex?
    private let modelPaths: [PathPattern]
    public let syscalls: SyscallBitmap
    private var keys = BehaviourKeys()
    private let modelDigests: Set<String>
    private let modelReaders: Set<String>
    private let metadataServices: MetadataServices

    public init(profile: Profile, resolver: SyscallResolver, runtimeExes: [String] = [], metadataServices: MetadataServices = .standard) {
        self.profile = profile
        self.metadataServices = metadataServices
        keys = BehaviourKeys(runtimeExes: runtimeExes)
        modelDigests = Set((profile.models ?? []).map(\.sha256))
        modelReaders = Set(profile.modelReaders ?? [])
        rules = RuleSet(execs: profile.execs, fileWrites: profile.fileWrites, egress: profile.egress)
        if let startup = profile.startupOnly, !startup.isEmpty {
            let kept = startup.subtracted(from: profile)
            servingRules = RuleSet(execs: kept.execs, fileWrites: kept.fileWrites, egress: kept.egress)
            startupRules = StartupRuleIndex(startup)
        } else {
            servingRules = nil
            startupRules = nil
        }
        self.modelPaths = profile.modelPaths.map(PathPattern.init)
        self.syscalls = Self.expectedSyscalls(profile, resolver: resolver)
    }

    /// The profile's syscalls, and for each ABI the workload uses the asynchronous baseline: a
    /// sleep restarted after a signal (restart_syscall) is no more an anomaly than it is a
    /// reason to deny.
    static func expectedSyscalls(_ profile: Profile, resolver: SyscallResolver) -> SyscallBitmap {
        var lists = profile.syscalls
        let baseline = profile.seccomp?.baseline ?? Array(SeccompAllowances.asynchronousBaseline)
        for abi in SyscallABI.allCases {
            lists[abi] += abi == .i386 ? Array(SeccompAllowances.i386Baseline.union(baseline)) : baseline
        }
        return SyscallBitmap(lists, resolver: resolver)
    }

    /// The profile's exact behaviour, for the kernel's known-behaviour maps (patterns, CIDRs and
    /// fileless binaries are checked here only). Startup-only rules are left out: the kernel
    /// does not know whether a container serves, so their events come here to be judged.
    public var knownBehaviour: KnownBehaviour {
        (servingRules ?? rules).knownBehaviour(modelReaders: Set(modelReaders.map(BehaviourHash.text)))
    }

    /// A model file loaded with this content: nil when the profile saw that content loaded
    /// (at any path: a model moved is not a model changed); else the contents the profile knows
    /// at this path (or, when none, every content it knows), for the anomaly.
    public func checkModelReader(_ exe: String) -> Finding? {
        modelReaders.contains(exe) ? nil : Finding(rule: .modelArtifactRead, key: BehaviourHash.text(exe))
    }

    public func checkModel(path: String, sha256: String) -> [String]? {
        if modelDigests.contains(sha256) { return nil }
        let models = profile.models ?? []
        let here = models.filter { $0.path == path }.map(\.sha256)
        return (here.isEmpty ? models.map(\.sha256) : here).sorted()
    }

    /// nil when the event is in the profile. `execDigest`: the content digest of a binary with
    /// no file (see `ProcessTable.Entry.execDigest`). `serving`: the event's container serves, so
    /// behaviour under a startup-only rule is `startup-only-behaviour`, with that rule.
    public mutating func check(_ event: RawEvent, execDigest: String? = nil, serving: Bool = false) -> Finding? {
        guard serving, let servingRules, let startupRules else {
            return named(rules.check(event, execDigest: execDigest, modelPaths: modelPaths, keys: &keys), event)
        }
        // A serving container: what its rules allow is the common case, checked once.
        guard let departure = servingRules.check(event, execDigest: execDigest, modelPaths: modelPaths, keys: &keys) else { return nil }
        if let finding = rules.check(event, execDigest: execDigest, modelPaths: modelPaths, keys: &keys) { return named(finding, event) }
        return Finding(rule: .startupOnlyBehaviour, key: departure.key, startupRule: startupRules.rule(for: event, keys: &keys))
    }

    /// An unlearned destination that is a metadata service is named so (and folds apart).
    private func named(_ finding: Finding?, _ event: RawEvent) -> Finding? {
        guard var finding, finding.rule == .unexpectedEgress, metadataServices.contains(Destination(event)) else { return finding }
        finding.rule = .metadataServiceAccess
        return finding
    }

    /// Syscalls in the kernel's bitmap that the profile does not allow.
    public func unexpectedSyscalls(_ bitmap: SyscallBitmap) -> [(abi: SyscallABI, number: Int)] {
        bitmap.subtracting(syscalls)
    }

    /// The same, with their names (what an anomaly line carries).
    public func unexpectedSyscalls(_ bitmap: SyscallBitmap, namedBy resolver: SyscallResolver)
        -> [(abi: SyscallABI, number: Int, name: String)] {
        unexpectedSyscalls(bitmap).map { ($0.abi, $0.number, resolver.name(of: $0.number, abi: $0.abi) ?? "syscall_\($0.number)") }
    }
}

extension FileOperation {
    public init?(contractName: String) {
        switch contractName {
        case "open_write": self = .openWrite
        case "create": self = .create
        case "truncate": self = .truncate
        case "rename": self = .rename
        case "unlink": self = .unlink
        default: return nil
        }
    }
}
