/// A path pattern of a profile: components separated by `/`; in a component `*` matches any
/// run of characters but `/`; a component `**` matches any number of components (zero or more).
/// Matching works on bytes and does not allocate, so the detector can run it per event.
public struct PathPattern: Hashable, Sendable, CustomStringConvertible {
    /// The leading components of a pattern before the first that has a wildcard (for a pattern
    /// with none, the file's directory); nil for "/": `/models/**` -> `/models`.
    public static func fixedDirectory(of pattern: String) -> String? {
        var components: [Substring] = []
        for component in pattern.split(separator: "/") {
            if component.contains(where: { "*?[".contains($0) }) { break }
            components.append(component)
        }
        if components.count == pattern.split(separator: "/").count { components.removeLast() }
        return components.isEmpty ? nil : "/" + components.joined(separator: "/")
    }

    public let text: String
    let components: [[UInt8]]
    /// No `*` at all: matching is comparing, and the kernel can match it by hash.
    public let isExact: Bool

    public init(_ text: String) {
        self.text = text
        components = text.split(separator: "/", omittingEmptySubsequences: true).map { Array($0.utf8) }
        isExact = !text.contains("*")
    }

    public var description: String { text }

    public func matches(_ path: String) -> Bool {
        var path = path
        return path.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    public func matches(_ path: UnsafeRawBufferPointer) -> Bool {
        matchFrom(component: 0, path: path, at: skipSlashes(path, 0))
    }

    private func skipSlashes(_ path: UnsafeRawBufferPointer, _ start: Int) -> Int {
        var i = start
        while i < path.count && path[i] == UInt8(ascii: "/") { i += 1 }
        return i
    }

    private func matchFrom(component index: Int, path: UnsafeRawBufferPointer, at start: Int) -> Bool {
        if index == components.count { return start >= path.count }
        let pattern = components[index]
        if pattern.count == 2 && pattern[0] == UInt8(ascii: "*") && pattern[1] == UInt8(ascii: "*") {
            // `**`: the rest may start at this component or any later one.
            var position = start
            while true {
                if matchFrom(component: index + 1, path: path, at: position) { return true }
                if position >= path.count { return false }
                while position < path.count && path[position] != UInt8(ascii: "/") { position += 1 }
                position = skipSlashes(path, position)
            }
        }
        guard start < path.count else { return false }
        var end = start
        while end < path.count && path[end] != UInt8(ascii: "/") { end += 1 }
        guard Self.glob(pattern, UnsafeRawBufferPointer(rebasing: path[start..<end])) else { return false }
        return matchFrom(component: index + 1, path: path, at: skipSlashes(path, end))
    }

    /// `*`-only wildcard match of one component (classic two-pointer backtracking).
    static func glob(_ pattern: [UInt8], _ text: UnsafeRawBufferPointer) -> Bool {
        var p = 0, t = 0
        var star = -1, mark = 0
        while t < text.count {
            if p < pattern.count && pattern[p] != UInt8(ascii: "*") && pattern[p] == text[t] {
                p += 1; t += 1
            } else if p < pattern.count && pattern[p] == UInt8(ascii: "*") {
                star = p; mark = t; p += 1
            } else if star >= 0 {
                p = star + 1; mark += 1; t = mark
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}
