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
/// share an extension (or have none) becomes `dir/*.ext` (or `dir/*`); and a rule that another
/// rule of its directory already allows is dropped (`withoutCoveredRules`).
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

    /// Folds directories with many children of one shape into one wildcard rule.
    public func collapse(_ rules: [FileWriteRule]) -> [FileWriteRule] {
        var byDirectory: [String: [FileWriteRule]] = [:]
        for rule in rules {
            let directory = rule.path.split(separator: "/").dropLast().joined(separator: "/")
            byDirectory["/" + directory, default: []].append(rule)
        }
        var result: [FileWriteRule] = []
        for (directory, children) in byDirectory {
            let byExtension = Dictionary(grouping: children) { Self.extensionOf($0.path) }
            for (ext, group) in byExtension {
                let collapsible = group.filter { !$0.path.contains("**") && !isModelArtifact($0.path) }
                if collapsible.count >= Self.collapseThreshold {
                    let ops = Set(collapsible.flatMap(\.ops)).sorted()
                    let base = directory == "/" ? "" : directory
                    result.append(FileWriteRule(path: base + "/*" + (ext.isEmpty ? "" : "." + ext), ops: ops))
                    let collapsed = Set(collapsible)
                    result.append(contentsOf: group.filter { !collapsed.contains($0) })
                } else {
                    result.append(contentsOf: group)
                }
            }
        }
        return withoutCoveredRules(result).sorted()
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
                    pattern.text != rule.path && pattern.matches(rule.path) && ops.isSuperset(of: rule.ops)
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
