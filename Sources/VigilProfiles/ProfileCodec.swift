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

    /// The profile as YAML. Built as a node tree and serialized by libyaml (which quotes what
    /// needs quoting): Yams' Encoder is quadratic in the number of rules (10,000 rules took 3 s),
    /// this is linear (`vigil-bench checkpoint`).
    public static func encode(_ profile: Profile) throws -> String {
        "# Vigil workload profile. Schema: profiles/profile.schema.json\n" + (try Yams.serialize(node: node(profile)))
    }

    static func node(_ profile: Profile) -> Node {
        func map(_ pairs: [(String, Node?)]) -> Node {
            .mapping(Node.Mapping(pairs.compactMap { key, value in value.map { (Node(key), $0) } }))
        }
        func list(_ items: [Node]) -> Node { .sequence(Node.Sequence(items)) }
        func strings(_ items: [String]) -> Node { list(items.map { Node($0) }) }
        func number(_ value: Int) -> Node { Node(String(value), Tag(.int)) }
        let learning = profile.learning
        func execs(_ rules: [ExecRule]) -> Node { list(rules.map { map([("exe", Node($0.exe)), ("parent", Node($0.parent))]) }) }
        func fileWrites(_ rules: [FileWriteRule]) -> Node { list(rules.map { map([("path", Node($0.path)), ("ops", strings($0.ops))]) }) }
        func egress(_ rules: [EgressRule]) -> Node {
            list(rules.map { map([("address", Node($0.address)), ("port", number($0.port)), ("protocol", Node($0.protocol))]) })
        }
        return map([
            ("apiVersion", Node(profile.apiVersion)),
            ("kind", Node(profile.kind)),
            ("workload", Node(profile.workload)),
            ("version", number(profile.version)),
            ("state", Node(profile.state.rawValue)),
            ("learning", map([
                // box(): what Yams' Encoder writes, nanoseconds included (Node(_:) keeps milliseconds).
                ("started", learning.started.box()),
                ("lastNew", learning.lastNew.box()),
                ("stableSince", learning.stableSince.map { $0.box() }),
                ("events", number(learning.events)),
                ("containers", number(learning.containers)),
                ("minDuration", learning.minDuration.box()),
                ("quietPeriod", learning.quietPeriod.box()),
                ("runtimes", learning.runtimes.map { list($0.map { map([("runtime", Node($0.runtime)),
                                                                        ("noNewPrivileges", Node($0.noNewPrivileges ? "true" : "false", Tag(.bool)))]) }) }),
                ("stoppedContainers", learning.stoppedContainers.map(number)),
                ("recentlyNew", learning.recentlyNew.map { list($0.map { map([("at", $0.at.box()), ("kind", Node($0.kind)), ("rule", Node($0.rule))]) }) }),
            ])),
            ("modelPaths", strings(profile.modelPaths)),
            ("execs", execs(profile.execs)),
            ("fileWrites", fileWrites(profile.fileWrites)),
            ("egress", egress(profile.egress)),
            ("syscalls", map(SyscallABI.allCases.map { ($0.name, strings(profile.syscalls[$0])) })),
            ("seccomp", profile.seccomp.map { map([("runtimes", strings($0.runtimes)), ("runtime", strings($0.runtime)),
                                                   ("baseline", strings($0.baseline))]) }),
            ("models", profile.models.map { list($0.map { map([("path", Node($0.path)), ("sha256", Node($0.sha256))]) }) }),
            ("modelReaders", profile.modelReaders.map(strings)),
            ("startupOnly", profile.startupOnly.map { map([("execs", execs($0.execs)), ("fileWrites", fileWrites($0.fileWrites)),
                                                           ("egress", egress($0.egress))]) }),
        ])
    }

    /// A file's bytes: UTF-8 text, or a clear error.
    public static func decode(_ data: Data, file: String) throws -> Profile {
        guard let text = String(data: data, encoding: .utf8) else {
            throw ProfileError(file: file, problem: "is not UTF-8 text (a profile is YAML)")
        }
        return try decode(text, file: file)
    }

    /// The highest version a profile may carry: new versions are numbered after it, and a
    /// number at the edge of Int would have nowhere to go.
    public static let maximumVersion = 1_000_000_000

    /// The fields a profile may have, per place, as profiles/profile.schema.json allows them
    /// (`additionalProperties: false`): a misspelt field is an error, not a silent default.
    public static let knownFields: [String: Set<String>] = [
        "": ["apiVersion", "kind", "workload", "version", "state", "learning", "modelPaths", "execs", "fileWrites", "egress",
             "syscalls", "seccomp", "models", "modelReaders", "startupOnly"],
        "learning": ["started", "lastNew", "stableSince", "events", "containers", "minDuration", "quietPeriod", "runtimes",
                     "stoppedContainers", "recentlyNew"],
        "learning.runtimes[]": ["runtime", "noNewPrivileges"],
        "learning.recentlyNew[]": ["at", "kind", "rule"],
        "execs[]": ["exe", "parent"],
        "fileWrites[]": ["path", "ops"],
        "egress[]": ["address", "port", "protocol"],
        "syscalls": ["x86_64", "x32", "i386"],
        "seccomp": ["runtimes", "runtime", "baseline"],
        "models[]": ["path", "sha256"],
        "startupOnly": ["execs", "fileWrites", "egress"],
        "startupOnly.execs[]": ["exe", "parent"],
        "startupOnly.fileWrites[]": ["path", "ops"],
        "startupOnly.egress[]": ["address", "port", "protocol"],
    ]

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
        try checkKnownFields(text, file: file)
        let profile = try decodeReportingFields(Profile.self, from: text, file: file)
        try validate(profile, file: file)
        return profile
    }

    private static func checkKnownFields(_ text: String, file: String) throws {
        guard let document = try? Yams.load(yaml: text) else { return } // the decoder reports what is wrong with it
        func check(_ node: Any?, place: String, path: String) throws {
            if let list = node as? [Any] {
                for (i, item) in list.enumerated() { try check(item, place: place + "[]", path: "\(path)[\(i)]") }
                return
            }
            guard let map = node as? [String: Any], let known = knownFields[place] else { return }
            for key in map.keys.sorted() {
                let field = path.isEmpty ? key : "\(path).\(key)"
                guard known.contains(key) else {
                    throw ProfileError(file: file, field: field, problem: "is not a profile field (\(known.sorted().joined(separator: ", ")))")
                }
                try check(map[key], place: place.isEmpty ? key : "\(place).\(key)", path: field)
            }
        }
        try check(document, place: "", path: "")
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
        guard profile.version >= 1, profile.version <= maximumVersion else {
            throw ProfileError(file: file, field: "version", problem: "must be from 1 to \(maximumVersion), is \(profile.version)")
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
        for (i, model) in (profile.models ?? []).enumerated() {
            guard model.path.hasPrefix("/") else {
                throw ProfileError(file: file, field: "models[\(i)].path", problem: "'\(model.path)' is not an absolute path")
            }
            guard ModelRule.isDigest(model.sha256) else {
                throw ProfileError(file: file, field: "models[\(i)].sha256", problem: "'\(model.sha256)' is not sha256:<64 lowercase hex digits>")
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
        for (i, rule) in profile.execs.enumerated() where !rule.exe.hasPrefix("/") && !BehaviourKeys.isFilelessRule(rule.exe) {
            throw ProfileError(file: file, field: "execs[\(i)].exe", problem: "'\(rule.exe)' is not an absolute path (nor fileless:NAME@sha256:HEX)")
        }
        try validateStartupOnly(profile, file: file)
    }

    /// Startup-only rules are some of the profile's own: a rule only here would be allowed at
    /// startup without being in the profile (and in its seccomp and kernel maps) at all.
    private static func validateStartupOnly(_ profile: Profile, file: String) throws {
        guard let startup = profile.startupOnly else { return }
        let execs = Set(profile.execs), egress = Set(profile.egress)
        for (i, rule) in startup.execs.enumerated() where !execs.contains(rule) {
            throw ProfileError(file: file, field: "startupOnly.execs[\(i)]", problem: "\(rule.exe) (parent \(rule.parent)) is not in execs")
        }
        for (i, rule) in startup.egress.enumerated() where !egress.contains(rule) {
            throw ProfileError(file: file, field: "startupOnly.egress[\(i)]", problem: "\(rule.address) port \(rule.port) is not in egress")
        }
        var ops: [String: Set<String>] = [:]
        for rule in profile.fileWrites { ops[rule.path, default: []].formUnion(rule.ops) }
        for (i, rule) in startup.fileWrites.enumerated() where !Set(rule.ops).isSubset(of: ops[rule.path] ?? []) {
            throw ProfileError(file: file, field: "startupOnly.fileWrites[\(i)]",
                               problem: "\(rule.path) [\(rule.ops.joined(separator: ","))] is not in fileWrites")
        }
    }

    /// The field a decoding error is about (`learning.events`, `egress[0].port`) and what is wrong.
    public static func describe(decoding error: DecodingError) -> (field: String?, problem: String) {
        let problem = DecodingProblem(error)
        return (problem.field, problem.problem)
    }

    /// Yams wraps the scanner's message (line, column, what it expected) in a DecodingError.
    public static func describeYAML(_ error: Error) -> String {
        describe(error)
    }

    private static func describe(_ error: Error) -> String {
        var text = "\(error)"
        if let range = text.range(of: "Underlying error: ") { text = String(text[range.upperBound...]) }
        return text.replacingOccurrences(of: "\n", with: " ")
    }
}
