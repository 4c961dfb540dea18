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

    /// Execs are killed only when every exec rule can be matched in the kernel.
    public var killsExecs: Bool { unenforceableExecs.isEmpty }

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
    public func outcome(of finding: Finding, event: RawEvent, protecting: Bool) -> Finding.Outcome? {
        switch finding.rule {
        case .unexpectedEgress:
            if protecting { return event.wasDenied ? .denied : nil }
            return .wouldDeny
        case .unexpectedExec:
            if protecting { return event.wasKilled ? .killed : nil }
            return killsExecs && !event.isEntrypoint ? .wouldKill : nil
        default:
            return nil
        }
    }
}
