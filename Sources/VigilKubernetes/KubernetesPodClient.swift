import Foundation
import VigilRuntime

/// Reads one pod at a time from the Kubernetes API server with the agent's service account:
/// `GET /api/v1/namespaces/NS/pods/NAME`, which `get` on pods allows (deploy/rbac.yaml) — the
/// agent asks when it first meets a pod's container, not for a list or a watch of the cluster.
public final class KubernetesPodClient: PodMetadataSource {
    public typealias Endpoint = APIEndpoint

    private let connection: APIConnection
    public var endpoint: APIEndpoint { connection.endpoint }

    /// Reads the CA now, so that a missing or broken mount fails at start, not at the first pod.
    public init(endpoint: APIEndpoint) throws {
        connection = try APIConnection(endpoint: endpoint)
    }

    /// Blocks up to the endpoint's timeout; called from the agent's loop when a pod is new.
    public func pod(namespace: String, name: String, uid: String) throws -> PodMetadata? {
        for part in [namespace, name] where !Self.isDNSName(part) {
            throw KubernetesError.configuration("'\(part)' is not a Kubernetes object name")
        }
        let path = "/api/v1/namespaces/\(namespace)/pods/\(name)"
        let (status, body) = try connection.send(.GET, path)
        switch status {
        case 200:
            let pod = try PodMetadata(podJSON: body)
            // A pod re-created under the same name is another pod; the one asked about is gone.
            return pod.uid == uid ? pod : nil
        case 404 where Self.isPodNotFound(body):
            return nil
        case 401:
            throw KubernetesError.refused("the API server rejected the token in '\(endpoint.tokenFile)' (401 Unauthorized): is it the service account's current token?")
        case 403:
            throw KubernetesError.refused("the service account may not read pods (403 Forbidden): apply deploy/rbac.yaml (get on pods)")
        default:
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            throw KubernetesError.unavailable("GET \(path): HTTP \(status) \(text)")
        }
    }

    /// The API server's own "no such pod" (a Status about pods), not a 404 from whatever else
    /// answers at that address (a proxy, a wrong port): that must not make the agent ignore pods.
    static func isPodNotFound(_ body: Data) -> Bool {
        guard let status = APIConnection.status(body) else { return false }
        return status.reason == "NotFound" && status.kind == "pods"
    }

    /// RFC 1123 names, which namespaces and pods are: nothing that could change the request path.
    static func isDNSName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 253 && text.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }
    }
}

public enum KubernetesError: Error, CustomStringConvertible {
    /// At start: fix the configuration or the mounts.
    case configuration(String)
    /// The API server said no: fix the RBAC or the token.
    case refused(String)
    /// The API server could not be reached or answered oddly: retried.
    case unavailable(String)
    /// Another writer changed the object since it was read: read it again and redo the change.
    case conflict(String)
    /// The object would be larger than the API server stores: not written.
    case tooLarge(String)

    public var description: String {
        switch self {
        case let .configuration(text), let .refused(text), let .unavailable(text), let .conflict(text), let .tooLarge(text): return text
        }
    }
}
