/// One set of execs, file writes and destinations, indexed to match events without allocating:
/// exact rules by hash (the hashes the kernel suppresses on), the rest by pattern.
struct RuleSet: Sendable {
    private let execHashes: Set<UInt64>
    private let execPatterns: [(exe: PathPattern, parent: String)]
    /// Fileless binaries, by name and content: matched exactly, nothing else.
    private let filelessExecs: Set<ExecRule>
    private let fileHashes: Set<UInt64>
    /// Exact file rules, as the kernel's known-behaviour keys.
    private let exactFiles: Set<KnownBehaviour.FileKey>
    /// The file patterns as one tree of components (`PatternTree`).
    private let filePatterns: PatternTree
    private let destinations: Set<Destination>
    private let networks: [(network: IPNetwork, port: UInt16, ipProtocol: UInt16)]

    init(execs: [ExecRule], fileWrites: [FileWriteRule], egress: [EgressRule]) {
        var execHashes: Set<UInt64> = []
        var execPatterns: [(PathPattern, String)] = []
        var filelessExecs: Set<ExecRule> = []
        for rule in execs {
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
        var exactFiles: Set<KnownBehaviour.FileKey> = []
        var filePatterns: [(path: PathPattern, ops: Set<FileOperation>)] = []
        for rule in fileWrites {
            let ops = Set(rule.ops.compactMap(FileOperation.init(contractName:)))
            let pattern = PathPattern(rule.path)
            if pattern.isExact {
                let path = BehaviourHash.text(rule.path)
                for op in ops {
                    fileHashes.insert(BehaviourHash.fileWrite(path: path, op: op))
                    exactFiles.insert(KnownBehaviour.FileKey(kind: BehaviourHash.fileKind(op), hash: path))
                }
            } else {
                filePatterns.append((pattern, ops))
            }
        }
        var destinations: Set<Destination> = []
        var networks: [(IPNetwork, UInt16, UInt16)] = []
        for rule in egress {
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
        self.exactFiles = exactFiles
        self.filePatterns = PatternTree(filePatterns)
        self.destinations = destinations
        self.networks = networks
    }

    func knownBehaviour(modelReaders: Set<UInt64>) -> KnownBehaviour {
        KnownBehaviour(execHashes: execHashes, files: exactFiles, destinations: destinations, modelReaders: modelReaders)
    }

    /// nil when the event is under one of the rules; a write the rules lack under `modelPaths`
    /// is `model-artifact-write`.
    func check(_ event: RawEvent, execDigest: String?, modelPaths: [PathPattern], keys: inout BehaviourKeys) -> Finding? {
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
                let hash = BehaviourHash.fileWrite(path: BehaviourHash.text(bytes), op: op)
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
}

/// The profile rule a startup-only behaviour is under, as the anomaly names it.
public enum StartupRule: Equatable, Sendable {
    case exec(ExecRule)
    case fileWrite(FileWriteRule)
    case egress(EgressRule)
}

/// A profile's startup-only rules, to name the one an event is under.
struct StartupRuleIndex: Sendable {
    private let execs: [(rule: ExecRule, pattern: PathPattern)]
    private let fileWrites: [(rule: FileWriteRule, pattern: PathPattern, ops: Set<FileOperation>)]
    private let egress: [(rule: EgressRule, set: RuleSet)]

    init(_ startup: StartupRules) {
        execs = startup.execs.map { ($0, PathPattern($0.exe)) }
        fileWrites = startup.fileWrites.map { ($0, PathPattern($0.path), Set($0.ops.compactMap(FileOperation.init(contractName:)))) }
        egress = startup.egress.map { ($0, RuleSet(execs: [], fileWrites: [], egress: [$0])) }
    }

    func rule(for event: RawEvent, keys: inout BehaviourKeys) -> StartupRule? {
        switch event.kind {
        case .exec:
            let parent = keys.parentName(event)
            return execs.first { $0.pattern.matches(event.exe) && $0.rule.parent == parent }.map { .exec($0.rule) }
        case .file:
            guard let op = event.fileOperation else { return nil }
            let path = keys.filePath(event)
            return path.withUnsafeBytes { bytes in
                fileWrites.first { $0.ops.contains(op) && $0.pattern.matches(bytes) }.map { .fileWrite($0.rule) }
            }
        case .network:
            return egress.first { $0.set.check(event, execDigest: nil, modelPaths: [], keys: &keys) == nil }.map { .egress($0.rule) }
        case .exit, .cgroup:
            return nil
        }
    }
}
