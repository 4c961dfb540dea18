import Foundation
import VigilCore

/// What a container's OCI runtime wrote about it: the annotations (CRI names), and which runtime
/// started it with which no_new_privs setting (what its seccomp profile must let run).
public struct RuntimeState: Equatable, Sendable {
    public var annotations: [String: String]
    /// nil: the state file's format names no runtime Vigil knows.
    public var runtime: ObservedRuntime?
    /// The container's first process (runc's init, in the container's root from `create` on),
    /// as the host numbers it; 0 when the state does not say.
    public var initPid: UInt32 = 0
}

/// Reads container state from the runtime's state directory: runc (and containerd's and CRI-O's
/// runc) keeps `<root>/<container id>/state.json`, whose `config.labels` list the bundle's
/// annotations as `key=value` (and `bundle=<path>`), and `config.no_new_privileges` the flag.
public struct RuntimeStateReader: Sendable {
    /// Where runtimes keep their state: containerd's k8s.io namespace, plain runc / CRI-O.
    public static let defaultRoots = ["/run/containerd/runc/k8s.io", "/run/runc"]
    public let roots: [String]

    public init(roots: [String] = RuntimeStateReader.defaultRoots) {
        self.roots = roots
    }

    public func state(containerID: String) -> RuntimeState? {
        for root in roots {
            guard let data = FileManager.default.contents(atPath: "\(root)/\(containerID)/state.json") else { continue }
            return Self.state(stateJSON: data)
        }
        return nil
    }

    public func annotations(containerID: String) -> [String: String]? {
        state(containerID: containerID)?.annotations
    }

    public static func annotations(stateJSON data: Data) -> [String: String]? {
        state(stateJSON: data)?.annotations
    }

    /// libcontainer's state (runc's): `init_process_pid` at the top, the container's config with
    /// `labels` and `no_new_privileges` below.
    public static func state(stateJSON data: Data) -> RuntimeState? {
        guard let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let config = state["config"] as? [String: Any] else { return nil }
        var annotations: [String: String] = [:]
        for label in config["labels"] as? [String] ?? [] {
            guard let eq = label.firstIndex(of: "=") else { continue }
            annotations[String(label[..<eq])] = String(label[label.index(after: eq)...])
        }
        var runtime: ObservedRuntime?
        if state["init_process_pid"] != nil {
            // Written only when true (omitempty).
            let flag = config["no_new_privileges"]
            let noNewPrivileges = (flag as? Bool) ?? (flag as? NSNumber)?.boolValue ?? false
            runtime = ObservedRuntime(runtime: "runc", noNewPrivileges: noNewPrivileges)
        }
        let initPid = (state["init_process_pid"] as? NSNumber)?.uint32Value ?? 0
        return RuntimeState(annotations: annotations, runtime: runtime, initPid: initPid)
    }
}
