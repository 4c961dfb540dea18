/// What a cgroup path says about the container in it, for the layouts kubelets create with
/// containerd, CRI-O and Docker under the cgroupfs and systemd drivers:
///
///   /kubepods/burstable/pod<uid>/<id>                                       cgroupfs (containerd, Docker)
///   /kubepods/pod<uid>/crio-<id>                                            cgroupfs, CRI-O (Guaranteed QoS)
///   /kubepods.slice/kubepods-besteffort.slice/
///       kubepods-besteffort-pod<uid with _>.slice/cri-containerd-<id>.scope systemd, containerd
///       …/crio-<id>.scope, …/docker-<id>.scope                              systemd, CRI-O / Docker
public struct ContainerCgroup: Equatable, Sendable {
    public enum Runtime: String, Sendable {
        case containerd, crio, docker, unknown
    }

    public var runtime: Runtime
    /// The container id (64 hex digits for containerd, CRI-O and Docker).
    public var containerID: String
    /// The pod's UID, with dashes, as the API server writes it.
    public var podUID: String
    /// guaranteed, burstable or besteffort.
    public var qosClass: String

    public static func parse(_ path: String) -> ContainerCgroup? {
        let components = path.split(separator: "/").map(String.init)
        guard let podIndex = components.lastIndex(where: { podUID(in: $0) != nil }),
              podIndex + 1 < components.count,
              let uid = podUID(in: components[podIndex]) else { return nil }
        guard let (runtime, id) = container(in: components[podIndex + 1]) else { return nil }
        let qos = components[..<podIndex].compactMap(qosClass(in:)).last ?? "guaranteed"
        return ContainerCgroup(runtime: runtime, containerID: id, podUID: uid, qosClass: qos)
    }

    /// `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd).
    static func podUID(in component: String) -> String? {
        var text = Substring(component)
        if text.hasSuffix(".slice") {
            text = text.dropLast(".slice".count)
            guard let range = text.range(of: "-pod", options: .backwards) else { return nil }
            text = text[range.upperBound...]
            let uid = text.replacingOccurrences(of: "_", with: "-")
            return isUID(uid) ? uid : nil
        }
        guard text.hasPrefix("pod") else { return nil }
        let uid = String(text.dropFirst(3))
        return isUID(uid) ? uid : nil
    }

    static func isUID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false).map(\.count)
        return groups == [8, 4, 4, 4, 12] && text.allSatisfy { $0.isHexDigit || $0 == "-" }
    }

    static func container(in component: String) -> (ContainerCgroup.Runtime, String)? {
        var text = Substring(component)
        if text.hasSuffix(".scope") { text = text.dropLast(".scope".count) }
        let prefixes: [(String, Runtime)] = [("cri-containerd-", .containerd), ("crio-", .crio), ("docker-", .docker)]
        var runtime = Runtime.unknown
        for (prefix, candidate) in prefixes where text.hasPrefix(prefix) {
            text = text.dropFirst(prefix.count)
            runtime = candidate
        }
        guard text.count >= 12, text.allSatisfy(\.isHexDigit) else { return nil }
        return (runtime, String(text))
    }

    static func qosClass(in component: String) -> String? {
        for qos in ["burstable", "besteffort"] where component == qos || component.hasSuffix("-\(qos).slice") {
            return qos
        }
        return nil
    }
}

/// The Kubernetes names of a container, from its CRI annotations.
public struct PodIdentity: Equatable, Sendable {
    public var namespace: String
    public var pod: String
    public var container: String
    public var image: String?
    /// The owning workload as the Kubernetes API names it (see PodMetadata); nil: read from the
    /// pod name's shape.
    public var owner: PodMetadata.Owner?

    /// containerd's `io.kubernetes.cri.*` or CRI-O's `io.kubernetes.pod.*` annotations.
    public init?(annotations: [String: String]) {
        if let namespace = annotations["io.kubernetes.cri.sandbox-namespace"],
           let pod = annotations["io.kubernetes.cri.sandbox-name"],
           let container = annotations["io.kubernetes.cri.container-name"] {
            self.init(namespace: namespace, pod: pod, container: container, image: annotations["io.kubernetes.cri.image-name"])
        } else if let namespace = annotations["io.kubernetes.pod.namespace"],
                  let pod = annotations["io.kubernetes.pod.name"],
                  let container = annotations["io.kubernetes.container.name"] {
            self.init(namespace: namespace, pod: pod, container: container, image: annotations["io.kubernetes.cri-o.ImageName"])
        } else {
            return nil
        }
    }

    public init(namespace: String, pod: String, container: String, image: String?, owner: PodMetadata.Owner? = nil) {
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.image = image
        self.owner = owner
    }

    /// `namespace/kind/owner/container`, the same for every replica: a Deployment's pods are
    /// `<name>-<replicaset hash>-<5 chars>`, a StatefulSet's `<name>-<ordinal>`, a DaemonSet's or
    /// Job's `<name>-<5 chars>`. With the Kubernetes API the owner comes from the pod's controller;
    /// without it the kind is read from the name's shape. A bare pod is its own owner.
    public var workloadKey: String {
        let (kind, name) = owner.map { ($0.kind, $0.name) } ?? Self.owner(ofPod: pod)
        return "\(namespace)/\(kind)/\(name)/\(container)"
    }

    static func owner(ofPod pod: String) -> (kind: String, name: String) {
        let parts = pod.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        func isSuffix(_ s: String, lengths: ClosedRange<Int>) -> Bool {
            lengths.contains(s.count) && s.allSatisfy { $0.isLowercase || $0.isNumber }
        }
        if parts.count >= 3, isSuffix(parts[parts.count - 1], lengths: 5...5), isSuffix(parts[parts.count - 2], lengths: 6...10),
           parts[parts.count - 2].contains(where: \.isNumber) || parts[parts.count - 2].count >= 9 {
            return ("deployment", parts.dropLast(2).joined(separator: "-"))
        }
        if parts.count >= 2, let last = parts.last, !last.isEmpty, last.allSatisfy(\.isNumber) {
            return ("statefulset", parts.dropLast().joined(separator: "-"))
        }
        if parts.count >= 2, isSuffix(parts[parts.count - 1], lengths: 5...5) {
            return ("generated", parts.dropLast().joined(separator: "-"))
        }
        return ("pod", pod)
    }
}
