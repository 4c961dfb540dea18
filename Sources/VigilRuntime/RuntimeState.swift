import Foundation

/// The annotations of a running container, read from its OCI runtime's state: runc (and
/// containerd's and CRI-O's runc) keeps `<root>/<container id>/state.json`, whose `config.labels`
/// list the bundle's annotations as `key=value` (and `bundle=<path>`).
public struct RuntimeStateReader: Sendable {
    /// Where runtimes keep their state: containerd's k8s.io namespace, plain runc / CRI-O.
    public static let defaultRoots = ["/run/containerd/runc/k8s.io", "/run/runc"]
    public let roots: [String]

    public init(roots: [String] = RuntimeStateReader.defaultRoots) {
        self.roots = roots
    }

    public func annotations(containerID: String) -> [String: String]? {
        for root in roots {
            guard let data = FileManager.default.contents(atPath: "\(root)/\(containerID)/state.json") else { continue }
            return Self.annotations(stateJSON: data)
        }
        return nil
    }

    public static func annotations(stateJSON data: Data) -> [String: String]? {
        guard let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let config = state["config"] as? [String: Any] else { return nil }
        var result: [String: String] = [:]
        for label in config["labels"] as? [String] ?? [] {
            guard let eq = label.firstIndex(of: "=") else { continue }
            result[String(label[..<eq])] = String(label[label.index(after: eq)...])
        }
        return result
    }
}
