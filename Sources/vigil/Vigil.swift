import ArgumentParser

@main
struct Vigil: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Runtime security for model-serving workloads: watch what containers exec, write and connect to; learn it; report what departs from it.",
        subcommands: [Trace.self, Learn.self, Monitor.self, ProfileCommand.self, SeccompCommand.self, AgentCommand.self]
    )
}
