import ArgumentParser
import Foundation
import VigilAgent
import VigilCore
import VigilKubernetes
import VigilProfiles

struct ProfileStoreOptions: ParsableArguments {
    @Option(name: .long, help: "The profile store: a directory of <workload>/v<N>.yaml files.")
    var profiles: String = "profiles"

    var store: DirectoryProfileStore { DirectoryProfileStore(root: profiles) }
}

extension DirectoryProfileStore {
    /// The newest profile of a workload, or an error that says how to make one.
    func requireLatest(_ workload: String) throws -> Profile {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw CommandFailure("--profiles \(root) is a file, not a directory of profiles")
        }
        guard let profile = try latest(workload: workload) else {
            throw CommandFailure("no profile for \(workload) in \(root): learn one first with `vigil learn --workload \(workload) -- COMMAND`")
        }
        return profile
    }
}

/// `--cluster`: the profiles in the Kubernetes API (WorkloadProfile objects) instead of a store.
struct ClusterOptions: ParsableArguments {
    @Flag(name: .long, help: "Work on the cluster's profiles (WorkloadProfile objects) instead of a directory store.")
    var cluster = false
    @Option(name: .long, help: "The kubeconfig (default: $KUBECONFIG, else ~/.kube/config, else the pod's service account).")
    var kubeconfig: String?
    @Option(name: .long, help: "The kubeconfig context (default: its current-context).")
    var context: String?

    func client() throws -> WorkloadProfileClient {
        let environment = ProcessInfo.processInfo.environment
        let home = environment["HOME"].map { $0 + "/.kube/config" }
        if let file = kubeconfig ?? environment["KUBECONFIG"]?.split(separator: ":").first.map(String.init)
            ?? home.flatMap({ FileManager.default.fileExists(atPath: $0) ? $0 : nil }) {
            return try WorkloadProfileClient(endpoint: try Kubeconfig.endpoint(file: file, context: context))
        }
        guard let server = APIEndpoint.apiServerFromEnvironment() else {
            throw CommandFailure("--cluster: no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a pod")
        }
        let account = AgentConfiguration.KubernetesDefaults.serviceAccount
        return try WorkloadProfileClient(endpoint: APIEndpoint(apiServer: server, tokenFile: account + "/token", caFile: account + "/ca.crt", timeout: 10))
    }
}
