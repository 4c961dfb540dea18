/// What a `DecodingError` says, in words a person can act on: the field (`learning.events`,
/// `egress[0].port`, `syscalls[1].names`) and what is wrong with it.
public struct DecodingProblem: Error, CustomStringConvertible, Sendable {
    public var field: String?
    public var problem: String

    public init(_ error: DecodingError) {
        func path(_ keys: [CodingKey]) -> String? {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            let trimmed = text.hasPrefix(".") ? String(text.dropFirst()) : text
            return trimmed.isEmpty ? nil : trimmed.replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let context):
            (field, problem) = (path(context.codingPath), "expected \(Self.typeName(type)): \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            (field, problem) = (path(context.codingPath), "expected \(Self.typeName(type)), found nothing")
        case .keyNotFound(let key, let context):
            (field, problem) = (path(context.codingPath + [key]), "is missing")
        case .dataCorrupted(let context):
            (field, problem) = (path(context.codingPath), context.debugDescription)
        @unknown default:
            (field, problem) = (nil, "\(error)")
        }
    }

    public var description: String { field.map { "field '\($0)': \(problem)" } ?? problem }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int32.Type, is UInt32.Type, is Int64.Type, is UInt64.Type: "an integer"
        case is Double.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default: "\(type)"
        }
    }
}
