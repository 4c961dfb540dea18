import ArgumentParser
import Foundation

@main
struct Vigil: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Runtime security for model-serving workloads: watch what containers exec, write and connect to; learn it; report what departs from it.",
        subcommands: [Trace.self, Learn.self, Monitor.self, ProfileCommand.self, SeccompCommand.self, AgentCommand.self]
    )

    static func main() {
        // A closed stdout (`vigil trace -- … | head`) is an error to report and stop on (the
        // sinks see EPIPE), not a signal that kills vigil and leaves its command running unwatched.
        signal(SIGPIPE, SIG_IGN)
        main(nil)
    }
}
