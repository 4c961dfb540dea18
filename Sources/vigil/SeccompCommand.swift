import ArgumentParser
import Foundation
import VigilAgent
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilSeccomp

extension SeccompPolicy.Mode: ExpressibleByArgument {}

struct SeccompCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seccomp",
        abstract: "Seccomp profiles from learned syscalls: export, prove by running under them, install for the kubelet.",
        subcommands: [Export.self, Verify.self, Run.self, Install.self, AbsorbLog.self]
    )

    enum Format: String, ExpressibleByArgument {
        case oci, spo
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print (or write) a workload's seccomp profile.")
        @Option(name: .long, help: "The workload (its newest profile), NAME@VERSION, or a profile YAML file.") var workload: String
        @OptionGroup var store: ProfileStoreOptions
        @Option(name: .long, help: "oci: runtime-spec JSON (kubelet Localhost); spo: a security-profiles-operator SeccompProfile.")
        var format: Format = .oci
        @Option(name: .long, help: "enforce: other syscalls fail with EPERM; kill: they kill the process; complain: they are allowed and logged.")
        var mode: SeccompPolicy.Mode = .enforce
        @Option(name: .long, help: "Namespace of the SeccompProfile resource (spo).") var namespace: String?
        @Option(name: .long, help: "Write here (atomically) instead of stdout.") var out: String?

        func run() throws {
            try reportingFailures {
                let profile = try ProfileCommand.load(workload, store: store.store)
                let data: Data = switch format {
                case .oci: try SeccompExport.ociJSON(profile, mode: mode)
                case .spo: Data(try SeccompExport.spoYAML(profile, mode: mode, namespace: namespace).utf8)
                }
                if let out {
                    try AtomicFile.write(data, to: out)
                } else {
                    FileHandle.standardOutput.write(data)
                }
                note(describeComposition(profile))
                for problem in runtimeProblems(profile) { note("warning: \(problem)") }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run COMMAND unconfined, then under the profile (libseccomp, no_new_privs); say whether it behaved the same.",
            discussion: "Compares the exit status and the standard output of the two runs. Exits 0 when they match, 1 when not.")
        @Option(name: .long, help: "An OCI seccomp JSON file (from `vigil seccomp export`).") var profile: String
        @Argument(parsing: .postTerminator, help: "The command.") var command: [String] = []

        func validate() throws {
            guard !command.isEmpty else { throw ValidationError("give the command to verify after --") }
        }

        func run() throws {
            let same = try reportingFailures { () throws -> Bool in
                let (unconfined, confined) = try SeccompVerifier.verify(try loadOCI(profile), command: command)
                FileHandle.standardOutput.write(confined.output)
                let same = unconfined == confined
                note(same
                    ? "the profile holds: same exit status (\(confined.status.shellStatus)) and output (\(confined.output.count) bytes) as unconfined"
                    : "the profile changes the command's behaviour: unconfined exit \(unconfined.status.shellStatus), "
                        + "\(unconfined.output.count) bytes; under the profile exit \(confined.status.shellStatus), \(confined.output.count) bytes")
                return same
            }
            if !same { throw ExitCode(1) }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace vigil with COMMAND running under the profile (libseccomp, no_new_privs), as a container runtime would.")
        @Option(name: .long, help: "An OCI seccomp JSON file (from `vigil seccomp export`).") var profile: String
        @Argument(parsing: .postTerminator, help: "The command.") var command: [String] = []

        func validate() throws {
            guard !command.isEmpty else { throw ValidationError("give the command to run after --") }
        }

        func run() throws {
            try reportingFailures {
                let filter = try SeccompFilter(try loadOCI(profile))
                throw execConfined(command, seccompFilter: filter.program)
            }
        }
    }

    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a workload's OCI seccomp profile into the kubelet's seccomp root (under vigil/), atomically.")
        @Option(name: .long, help: "The workload (its newest profile), NAME@VERSION, or a profile YAML file.") var workload: String
        @OptionGroup var store: ProfileStoreOptions
        @Option(name: .long, help: "The kubelet's seccomp root.") var seccompRoot: String = "/var/lib/kubelet/seccomp"
        @Option(name: .long) var mode: SeccompPolicy.Mode = .enforce

        func run() throws {
            try reportingFailures {
                let profile = try ProfileCommand.load(workload, store: store.store)
                // As the agent does: never install a filter a runtime could not start a container under.
                let problems = runtimeProblems(profile)
                guard problems.isEmpty else {
                    throw CommandFailure("not installed: \(problems.joined(separator: "; ")); relearn the workload with this vigil")
                }
                let installed = try SeccompExport.install(profile, mode: mode, seccompRoot: seccompRoot)
                note("installed \(installed.file); use it from a pod with:")
                print(SeccompExport.podSnippet(localhostProfile: installed.localhostProfile), terminator: "")
            }
        }
    }

    struct AbsorbLog: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "absorb-log",
            abstract: "After a trial run under a complain-mode profile: add what it would have denied to a new profile version.",
            discussion: """
            Reads the kernel's seccomp audit records (type 1326, action log) wherever the node sends them: auditd's
            log when auditd runs (its log_file), the kernel log (/dev/kmsg) when it does not, and the journal where
            journalctl exists — or --log FILE (saved dmesg output, an audit.log) — for processes whose executable is
            one of the profile's binaries, and writes version N+1 of the profile with those syscalls added. Says
            which sources it read and how many records each gave. Without auditd the kernel prints at most 10
            records per 5 s (kernel.printk_ratelimit_burst): run the trial with auditd, or raise the burst.
            """)
        @Option(name: .long, help: "The workload whose newest profile to extend.") var workload: String
        @OptionGroup var store: ProfileStoreOptions
        @Option(name: .long, help: "Read audit records from this file instead of /dev/kmsg.") var log: String?

        func run() throws {
            try reportingFailures {
                try WorkloadArgument.check(workload)
                var profile = try store.store.requireLatest(workload)
                let all: [SeccompAuditRecord]
                if let log {
                    // Audit records are ASCII; anything else in the file is kept as replacement characters.
                    all = SeccompAuditRecord.parse(String(decoding: try readUserFile(log, flag: "--log"), as: UTF8.self))
                    note("read \(log): \(all.count) seccomp records")
                } else {
                    let reading = SeccompLogSources.readAll()
                    all = reading.records
                    for source in reading.sources { note("read \(source)") }
                }
                let resolver = SeccompSyscallResolver()
                let binaries = Set(profile.execs.map(\.exe))
                let records = all.filter { $0.isLogAction && binaries.contains($0.exe) }
                var added: [String] = []
                for record in records {
                    guard let name = resolver.name(of: record.syscall, abi: record.abi) else { continue }
                    if !profile.syscalls[record.abi].contains(name) {
                        profile.syscalls[record.abi].append(name)
                        profile.syscalls[record.abi].sort()
                        added.append("\(record.abi.name):\(name)")
                    }
                }
                guard !added.isEmpty else {
                    note("no logged syscall is missing from \(workload) v\(profile.version) (\(records.count) records)")
                    return
                }
                guard profile.version < ProfileCodec.maximumVersion else {
                    throw CommandFailure("\(workload) is at the highest version (\(profile.version)): no version can follow it")
                }
                profile.version = store.store.versions(workload: workload).last.map { max($0, profile.version) + 1 } ?? profile.version + 1
                try store.store.save(profile)
                note("\(workload) v\(profile.version): added \(Set(added).sorted().joined(separator: ", "))")
            }
        }
    }
}

/// "allows 63 of the 368 x86_64 syscalls: 50 the workload made, 10 for the runtimes …": the
/// tightness of a profile's filter and where each allowed call comes from.
func describeComposition(_ profile: Profile) -> String {
    let resolver = SeccompSyscallResolver()
    let parts = SeccompPolicy.composition(profile)
    func x86(_ names: [String]) -> [String] { names.filter { resolver.number(of: $0, abi: .x86_64) != nil } }
    let runtimes = profile.seccomp?.runtimes ?? SeccompAllowances.runtimeNames
    return "\(profile.workload) v\(profile.version): allows \(x86(Array(parts.all)).count) of the \(resolver.count(abi: .x86_64)) x86_64 syscalls: "
        + "\(x86(parts.workload).count) the workload made; \(x86(parts.runtime).count) for the container runtimes "
        + "(\(runtimes.joined(separator: ", ")); after their filter goes in, either no_new_privs mode): \(parts.runtime.joined(separator: " ")); "
        + "\(x86(parts.baseline).count) asynchronous baseline: \(parts.baseline.joined(separator: " "))"
}

/// Why the profile's filter could keep a runtime Vigil knows from starting the workload.
func runtimeProblems(_ profile: Profile) -> [String] {
    SeccompAllowances.runtimes.compactMap { allowance in
        let runtime = ObservedRuntime(runtime: allowance.runtime, noNewPrivileges: allowance.noNewPrivileges)
        guard let missing = SeccompPolicy.missingRuntimeCalls(profile, for: runtime), !missing.isEmpty else { return nil }
        return "\(runtime) needs \(missing.joined(separator: ", ")), which the profile's seccomp section lacks"
    }
}

func loadOCI(_ path: String) throws -> OCISeccomp {
    let data = try readUserFile(path, flag: "--profile")
    do {
        return try OCISeccomp.decode(data)
    } catch {
        throw CommandFailure("--profile \(path): not an OCI seccomp profile: \(error)")
    }
}
