import Foundation
import VigilCore

/// A cluster profile as the `WorkloadProfile` custom resource (deploy/workloadprofile-crd.yaml)
/// holds it: `spec` is what the workload may do, `status` how it was learned, node by node. No
/// status subresource: an agent writes both in one optimistic update, so the rules and the
/// evidence for them never disagree.
public struct WorkloadProfileResource: Equatable, Sendable {
    public static let group = "vigil.dev"
    public static let version = "v1alpha1"
    public static let plural = "workloadprofiles"
    /// Vigil keeps its objects under this size; the API server refuses request bodies over 3 MiB
    /// and etcd objects over 1.5 MiB.
    public static let maximumBytes = 1 << 20
    /// The profile's state as a label, so that a list of metadata tells which objects are stable.
    public static let stateLabel = "vigil.dev/state"
    /// The workload key, readable from metadata alone (the name may be cut to fit).
    public static let workloadAnnotation = "vigil.dev/workload"

    public var namespace: String
    public var name: String
    /// The version the API server last stored (nil before the first write).
    public var resourceVersion: String?
    public var cluster: ClusterProfile

    public init(namespace: String, name: String, resourceVersion: String? = nil, cluster: ClusterProfile) {
        self.namespace = namespace
        self.name = name
        self.resourceVersion = resourceVersion
        self.cluster = cluster
    }

    // MARK: names

    /// The object for an agent's workload key `namespace/kind/owner/container`: in the workload's
    /// namespace, named `kind.owner.container`. Kinds and container names have no dots, so the
    /// name reads back one way; past 253 characters the owner is cut and a digest of the key
    /// appended. The key itself is in `spec.workload`, checked on every read.
    public static func objectName(workload: String) throws -> (namespace: String, name: String) {
        let parts = workload.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4 else {
            throw ResourceError("workload '\(workload)' is not an agent's namespace/kind/owner/container key: only those are kept in the cluster")
        }
        let (namespace, kind, owner, container) = (parts[0], parts[1], parts[2], parts[3])
        guard isLabel(namespace), namespace.count <= 63, isLabel(kind), !kind.contains("."), isSubdomain(owner),
              isLabel(container), !container.contains(".") else {
            throw ResourceError("workload '\(workload)' has a part that is not a Kubernetes name")
        }
        var name = "\(kind).\(owner).\(container)"
        if name.utf8.count > 253 {
            let digest = workload.sha256Hex.prefix(12)
            let room = 253 - kind.count - container.count - digest.count - 3
            var cut = String(owner.prefix(room))
            while let last = cut.last, last == "." || last == "-" { cut.removeLast() }
            name = "\(kind).\(cut)-\(digest).\(container)"
        }
        return (namespace, name)
    }

    private static func isLabel(_ text: String) -> Bool {
        !text.isEmpty && isSubdomain(text) && !text.contains(".")
    }

    private static func isSubdomain(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            guard let first = label.utf8.first, let last = label.utf8.last, label.utf8.count <= 63 else { return false }
            func alphanumeric(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
            return alphanumeric(first) && alphanumeric(last) && label.utf8.allSatisfy { alphanumeric($0) || $0 == 45 }
        }
    }

    // MARK: JSON

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(Self.timeFormat))
        }
        return try encoder.encode(Object(self))
    }

    public static func decode(_ data: Data) throws -> WorkloadProfileResource {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            if let date = (try? timeFormat.parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text)) { return date }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not an RFC 3339 time"))
        }
        let object: Object
        do {
            object = try decoder.decode(Object.self, from: data)
        } catch let error as DecodingError {
            let (field, problem) = ProfileCodec.describe(decoding: error)
            throw ResourceError("a WorkloadProfile the API server returned cannot be read: \(field.map { "field '\($0)': " } ?? "")\(problem)")
        }
        guard object.apiVersion == "\(group)/\(version)", object.kind == Profile.kindName else {
            throw ResourceError("the API server returned \(object.kind) \(object.apiVersion), not \(Profile.kindName) \(group)/\(version)")
        }
        let resource = object.resource
        let expected = try objectName(workload: resource.cluster.profile.workload)
        guard expected == (resource.namespace, resource.name) else {
            throw ResourceError("WorkloadProfile \(resource.namespace)/\(resource.name) names workload '\(resource.cluster.profile.workload)', "
                + "whose object is \(expected.namespace)/\(expected.name): not Vigil's, or edited by hand; ignored")
        }
        return resource
    }

    private static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The resource's layout; kept apart from `Profile` so the API's shape is this file's alone.
    private struct Object: Codable {
        struct Metadata: Codable {
            var name: String
            var namespace: String
            var resourceVersion: String?
            var labels: [String: String]?
            var annotations: [String: String]?
        }
        struct Spec: Codable {
            var workload: String
            var version: Int
            var modelPaths: [String]
            var execs: [ExecRule]
            var fileWrites: [FileWriteRule]
            var egress: [EgressRule]
            var syscalls: SyscallLists
            var seccomp: SeccompAdditions?
            var models: [ModelRule]?
            var modelReaders: [String]?
            var startupOnly: StartupRules?
            /// Set by a person (`kubectl patch ... -p '{"spec":{"relearn":true}}'`); absent otherwise.
            var relearn: Bool?
        }
        struct Counts: Codable {
            var execs: Int
            var fileWrites: Int
            var destinations: Int
            var syscalls: Int
            var nodes: Int
        }
        struct Status: Codable {
            var state: LearningState
            var learning: LearningEvidence
            var nodes: [NodeEvidence]
            /// For `kubectl get`'s columns, which cannot count a list.
            var counts: Counts
            /// Once stable: the filter every node installs, as pods name it, and the SHA-256 of its
            /// JSON (derived from the spec at each write; what a node installed can be checked against it).
            var seccompProfile: String?
            var seccompDigest: String?
        }
        var apiVersion: String
        var kind: String
        var metadata: Metadata
        var spec: Spec
        var status: Status

        init(_ resource: WorkloadProfileResource) {
            let profile = resource.cluster.profile
            apiVersion = "\(WorkloadProfileResource.group)/\(WorkloadProfileResource.version)"
            kind = Profile.kindName
            metadata = Metadata(name: resource.name, namespace: resource.namespace, resourceVersion: resource.resourceVersion,
                                labels: ["app.kubernetes.io/managed-by": "vigil", WorkloadProfileResource.stateLabel: profile.state.rawValue],
                                annotations: [WorkloadProfileResource.workloadAnnotation: profile.workload])
            spec = Spec(workload: profile.workload, version: profile.version, modelPaths: profile.modelPaths, execs: profile.execs,
                        fileWrites: profile.fileWrites, egress: profile.egress, syscalls: profile.syscalls, seccomp: profile.seccomp,
                        models: profile.models, modelReaders: profile.modelReaders, startupOnly: profile.startupOnly,
                        relearn: resource.cluster.relearnRequested ? true : nil)
            status = Status(state: profile.state, learning: profile.learning, nodes: resource.cluster.nodes,
                            counts: Counts(execs: profile.execs.count, fileWrites: profile.fileWrites.count, destinations: profile.egress.count,
                                           syscalls: SyscallABI.allCases.reduce(0) { $0 + profile.syscalls[$1].count },
                                           nodes: resource.cluster.nodes.count))
            if profile.state == .stable, let json = try? SeccompExport.ociJSON(profile, mode: .enforce) {
                status.seccompProfile = SeccompExport.localhostProfile(workload: profile.workload)
                status.seccompDigest = "sha256:" + json.sha256Hex
            }
        }

        var resource: WorkloadProfileResource {
            let profile = Profile(workload: spec.workload, version: spec.version, state: status.state, learning: status.learning,
                                  modelPaths: spec.modelPaths, execs: spec.execs, fileWrites: spec.fileWrites, egress: spec.egress,
                                  syscalls: spec.syscalls, seccomp: spec.seccomp, models: spec.models, modelReaders: spec.modelReaders,
                                  startupOnly: spec.startupOnly)
            return WorkloadProfileResource(namespace: metadata.namespace, name: metadata.name, resourceVersion: metadata.resourceVersion,
                                           cluster: ClusterProfile(profile: profile, nodes: status.nodes, relearnRequested: spec.relearn == true))
        }
    }
}

/// A WorkloadProfile that cannot be named or read, and why.
public struct ResourceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
