import Foundation
import NIOHTTP1
import VigilCore
import VigilProfiles

/// Reads and writes `WorkloadProfile` objects (vigil.dev/v1alpha1), the cluster's one profile per
/// workload. Every write is optimistic: an update carries the `resourceVersion` it was computed
/// from, and the API server refuses it (409 Conflict) if another agent wrote in between; `merge`
/// then reads the fresh object and merges again, so no node's learning is lost.
public final class WorkloadProfileClient: @unchecked Sendable {
    private let connection: APIConnection
    /// Objects as last read, by namespace/name, for `refresh`.
    private let lock = NSLock()
    private var lastRead: [String: WorkloadProfileResource] = [:]
    /// Watches running now, cancelled by `cancelWatches`.
    private var watches: [UUID: StreamHandle] = [:]
    private var watchesCancelled = false

    public init(endpoint: APIEndpoint) throws {
        connection = try APIConnection(endpoint: endpoint)
    }

    public enum MergeResult: Equatable, Sendable {
        /// The cluster already had everything: nothing written.
        case unchanged(WorkloadProfileResource)
        /// Written; `conflicts`: how many times another writer came first and the merge was redone.
        case written(WorkloadProfileResource, reasons: [String], conflicts: Int)

        public var resource: WorkloadProfileResource {
            switch self {
            case let .unchanged(resource), let .written(resource, _, _): resource
            }
        }
    }

    /// Merges what `node` learned of a workload into the cluster's profile: read, merge, write
    /// with the version read; on a conflict, again from a fresh read after a jittered backoff, up to
    /// `attempts` times. Blocks: call it off the event loop.
    /// `beforeWrite` runs between the read and the write (tests use it to interleave a writer).
    public func merge(_ local: Profile, node: String, now: Date = Date(), attempts: Int = 8,
                      beforeWrite: () throws -> Void = {}) throws -> MergeResult {
        let (namespace, name) = try WorkloadProfileResource.objectName(workload: local.workload)
        var conflicts = 0
        for _ in 0..<attempts {
            var current = try get(namespace: namespace, name: name)
            // A relearn a person asked for (spec.relearn) comes first; this node's learning of
            // the old version is then stale and ignored.
            var relearned = false
            if var requested = current, requested.cluster.relearnRequested {
                ProfileMerge.relearn(&requested.cluster, now: now)
                current = requested
                relearned = true
            }
            var outcome = ProfileMerge.merge(local, from: node, into: current?.cluster, now: now)
            if case .unchanged = outcome, let current {
                guard relearned else { return .unchanged(current) }
                outcome = .changed(current.cluster, reasons: ["relearn requested in spec.relearn"])
            }
            guard case let .changed(merged, reasons) = outcome else { continue }
            let resource = WorkloadProfileResource(namespace: namespace, name: name, resourceVersion: current?.resourceVersion,
                                                   cluster: merged)
            try beforeWrite()
            do {
                let stored = current == nil ? try create(resource) : try replace(resource)
                return .written(stored, reasons: reasons, conflicts: conflicts)
            } catch KubernetesError.conflict {
                conflicts += 1
                // Writers that collided would collide again in step: back off, jittered, longer each time.
                Thread.sleep(forTimeInterval: Double.random(in: 0.01...0.05) * Double(conflicts))
            }
        }
        throw KubernetesError.unavailable("WorkloadProfile \(namespace)/\(name): \(attempts) writes in a row lost to other writers; "
            + "retried at the next interval")
    }

    /// Changes a workload's cluster profile the way a person does (`vigil profile promote` or
    /// `relearn --cluster`): read, change, write with the version read; redone on a conflict.
    public func update(workload: String, attempts: Int = 8, _ change: (inout ClusterProfile) throws -> Void) throws -> WorkloadProfileResource {
        let (namespace, name) = try WorkloadProfileResource.objectName(workload: workload)
        for attempt in 1...attempts {
            guard var resource = try get(namespace: namespace, name: name) else {
                throw KubernetesError.configuration("no WorkloadProfile for \(workload) (\(namespace)/\(name)): no agent has learned it yet")
            }
            let before = resource.cluster
            try change(&resource.cluster)
            guard resource.cluster != before else { return resource }
            do {
                return try replace(resource)
            } catch KubernetesError.conflict {
                Thread.sleep(forTimeInterval: Double.random(in: 0.01...0.05) * Double(attempt))
            }
        }
        throw KubernetesError.unavailable("WorkloadProfile \(namespace)/\(name): \(attempts) writes in a row lost to other writers; try again")
    }

    public func get(namespace: String, name: String) throws -> WorkloadProfileResource? {
        let (status, body) = try connection.send(.GET, Self.path(namespace: namespace, name: name))
        switch status {
        case 200: return try WorkloadProfileResource.decode(body)
        case 404 where APIConnection.status(body)?.reason == "NotFound": return nil
        default: throw Self.failure("GET", namespace, name, status, body)
        }
    }

    /// Every WorkloadProfile in `namespace`, or in the whole cluster. Objects that are not Vigil's
    /// own (a name that does not match its workload) are left out, with why.
    public func list(namespace: String? = nil) throws -> (profiles: [WorkloadProfileResource], problems: [String]) {
        let path = "/apis/\(WorkloadProfileResource.group)/\(WorkloadProfileResource.version)"
            + (namespace.map { "/namespaces/\($0)" } ?? "") + "/\(WorkloadProfileResource.plural)"
        let (status, body) = try connection.send(.GET, path)
        guard status == 200 else { throw Self.failure("LIST", namespace ?? "*", "", status, body) }
        guard let list = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let items = list["items"] as? [Any] else {
            throw KubernetesError.unavailable("LIST \(path): the answer is not a list")
        }
        var profiles: [WorkloadProfileResource] = [], problems: [String] = []
        for item in items {
            do {
                profiles.append(try WorkloadProfileResource.decode(try JSONSerialization.data(withJSONObject: item)))
            } catch {
                problems.append("\(error)")
            }
        }
        return (profiles, problems)
    }

    /// Every WorkloadProfile in the cluster, at the price of one list of their metadata (a few
    /// hundred bytes each) and a GET of each object whose resourceVersion changed since this
    /// client last read it: polled by every node every round, the full objects would be read
    /// again and again for nothing once profiles are stable.
    /// Only stable objects and those named in `including` (workload keys) are read.
    /// `resourceVersion`: the list's, to watch from.
    public func refresh(including workloads: Set<String> = []) throws
        -> (profiles: [WorkloadProfileResource], workloads: Set<String>, problems: [String], fetched: Int, resourceVersion: String?) {
        // resourceVersion=0: served from the API server's cache, not a quorum read of etcd; a list
        // a moment old only delays an install by a round.
        let path = "/apis/\(WorkloadProfileResource.group)/\(WorkloadProfileResource.version)/\(WorkloadProfileResource.plural)?resourceVersion=0"
        let (status, body) = try connection.send(.GET, path, accept: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")
        guard status == 200 else { throw Self.failure("LIST", "*", "", status, body) }
        guard let list = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let items = list["items"] as? [[String: Any]] else {
            throw KubernetesError.unavailable("LIST \(path): the answer is not a list")
        }
        let known = lock.withLock { lastRead }
        var current: [String: WorkloadProfileResource] = [:], problems: [String] = [], fetched = 0
        var existing = Set<String>()
        for item in items {
            guard let metadata = item["metadata"] as? [String: Any], let namespace = metadata["namespace"] as? String,
                  let name = metadata["name"] as? String else { continue }
            let key = namespace + "/" + name
            let workload = (metadata["annotations"] as? [String: String])?[WorkloadProfileResource.workloadAnnotation]
            if let workload { existing.insert(workload) }
            let stable = (metadata["labels"] as? [String: String])?[WorkloadProfileResource.stateLabel] == LearningState.stable.rawValue
            guard stable || workload.map(workloads.contains) == true else { continue }
            if let cached = known[key], cached.resourceVersion == metadata["resourceVersion"] as? String {
                current[key] = cached
                continue
            }
            do {
                fetched += 1
                guard var resource = try get(namespace: namespace, name: name) else { continue }
                if resource.cluster.relearnRequested {
                    // A person set spec.relearn: start the next version (another node may have
                    // already: then the fresh read has it cleared and nothing is written).
                    resource = try update(workload: resource.cluster.profile.workload) { cluster in
                        if cluster.relearnRequested { ProfileMerge.relearn(&cluster, now: Date()) }
                    }
                }
                current[key] = resource
            } catch {
                problems.append("\(error)")
            }
        }
        lock.withLock { lastRead = current }
        let version = (list["metadata"] as? [String: Any])?["resourceVersion"] as? String
        return (current.values.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }, existing, problems, fetched, version)
    }

    /// One change a watch reported.
    public struct WatchChange: Sendable, Equatable {
        /// ADDED, MODIFIED or DELETED.
        public var type: String
        public var namespace: String
        public var name: String
        public var resourceVersion: String
        /// The workload the object says it is for, when it does.
        public var workload: String?
    }

    /// How a watch ended.
    public enum WatchEnd: Sendable, Equatable {
        /// The server ended it (its timeout): watch again from this version.
        case closed(resourceVersion: String)
        /// The API server no longer keeps changes that old (410 Expired): list again, then watch
        /// from the list's version.
        case expired
    }

    /// Watches the stable WorkloadProfiles across namespaces (label vigil.dev/state=stable: an
    /// object that turns stable comes as ADDED, one that relearns or is deleted as DELETED),
    /// metadata only — every node watches, and whole objects to every node at every change would
    /// be the API server's largest cost — from `resourceVersion`, with bookmarks, so that a
    /// quiet watch still moves its version on and restarts without a list.
    /// Blocks until the server ends the watch (after about `timeoutSeconds`) or
    /// `cancelWatches()`; `changed` runs on an event-loop thread for each change.
    public func watchStable(from resourceVersion: String, timeoutSeconds: Int = 300,
                            changed: @escaping @Sendable (WatchChange) -> Void) throws -> WatchEnd {
        let selector = "\(WorkloadProfileResource.stateLabel)=\(LearningState.stable.rawValue)"
            .addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let path = "/apis/\(WorkloadProfileResource.group)/\(WorkloadProfileResource.version)/\(WorkloadProfileResource.plural)"
            + "?watch=1&allowWatchBookmarks=true&labelSelector=\(selector)&timeoutSeconds=\(timeoutSeconds)"
            + "&resourceVersion=\(resourceVersion.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        let state = WatchState(resourceVersion: resourceVersion)
        let id = UUID()
        defer { _ = lock.withLock { watches.removeValue(forKey: id) } }
        let (status, body) = try connection.stream(path, accept: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
                                                   deadline: Double(timeoutSeconds) + 30, started: { handle in
            let cancelled = lock.withLock { () -> Bool in
                if !watchesCancelled { watches[id] = handle }
                return watchesCancelled
            }
            if cancelled { handle.cancel() }
        }, line: { line in
            guard let event = try? JSONSerialization.jsonObject(with: line) as? [String: Any], let type = event["type"] as? String,
                  let object = event["object"] as? [String: Any] else {
                state.update { $0.problem = "a watch event that is not JSON: \(String(decoding: line.prefix(200), as: UTF8.self))" }
                return
            }
            if type == "ERROR" {
                state.update { $0.error = (object["code"] as? Int, object["message"] as? String ?? "") }
                return
            }
            let metadata = object["metadata"] as? [String: Any] ?? [:]
            guard let version = metadata["resourceVersion"] as? String else { return }
            state.update { $0.resourceVersion = version }
            guard type != "BOOKMARK", let namespace = metadata["namespace"] as? String, let name = metadata["name"] as? String else { return }
            let workload = (metadata["annotations"] as? [String: String])?[WorkloadProfileResource.workloadAnnotation]
            changed(WatchChange(type: type, namespace: namespace, name: name, resourceVersion: version, workload: workload))
        })
        if lock.withLock({ watchesCancelled }) { throw KubernetesError.unavailable("the watch was cancelled") }
        if status == 410 { return .expired }
        guard status == 200 else { throw Self.failure("WATCH", "*", "", status, body) }
        let end = state.value
        if let (code, message) = end.error {
            if code == 410 { return .expired }
            throw KubernetesError.unavailable("WATCH WorkloadProfiles: the API server ended the watch: \(code.map(String.init) ?? "-") \(message)")
        }
        if let problem = end.problem { throw KubernetesError.unavailable("WATCH WorkloadProfiles: \(problem)") }
        return .closed(resourceVersion: end.resourceVersion)
    }

    /// Ends the watches running now and refuses later ones (the agent is stopping).
    public func cancelWatches() {
        let running = lock.withLock { () -> [StreamHandle] in
            watchesCancelled = true
            return Array(watches.values)
        }
        for watch in running { watch.cancel() }
    }

    public func create(_ resource: WorkloadProfileResource) throws -> WorkloadProfileResource {
        var fresh = resource
        fresh.resourceVersion = nil
        let (status, body) = try connection.send(.POST, Self.path(namespace: resource.namespace, name: nil), json: try Self.body(fresh))
        switch status {
        case 201, 200: return try WorkloadProfileResource.decode(body)
        case 409: throw KubernetesError.conflict("WorkloadProfile \(resource.namespace)/\(resource.name) was created by another writer")
        default: throw Self.failure("POST", resource.namespace, resource.name, status, body)
        }
    }

    /// Replaces the object if it is still at `resource.resourceVersion`.
    public func replace(_ resource: WorkloadProfileResource) throws -> WorkloadProfileResource {
        let (status, body) = try connection.send(.PUT, Self.path(namespace: resource.namespace, name: resource.name),
                                                 json: try Self.body(resource))
        switch status {
        case 200: return try WorkloadProfileResource.decode(body)
        case 409: throw KubernetesError.conflict("WorkloadProfile \(resource.namespace)/\(resource.name) changed since version "
            + "\(resource.resourceVersion ?? "-")")
        default: throw Self.failure("PUT", resource.namespace, resource.name, status, body)
        }
    }

    public func delete(namespace: String, name: String) throws {
        let (status, body) = try connection.send(.DELETE, Self.path(namespace: namespace, name: name))
        guard status == 200 || status == 202 || (status == 404 && APIConnection.status(body)?.reason == "NotFound") else {
            throw Self.failure("DELETE", namespace, name, status, body)
        }
    }

    /// The object's JSON, refused before it reaches the API server when it is larger than
    /// `WorkloadProfileResource.maximumBytes`.
    static func body(_ resource: WorkloadProfileResource) throws -> Data {
        let data = try resource.encoded()
        guard data.count <= WorkloadProfileResource.maximumBytes else {
            throw KubernetesError.tooLarge("WorkloadProfile \(resource.namespace)/\(resource.name) would be \(data.count) bytes, over Vigil's "
                + "limit of \(WorkloadProfileResource.maximumBytes) (the API server's objects stop at 1.5 MiB): the profile stays in the "
                + "node's store; narrow the workload's behaviour or its model paths")
        }
        return data
    }

    static func path(namespace: String, name: String?) -> String {
        "/apis/\(WorkloadProfileResource.group)/\(WorkloadProfileResource.version)/namespaces/\(namespace)/\(WorkloadProfileResource.plural)"
            + (name.map { "/\($0)" } ?? "")
    }

    static func failure(_ verb: String, _ namespace: String, _ name: String, _ status: UInt, _ body: Data) -> KubernetesError {
        let message = APIConnection.status(body)?.message ?? String(decoding: body.prefix(200), as: UTF8.self)
        switch status {
        case 401:
            return .refused("\(verb) WorkloadProfile \(namespace)/\(name): the API server rejected the service account's token (401)")
        case 403:
            return .refused("\(verb) WorkloadProfile \(namespace)/\(name): forbidden (403): apply deploy/rbac.yaml "
                + "(workloadprofiles.vigil.dev: get, list, watch, create, update)")
        case 404:
            return .unavailable("\(verb) WorkloadProfile \(namespace)/\(name): 404 \(message): is the CRD installed "
                + "(kubectl apply -f deploy/workloadprofile-crd.yaml)?")
        case 413:
            return .tooLarge("\(verb) WorkloadProfile \(namespace)/\(name): the API server refused the request as too large: \(message)")
        default:
            return .unavailable("\(verb) WorkloadProfile \(namespace)/\(name): HTTP \(status) \(message)")
        }
    }
}

extension WorkloadProfileClient: ClusterProfileStore {
    public func merge(_ local: Profile, from node: String, now: Date) throws -> (cluster: ClusterProfile, wrote: Bool) {
        switch try merge(local, node: node, now: now, attempts: 8) {
        case .unchanged(let resource): (resource.cluster, false)
        case .written(let resource, _, _): (resource.cluster, true)
        }
    }

    public func current(including workloads: Set<String>) throws -> ClusterSnapshot {
        let (resources, existing, problems, _, version) = try refresh(including: workloads)
        return ClusterSnapshot(profiles: resources.map(\.cluster), workloads: existing, problems: problems, resourceVersion: version)
    }

    public func watchStable(from resourceVersion: String, changed: @escaping @Sendable () -> Void) throws -> String? {
        switch try watchStable(from: resourceVersion, timeoutSeconds: Int.random(in: 240...360), changed: { _ in changed() }) {
        case .closed(let version): version
        case .expired: nil
        }
    }
}

/// What a watch has said so far, written from event-loop threads and read when it ends.
private final class WatchState: @unchecked Sendable {
    struct Value {
        var resourceVersion: String
        var error: (code: Int?, message: String)?
        var problem: String?
    }

    private let lock = NSLock()
    private var current: Value

    init(resourceVersion: String) {
        current = Value(resourceVersion: resourceVersion)
    }

    func update(_ change: (inout Value) -> Void) { lock.withLock { change(&current) } }
    var value: Value { lock.withLock { current } }
}
