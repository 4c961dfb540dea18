/// What protect mode enforces in the kernel for one stable profile: its exact exec rules (a
/// program outside them is killed at exec) and its egress rules as address prefixes (a connect or
/// datagram outside them is refused). Startup-only rules are included: enforcement holds a
/// container to its whole profile, and `startup-only-behaviour` stays a report.
public struct Enforcement: Sendable, Equatable {
    /// One egress rule as the kernel's LPM trie holds it: port 0 is any port.
    public struct EgressPrefix: Hashable, Sendable {
        public var family: UInt16
        public var ipProtocol: UInt16
        public var port: UInt16
        /// 4 bytes (IPv4) or 16 (IPv6), network order.
        public var address: [UInt8]
        public var prefixLength: Int
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
            egress.insert(EgressPrefix(family: network.family, ipProtocol: proto, port: UInt16(rule.port), address: network.bytes,
                                       prefixLength: network.prefixLength))
        }
        execHashes = hashes
        unenforceableExecs = unenforceable
        self.egress = egress
        let modelDirectories = profile.modelPaths.map { PathPattern.fixedDirectory(of: $0) ?? "/" }
        func overlaps(_ a: String, _ b: String) -> Bool { a == "/" || b == "/" || a == b || a.hasPrefix(b + "/") || b.hasPrefix(a + "/") }
        var files: Set<KnownBehaviour.FileKey> = []
        var unenforceableWrites: [FileWriteRule] = []
        for rule in profile.fileWrites {
            if PathPattern(rule.path).isExact {
                let path = BehaviourHash.fnv1a(rule.path)
                for op in rule.ops.compactMap(FileOperation.init(contractName:)) {
                    files.insert(KnownBehaviour.FileKey(kind: BehaviourHash.fileKind(op), hash: path))
                }
            } else if let prefix = PathPattern.fixedDirectory(of: rule.path) ?? Optional("/"),
                      modelDirectories.contains(where: { overlaps($0, prefix) }) {
                unenforceableWrites.append(rule)
            }
        }
        fileWrites = files
        unenforceableModelWrites = unenforceableWrites
        hasModelPaths = !profile.modelPaths.isEmpty
    }

    /// Whether the kernel's egress guard lets this destination through (the LPM trie's answer).
    public func allows(_ destination: Destination) -> Bool {
        let address = destination.addressBytes
        return egress.contains { prefix in
            guard prefix.family == destination.family, prefix.ipProtocol == destination.ipProtocol,
                  prefix.port == 0 || prefix.port == destination.port else { return false }
            var remaining = prefix.prefixLength
            for (i, byte) in prefix.address.enumerated() where remaining > 0 {
                let mask = UInt8(truncatingIfNeeded: 0xff << (8 - min(8, remaining)))
                if address[i] & mask != byte & mask { return false }
                remaining -= 8
            }
            return true
        }
    }

    /// What protect mode does, or would do, about a finding of this event.
    /// Protected, the kernel's word (the event's flags); monitored, the rule's.
    public func outcome(of finding: Finding, event: RawEvent, protecting: Bool) -> Finding.Outcome? {
        if protecting { return event.wasKilled ? .killed : event.wasDenied ? .denied : nil }
        switch finding.rule {
        case .unexpectedEgress:
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
