import ArgumentParser

@main
struct Vigil: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Runtime security for model-serving workloads: watch what containers exec, write and connect to.",
        subcommands: [Trace.self]
    )
}
