import ArgumentParser
import Foundation
import VigilCore
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
