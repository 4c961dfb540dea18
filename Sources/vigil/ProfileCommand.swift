import ArgumentParser
import Foundation
import VigilCore
import VigilKubernetes
import VigilProfiles
import VigilSeccomp

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "List, show, compare, promote and relearn profiles, in a store or in the cluster (--cluster).",
        subcommands: [List.self, Show.self, Diff.self, Promote.self, Relearn.self, Check.self]
    )

    /// NAME (newest version), NAME@N, or a path to a .yaml file.
    static func load(_ reference: String, store: DirectoryProfileStore) throws -> Profile {
        try ProfileReference.load(reference, store: store)
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per profile: workload, version, state, rules, (cluster) nodes.")
        @OptionGroup var store: ProfileStoreOptions
        @OptionGroup var cluster: ClusterOptions
        @Option(name: .long, help: "With --cluster: only this namespace.") var namespace: String?

        func run() throws {
            try reportingFailures {
                print("WORKLOAD\tVERSION\tSTATE\tEXECS\tWRITES\tDESTINATIONS\tSYSCALLS\tNODES")
                func line(_ profile: Profile, nodes: String) {
                    let syscalls = SyscallABI.allCases.reduce(0) { $0 + profile.syscalls[$1].count }
                    print("\(profile.workload)\t\(profile.version)\t\(profile.state.rawValue)\t\(profile.execs.count)\t"
                        + "\(profile.fileWrites.count)\t\(profile.egress.count)\t\(syscalls)\t\(nodes)")
                }
                if cluster.cluster {
                    let (resources, problems) = try cluster.client().list(namespace: namespace)
                    for resource in resources { line(resource.cluster.profile, nodes: "\(resource.cluster.nodes.count)") }
                    for problem in problems { note("skipped: \(problem)") }
                } else {
                    let (profiles, errors) = store.store.loadAll()
                    var newest: [String: Profile] = [:]
                    for profile in profiles where (newest[profile.workload]?.version ?? 0) < profile.version { newest[profile.workload] = profile }
                    for profile in newest.values.sorted(by: { $0.workload < $1.workload }) { line(profile, nodes: "-") }
                    for error in errors { note("unreadable: \(error)") }
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a profile (NAME, NAME@VERSION or FILE; with --cluster a workload key) as YAML.")
        @Argument var profile: String
        @OptionGroup var store: ProfileStoreOptions
        @OptionGroup var cluster: ClusterOptions

        func run() throws {
            try reportingFailures {
                guard cluster.cluster else {
                    print(try ProfileCodec.encode(try ProfileCommand.load(profile, store: store.store)), terminator: "")
                    return
                }
                let (namespace, name) = try WorkloadProfileResource.objectName(workload: profile)
                guard let resource = try cluster.client().get(namespace: namespace, name: name) else {
                    throw CommandFailure("no WorkloadProfile for \(profile) (\(namespace)/\(name)) in the cluster")
                }
                print("# WorkloadProfile \(namespace)/\(name), resourceVersion \(resource.resourceVersion ?? "-")")
                for node in resource.cluster.nodes {
                    print("# node \(node.node): \(node.events) events, \(node.containers) containers, last new \(node.lastNew)")
                }
                print(try ProfileCodec.encode(resource.cluster.profile), terminator: "")
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What changed from profile A to profile B (NAME@VERSION or FILE); with --cluster, from A to the cluster's profile of its workload.")
        @Argument var a: String
        @Argument var b: String?
        @OptionGroup var store: ProfileStoreOptions
        @OptionGroup var cluster: ClusterOptions

        func validate() throws {
            if cluster.cluster && b != nil {
                throw ValidationError("with --cluster, give one profile: it is compared with the cluster's profile of its workload")
            }
            if !cluster.cluster && b == nil {
                throw ValidationError("give two profiles to compare, or one and --cluster")
            }
        }

        func run() throws {
            try reportingFailures {
                let from = try ProfileCommand.load(a, store: store.store)
                let to: Profile
                if let b {
                    to = try ProfileCommand.load(b, store: store.store)
                } else {
                    let (namespace, name) = try WorkloadProfileResource.objectName(workload: from.workload)
                    guard let resource = try cluster.client().get(namespace: namespace, name: name) else {
                        throw CommandFailure("no WorkloadProfile for \(from.workload) (\(namespace)/\(name)) in the cluster")
                    }
                    to = resource.cluster.profile
                }
                let diff = ProfileDiff(from: from, to: to)
                print(diff.lines.isEmpty ? "no differences" : diff.lines.joined(separator: "\n"))
            }
        }
    }

    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End learning now: mark the newest profile of a workload stable.")
        @OptionGroup var target: WorkloadTarget

        func run() throws {
            let (workload, store, cluster) = (target.workload, target.store, target.cluster)
            try reportingFailures {
                if cluster.cluster {
                    let stored = try cluster.client().update(workload: workload) { ProfileMerge.promote(&$0, now: Date()) }
                    note("\(workload) v\(stored.cluster.profile.version) is stable in the cluster; every node monitors it from its next round")
                    return
                }
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

    struct Relearn: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a workload's profile anew as its next version (the old versions stay).")
        @OptionGroup var target: WorkloadTarget

        func run() throws {
            let (workload, store, cluster) = (target.workload, target.store, target.cluster)
            try reportingFailures {
                if cluster.cluster {
                    let stored = try cluster.client().update(workload: workload) { ProfileMerge.relearn(&$0, now: Date()) }
                    note("\(workload) relearns as v\(stored.cluster.profile.version) in the cluster; nodes start at their next round "
                        + "(its seccomp filter stays installed until the new version is stable)")
                    return
                }
                let profile = try store.store.requireLatest(workload)
                let fresh = Learner.start(workload: workload, modelPaths: profile.modelPaths, minDuration: profile.learning.minDuration,
                                          quietPeriod: profile.learning.quietPeriod, version: profile.version + 1, now: Date(),
                                          resolver: SeccompSyscallResolver())
                try store.store.save(fresh.profile)
                note("\(workload) relearns as v\(profile.version + 1) (v\(profile.version) kept)")
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

/// A workload to change, in a store or (--cluster) in the cluster.
struct WorkloadTarget: ParsableArguments {
    @Argument var workload: String
    @OptionGroup var store: ProfileStoreOptions
    @OptionGroup var cluster: ClusterOptions

    func validate() throws { try WorkloadArgument.check(workload, flag: "the workload") }
}
