import Foundation
import VigilAgent

/// Collects the JSON lines a pipeline prints.
public final class MemorySink: EventSink {
    public private(set) var data = Data()

    public init() {}

    public func write(_ lines: UnsafeRawBufferPointer) {
        data.append(contentsOf: lines)
    }

    public func flush() {}

    public func removeAll() {
        data.removeAll(keepingCapacity: true)
    }

    public var objects: [[String: Any]] {
        get throws {
            try data.split(separator: UInt8(ascii: "\n")).map { line in
                guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw TestSupportError(description: "not a JSON object: \(String(decoding: line, as: UTF8.self))")
                }
                return object
            }
        }
    }

    /// The lines of one kind (`anomaly`, `profile.state`, ...).
    public func objects(kind: String) throws -> [[String: Any]] {
        try objects.filter { $0["kind"] as? String == kind }
    }
}

extension Dictionary where Key == String, Value == Any {
    /// A value by dotted path: `object[path: "workload.pod"]`.
    public subscript(path path: String) -> Any? {
        var current: Any? = self
        for part in path.split(separator: ".") {
            current = (current as? [String: Any])?[String(part)]
        }
        return current
    }
}
