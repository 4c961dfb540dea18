import Foundation
import VigilCore
import VigilProfiles

/// Installs stable profiles' seccomp filters where the kubelet reads them — only once a filter
/// is sure to let the workload's containers start under the runtimes (and no_new_privs modes)
/// they were seen with: a filter that lacks what the runtime calls after installing it makes
/// every new pod fail.
public struct SeccompInstaller: Sendable {
    public let seccompRoot: String

    public init(seccompRoot: String) {
        self.seccompRoot = seccompRoot
    }

    /// Installs the profile's filter, or says why not.
    public func install(_ profile: Profile, runtimes: Set<ObservedRuntime?>) -> EventEncoder.ProfileState.Seccomp {
        var problems: [String] = []
        for runtime in runtimes.sorted(by: { ($0?.description ?? "") < ($1?.description ?? "") }) {
            guard let runtime else {
                problems.append("a container's runtime could not be told from its state (only runc's state.json is read)")
                continue
            }
            switch SeccompPolicy.missingRuntimeCalls(profile, for: runtime) {
            case nil: problems.append("no allowance was measured for \(runtime)")
            case let missing? where !missing.isEmpty:
                problems.append("\(runtime) needs \(missing.joined(separator: ", ")) after installing the filter and the profile lacks them")
            default: break
            }
        }
        guard problems.isEmpty else {
            return .refused(reason: problems.joined(separator: "; ") + ": not installed, since the filter would keep the pods from "
                + "starting (relearn the workload with this vigil to get today's allowance)")
        }
        do {
            return .installed(localhostProfile: try SeccompExport.install(profile, mode: .enforce, seccompRoot: seccompRoot).localhostProfile)
        } catch {
            return .refused(reason: "could not be written: \(error)")
        }
    }
}
