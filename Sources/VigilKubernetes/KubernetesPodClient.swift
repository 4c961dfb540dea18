import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import VigilRuntime

/// Reads one pod at a time from the Kubernetes API server with the agent's service account:
/// `GET /api/v1/namespaces/NS/pods/NAME`, which `get` on pods allows (deploy/rbac.yaml) — the
/// agent asks when it first meets a pod's container, not for a list or a watch of the cluster.
///
/// The token is read from its file on every request: kubelets rotate projected service-account
/// tokens (about hourly), and a token read once would expire under a long-running agent.
public final class KubernetesPodClient: PodMetadataSource {
    public struct Endpoint: Sendable, Equatable {
        /// `https://host:port`, without a trailing path.
        public var apiServer: String
        public var tokenFile: String
        public var caFile: String
        /// Seconds a lookup may take, connection included.
        public var timeout: Double

        public init(apiServer: String, tokenFile: String, caFile: String, timeout: Double = 2) {
            self.apiServer = apiServer
            self.tokenFile = tokenFile
            self.caFile = caFile
            self.timeout = timeout
        }

        /// The API server's service address, as the kubelet puts it in every pod's environment.
        public static func apiServerFromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
            guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else { return nil }
            let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
            return host.contains(":") ? "https://[\(host)]:\(port)" : "https://\(host):\(port)"
        }
    }

    public let endpoint: Endpoint
    private let client: HTTPClient

    /// Reads the CA now, so that a missing or broken mount fails at start, not at the first pod.
    public init(endpoint: Endpoint) throws {
        guard let url = URL(string: endpoint.apiServer), url.scheme == "https", url.host != nil,
              url.path.isEmpty || url.path == "/", url.query == nil else {
            throw KubernetesError.configuration("apiServer '\(endpoint.apiServer)' is not https://HOST[:PORT] (no path)")
        }
        guard endpoint.timeout > 0, endpoint.timeout <= 30 else {
            throw KubernetesError.configuration("timeout \(endpoint.timeout) is not between 0 and 30 seconds")
        }
        let roots: [NIOSSLCertificate]
        do {
            roots = try NIOSSLCertificate.fromPEMFile(endpoint.caFile)
        } catch {
            throw KubernetesError.configuration("the cluster CA '\(endpoint.caFile)' cannot be read as PEM (\(error)): is the service account token mounted (automountServiceAccountToken: true)?")
        }
        guard !roots.isEmpty else { throw KubernetesError.configuration("the cluster CA '\(endpoint.caFile)' holds no certificate") }
        guard FileManager.default.isReadableFile(atPath: endpoint.tokenFile) else {
            throw KubernetesError.configuration("the service account token '\(endpoint.tokenFile)' cannot be read: is it mounted (automountServiceAccountToken: true)?")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(roots)
        tls.minimumTLSVersion = .tlsv12
        let timeout = TimeAmount.milliseconds(Int64(endpoint.timeout * 1000))
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow,
                                                     timeout: .init(connect: timeout, read: timeout))
        configuration.httpVersion = .http1Only
        var endpoint = endpoint
        if endpoint.apiServer.hasSuffix("/") { endpoint.apiServer.removeLast() }
        self.endpoint = endpoint
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit {
        try? client.syncShutdown()
    }

    /// Blocks up to the endpoint's timeout; called from the agent's loop when a pod is new.
    public func pod(namespace: String, name: String, uid: String) throws -> PodMetadata? {
        for part in [namespace, name] where !Self.isDNSName(part) {
            throw KubernetesError.configuration("'\(part)' is not a Kubernetes object name")
        }
        let token: String
        do {
            token = try String(contentsOfFile: endpoint.tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw KubernetesError.unavailable("the service account token '\(endpoint.tokenFile)' cannot be read: \(error)")
        }
        let path = "/api/v1/namespaces/\(namespace)/pods/\(name)"
        var request = try HTTPClient.Request(url: endpoint.apiServer + path, method: .GET)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: "application/json")
        let response: HTTPClient.Response
        do {
            response = try client.execute(request: request, deadline: .now() + .milliseconds(Int64(endpoint.timeout * 1000))).wait()
        } catch let error where error is NIOSSLError || error is NIOSSLExtraError {
            throw KubernetesError.unavailable("GET \(endpoint.apiServer)\(path): TLS failed (\(error)): does the API server's certificate chain to '\(endpoint.caFile)' and name the host in apiServer?")
        } catch {
            throw KubernetesError.unavailable("GET \(endpoint.apiServer)\(path) failed: \(error)")
        }
        let body = response.body.map { Data($0.readableBytesView) } ?? Data()
        switch response.status.code {
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
            throw KubernetesError.unavailable("GET \(path): HTTP \(response.status.code) \(text)")
        }
    }

    /// The API server's own "no such pod" (a Status about pods), not a 404 from whatever else
    /// answers at that address (a proxy, a wrong port): that must not make the agent ignore pods.
    static func isPodNotFound(_ body: Data) -> Bool {
        guard let status = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              status["kind"] as? String == "Status", status["reason"] as? String == "NotFound" else { return false }
        return (status["details"] as? [String: Any])?["kind"] as? String == "pods"
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

    public var description: String {
        switch self {
        case let .configuration(text), let .refused(text), let .unavailable(text): return text
        }
    }
}
