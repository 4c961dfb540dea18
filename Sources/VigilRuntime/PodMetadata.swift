import Foundation

/// What the Kubernetes API knows of a pod and its runtime's annotations do not: its labels and
/// the controller that owns it.
public struct PodMetadata: Equatable, Sendable {
    public var uid: String
    public var namespace: String
    public var name: String
    public var labels: [String: String]
    /// The workload that owns the pod, resolved through its controller: a ReplicaSet carrying the
    /// `pod-template-hash` label is its Deployment's (`rollouts-pod-template-hash`: its Argo
    /// Rollout's), a Job named `<cronjob>-<minutes>` (8 digits or more) is its CronJob's. A pod
    /// without a controller is its own owner (kind `pod`).
    public var owner: Owner
    /// The model contents the pod declares (annotation `vigil.dev/model-digests`: sha256:<hex>,
    /// separated by commas or spaces); entries that are not such digests are left out.
    public var modelDigests: [String] = []
    public static let modelDigestsAnnotation = "vigil.dev/model-digests"
    /// The containers whose status says `ready` (running, readiness probe passed), by the id
    /// their runtime gave them (`status.containerStatuses[].containerID` without its
    /// `containerd://` scheme): a restarted container has a new id and is not ready until it says so.
    public var readyContainerIDs: Set<String> = []
    /// The pod asks for protect mode: annotation `vigil.dev/mode: protect` (any other value, or
    /// none: the agent's configuration decides).
    public var protectRequested = false
    public static let modeAnnotation = "vigil.dev/mode"

    public struct Owner: Equatable, Sendable {
        /// Lower case, as in the workload key: deployment, statefulset, daemonset, job, cronjob, …
        public var kind: String
        public var name: String
        public init(kind: String, name: String) {
            self.kind = kind
            self.name = name
        }
    }

    public init(uid: String, namespace: String, name: String, labels: [String: String] = [:], owner: Owner? = nil) {
        self.uid = uid
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.owner = owner ?? Owner(kind: "pod", name: name)
    }

    /// From a Pod object as the API server returns it (`GET /api/v1/namespaces/NS/pods/NAME`).
    public init(podJSON data: Data) throws {
        guard let pod = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let metadata = pod["metadata"] as? [String: Any] else {
            throw PodMetadataError.malformed("not a JSON object with metadata")
        }
        guard let uid = metadata["uid"] as? String, let namespace = metadata["namespace"] as? String,
              let name = metadata["name"] as? String else {
            throw PodMetadataError.malformed("metadata without uid, namespace or name")
        }
        let labels = metadata["labels"] as? [String: String] ?? [:]
        let references = metadata["ownerReferences"] as? [[String: Any]] ?? []
        let controller = references.first { $0["controller"] as? Bool == true }
        var owner: Owner?
        if let controller, let kind = controller["kind"] as? String, let ownerName = controller["name"] as? String {
            owner = Self.workloadOwner(kind: kind, name: ownerName, labels: labels)
        }
        self.init(uid: uid, namespace: namespace, name: name, labels: labels, owner: owner)
        let statuses = (pod["status"] as? [String: Any])?["containerStatuses"] as? [[String: Any]] ?? []
        for status in statuses where status["ready"] as? Bool == true {
            guard let id = status["containerID"] as? String, let scheme = id.range(of: "://") else { continue }
            readyContainerIDs.insert(String(id[scheme.upperBound...]))
        }
        protectRequested = (metadata["annotations"] as? [String: String])?[Self.modeAnnotation] == "protect"
        if let declared = (metadata["annotations"] as? [String: String])?[Self.modelDigestsAnnotation] {
            modelDigests = declared.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" })
                .map(String.init).filter(Self.isDigest)
        }
    }

    /// `sha256:` and 64 lowercase hex digits (VigilCore's `ModelRule.isDigest`; this module does not import it).
    static func isDigest(_ text: String) -> Bool {
        let hex = text.utf8.dropFirst(7)
        return text.hasPrefix("sha256:") && hex.count == 64 && hex.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The controller's own controller, where its name says it without another API call (the
    /// agent may read pods, nothing more).
    static func workloadOwner(kind: String, name: String, labels: [String: String]) -> Owner {
        if kind == "ReplicaSet", let hash = labels["pod-template-hash"], name.hasSuffix("-" + hash) {
            return Owner(kind: "deployment", name: String(name.dropLast(hash.count + 1)))
        }
        // Argo Rollouts' ReplicaSets, named like a Deployment's with their own hash label.
        if kind == "ReplicaSet", let hash = labels["rollouts-pod-template-hash"], name.hasSuffix("-" + hash) {
            return Owner(kind: "rollout", name: String(name.dropLast(hash.count + 1)))
        }
        if kind == "Job", let dash = name.lastIndex(of: "-") {
            let suffix = name[name.index(after: dash)...]
            // CronJob's jobs are <name>-<scheduled time in minutes since the epoch>.
            if suffix.count >= 8, suffix.allSatisfy(\.isNumber) {
                return Owner(kind: "cronjob", name: String(name[..<dash]))
            }
        }
        return Owner(kind: kind.lowercased(), name: name)
    }
}

public enum PodMetadataError: Error, CustomStringConvertible {
    case malformed(String)
    public var description: String {
        switch self {
        case let .malformed(why): return "the API server's pod object is malformed: \(why)"
        }
    }
}

/// Where the pods' labels and owners come from: the Kubernetes API, or nothing (then the owner is
/// read from the pod name's shape and no label filter can apply).
public protocol PodMetadataSource: AnyObject {
    /// The pod, or nil if it no longer exists. Throws when the source cannot answer now (then the
    /// caller asks again later).
    func pod(namespace: String, name: String, uid: String) throws -> PodMetadata?
}

/// `matchLabels` and `matchExpressions`, as in a Kubernetes label selector. Empty: every pod.
public struct LabelSelector: Codable, Equatable, Sendable {
    public var matchLabels: [String: String] = [:]
    public var matchExpressions: [Requirement] = []

    public struct Requirement: Codable, Equatable, Sendable {
        public enum Operator: String, Codable, Sendable {
            case `in` = "In", notIn = "NotIn", exists = "Exists", doesNotExist = "DoesNotExist"
        }

        public var key: String
        public var `operator`: Operator
        public var values: [String]

        public init(key: String, operator: Operator, values: [String] = []) {
            self.key = key
            self.operator = `operator`
            self.values = values
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            key = try c.decode(String.self, forKey: .key)
            `operator` = try c.decode(Operator.self, forKey: .operator)
            values = try c.decodeIfPresent([String].self, forKey: .values) ?? []
        }

        func matches(_ labels: [String: String]) -> Bool {
            switch `operator` {
            case .in: return labels[key].map(values.contains) ?? false
            case .notIn: return !(labels[key].map(values.contains) ?? false)
            case .exists: return labels[key] != nil
            case .doesNotExist: return labels[key] == nil
            }
        }

        /// What Kubernetes rejects too: In/NotIn need values, Exists/DoesNotExist take none.
        public var problem: String? {
            switch `operator` {
            case .in, .notIn: return values.isEmpty ? "\(`operator`.rawValue) needs at least one value" : nil
            case .exists, .doesNotExist: return values.isEmpty ? nil : "\(`operator`.rawValue) takes no values"
            }
        }
    }

    public init(matchLabels: [String: String] = [:], matchExpressions: [Requirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        matchLabels = try c.decodeIfPresent([String: String].self, forKey: .matchLabels) ?? [:]
        matchExpressions = try c.decodeIfPresent([Requirement].self, forKey: .matchExpressions) ?? []
    }

    public var isEmpty: Bool { matchLabels.isEmpty && matchExpressions.isEmpty }

    public func matches(_ labels: [String: String]) -> Bool {
        matchLabels.allSatisfy { labels[$0.key] == $0.value } && matchExpressions.allSatisfy { $0.matches(labels) }
    }
}

/// Remembers each pod's answer for a while: a pod's containers (its sandbox, init containers,
/// sidecars, the server) start within moments of each other, and one lookup serves them all.
/// Failures are not remembered. Entries older than `lifetime` are dropped as new ones arrive.
public final class CachedPodMetadataSource: PodMetadataSource {
    private let source: PodMetadataSource
    private let lifetime: TimeInterval
    private let now: () -> Date
    private var answers: [String: (pod: PodMetadata?, time: Date)] = [:]

    public init(_ source: PodMetadataSource, lifetime: TimeInterval = 60, now: @escaping () -> Date = Date.init) {
        self.source = source
        self.lifetime = lifetime
        self.now = now
    }

    public func pod(namespace: String, name: String, uid: String) throws -> PodMetadata? {
        let time = now()
        if let cached = answers[uid], time.timeIntervalSince(cached.time) < lifetime { return cached.pod }
        let pod = try source.pod(namespace: namespace, name: name, uid: uid)
        answers = answers.filter { time.timeIntervalSince($0.value.time) < lifetime }
        answers[uid] = (pod, time)
        return pod
    }
}
