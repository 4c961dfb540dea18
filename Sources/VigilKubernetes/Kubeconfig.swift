import Foundation
import Yams

/// How the command line reaches the API server: a kubeconfig's context (server, CA, bearer
/// token), or — inside a pod — the pod's service account. Only what a security tool should
/// accept: TLS checked against the cluster's CA, a bearer token. Client certificates, exec
/// credential plugins and `insecure-skip-tls-verify` are refused with what to use instead.
public enum Kubeconfig {
    /// The endpoint of `context` (default: the file's current-context) in `file`.
    public static func endpoint(file: String, context: String? = nil, timeout: Double = 10) throws -> APIEndpoint {
        guard let text = FileManager.default.contents(atPath: file).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw KubernetesError.configuration("kubeconfig \(file) cannot be read")
        }
        guard let root = try? Yams.load(yaml: text) as? [String: Any] else {
            throw KubernetesError.configuration("kubeconfig \(file) is not YAML with clusters, users and contexts")
        }
        func named(_ list: String, _ name: String, _ field: String) throws -> [String: Any] {
            let entries = root[list] as? [[String: Any]] ?? []
            guard let entry = entries.first(where: { $0["name"] as? String == name }), let value = entry[field] as? [String: Any] else {
                throw KubernetesError.configuration("kubeconfig \(file): no \(field) named '\(name)' in \(list)")
            }
            return value
        }
        guard let contextName = context ?? (root["current-context"] as? String), !contextName.isEmpty else {
            throw KubernetesError.configuration("kubeconfig \(file) has no current-context: name one with --context")
        }
        let chosen = try named("contexts", contextName, "context")
        guard let clusterName = chosen["cluster"] as? String, let userName = chosen["user"] as? String else {
            throw KubernetesError.configuration("kubeconfig \(file): context '\(contextName)' names no cluster or user")
        }
        let cluster = try named("clusters", clusterName, "cluster")
        let user = try named("users", userName, "user")
        guard let server = cluster["server"] as? String else {
            throw KubernetesError.configuration("kubeconfig \(file): cluster '\(clusterName)' has no server")
        }
        if cluster["insecure-skip-tls-verify"] as? Bool == true {
            throw KubernetesError.configuration("kubeconfig \(file): cluster '\(clusterName)' skips TLS verification; Vigil does not: give its certificate-authority")
        }
        let directory = (file as NSString).deletingLastPathComponent
        func path(_ value: String) -> String { value.hasPrefix("/") ? value : directory + "/" + value }

        var caFile = "", caPEM: [UInt8]?
        if let data = cluster["certificate-authority-data"] as? String {
            guard let pem = Data(base64Encoded: data) else {
                throw KubernetesError.configuration("kubeconfig \(file): cluster '\(clusterName)' certificate-authority-data is not base64")
            }
            caPEM = Array(pem)
        } else if let ca = cluster["certificate-authority"] as? String {
            caFile = path(ca)
        } else {
            throw KubernetesError.configuration("kubeconfig \(file): cluster '\(clusterName)' has no certificate-authority(-data): Vigil checks the API server's certificate")
        }

        var tokenFile = "", token: String?
        if let value = user["token"] as? String {
            token = value
        } else if let value = user["tokenFile"] as? String {
            tokenFile = path(value)
        } else if user["client-certificate"] != nil || user["client-certificate-data"] != nil {
            throw KubernetesError.configuration("kubeconfig \(file): user '\(userName)' authenticates with a client certificate, which vigil does not support: use a bearer token (kubectl create token SERVICEACCOUNT)")
        } else if user["exec"] != nil || user["auth-provider"] != nil {
            throw KubernetesError.configuration("kubeconfig \(file): user '\(userName)' gets credentials from a plugin, which vigil does not run: use a bearer token (kubectl create token SERVICEACCOUNT)")
        } else {
            throw KubernetesError.configuration("kubeconfig \(file): user '\(userName)' has no token")
        }
        return APIEndpoint(apiServer: server, tokenFile: tokenFile, caFile: caFile, timeout: timeout, token: token, caPEM: caPEM)
    }
}
