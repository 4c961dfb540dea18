import CVigilSys
import Foundation

/// Starts a command inside a cgroup, so that its first exec and everything after it are
/// watched, and waits for it.
public struct LaunchedProcess: Sendable {
    public let pid: pid_t

    /// Starts `arguments[0]` (searched in PATH) in the cgroup whose directory is given (nil:
    /// this process's own cgroup), optionally under a seccomp filter (classic BPF, installed
    /// right before exec, after no_new_privs when asked) and with its stdout/stderr redirected.
    public static func start(_ arguments: [String], cgroupDirectory: String?, seccompFilter: [UInt8]? = nil,
                             noNewPrivileges: Bool = false, stdout: Int32 = -1, stderr: Int32 = -1) throws -> LaunchedProcess {
        guard !arguments.isEmpty else { throw CgroupError("no command to run") }
        let procs = cgroupDirectory.map { $0 + "/cgroup.procs" }
        let pid: pid_t = withArgv(arguments) { argv in
            withOptionalCString(procs) { procsPath in
                (seccompFilter ?? []).withUnsafeBytes { filter in
                    var options = vigil_spawn_options(
                        procs_path: procsPath, filter: seccompFilter == nil ? nil : filter.baseAddress,
                        filter_size: filter.count, no_new_privs: noNewPrivileges ? 1 : 0, stdout_fd: stdout, stderr_fd: stderr)
                    return vigil_spawn(&options, argv)
                }
            }
        }
        guard pid > 0 else {
            throw CgroupError("cannot start \(arguments[0]): \(String(cString: strerror(-pid)))")
        }
        return LaunchedProcess(pid: pid)
    }

    /// A NUL-terminated C argv of copies of `arguments`, valid during `body`.
    fileprivate static func withArgv<R>(_ arguments: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for arg in argv { free(arg) } }
        return argv.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    private static func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let text else { return body(nil) }
        return text.withCString { body($0) }
    }

    public enum Status: Equatable, Sendable {
        case running
        case exited(Int32)
        case signaled(Int32)

        /// The exit status a shell would report: the code, or 128 + the signal.
        public var shellStatus: Int32 {
            switch self {
            case .running: 0
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }
    }

    /// Reaps the process if it has ended (`block`: wait until it does).
    public func status(block: Bool) -> Status {
        var raw: Int32 = 0
        var rc: pid_t
        repeat {
            rc = waitpid(pid, &raw, block ? 0 : WNOHANG)
        } while rc < 0 && errno == EINTR
        guard rc == pid else { return .running }
        let low = raw & 0x7f
        return low == 0 ? .exited((raw >> 8) & 0xff) : .signaled(low)
    }
}

/// Replaces this process with `arguments` under a seccomp filter (no_new_privs first). Returns
/// only on failure.
public func execConfined(_ arguments: [String], seccompFilter: [UInt8]) -> CgroupError {
    let rc = LaunchedProcess.withArgv(arguments) { argv in
        seccompFilter.withUnsafeBytes { vigil_exec_confined($0.baseAddress, $0.count, argv) }
    }
    return CgroupError("cannot run \(arguments.first ?? "") under the filter: \(String(cString: strerror(-rc)))")
}
