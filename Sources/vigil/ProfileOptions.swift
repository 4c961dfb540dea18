import ArgumentParser
import VigilProfiles

struct ProfileStoreOptions: ParsableArguments {
    @Option(name: .long, help: "The profile store: a directory of <workload>/v<N>.yaml files.")
    var profiles: String = "profiles"

    var store: DirectoryProfileStore { DirectoryProfileStore(root: profiles) }
}
