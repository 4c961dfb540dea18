import Foundation
import VigilCore
import VigilRuntime
import VigilSeccomp

/// Runs a command unconfined and then under a seccomp profile (compiled by libseccomp, installed
/// with no_new_privs right before exec, as a runtime does) and compares what it did: the proof
/// that a generated profile holds is the kernel enforcing it, not a list of names.
public enum SeccompVerifier {
    public struct Run: Equatable, Sendable {
        public var status: LaunchedProcess.Status
        public var output: Data
    }

    public static func run(_ command: [String], filter: SeccompFilter?) throws -> Run {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SeccompError("pipe: \(String(cString: strerror(errno)))") }
        let reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        let process: LaunchedProcess
        do {
            process = try LaunchedProcess.start(command, cgroupDirectory: nil, seccompFilter: filter?.program,
                                                noNewPrivileges: filter != nil, stdout: fds[1])
        } catch {
            close(fds[1])
            throw error
        }
        close(fds[1])
        let output = reader.readDataToEndOfFile()
        return Run(status: process.status(block: true), output: output)
    }

    /// (unconfined, confined): equal when the profile lets the command do what it does.
    public static func verify(_ profile: OCISeccomp, command: [String]) throws -> (unconfined: Run, confined: Run) {
        let filter = try SeccompFilter(profile)
        return (try run(command, filter: nil), try run(command, filter: filter))
    }
}
