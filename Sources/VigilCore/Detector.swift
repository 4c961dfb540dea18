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

    public var severity: String {
        switch self {
        case .modelArtifactWrite, .modelChanged, .modelUnverified: "critical"
        case .unexpectedExec, .unexpectedEgress, .filelessExec, .modelArtifactRead: "high"
        case .unexpectedFileWrite, .unexpectedSyscall: "medium"
        }
    }
}

public struct Finding: Equatable, Sendable {
    public var rule: AnomalyRule
    /// Identifies the behaviour, so that repeats of it fold into one anomaly.
    public var key: UInt64
}

/// Checks events against a profile (monitor mode). Exact behaviour is found by hash — the same
/// hashes the kernel suppresses on — and the rest by pattern; nothing here allocates per event.
public struct Detector: Sendable {
    public let profile: Profile
    private let execHashes: Set<UInt64>
    private let execPatterns: [(exe: PathPattern, parent: String)]
    /// Fileless binaries the profile learned, by name and content: matched exactly, nothing else.
    private let filelessExecs: Set<ExecRule>
    private let fileHashes: Set<UInt64>
    /// The profile's file patterns as one tree of components (`PatternTree`).
    private let filePatterns: PatternTree
    private let destinations: Set<Destination>
    private let networks: [(network: IPNetwork, port: UInt16, ipProtocol: UInt16)]
    private let modelPaths: [PathPattern]
    public let syscalls: SyscallBitmap
    private var keys = BehaviourKeys()
    private let modelDigests: Set<String>
    private let modelReaders: Set<String>

    public init(profile: Profile, resolver: SyscallResolver, runtimeExes: [String] = []) {
        self.profile = profile
        keys = BehaviourKeys(runtimeExes: runtimeExes)
        modelDigests = Set((profile.models ?? []).map(\.sha256))
        modelReaders = Set(profile.modelReaders ?? [])
        var execHashes: Set<UInt64> = []
        var execPatterns: [(PathPattern, String)] = []
        var filelessExecs: Set<ExecRule> = []
        for rule in profile.execs {
            if BehaviourKeys.isFilelessRule(rule.exe) {
                filelessExecs.insert(rule)
                continue
            }
            let pattern = PathPattern(rule.exe)
            if pattern.isExact {
                execHashes.insert(BehaviourHash.exec(exe: rule.exe, parent: rule.parent))
            } else {
                execPatterns.append((pattern, rule.parent))
            }
        }
        var fileHashes: Set<UInt64> = []
        var filePatterns: [(path: PathPattern, ops: Set<FileOperation>)] = []
        for rule in profile.fileWrites {
            let ops = Set(rule.ops.compactMap(FileOperation.init(contractName:)))
            let pattern = PathPattern(rule.path)
            if pattern.isExact {
                for op in ops { fileHashes.insert(BehaviourHash.fileWrite(path: BehaviourHash.fnv1a(rule.path), op: op)) }
            } else {
                filePatterns.append((pattern, ops))
            }
        }
        var destinations: Set<Destination> = []
        var networks: [(IPNetwork, UInt16, UInt16)] = []
        for rule in profile.egress {
            guard let network = IPNetwork(rule.address), let proto = Destination.protocolNumber(rule.protocol) else { continue }
            if network.prefixLength == network.bytes.count * 8 && rule.port != 0 {
                destinations.insert(network.bytes.withUnsafeBytes {
                    Destination(family: network.family, ipProtocol: proto, port: UInt16(rule.port), address: $0)
                })
            } else {
                networks.append((network, UInt16(rule.port), proto))
            }
        }
        self.execHashes = execHashes
        self.execPatterns = execPatterns
        self.filelessExecs = filelessExecs
        self.fileHashes = fileHashes
        self.filePatterns = PatternTree(filePatterns)
        self.destinations = destinations
        self.networks = networks
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
    /// fileless binaries are checked here only).
    public var knownBehaviour: KnownBehaviour {
        var files: Set<KnownBehaviour.FileKey> = []
        for rule in profile.fileWrites where PathPattern(rule.path).isExact {
            for op in rule.ops.compactMap(FileOperation.init(contractName:)) {
                files.insert(KnownBehaviour.FileKey(kind: BehaviourHash.fileKind(op), hash: BehaviourHash.fnv1a(rule.path)))
            }
        }
        return KnownBehaviour(execHashes: execHashes, files: files, destinations: destinations,
                              modelReaders: Set(modelReaders.map(BehaviourHash.fnv1a)))
    }

    /// A model file loaded with this content: nil when the profile saw that content loaded
    /// (at any path: a model moved is not a model changed); else the contents the profile knows
    /// at this path (or, when none, every content it knows), for the anomaly.
    public func checkModelReader(_ exe: String) -> Finding? {
        modelReaders.contains(exe) ? nil : Finding(rule: .modelArtifactRead, key: BehaviourHash.fnv1a(exe))
    }

    public func checkModel(path: String, sha256: String) -> [String]? {
        if modelDigests.contains(sha256) { return nil }
        let models = profile.models ?? []
        let here = models.filter { $0.path == path }.map(\.sha256)
        return (here.isEmpty ? models.map(\.sha256) : here).sorted()
    }

    /// nil when the event is in the profile. `execDigest`: the content digest of a binary with
    /// no file (see `ProcessTable.Entry.execDigest`).
    public mutating func check(_ event: RawEvent, execDigest: String? = nil) -> Finding? {
        switch event.kind {
        case .exec where event.exeHasNoFile:
            let exe = BehaviourKeys.filelessExe(event, digest: execDigest)
            if execDigest != nil, filelessExecs.contains(ExecRule(exe: exe, parent: keys.parentName(event))) { return nil }
            return Finding(rule: .filelessExec, key: keys.filelessExecHash(exe, event))
        case .exec:
            let hash = keys.execHash(event)
            if execHashes.contains(hash) { return nil }
            for (exe, expectedParent) in execPatterns where exe.matches(event.exe) {
                if keys.parentName(event) == expectedParent { return nil }
            }
            return Finding(rule: .unexpectedExec, key: hash)
        case .file:
            // Model reads are checked by content once hashed (`checkModel`), not here.
            guard let op = event.fileOperation, op != .readModel else { return nil }
            let path = keys.filePath(event)
            return path.withUnsafeBytes { bytes in
                let hash = BehaviourHash.fileWrite(path: BehaviourHash.fnv1a(bytes), op: op)
                if fileHashes.contains(hash) { return nil }
                if modelPaths.contains(where: { $0.matches(bytes) }) {
                    return Finding(rule: .modelArtifactWrite, key: hash)
                }
                return filePatterns.matches(bytes, op: op) ? nil : Finding(rule: .unexpectedFileWrite, key: hash)
            }
        case .network:
            let destination = Destination(event)
            if destinations.contains(destination) { return nil }
            for (network, port, proto) in networks
            where (port == 0 || port == destination.port) && proto == destination.ipProtocol && network.contains(destination) {
                return nil
            }
            return Finding(rule: .unexpectedEgress, key: UInt64(truncatingIfNeeded: destination.hashValue))
        case .exit, .cgroup:
            return nil
        }
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
