/// What protect mode enforces in the kernel for one stable profile: its exact exec rules (a
/// program outside them is killed at exec) and its egress rules as address prefixes (a connect or
/// datagram outside them is refused). Startup-only rules are included: enforcement holds a
/// container to its whole profile, and `startup-only-behaviour` stays a report.
public struct Enforcement: Sendable, Equatable {
    /// One egress rule as the kernel's LPM trie holds it: port 0 is any port.
    public struct EgressPrefix: Hashable, Sendable {
        public var network: IPNetwork
        public var ipProtocol: UInt16
        public var port: UInt16
    }

    /// `BehaviourHash.exec(exe:parent:)` of every exec rule.
    public var execHashes: Set<UInt64>
    /// The exec rules the kernel cannot match exactly (a pattern, a fileless binary known by its
    /// content): while there is one, no exec is killed for this profile (reported only).
    public var unenforceableExecs: [ExecRule]
    public var egress: Set<EgressPrefix>
    /// The exact file-write rules, as the kernel hashes them: a write open below a model
    /// directory that is none of them kills its process.
    public var fileWrites: Set<KnownBehaviour.FileKey>
    /// File-write rules that are patterns and may reach into a model directory: while there is
    /// one, model writes are reported, not killed (the kernel matches exact paths only).
    public var unenforceableModelWrites: [FileWriteRule]

    /// Execs are killed only when every exec rule can be matched in the kernel.
    public var killsExecs: Bool { unenforceableExecs.isEmpty }
    /// Write opens below model directories are killed only when every rule that could allow
    /// one can be matched in the kernel (and the profile has model paths at all).
    public var killsModelWrites: Bool { hasModelPaths && unenforceableModelWrites.isEmpty }
    private var hasModelPaths: Bool

    /// `runtimeExes`: the binaries a rule's `(runtime)` parent stands for (the kernel sees their paths).
    public init(profile: Profile, runtimeExes: [String] = []) {
        var hashes: Set<UInt64> = []
        var unenforceable: [ExecRule] = []
        for rule in profile.execs {
            if BehaviourKeys.isFilelessRule(rule.exe) || !PathPattern(rule.exe).isExact {
                unenforceable.append(rule)
            } else if rule.parent == BehaviourKeys.runtimeParent {
                for runtime in runtimeExes { hashes.insert(BehaviourHash.exec(exe: rule.exe, parent: runtime)) }
            } else if PathPattern(rule.parent).isExact {
                hashes.insert(BehaviourHash.exec(exe: rule.exe, parent: rule.parent))
            } else {
                unenforceable.append(rule)
            }
        }
        var egress: Set<EgressPrefix> = []
        for rule in profile.egress {
            guard let network = IPNetwork(rule.address), let proto = Destination.protocolNumber(rule.protocol),
                  (0...65535).contains(rule.port) else { continue }
            egress.insert(EgressPrefix(network: network, ipProtocol: proto, port: UInt16(rule.port)))
        }
        execHashes = hashes
        unenforceableExecs = unenforceable
        self.egress = egress
        let modelDirectories = profile.modelPaths.map { PathPattern.fixedDirectory(of: $0) ?? "/" }
        func overlaps(_ a: String, _ b: String) -> Bool { a == "/" || b == "/" || a == b || a.hasPrefix(b + "/") || b.hasPrefix(a + "/") }
        fileWrites = RuleSet(execs: [], fileWrites: profile.fileWrites, egress: []).knownBehaviour(modelReaders: []).files
        unenforceableModelWrites = profile.fileWrites.filter { rule in
            !PathPattern(rule.path).isExact
                && modelDirectories.contains { overlaps($0, PathPattern.fixedDirectory(of: rule.path) ?? "/") }
        }
        hasModelPaths = !profile.modelPaths.isEmpty
    }

    /// Whether the kernel's egress guard lets this destination through (the LPM trie's answer).
    public func allows(_ destination: Destination) -> Bool {
        egress.contains { prefix in
            prefix.ipProtocol == destination.ipProtocol && (prefix.port == 0 || prefix.port == destination.port)
                && prefix.network.contains(destination)
        }
    }

    /// What protect mode does, or would do, about a finding of this event.
    /// Protected, the kernel's word (the event's flags); monitored, the rule's.
    public func outcome(of finding: Finding, event: RawEvent, protecting: Bool) -> Finding.Outcome? {
        if protecting { return event.wasKilled ? .killed : event.wasDenied ? .denied : nil }
        switch finding.rule {
        case .unexpectedEgress, .metadataServiceAccess:
            return .wouldDeny
        case .unexpectedExec:
            return killsExecs && !event.isEntrypoint ? .wouldKill : nil
        case .modelArtifactWrite:
            // the kernel kills after a successful write open, rename, unlink or truncate
            return killsModelWrites && event.fileResult >= 0 ? .wouldKill : nil
        default:
            return nil
        }
    }
}
