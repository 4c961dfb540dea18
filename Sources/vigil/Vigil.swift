import ArgumentParser
import Foundation
import Logging

@main
struct Vigil: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Runtime security for model-serving workloads: watch what containers exec, write and connect to; learn it; report what departs from it.",
        subcommands: [Trace.self, Learn.self, Monitor.self, ProfileCommand.self, SeccompCommand.self, AgentCommand.self, CheckKernel.self]
    )

    static func main() async {
        // A closed stdout (`vigil trace -- … | head`) is an error to report and stop on (the
        // sinks see EPIPE), not a signal that kills vigil and leaves its command running unwatched.
        signal(SIGPIPE, SIG_IGN)
        // The agent logs its life (info); the other commands print their results and log only
        // what went wrong.
        let level: Logger.Level = CommandLine.arguments.dropFirst().first == "agent" ? .info : .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        await main(nil)
    }
}
