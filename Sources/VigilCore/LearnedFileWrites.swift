/// The file-write rules of a profile being learned (pattern -> operations), kept folded as the
/// stored profile folds them (`Generalizer.collapse`) while they grow, so that what the profile
/// will allow is not new: a framework's worker names its semaphores and scratch files at random
/// (`/dev/shm/sem.IjYcPa`, `/tmp/ylqrznvb`), and without this every worker start brought names
/// that restarted the quiet period, although the stored profile's wildcard allowed each of them.
///
/// A write is filed under the wildcard rule of its directory that allows it for that operation
/// (`rule(for:op:)`); a group that reaches its threshold (`Generalizer.CollapseGroup`) is folded
/// into its wildcard at once (`insert`), not only when the profile is stored.
struct LearnedFileWrites: Sendable {
    private let generalizer: Generalizer
    private(set) var ops: [String: Set<String>] = [:]
    /// Directory -> its wildcard rules: the only rules that can allow another path.
    private var wildcards: [Substring: Set<String>] = [:]
    /// Directory -> every rule of it.
    private var rulesIn: [Substring: Set<String>] = [:]
    /// The rules in each collapse group, and the groups of each rule.
    private var members: [Generalizer.CollapseGroup: Set<String>] = [:]
    private var groupsOf: [String: Set<Generalizer.CollapseGroup>] = [:]

    init(_ rules: [FileWriteRule], generalizer: Generalizer) {
        self.generalizer = generalizer
        for rule in rules { for op in rule.ops { insert(rule.path, op: op) } }
    }

    var count: Int { ops.count }

    func contains(_ rule: String) -> Bool { ops[rule] != nil }

    /// The rule a write of `pattern` (a generalised path) for `op` falls under: a wildcard rule
    /// of its directory that already allows it, or the pattern itself.
    func rule(for pattern: String, op: String) -> String {
        if ops[pattern]?.contains(op) == true { return pattern }
        let covering = wildcards[Self.directory(of: pattern)]?.first { rule in
            ops[rule]?.contains(op) == true && Generalizer.covers(PathPattern(rule), pattern)
        }
        return covering ?? pattern
    }

    /// Adds `op` to `rule`; returns whether the rules allow more than before.
    @discardableResult
    mutating func insert(_ rule: String, op: String) -> Bool {
        guard ops[rule, default: []].insert(op).inserted else { return false }
        place(rule)
        return true
    }

    var rules: [FileWriteRule] { ops.map { FileWriteRule(path: $0.key, ops: $0.value.sorted()) } }

    /// Files a rule in its groups (its operations only grow, so it only joins more); a group
    /// that reaches its threshold becomes its folded rule with every operation of its members.
    /// A wildcard rule first takes the place of the rules of its directory it now allows, as
    /// `collapse` drops them before it counts.
    private mutating func place(_ rule: String) {
        let directory = Self.directory(of: rule)
        if rule.contains("*") && !rule.contains("**"), let allowed = ops[rule] {
            wildcards[directory, default: []].insert(rule)
            let pattern = PathPattern(rule)
            for other in rulesIn[directory] ?? [] where Generalizer.covers(pattern, other) && !generalizer.isModelArtifact(other)
                && allowed.isSuperset(of: ops[other] ?? []) {
                remove(other)
            }
        }
        rulesIn[directory, default: []].insert(rule)
        for group in generalizer.collapseGroups(of: FileWriteRule(path: rule, ops: (ops[rule] ?? []).sorted())) {
            guard groupsOf[rule, default: []].insert(group).inserted else { continue }
            members[group, default: []].insert(rule)
            if let inGroup = members[group], inGroup.count >= group.kind.threshold {
                fold(group)
                return
            }
        }
    }

    private mutating func fold(_ group: Generalizer.CollapseGroup) {
        let folded = members[group] ?? []
        let target = group.foldedPath(Array(folded))
        var allowed = Set<String>()
        for member in folded {
            allowed.formUnion(ops[member] ?? [])
            remove(member)
        }
        ops[target, default: []].formUnion(allowed)
        place(target)
    }

    private mutating func remove(_ rule: String) {
        ops.removeValue(forKey: rule)
        for group in groupsOf.removeValue(forKey: rule) ?? [] { members[group]?.remove(rule) }
        wildcards[Self.directory(of: rule)]?.remove(rule)
        rulesIn[Self.directory(of: rule)]?.remove(rule)
    }

    private static func directory(of path: String) -> Substring {
        path[..<(path.lastIndex(of: "/") ?? path.startIndex)]
    }
}
