import ArgumentParser
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
        guard let profile = try latest(workload: workload) else {
            throw CommandFailure("no profile for \(workload) in \(root): learn one first with `vigil learn --workload \(workload) -- COMMAND`")
        }
        return profile
    }
}
