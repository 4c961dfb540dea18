/// Why the kernel side could not start, worded to say what to do about it.
public struct BPFError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
