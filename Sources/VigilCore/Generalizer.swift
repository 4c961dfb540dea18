/// Turns concrete paths into the patterns a profile keeps, so that what changes from run to run
/// (temporary names, pids, hashes, UUIDs, numbered files) does not look new each time.
///
/// Rules, applied to each path component, in order:
/// 1. `/proc/<pid>/…` and `/proc/self/…`, `/proc/thread-self/…` become `/proc/*/…`.
/// 2. A UUID (8-4-4-4-12 hex digits) becomes `*`.
/// 3. A run of 8 or more hex digits that has both a digit and a letter (hashes, container ids)
///    becomes `*`.
/// 4. A temporary name — `tmp` followed by 4 or more letters, digits or `_` (Python's tempfile,
///    mktemp) — becomes `tmp*`; a `.XXXXXX` suffix of 6 letters and digits with at least one digit
///    (mkstemp) becomes `.*`.
/// 5. Every run of decimal digits becomes `*` (numbered files: `checkpoint-1200.pt` →
///    `checkpoint-*.pt`, `log.3` → `log.*`) — in written paths, not in executables, whose
///    version numbers (`python3.11`) are part of what they are.
/// Then over the whole profile (`collapse`): a directory with 8 or more distinct children that
/// share an extension (or have none) becomes `dir/*.ext` (or `dir/*`); a directory with 3 or
/// more distinct files that were created and removed (transient: scratch files, probes,
/// semaphores) becomes one rule for their operations, `dir/<shared start>*<shared end>`; and a
/// rule that another rule of its directory already allows is dropped (`withoutCoveredRules`).
/// Paths under a model-artifact glob are kept exactly as they are.
public struct Generalizer: Sendable {
    public let modelPaths: [PathPattern]
    public static let collapseThreshold = 8

    public init(modelPaths: [String]) {
        self.modelPaths = modelPaths.map(PathPattern.init)
    }

    public func isModelArtifact(_ path: String) -> Bool {
        modelPaths.contains { $0.matches(path) }
    }

    /// A binary's path: rules 1-4 (a temporary script's name varies; a version number does not).
    public func generalizeExecutable(_ path: String) -> String {
        generalize(path, numberedNames: false)
    }

    public func generalize(_ path: String, numberedNames: Bool = true) -> String {
        if isModelArtifact(path) { return path }
        var components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if components.count >= 2 && components[0] == "proc"
            && (components[1].allSatisfy(\.isNumber) || components[1] == "self" || components[1] == "thread-self") {
            components[1] = "*"
        }
        let generalized = components.map { $0 == "*" ? $0 : Self.generalizeComponent($0, numberedNames: numberedNames) }
        return "/" + generalized.joined(separator: "/")
    }

    static func generalizeComponent(_ component: String, numberedNames: Bool = true) -> String {
        var chars = Array(component.utf8)
        chars = replaceUUIDs(chars)
        chars = replaceHexRuns(chars)
        chars = replaceTemporaryNames(chars)
        if numberedNames { chars = replaceDigitRuns(chars) }
        return String(decoding: collapseStars(chars), as: UTF8.self)
    }

    private static func isHex(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)
    }
    private static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
    private static func isAlnum(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90)
    }

    static func replaceUUIDs(_ s: [UInt8]) -> [UInt8] {
        let groups = [8, 4, 4, 4, 12]
        var out: [UInt8] = []
        var i = 0
        outer: while i < s.count {
            var j = i
            var ok = true
            for (g, length) in groups.enumerated() {
                for _ in 0..<length {
                    guard j < s.count, isHex(s[j]) else { ok = false; break }
                    j += 1
                }
                if !ok { break }
                if g < groups.count - 1 {
                    guard j < s.count, s[j] == UInt8(ascii: "-") else { ok = false; break }
                    j += 1
                }
            }
            if ok {
                out.append(UInt8(ascii: "*"))
                i = j
                continue outer
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    static func replaceHexRuns(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            var j = i
            var digit = false, letter = false
            while j < s.count && isHex(s[j]) {
                if isDigit(s[j]) { digit = true } else { letter = true }
                j += 1
            }
            // A run bounded by non-alphanumerics (or the ends): not the middle of a word.
            let bounded = (i == 0 || !isAlnum(s[i - 1])) && (j == s.count || !isAlnum(s[j]))
            if j - i >= 8 && digit && letter && bounded {
                out.append(UInt8(ascii: "*"))
                i = j
            } else if j > i {
                out.append(contentsOf: s[i..<j])
                i = j
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    static func replaceTemporaryNames(_ s: [UInt8]) -> [UInt8] {
        var out = s
        if out.count >= 7, out[0..<3] == [116, 109, 112] { // "tmp"
            var j = 3
            while j < out.count && (isAlnum(out[j]) || out[j] == UInt8(ascii: "_")) { j += 1 }
            if j - 3 >= 4 { out = Array("tmp*".utf8) + out[j...] }
        }
        if let dot = out.lastIndex(of: UInt8(ascii: ".")), out.count - dot - 1 == 6 {
            let suffix = out[(dot + 1)...]
            if suffix.allSatisfy(isAlnum) && suffix.contains(where: isDigit) && suffix.contains(where: { !isDigit($0) }) {
                out = Array(out[...dot]) + [UInt8(ascii: "*")]
            }
        }
        return out
    }

    static func replaceDigitRuns(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var inDigits = false
        for c in s {
            if isDigit(c) {
                if !inDigits { out.append(UInt8(ascii: "*")) }
                inDigits = true
            } else {
                out.append(c)
                inDigits = false
            }
        }
        return out
    }

    static func collapseStars(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for c in s where !(c == UInt8(ascii: "*") && out.last == UInt8(ascii: "*")) { out.append(c) }
        return out
    }

    /// Folds directories with many children of one shape into one wildcard rule, and a
    /// directory's transient files into one; a rule another allows goes before each fold, so
    /// it is never counted.
    public func collapse(_ rules: [FileWriteRule]) -> [FileWriteRule] {
        var result = withoutCoveredRules(rules)
        for kind in CollapseGroup.Kind.allCases {
            var groups: [CollapseGroup: [FileWriteRule]] = [:]
            var kept: [FileWriteRule] = []
            for rule in result {
                if let group = collapseGroups(of: rule).first(where: { $0.kind == kind }) {
                    groups[group, default: []].append(rule)
                } else {
                    kept.append(rule)
                }
            }
            for (group, members) in groups {
                if members.count >= kind.threshold {
                    kept.append(FileWriteRule(path: group.foldedPath(members.map(\.path)), ops: Set(members.flatMap(\.ops)).sorted()))
                } else {
                    kept.append(contentsOf: members)
                }
            }
            result = withoutCoveredRules(kept)
        }
        return result.sorted()
    }

    /// A set of rules `collapse` folds into one wildcard rule once it has `kind.threshold` members.
    struct CollapseGroup: Hashable, Sendable {
        enum Kind: CaseIterable, Sendable {
            /// Children of a directory with one extension (or none): `dir/*.ext`, `dir/*`.
            case shape
            /// Files the workload created and removed in a directory: `dir/<what they share>*<…>`.
            case transient

            var threshold: Int {
                switch self {
                case .shape: Generalizer.collapseThreshold
                case .transient: Generalizer.transientThreshold
                }
            }
        }
        var kind: Kind
        /// The directory, and for a shape its `*.ext`: `/cache/*.json`, `/tmp/*`.
        var key: String

        /// The rule the members become: a shape's key; for transient files, the directory and
        /// what every member's name begins and ends with around a `*` (`sem.IjYcPa`,
        /// `sem.joblib-*-x`, `sem.*` -> `sem.*`; `ylqrznvb`, `omxlxd_*`, `k*_vq*ab` -> `*`), so
        /// that one family of scratch names does not allow every name of the directory.
        func foldedPath(_ members: [String]) -> String {
            guard kind == .transient, let slash = key.lastIndex(of: "/") else { return key }
            let names = members.map { Array($0[$0.index(after: $0.lastIndex(of: "/") ?? $0.startIndex)...]) }
            let heads = names.map { $0.prefix { $0 != "*" } }
            let tails = names.map { name in name.lastIndex(of: "*").map { name[(name.index(after: $0))...] } ?? name[...] }
            var head = heads.first.map(Array.init) ?? []
            for other in heads.dropFirst() { head = Array(zip(head, other).prefix { $0.0 == $0.1 }.map(\.0)) }
            var tail = tails.first.map { Array($0.reversed()) } ?? []
            for other in tails.dropFirst() { tail = Array(zip(tail, other.reversed()).prefix { $0.0 == $0.1 }.map(\.0)) }
            // A name without `*` gives both ends from the same characters: they must not overlap.
            let shortest = names.filter { !$0.contains("*") }.map(\.count).min() ?? Int.max
            if head.count + tail.count > shortest { tail = Array(tail.prefix(max(0, shortest - head.count))) }
            return String(key[...slash]) + String(head) + "*" + String(tail.reversed())
        }
    }

    /// Distinct files created and removed in one directory that fold into one rule for those
    /// operations: scratch files (Python's `tempfile` probes each directory it may use with a
    /// random name at every process start; semaphores, locks) are named at random, and how many
    /// of them a learning run sees depends on how many processes started, not on what the
    /// workload does. What a scratch file becomes (an exec, a rename into place) is judged by
    /// its own rule.
    public static let transientThreshold = 3

    /// The groups a rule is folded by; none for what is never folded (`**` patterns, model artifacts).
    func collapseGroups(of rule: FileWriteRule) -> [CollapseGroup] {
        guard !rule.path.contains("**"), !isModelArtifact(rule.path) else { return [] }
        let components = rule.path.split(separator: "/")
        let base = components.dropLast().map { "/" + $0 }.joined()
        let ext = Self.extensionOf(rule.path)
        var groups = [CollapseGroup(kind: .shape, key: base + "/*" + (ext.isEmpty ? "" : "." + ext))]
        if rule.ops.contains("create") && rule.ops.contains("unlink") { groups.append(CollapseGroup(kind: .transient, key: base + "/*")) }
        return groups
    }

    /// Whether `pattern` (a rule's wildcard pattern) allows the path or pattern `path`: sound
    /// for patterns because a `*` in `path` can only be matched by a `*` of `pattern`.
    static func covers(_ pattern: PathPattern, _ path: String) -> Bool {
        pattern.text != path && !pattern.isExact && !pattern.text.contains("**") && pattern.matches(path)
    }

    /// Drops each rule another rule of its directory already allows (its pattern matches the
    /// rule's path, wildcards included, for at least its operations): a framework's random names
    /// (`/dev/shm/sem.IjYcPa` beside `/dev/shm/sem.*`) leave one rule, not one per name the
    /// learning run happened to see. Sound because a `*` in the covered path can only have been
    /// matched by a `*` of the covering one. Model artifacts are kept as they are.
    func withoutCoveredRules(_ rules: [FileWriteRule]) -> [FileWriteRule] {
        var byDirectory: [Substring: [FileWriteRule]] = [:]
        for rule in rules { byDirectory[rule.path[..<(rule.path.lastIndex(of: "/") ?? rule.path.startIndex)], default: []].append(rule) }
        var kept: [FileWriteRule] = []
        for group in byDirectory.values {
            let covering = group.filter { $0.path.contains("*") && !$0.path.contains("**") }.map { (PathPattern($0.path), Set($0.ops)) }
            for rule in group {
                let isCovered = !isModelArtifact(rule.path) && covering.contains { pattern, ops in
                    Self.covers(pattern, rule.path) && ops.isSuperset(of: rule.ops)
                }
                if !isCovered { kept.append(rule) }
            }
        }
        return kept
    }

    private static func extensionOf(_ path: String) -> String {
        guard let last = path.split(separator: "/").last, let dot = last.lastIndex(of: "."), dot != last.startIndex else { return "" }
        return String(last[last.index(after: dot)...])
    }
}
