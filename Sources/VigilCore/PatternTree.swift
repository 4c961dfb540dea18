/// A profile's file-write patterns compiled into one tree of path components, so that checking a
/// path costs its depth in lookups (plus the wildcard components met on the way), not one match
/// per pattern: a profile of thousands of patterns under one directory (a workload writing under
/// a random temporary directory) must not make each of its events cost thousands of matches, nor
/// let that tenant's volume slow the loop every other tenant's events go through.
struct PatternTree: Sendable {
    private struct Node: Sendable {
        /// The component this node stands for (a literal, a glob with `*`, or `**`).
        var component: [UInt8]
        /// Literal children by the FNV-1a of their component (checked byte for byte).
        var literal: [UInt64: [Int]] = [:]
        var wildcard: [Int] = []
        var globstar: Int?
        /// The operations allowed for paths that end here.
        var ops: Set<FileOperation> = []
    }

    private var nodes = [Node(component: [])]

    init(_ patterns: [(path: PathPattern, ops: Set<FileOperation>)]) {
        for (pattern, ops) in patterns { insert(pattern.components, ops) }
    }

    var isEmpty: Bool { nodes.count == 1 && nodes[0].ops.isEmpty }

    private mutating func insert(_ components: [[UInt8]], _ ops: Set<FileOperation>) {
        var at = 0
        for component in components {
            let star = UInt8(ascii: "*")
            if component == [star, star] {
                if let next = nodes[at].globstar { at = next; continue }
                nodes.append(Node(component: component))
                nodes[at].globstar = nodes.count - 1
            } else if component.contains(star) {
                if let next = nodes[at].wildcard.first(where: { nodes[$0].component == component }) { at = next; continue }
                nodes.append(Node(component: component))
                nodes[at].wildcard.append(nodes.count - 1)
            } else {
                let hash = component.withUnsafeBytes { BehaviourHash.fnv1a($0) }
                if let next = nodes[at].literal[hash]?.first(where: { nodes[$0].component == component }) { at = next; continue }
                nodes.append(Node(component: component))
                nodes[at].literal[hash, default: []].append(nodes.count - 1)
            }
            at = nodes.count - 1
        }
        nodes[at].ops.formUnion(ops)
    }

    /// Whether some pattern allows `op` on `path` (absolute, as events carry it).
    func matches(_ path: UnsafeRawBufferPointer, op: FileOperation) -> Bool {
        match(0, path, Self.skipSlashes(path, 0), op)
    }

    private func match(_ index: Int, _ path: UnsafeRawBufferPointer, _ start: Int, _ op: FileOperation) -> Bool {
        let node = nodes[index]
        // `**` below this node may match no component at all.
        if let globstar = node.globstar, matchGlobstar(globstar, path, start, op) { return true }
        guard start < path.count else { return node.ops.contains(op) }
        var end = start
        while end < path.count && path[end] != UInt8(ascii: "/") { end += 1 }
        let component = UnsafeRawBufferPointer(rebasing: path[start..<end])
        let next = Self.skipSlashes(path, end)
        if let children = node.literal[BehaviourHash.fnv1a(component)] {
            for child in children where nodes[child].component.elementsEqual(component) {
                if match(child, path, next, op) { return true }
            }
        }
        for child in node.wildcard where PathPattern.glob(nodes[child].component, component) {
            if match(child, path, next, op) { return true }
        }
        return false
    }

    /// A `**` node: the rest of the path may continue below it from this component or any later one.
    private func matchGlobstar(_ index: Int, _ path: UnsafeRawBufferPointer, _ start: Int, _ op: FileOperation) -> Bool {
        var position = start
        while true {
            if match(index, path, position, op) { return true }
            if position >= path.count { return false }
            while position < path.count && path[position] != UInt8(ascii: "/") { position += 1 }
            position = Self.skipSlashes(path, position)
        }
    }

    private static func skipSlashes(_ path: UnsafeRawBufferPointer, _ start: Int) -> Int {
        var i = start
        while i < path.count && path[i] == UInt8(ascii: "/") { i += 1 }
        return i
    }
}
