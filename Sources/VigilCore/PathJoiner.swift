/// Joins what the kernel captured for a path — the directory it resolved and the name the
/// process passed — into one absolute path, folding `.` and `..` and repeated slashes lexically.
/// The directory part is already canonical (the kernel walked it), so only the name's own
/// components are folded; a `..` after a symlink inside the name is folded lexically too, which is
/// what the name says, though not always where the kernel went.
public struct PathJoiner: Sendable {
    /// The last joined path.
    public private(set) var buffer: [UInt8] = []

    public init() {
        buffer.reserveCapacity(1024)
    }

    /// Joins into `buffer`, replacing what it held.
    public mutating func join(directory: UnsafeRawBufferPointer, name: UnsafeRawBufferPointer) {
        buffer.removeAll(keepingCapacity: true)
        let absolute = name.first == UInt8(ascii: "/")
        if !absolute {
            append(components: directory)
        }
        append(components: name)
        if buffer.isEmpty {
            buffer.append(UInt8(ascii: "/"))
        }
    }

    private mutating func append(components path: UnsafeRawBufferPointer) {
        var start = 0
        let count = path.count
        while start <= count {
            var end = start
            while end < count && path[end] != UInt8(ascii: "/") { end += 1 }
            let length = end - start
            if length == 0 || (length == 1 && path[start] == UInt8(ascii: ".")) {
                // empty or "." : nothing
            } else if length == 2 && path[start] == UInt8(ascii: ".") && path[start + 1] == UInt8(ascii: ".") {
                if let slash = buffer.lastIndex(of: UInt8(ascii: "/")) {
                    buffer.removeSubrange(slash...)
                }
            } else {
                buffer.append(UInt8(ascii: "/"))
                buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: path[start..<end]))
            }
            start = end + 1
        }
    }
}
