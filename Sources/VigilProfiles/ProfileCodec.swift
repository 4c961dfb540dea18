import Foundation
import VigilCore
import Yams

/// YAML <-> Profile, with the checks a hand-edited file needs: the API version first, then
/// the shape (types, required fields), then the values (operations, addresses, ports).
public enum ProfileCodec {
    private struct Header: Decodable {
        var apiVersion: String?
        var kind: String?
    }

    public static func encode(_ profile: Profile) throws -> String {
        "# Vigil workload profile. Schema: profiles/profile.schema.json\n" + (try YAMLEncoder().encode(profile))
    }

    public static func decode(_ text: String, file: String) throws -> Profile {
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ProfileError(file: file, problem: "is empty")
        }
        let header = try decodeReportingFields(Header.self, from: text, file: file)
        guard let apiVersion = header.apiVersion else {
            throw ProfileError(file: file, field: "apiVersion", problem: "is missing (expected \(Profile.currentAPIVersion))")
        }
        guard apiVersion == Profile.currentAPIVersion else {
            throw ProfileError(file: file, field: "apiVersion",
                               problem: "unsupported version '\(apiVersion)': this vigil reads \(Profile.currentAPIVersion)")
        }
        guard header.kind == Profile.kindName else {
            throw ProfileError(file: file, field: "kind", problem: "is '\(header.kind ?? "missing")', expected \(Profile.kindName)")
        }
        let profile = try decodeReportingFields(Profile.self, from: text, file: file)
        try validate(profile, file: file)
        return profile
    }

    /// Decodes, turning a scanner error into "not valid YAML" and a shape error into the field
    /// that has it.
    private static func decodeReportingFields<T: Decodable>(_ type: T.Type, from text: String, file: String) throws -> T {
        do {
            return try YAMLDecoder().decode(type, from: text)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty {
                throw ProfileError(file: file, problem: "is not valid YAML: \(describe(error))")
            }
            let (field, problem) = describe(decoding: error)
            throw ProfileError(file: file, field: field, problem: problem)
        } catch {
            throw ProfileError(file: file, problem: "is not valid YAML: \(describe(error))")
        }
    }

    static func validate(_ profile: Profile, file: String) throws {
        guard profile.version >= 1 else {
            throw ProfileError(file: file, field: "version", problem: "must be 1 or more, is \(profile.version)")
        }
        guard !profile.workload.isEmpty else {
            throw ProfileError(file: file, field: "workload", problem: "is empty")
        }
        for (i, rule) in profile.fileWrites.enumerated() {
            guard rule.path.hasPrefix("/") else {
                throw ProfileError(file: file, field: "fileWrites[\(i)].path", problem: "'\(rule.path)' is not an absolute path")
            }
            for op in rule.ops where FileOperation(contractName: op) == nil {
                throw ProfileError(file: file, field: "fileWrites[\(i)].ops",
                                   problem: "unknown operation '\(op)' (open_write, create, truncate, rename, unlink)")
            }
        }
        for (i, rule) in profile.egress.enumerated() {
            guard IPNetwork(rule.address) != nil else {
                throw ProfileError(file: file, field: "egress[\(i)].address", problem: "'\(rule.address)' is not an IP address or CIDR")
            }
            guard (0...65535).contains(rule.port) else {
                throw ProfileError(file: file, field: "egress[\(i)].port", problem: "\(rule.port) is not a port (0-65535; 0 is any)")
            }
            guard Destination.protocolNumber(rule.protocol) != nil else {
                throw ProfileError(file: file, field: "egress[\(i)].protocol", problem: "unknown protocol '\(rule.protocol)'")
            }
        }
        for (i, rule) in profile.execs.enumerated() where !rule.exe.hasPrefix("/") {
            throw ProfileError(file: file, field: "execs[\(i)].exe", problem: "'\(rule.exe)' is not an absolute path")
        }
    }

    /// The field a decoding error is about (`learning.events`, `egress[0].port`) and what is wrong.
    public static func describe(decoding error: DecodingError) -> (field: String?, problem: String) {
        func path(_ keys: [CodingKey]) -> String? {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            let trimmed = text.hasPrefix(".") ? String(text.dropFirst()) : text
            return trimmed.isEmpty ? nil : trimmed.replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return (path(context.codingPath), "expected \(typeName(type)): \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            return (path(context.codingPath), "expected \(typeName(type)), found nothing")
        case .keyNotFound(let key, let context):
            return (path(context.codingPath + [key]), "is missing")
        case .dataCorrupted(let context):
            return (path(context.codingPath), context.debugDescription)
        @unknown default:
            return (nil, "\(error)")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is String.Type: "a string"
        case is Date.Type: "a date-time"
        default: "\(type)"
        }
    }

    /// Yams wraps the scanner's message (line, column, what it expected) in a DecodingError.
    private static func describe(_ error: Error) -> String {
        var text = "\(error)"
        if let range = text.range(of: "Underlying error: ") { text = String(text[range.upperBound...]) }
        return text.replacingOccurrences(of: "\n", with: " ")
    }
}
