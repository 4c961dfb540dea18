import Foundation
import VigilCore
import VigilProfiles
import VigilRuntime
import Yams

/// `vigil agent --config FILE`: YAML, every field optional but the defaults below.
public struct AgentConfiguration: Codable, Equatable, Sendable {
    /// Node name in events (default: $NODE_NAME, else the host name).
    public var node: String?
    /// cgroup v2 paths (inside the hierarchy) under which pods live; those that exist are watched
    /// with everything created below them. The host's own processes are never under them.
    public var cgroupRoots: [String] = ["/kubepods", "/kubepods.slice"]
    /// Where the OCI runtime keeps container state (for the CRI annotations).
    public var runtimeStateRoots: [String] = RuntimeStateReader.defaultRoots
    public var profiles: String = "/var/lib/vigil/profiles"
    /// The kubelet's seccomp root: stable profiles are installed under `vigil/`.
    public var seccompRoot: String = "/var/lib/kubelet/seccomp"
    public var learning: Learning = Learning()
    public var namespaces: Namespaces = Namespaces()
    /// Which pods to watch by their labels (a Kubernetes label selector); empty: every pod. Labels
    /// come from the API server, so a selector needs `kubernetes.enabled`.
    public var podSelector: LabelSelector = LabelSelector()
    public var kubernetes: Kubernetes = Kubernetes()
    /// One profile per workload for the whole cluster, kept in the API (WorkloadProfile objects).
    public var cluster: Cluster = Cluster()
    /// What ends a container's startup: its first accepted connection, or its readiness.
    public var serving: Serving = Serving()
    /// Model-artifact globs per workload (the workload key may be a glob: `ml/*/llm-*/*`).
    public var modelPaths: [ModelPaths] = []
    /// Model contents declared for workloads (by key or glob): a load of any other is
    /// `model-unverified`, learning or not.
    public var modelDigests: [ModelDigests] = []
    /// Workloads held in protect mode once their profile is stable (patterns over workload keys,
    /// `namespace/kind/name/container`: `ml/**` is every workload of namespace ml). A pod can ask
    /// too, with the annotation `vigil.dev/mode: protect` (needs `kubernetes.enabled`).
    public var protect: [ProtectedWorkloads] = []
    /// The cloud's instance metadata services (addresses or CIDRs): a connection to one the
    /// profile never learned is `metadata-service-access` (critical), refused in protect mode.
    public var metadataServices: [String] = MetadataServices.defaultAddresses
    /// The read-only operations listener (/metrics, /healthz, /readyz): `host:port`; loopback by
    /// default, so nothing on the node's network sees it unless asked.
    public var metricsAddress: String = "127.0.0.1:9464"
    /// Also append events to this file (rotated at `eventsFileMaxBytes`, one `.1` kept).
    public var eventsFile: String?
    public var eventsFileMaxBytes: Int = 100 << 20

    public var metricsHostPort: (host: String, port: Int)? {
        guard let colon = metricsAddress.lastIndex(of: ":"), let port = Int(metricsAddress[metricsAddress.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        let host = String(metricsAddress[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return host.isEmpty ? nil : (host, port)
    }

    public struct Learning: Codable, Equatable, Sendable {
        /// Seconds.
        public var minDuration: Double = 3600
        public var quietPeriod: Double = 600
        public var checkpointInterval: Double = 30
        /// A workload none of whose containers has run for this long leaves memory (and its known
        /// behaviour the kernel's maps) until one runs again.
        public var retireAfter: Double = 600
        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            minDuration = try c.decodeIfPresent(Double.self, forKey: .minDuration) ?? minDuration
            quietPeriod = try c.decodeIfPresent(Double.self, forKey: .quietPeriod) ?? quietPeriod
            checkpointInterval = try c.decodeIfPresent(Double.self, forKey: .checkpointInterval) ?? checkpointInterval
            retireAfter = try c.decodeIfPresent(Double.self, forKey: .retireAfter) ?? retireAfter
        }
    }

    public struct Namespaces: Codable, Equatable, Sendable {
        /// Empty: every namespace.
        public var include: [String] = []
        public var exclude: [String] = ["kube-system"]
        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            include = try c.decodeIfPresent([String].self, forKey: .include) ?? include
            exclude = try c.decodeIfPresent([String].self, forKey: .exclude) ?? exclude
        }

        public func admits(_ namespace: String) -> Bool {
            (include.isEmpty || include.contains(namespace)) && !exclude.contains(namespace)
        }
    }

    /// The optional Kubernetes API lookup: a pod's labels (for `podSelector`) and its owner (for
    /// the workload key) from the API server, with the pod's service account. Off: the owner is
    /// read from the pod name's shape.
    public struct Kubernetes: Codable, Equatable, Sendable {
        public var enabled: Bool = false
        /// Default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (in a pod).
        public var apiServer: String?
        public var tokenFile: String = KubernetesDefaults.serviceAccount + "/token"
        public var caFile: String = KubernetesDefaults.serviceAccount + "/ca.crt"
        /// Seconds one lookup may take (it holds the agent's loop while a new pod is named; the
        /// API server answers a GET of one pod in milliseconds).
        public var timeout: Double = 2
        /// Seconds without lookups after a failed one; events of pods not yet named are dropped,
        /// and counted, meanwhile. An unreachable API server holds the loop `timeout` seconds per
        /// `retryInterval`.
        public var retryInterval: Double = 30
        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
            apiServer = try c.decodeIfPresent(String.self, forKey: .apiServer)
            tokenFile = try c.decodeIfPresent(String.self, forKey: .tokenFile) ?? tokenFile
            caFile = try c.decodeIfPresent(String.self, forKey: .caFile) ?? caFile
            timeout = try c.decodeIfPresent(Double.self, forKey: .timeout) ?? timeout
            retryInterval = try c.decodeIfPresent(Double.self, forKey: .retryInterval) ?? retryInterval
        }
    }

    /// Cluster profiles: every node merges what it learns into the workload's WorkloadProfile,
    /// learning ends cluster-wide, and every node installs every stable workload's seccomp filter.
    /// Needs `kubernetes.enabled` (the same API server, token and CA).
    public struct Cluster: Codable, Equatable, Sendable {
        public var enabled: Bool = false
        /// Seconds between rounds (each jittered by ±20 %): at most one write per workload per round.
        public var syncInterval: Double = 30
        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
            syncInterval = try c.decodeIfPresent(Double.self, forKey: .syncInterval) ?? syncInterval
        }
    }

    /// When a container's startup ends and it serves (see the README's "Startup and serving").
    public struct Serving: Codable, Equatable, Sendable {
        public enum Trigger: String, Codable, Sendable, CaseIterable {
            /// The container's first accepted connection, seen by the kernel (the default: needs nothing else).
            case accept
            /// The container's `ready` in its pod's status (its readiness probe passed), polled from
            /// the API server while it starts; needs `kubernetes.enabled`.
            case ready
        }

        public var trigger: Trigger = .accept
        /// With `ready`: seconds between two reads of a starting container's pod.
        public var readyPollInterval: Double = 2
        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            trigger = try c.decodeIfPresent(Trigger.self, forKey: .trigger) ?? trigger
            readyPollInterval = try c.decodeIfPresent(Double.self, forKey: .readyPollInterval) ?? readyPollInterval
        }
    }

    public enum KubernetesDefaults {
        public static let serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"
    }

    public struct ModelPaths: Codable, Equatable, Sendable {
        public var workload: String
        public var paths: [String]
        public init(workload: String, paths: [String]) {
            self.workload = workload
            self.paths = paths
        }
    }

    public init() {}

    /// The top-level fields (for the published schema, deploy/agent-config.schema.json).
    public static var fieldNames: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// The fields of each section, so that a misspelt one is an error, not a default: a
    /// `podSelector` with `matchLabel` would otherwise watch every pod.
    public static let sectionFields: [String: [String]] = [
        "learning": ["minDuration", "quietPeriod", "checkpointInterval", "retireAfter"],
        "namespaces": ["include", "exclude"],
        "podSelector": ["matchLabels", "matchExpressions"],
        "kubernetes": ["enabled", "apiServer", "tokenFile", "caFile", "timeout", "retryInterval"],
        "cluster": ["enabled", "syncInterval"],
        "serving": ["trigger", "readyPollInterval"],
    ]

    public struct ProtectedWorkloads: Codable, Equatable, Sendable {
        public var workload: String
        public init(workload: String) { self.workload = workload }
    }

    public func protects(_ workload: String) -> Bool {
        protect.contains { PathPattern("/" + $0.workload).matches("/" + workload) }
    }

    public struct ModelDigests: Codable, Equatable, Sendable {
        public var workload: String
        /// `sha256:<64 lowercase hex digits>`
        public var digests: [String]
        public init(workload: String, digests: [String]) {
            self.workload = workload
            self.digests = digests
        }
    }

    public func modelDigests(for workload: String) -> Set<String> {
        Set(modelDigests.filter { PathPattern("/" + $0.workload).matches("/" + workload) }.flatMap(\.digests))
    }

    /// `metadataServices`, checked at load.
    public var metadataServiceNetworks: MetadataServices {
        MetadataServices(networks: metadataServices.compactMap(IPNetwork.init))
    }

    public func modelPaths(for workload: String) -> [String] {
        modelPaths.filter { PathPattern("/" + $0.workload).matches("/" + workload) }.flatMap(\.paths)
    }

    enum CodingKeys: String, CodingKey {
        case node, cgroupRoots, runtimeStateRoots, profiles, seccompRoot, learning, namespaces, podSelector, kubernetes, cluster, serving
        case modelPaths, modelDigests, protect, metadataServices
        case metricsAddress
        case eventsFile, eventsFileMaxBytes
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        node = try c.decodeIfPresent(String.self, forKey: .node)
        cgroupRoots = try c.decodeIfPresent([String].self, forKey: .cgroupRoots) ?? cgroupRoots
        runtimeStateRoots = try c.decodeIfPresent([String].self, forKey: .runtimeStateRoots) ?? runtimeStateRoots
        profiles = try c.decodeIfPresent(String.self, forKey: .profiles) ?? profiles
        seccompRoot = try c.decodeIfPresent(String.self, forKey: .seccompRoot) ?? seccompRoot
        learning = try c.decodeIfPresent(Learning.self, forKey: .learning) ?? learning
        namespaces = try c.decodeIfPresent(Namespaces.self, forKey: .namespaces) ?? namespaces
        podSelector = try c.decodeIfPresent(LabelSelector.self, forKey: .podSelector) ?? podSelector
        kubernetes = try c.decodeIfPresent(Kubernetes.self, forKey: .kubernetes) ?? kubernetes
        cluster = try c.decodeIfPresent(Cluster.self, forKey: .cluster) ?? cluster
        serving = try c.decodeIfPresent(Serving.self, forKey: .serving) ?? serving
        modelPaths = try c.decodeIfPresent([ModelPaths].self, forKey: .modelPaths) ?? modelPaths
        modelDigests = try c.decodeIfPresent([ModelDigests].self, forKey: .modelDigests) ?? modelDigests
        protect = try c.decodeIfPresent([ProtectedWorkloads].self, forKey: .protect) ?? protect
        metadataServices = try c.decodeIfPresent([String].self, forKey: .metadataServices) ?? metadataServices
        metricsAddress = try c.decodeIfPresent(String.self, forKey: .metricsAddress) ?? metricsAddress
        eventsFile = try c.decodeIfPresent(String.self, forKey: .eventsFile)
        eventsFileMaxBytes = try c.decodeIfPresent(Int.self, forKey: .eventsFileMaxBytes) ?? eventsFileMaxBytes
    }

    /// The longest duration a field may hold: 10 years (no infinity, no NaN).
    public static let maximumSeconds: Double = 10 * 365 * 86400

    /// Reads and checks a configuration file; an error names the file and the field.
    public static func load(file: String) throws -> AgentConfiguration {
        guard let data = FileManager.default.contents(atPath: file) else {
            let reason = access(file, F_OK) != 0 ? "does not exist" : "cannot be read (permission, or not a file)"
            throw ProfileError(file: file, problem: reason)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ProfileError(file: file, problem: "is not UTF-8 text (the configuration is YAML)")
        }
        return try parse(text, file: file)
    }

    /// Checks a configuration's text; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws -> AgentConfiguration {
        let known = Set(CodingKeys.allCases)
        if let top = try? Yams.load(yaml: text) as? [String: Any] {
            for key in top.keys where CodingKeys(rawValue: key).map({ !known.contains($0) }) ?? true {
                throw ProfileError(file: file, field: key, problem: "is not a configuration field (\(known.map(\.rawValue).sorted().joined(separator: ", ")))")
            }
            for (section, fields) in sectionFields {
                guard let values = top[section] as? [String: Any] else { continue }
                for key in values.keys where !fields.contains(key) {
                    throw ProfileError(file: file, field: "\(section).\(key)", problem: "is not a field of \(section) (\(fields.joined(separator: ", ")))")
                }
            }
        }
        let config: AgentConfiguration
        do {
            config = try YAMLDecoder().decode(AgentConfiguration.self, from: text.isEmpty ? "{}" : text)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty {
                throw ProfileError(file: file, problem: "is not valid YAML: \(ProfileCodec.describeYAML(error))")
            }
            let (field, problem) = ProfileCodec.describe(decoding: error)
            throw ProfileError(file: file, field: field, problem: problem)
        } catch {
            throw ProfileError(file: file, problem: "is not valid YAML: \(ProfileCodec.describeYAML(error))")
        }
        for (i, entry) in config.modelDigests.enumerated() {
            for (j, digest) in entry.digests.enumerated() where !ModelRule.isDigest(digest) {
                throw ProfileError(file: file, field: "modelDigests[\(i)].digests[\(j)]", problem: "'\(digest)' is not sha256:<64 lowercase hex digits>")
            }
        }
        for (i, address) in config.metadataServices.enumerated() where IPNetwork(address) == nil {
            throw ProfileError(file: file, field: "metadataServices[\(i)]", problem: "'\(address)' is not an IPv4 or IPv6 address or CIDR (169.254.169.254, fd00:ec2::254/128)")
        }
        for (i, root) in config.cgroupRoots.enumerated() where !root.hasPrefix("/") {
            throw ProfileError(file: file, field: "cgroupRoots[\(i)]", problem: "'\(root)' must start with / (a path inside the cgroup v2 hierarchy)")
        }
        guard config.metricsHostPort != nil else {
            throw ProfileError(file: file, field: "metricsAddress", problem: "'\(config.metricsAddress)' is not host:port (e.g. 127.0.0.1:9464)")
        }
        guard config.eventsFileMaxBytes >= 4096, config.eventsFileMaxBytes <= 1 << 40 else {
            throw ProfileError(file: file, field: "eventsFileMaxBytes", problem: "must be from 4096 to 2^40, is \(config.eventsFileMaxBytes)")
        }
        if !config.podSelector.isEmpty && !config.kubernetes.enabled {
            throw ProfileError(file: file, field: "podSelector", problem: "needs kubernetes.enabled: true (pods' labels come from the API server)")
        }
        for (i, requirement) in config.podSelector.matchExpressions.enumerated() {
            if let problem = requirement.problem {
                throw ProfileError(file: file, field: "podSelector.matchExpressions[\(i)]", problem: problem)
            }
        }
        let k = config.kubernetes
        // A lookup holds the agent's loop: a long one would let the ring buffer fill.
        guard k.timeout > 0, k.timeout <= 30 else {
            throw ProfileError(file: file, field: "kubernetes.timeout", problem: "must be more than 0 and at most 30 seconds, is \(k.timeout)")
        }
        guard k.retryInterval > 0, k.retryInterval <= maximumSeconds else {
            throw ProfileError(file: file, field: "kubernetes.retryInterval", problem: "must be more than 0 seconds, is \(k.retryInterval)")
        }
        if let server = k.apiServer {
            let url = URL(string: server)
            guard url?.scheme == "https", url?.host != nil, url?.path.isEmpty ?? false || url?.path == "/", url?.query == nil else {
                throw ProfileError(file: file, field: "kubernetes.apiServer", problem: "'\(server)' is not https://HOST[:PORT] (no path)")
            }
        }
        if config.cluster.enabled && !k.enabled {
            throw ProfileError(file: file, field: "cluster.enabled", problem: "needs kubernetes.enabled: true (cluster profiles live in the API server)")
        }
        guard config.cluster.syncInterval >= 1, config.cluster.syncInterval <= maximumSeconds else {
            throw ProfileError(file: file, field: "cluster.syncInterval", problem: "must be at least 1 second, is \(config.cluster.syncInterval)")
        }
        for (i, entry) in config.protect.enumerated() where entry.workload.isEmpty || entry.workload.hasPrefix("/") {
            throw ProfileError(file: file, field: "protect[\(i)].workload", problem: "'\(entry.workload)' is not a workload pattern (namespace/kind/name/container, e.g. ml/**)")
        }
        if config.serving.trigger == .ready && !k.enabled {
            throw ProfileError(file: file, field: "serving.trigger", problem: "ready needs kubernetes.enabled: true (readiness is in the pod's status, from the API server); accept needs nothing")
        }
        guard config.serving.readyPollInterval >= 0.1, config.serving.readyPollInterval <= 300 else {
            throw ProfileError(file: file, field: "serving.readyPollInterval", problem: "must be from 0.1 to 300 seconds, is \(config.serving.readyPollInterval)")
        }
        let l = config.learning
        for (name, value) in [("minDuration", l.minDuration), ("quietPeriod", l.quietPeriod), ("checkpointInterval", l.checkpointInterval),
                              ("retireAfter", l.retireAfter)]
        where !(value >= 0 && value <= maximumSeconds) {
            throw ProfileError(file: file, field: "learning.\(name)", problem: "must be from 0 to \(Int(maximumSeconds)) seconds (10 years), is \(value)")
        }
        return config
    }
}

extension AgentConfiguration.CodingKeys: CaseIterable {}
