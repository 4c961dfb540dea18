/// The rules of a profile that containers followed once they served (accepted a connection):
/// what is left of the profile is startup-only (`Profile.startupOnly`). Kept by the learner as it
/// learns, and rebuilt from profiles to merge them (a cluster's nodes, a resumed checkpoint).
struct ServedRules: Sendable {
    /// Whether any container served: without that, the profile has no phases.
    var any = false
    var execs: Set<ExecRule> = []
    /// Path pattern -> operations.
    var fileOps: [String: Set<String>] = [:]
    var destinations: Set<EgressRule> = []

    init() {}

    /// A profile's rules but its startup-only ones. `unphasedServe`: the rules of a profile with
    /// no phases count as served (nothing known to be startup-only can come from it), else none do.
    init(_ profile: Profile, unphasedServe: Bool = false) {
        any = profile.startupOnly != nil
        guard any || unphasedServe else { return }
        let kept = (profile.startupOnly ?? StartupRules()).subtracted(from: profile)
        execs = Set(kept.execs)
        for rule in kept.fileWrites { fileOps[rule.path, default: []].formUnion(rule.ops) }
        destinations = Set(kept.egress)
    }

    mutating func formUnion(_ other: ServedRules) {
        any = any || other.any
        execs.formUnion(other.execs)
        for (path, ops) in other.fileOps { fileOps[path, default: []].formUnion(ops) }
        destinations.formUnion(other.destinations)
    }

    /// The rules of `profile` (generalised and collapsed as stored) that no serving container
    /// followed: a stored rule was followed when it is, or covers, one served.
    func startupRules(of profile: Profile) -> StartupRules {
        let files = profile.fileWrites.compactMap { rule -> FileWriteRule? in
            let pattern = PathPattern(rule.path)
            let ops = rule.ops.filter { op in
                !fileOps.contains { path, ops in ops.contains(op) && (path == rule.path || pattern.matches(path)) }
            }
            return ops.isEmpty ? nil : FileWriteRule(path: rule.path, ops: ops)
        }
        let egress = profile.egress.filter { rule in !destinations.contains { Self.covers(rule, $0) } }
        return StartupRules(execs: profile.execs.filter { !execs.contains($0) }, fileWrites: files, egress: egress)
    }

    /// Whether egress `rule` allows every destination `served` does (the same rule, or its network).
    static func covers(_ rule: EgressRule, _ served: EgressRule) -> Bool {
        if rule == served { return true }
        guard rule.protocol == served.protocol, rule.port == 0 || rule.port == served.port,
              let network = IPNetwork(rule.address), let inner = IPNetwork(served.address),
              inner.prefixLength >= network.prefixLength else { return false }
        return inner.bytes.withUnsafeBytes {
            network.contains(Destination(family: inner.family, ipProtocol: 0, port: 0, address: $0))
        }
    }
}
