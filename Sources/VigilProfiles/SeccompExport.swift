import Foundation
import VigilCore
import Yams

/// A profile's seccomp filter in the forms Kubernetes users deploy.
public enum SeccompExport {
    /// The OCI JSON the kubelet reads from `<seccomp root>/<localhostProfile>`, as a text file.
    public static func ociJSON(_ profile: Profile, mode: SeccompPolicy.Mode) throws -> Data {
        try SeccompPolicy.oci(profile, mode: mode).json() + Data("\n".utf8)
    }

    /// Writes the profile's OCI JSON, atomically, where the kubelet finds it as
    /// `localhostProfile` (under `vigil/` in its seccomp root). Returns that name and the file.
    /// `vigil/` is never reached through a link, and only a regular file is ever replaced.
    @discardableResult
    public static func install(_ profile: Profile, mode: SeccompPolicy.Mode, seccompRoot: String) throws
        -> (localhostProfile: String, file: String) {
        let name = fileName(workload: profile.workload)
        try SafeDirectory.open(seccompRoot, create: true).subdirectory("vigil", create: true)
            .writeAtomically(try ociJSON(profile, mode: mode), to: name)
        return ("vigil/" + name, seccompRoot + "/vigil/" + name)
    }

    /// Removes a workload's installed filter (its WorkloadProfile was deleted from the cluster).
    public static func uninstall(workload: String, seccompRoot: String) throws {
        try SafeDirectory.open(seccompRoot, create: false).subdirectory("vigil", create: false).removeFile(fileName(workload: workload))
    }

    /// A security-profiles-operator `SeccompProfile` resource (its API is v1beta1).
    public static func spoYAML(_ profile: Profile, mode: SeccompPolicy.Mode, namespace: String?) throws -> String {
        let oci = SeccompPolicy.oci(profile, mode: mode)
        var metadata: [String: Any] = [
            "name": resourceName(profile.workload),
            "annotations": ["vigil.dev/workload": profile.workload, "vigil.dev/profile-version": String(profile.version)],
        ]
        if let namespace { metadata["namespace"] = namespace }
        var spec: [String: Any] = [
            "defaultAction": oci.defaultAction,
            "architectures": oci.architectures,
            "syscalls": oci.syscalls.map { rule -> [String: Any] in
                var entry: [String: Any] = ["action": rule.action, "names": rule.names]
                if let errno = rule.errnoRet { entry["errnoRet"] = Int(errno) }
                return entry
            },
        ]
        if let errno = oci.defaultErrnoRet { spec["defaultErrnoRet"] = Int(errno) }
        let resource: [String: Any] = [
            "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
            "kind": "SeccompProfile",
            "metadata": metadata,
            "spec": spec,
        ]
        return try Yams.dump(object: resource, sortKeys: true)
    }

    /// The pod (or container) securityContext that uses an installed profile.
    public static func podSnippet(localhostProfile: String) -> String {
        """
        securityContext:
          seccompProfile:
            type: Localhost
            localhostProfile: \(localhostProfile)

        """
    }

    /// `<seccomp root>/vigil/<name>.json`, relative to the root as `localhostProfile` wants it.
    public static func localhostProfile(workload: String) -> String {
        "vigil/" + fileName(workload: workload)
    }

    /// One file per workload, never shared (`WorkloadFileName`).
    static func fileName(workload: String) -> String {
        WorkloadFileName.encode(workload) + ".json"
    }

    /// A DNS-1123 name (lowercase letters, digits, '-', '.'; at most 253): the workload's name made
    /// to fit, then `-` and 10 hex digits of its SHA-256, since making it fit can make two names one.
    public static func resourceName(_ workload: String) -> String {
        let mapped = workload.lowercased().map { ($0.isLetter && $0.isASCII) || ($0.isNumber && $0.isASCII) || $0 == "-" || $0 == "." ? $0 : "-" }
        var name = String(String(mapped).trimmingCharacters(in: CharacterSet(charactersIn: "-.")).prefix(200))
        while name.hasSuffix("-") || name.hasSuffix(".") { name.removeLast() }
        return (name.isEmpty ? "workload" : name) + "-" + workload.sha256Hex.prefix(10)
    }
}
