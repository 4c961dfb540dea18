import ArgumentParser
import Foundation
import VigilCore
import VigilProfiles
import VigilSeccomp

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Show, compare and promote stored profiles.",
        subcommands: [Show.self, Diff.self, Promote.self, Check.self]
    )

    /// NAME (newest version), NAME@N, or a path to a .yaml file.
    static func load(_ reference: String, store: DirectoryProfileStore) throws -> Profile {
        try ProfileReference.load(reference, store: store)
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a profile (NAME, NAME@VERSION or FILE) as YAML.")
        @Argument var profile: String
        @OptionGroup var store: ProfileStoreOptions

        func run() throws {
            try reportingFailures {
                print(try ProfileCodec.encode(try ProfileCommand.load(profile, store: store.store)), terminator: "")
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What changed from profile A to profile B (NAME@VERSION or FILE).")
        @Argument var a: String
        @Argument var b: String
        @OptionGroup var store: ProfileStoreOptions

        func run() throws {
            try reportingFailures {
                let diff = ProfileDiff(from: try ProfileCommand.load(a, store: store.store),
                                       to: try ProfileCommand.load(b, store: store.store))
                print(diff.lines.isEmpty ? "no differences" : diff.lines.joined(separator: "\n"))
            }
        }
    }

    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End learning now: mark the newest profile of a workload stable.")
        @Argument var workload: String
        @OptionGroup var store: ProfileStoreOptions

        func validate() throws { try WorkloadArgument.check(workload, flag: "the workload") }

        func run() throws {
            try reportingFailures {
                let profile = try store.store.requireLatest(workload)
                guard profile.state == .learning else {
                    note("\(workload) v\(profile.version) is already stable")
                    return
                }
                var learner = Learner(profile: profile, resolver: SeccompSyscallResolver())
                learner.stabilize(now: Date())
                try store.store.save(learner.snapshot())
                note("\(workload) v\(profile.version) is stable")
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Load every profile in the store; report the broken ones (exit 1 if any).")
        @OptionGroup var store: ProfileStoreOptions

        func run() throws {
            let (profiles, errors) = store.store.loadAll()
            for profile in profiles { print("ok     \(profile.workload) v\(profile.version) (\(profile.state.rawValue))") }
            for error in errors { print("error  \(error)") }
            if !errors.isEmpty { throw ExitCode(1) }
        }
    }
}
