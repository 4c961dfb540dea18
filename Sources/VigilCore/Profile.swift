import CVigilABI
import Foundation

/// What a workload normally does: the document `vigil learn` writes and `vigil monitor` checks
/// against. Stored as YAML (profiles/profile.schema.json describes it); one file per version.
public struct Profile: Codable, Equatable, Sendable {
    public static let currentAPIVersion = "vigil.dev/v1alpha1"
    public static let kindName = "WorkloadProfile"

    public var apiVersion: String = Profile.currentAPIVersion
    public var kind: String = Profile.kindName
    /// The workload's key: a name given to `vigil learn`, or namespace/kind/owner/container.
    public var workload: String
    /// Starts at 1; a deliberate relearn writes version + 1 and leaves the old one in place.
    public var version: Int
    public var state: LearningState
    public var learning: LearningEvidence
    /// Globs of model artifacts (weights, tokenizers): never generalised, and a write there
    /// that the profile lacks is the critical `model-artifact-write` anomaly.
    public var modelPaths: [String]
    public var execs: [ExecRule]
    public var fileWrites: [FileWriteRule]
    public var egress: [EgressRule]
    /// The syscalls the workload itself made (its container runtime's are not among them).
    public var syscalls: SyscallLists
    /// What the exported seccomp filter allows besides `syscalls`, and why. Filled from
    /// `SeccompAllowances` whenever the profile is learned; nil in a profile written by hand.
    public var seccomp: SeccompAdditions?
    /// The model files the workload loaded while it learned, by content: a load of any other
    /// content afterwards is `model-changed`. Nil (or empty) when none was seen.
    public var models: [ModelRule]?
    /// The executables that opened model files while it learned: afterwards an open of one by any
    /// other is `model-artifact-read` (the first step of stealing the model). Nil: none seen.
    public var modelReaders: [String]?
    /// The rules above (a subset: for a file, some of its operations) that the workload followed
    /// only during startup, before its containers served (first accepted a connection), while it
    /// learned. Once a container serves, behaviour under one of them is `startup-only-behaviour`;
    /// a container that restarts starts up again. Nil: no container served while the profile
    /// learned (a batch job, a worker): one phase, every rule holds throughout.
    public var startupOnly: StartupRules?

    public init(workload: String, version: Int = 1, state: LearningState = .learning, learning: LearningEvidence,
                modelPaths: [String] = [], execs: [ExecRule] = [], fileWrites: [FileWriteRule] = [],
                egress: [EgressRule] = [], syscalls: SyscallLists = SyscallLists(), seccomp: SeccompAdditions? = nil,
                models: [ModelRule]? = nil, modelReaders: [String]? = nil, startupOnly: StartupRules? = nil) {
        self.startupOnly = startupOnly
        self.workload = workload
        self.version = version
        self.state = state
        self.learning = learning
        self.modelPaths = modelPaths
        self.execs = execs
        self.fileWrites = fileWrites
        self.egress = egress
        self.syscalls = syscalls
        self.seccomp = seccomp
        self.models = models
        self.modelReaders = modelReaders
    }
}

/// Rules of a profile seen only before its containers served (`Profile.startupOnly`).
public struct StartupRules: Codable, Equatable, Sendable {
    public var execs: [ExecRule]
    public var fileWrites: [FileWriteRule]
    public var egress: [EgressRule]

    public init(execs: [ExecRule] = [], fileWrites: [FileWriteRule] = [], egress: [EgressRule] = []) {
        self.execs = execs
        self.fileWrites = fileWrites
        self.egress = egress
    }

    public var isEmpty: Bool { execs.isEmpty && fileWrites.isEmpty && egress.isEmpty }

    /// The profile's rules with these taken out (for a file, only the operations listed here):
    /// what a serving container may do.
    public func subtracted(from profile: Profile) -> (execs: [ExecRule], fileWrites: [FileWriteRule], egress: [EgressRule]) {
        let startupExecs = Set(execs), startupEgress = Set(egress)
        var startupOps: [String: Set<String>] = [:]
        for rule in fileWrites { startupOps[rule.path, default: []].formUnion(rule.ops) }
        let files = profile.fileWrites.compactMap { rule -> FileWriteRule? in
            guard let taken = startupOps[rule.path] else { return rule }
            let ops = rule.ops.filter { !taken.contains($0) }
            return ops.isEmpty ? nil : FileWriteRule(path: rule.path, ops: ops)
        }
        return (profile.execs.filter { !startupExecs.contains($0) }, files, profile.egress.filter { !startupEgress.contains($0) })
    }
}

/// A model file loaded while learning: where, and its content's SHA-256 (`sha256:<hex>`).
public struct ModelRule: Codable, Hashable, Sendable, Comparable {
    public var path: String
    public var sha256: String

    public init(path: String, sha256: String) {
        self.path = path
        self.sha256 = sha256
    }

    public static func < (a: ModelRule, b: ModelRule) -> Bool { (a.path, a.sha256) < (b.path, b.sha256) }

    /// `sha256:` and 64 lowercase hex digits.
    public static func isDigest(_ text: String) -> Bool {
        let hex = text.utf8.dropFirst(7)
        return text.hasPrefix("sha256:") && hex.count == 64 && hex.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// The part of a seccomp filter that is not the workload's own behaviour.
public struct SeccompAdditions: Codable, Equatable, Sendable {
    /// The runtimes whose allowance `runtime` carries, each in both no_new_privs modes.
    public var runtimes: [String]
    /// Calls the container runtime makes after it installed the filter, before the entrypoint
    /// runs: measured per runtime (`SeccompAllowances.runtimes`), plus any the kernel saw a
    /// runtime make after the filter while this profile learned.
    public var runtime: [String]
    /// Calls any process may need asynchronously (`SeccompAllowances.asynchronousBaseline`).
    public var baseline: [String]

    public init(runtimes: [String], runtime: [String], baseline: [String]) {
        self.runtimes = runtimes
        self.runtime = runtime
        self.baseline = baseline
    }

    /// Today's allowances, plus runtime calls observed beyond them; `i386`: the workload makes
    /// 32-bit calls too.
    public static func current(observedRuntimeCalls: Set<String> = [], i386: Bool = false) -> SeccompAdditions {
        SeccompAdditions(runtimes: SeccompAllowances.runtimeNames,
                         runtime: SeccompAllowances.allRuntimeSyscalls.union(observedRuntimeCalls).sorted(),
                         baseline: (i386 ? SeccompAllowances.i386Baseline : SeccompAllowances.asynchronousBaseline).sorted())
    }
}

public enum LearningState: String, Codable, Sendable {
    case learning
    case stable
}

public struct LearningEvidence: Codable, Equatable, Sendable {
    public var started: Date
    /// When something not yet in the profile was last seen.
    public var lastNew: Date
    public var stableSince: Date?
    public var events: Int
    /// Distinct containers (cgroups) seen: replicas of one workload merge into one profile.
    public var containers: Int
    /// Seconds: how long to learn at least, and how long nothing new must be seen after that.
    public var minDuration: Double
    public var quietPeriod: Double
    /// The container runtimes (and no_new_privs modes) the workload's containers ran with, as the
    /// agent saw them; nil or empty when learned outside a container runtime (`vigil learn -- CMD`).
    public var runtimes: [ObservedRuntime]?
    /// Containers of the workload that ended while it learned: their shutdown (what a SIGTERM
    /// handler does) is in the profile only if at least one did.
    public var stoppedContainers: Int?
    /// The newest things learning found (at most `NewBehaviour.kept`, newest last): why a profile
    /// is still learning, and what its last minutes brought.
    public var recentlyNew: [NewBehaviour]?

    public init(started: Date, lastNew: Date, stableSince: Date? = nil, events: Int = 0, containers: Int = 0,
                minDuration: Double, quietPeriod: Double, runtimes: [ObservedRuntime]? = nil, stoppedContainers: Int? = nil) {
        self.started = started
        self.lastNew = lastNew
        self.stableSince = stableSince
        self.events = events
        self.containers = containers
        self.minDuration = minDuration
        self.quietPeriod = quietPeriod
        self.runtimes = runtimes
        self.stoppedContainers = stoppedContainers
    }
}

/// Something learning had not seen before: when, of which kind (`exec`, `fileWrite`, `egress`,
/// `syscalls`, `model`, `modelReader`, `serving`), and the rule it added, as the profile says it.
public struct NewBehaviour: Codable, Equatable, Sendable {
    public var at: Date
    public var kind: String
    public var rule: String
    /// How many a profile keeps: enough to see what keeps a workload learning.
    public static let kept = 10

    public init(at: Date, kind: String, rule: String) {
        self.at = at
        self.kind = kind
        self.rule = rule
    }
}

/// A binary the workload runs, with the binary that ran it.
public struct ExecRule: Codable, Hashable, Sendable, Comparable {
    public var exe: String
    public var parent: String

    public init(exe: String, parent: String) {
        self.exe = exe
        self.parent = parent
    }

    public static func < (a: ExecRule, b: ExecRule) -> Bool { (a.exe, a.parent) < (b.exe, b.parent) }
}

/// Paths (exact, or patterns: `*` is one path component or part of one, `**` any depth) and
/// the operations seen on them.
public struct FileWriteRule: Codable, Hashable, Sendable, Comparable {
    public var path: String
    public var ops: [String]

    public init(path: String, ops: [String]) {
        self.path = path
        self.ops = ops
    }

    public static func < (a: FileWriteRule, b: FileWriteRule) -> Bool { a.path < b.path }
}

/// A destination: an address or CIDR, a port (0: any), a protocol.
public struct EgressRule: Codable, Hashable, Sendable, Comparable {
    public var address: String
    public var port: Int
    public var `protocol`: String

    public init(address: String, port: Int, protocol: String) {
        self.address = address
        self.port = port
        self.protocol = `protocol`
    }

    public static func < (a: EgressRule, b: EgressRule) -> Bool {
        (a.address, a.port, a.protocol) < (b.address, b.port, b.protocol)
    }
}

/// Syscall names per ABI, as libseccomp names them.
public struct SyscallLists: Codable, Equatable, Sendable {
    public var x86_64: [String]
    public var x32: [String]
    public var i386: [String]

    public init(x86_64: [String] = [], x32: [String] = [], i386: [String] = []) {
        self.x86_64 = x86_64
        self.x32 = x32
        self.i386 = i386
    }

    public subscript(abi: SyscallABI) -> [String] {
        get {
            switch abi {
            case .x86_64: x86_64
            case .x32: x32
            case .i386: i386
            }
        }
        set {
            switch abi {
            case .x86_64: x86_64 = newValue
            case .x32: x32 = newValue
            case .i386: i386 = newValue
            }
        }
    }
}

/// The syscall tables a process on x86_64 can call through; rows of the kernel's bitmap.
public enum SyscallABI: Int, CaseIterable, Sendable, Codable {
    case x86_64 = 0
    case x32 = 1
    case i386 = 2

    public var name: String {
        switch self {
        case .x86_64: "x86_64"
        case .x32: "x32"
        case .i386: "i386"
        }
    }
}

/// Names syscall numbers and numbers names (libseccomp in VigilSeccomp; a table in tests).
public protocol SyscallResolver: Sendable {
    func name(of number: Int, abi: SyscallABI) -> String?
    func number(of name: String, abi: SyscallABI) -> Int?
}

/// A set of syscall numbers per ABI, as the kernel's bitmap holds them.
public struct SyscallBitmap: Equatable, Sendable {
    /// Syscall numbers from 0 to slots - 1 (vigil_abi.h), as the kernel's bitmaps hold them.
    public static let slots = Int(VIGIL_SYSCALL_SLOTS)
    public var words: [[UInt64]] = Array(repeating: Array(repeating: 0, count: Int(VIGIL_SYSCALL_WORDS)), count: SyscallABI.allCases.count)

    public init() {}

    public init(words: [[UInt64]]) {
        self.words = words
    }

    /// A profile's syscall names as numbers; names the resolver does not know are left out.
    public init(_ lists: SyscallLists, resolver: SyscallResolver) {
        for abi in SyscallABI.allCases {
            for name in lists[abi] {
                if let number = resolver.number(of: name, abi: abi) { insert(number, abi: abi) }
            }
        }
    }

    public func contains(_ number: Int, abi: SyscallABI) -> Bool {
        guard number >= 0 && number < Self.slots else { return false }
        return words[abi.rawValue][number / 64] & (1 << UInt64(number % 64)) != 0
    }

    public mutating func insert(_ number: Int, abi: SyscallABI) {
        guard number >= 0 && number < Self.slots else { return }
        words[abi.rawValue][number / 64] |= 1 << UInt64(number % 64)
    }

    public mutating func formUnion(_ other: SyscallBitmap) {
        for abi in 0..<words.count {
            for word in 0..<words[abi].count { words[abi][word] |= other.words[abi][word] }
        }
    }

    /// Numbers in this set and not in `other`, per ABI.
    public func subtracting(_ other: SyscallBitmap) -> [(abi: SyscallABI, number: Int)] {
        var result: [(SyscallABI, Int)] = []
        for abi in SyscallABI.allCases {
            for word in 0..<words[abi.rawValue].count {
                var bits = words[abi.rawValue][word] & ~other.words[abi.rawValue][word]
                while bits != 0 {
                    let bit = bits.trailingZeroBitCount
                    result.append((abi, word * 64 + bit))
                    bits &= bits - 1
                }
            }
        }
        return result
    }

    public var isEmpty: Bool { words.allSatisfy { $0.allSatisfy { $0 == 0 } } }
}

/// What the kernel recorded for one cgroup: the workload's syscalls, and its runtime's (runc
/// init's) before and after it installed the container's seccomp filter.
public struct CgroupSyscalls: Equatable, Sendable {
    public var workload: SyscallBitmap
    public var runtimeBeforeFilter: SyscallBitmap
    public var runtimeAfterFilter: SyscallBitmap

    public init(workload: SyscallBitmap, runtimeBeforeFilter: SyscallBitmap = SyscallBitmap(),
                runtimeAfterFilter: SyscallBitmap = SyscallBitmap()) {
        self.workload = workload
        self.runtimeBeforeFilter = runtimeBeforeFilter
        self.runtimeAfterFilter = runtimeAfterFilter
    }

    /// Adds what another cgroup of the same workload recorded.
    public mutating func formUnion(_ other: CgroupSyscalls) {
        workload.formUnion(other.workload)
        runtimeBeforeFilter.formUnion(other.runtimeBeforeFilter)
        runtimeAfterFilter.formUnion(other.runtimeAfterFilter)
    }
}
