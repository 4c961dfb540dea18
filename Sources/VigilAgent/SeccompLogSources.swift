import Foundation
import VigilCore

/// Where a node's seccomp audit records (SCMP_ACT_LOG, type 1326) end up, read back after a
/// complain-mode trial: the kernel sends them to auditd when it runs (many distributions run
/// it by default) and prints them to its own log only when it does not, rate limited (10 per
/// 5 s by default: printk_ratelimit); journald, where it runs, keeps them too. Each source is
/// read; the report says which gave what.
public enum SeccompLogSources {
    public struct Reading: Sendable {
        public var records: [SeccompAuditRecord]
        /// One line per source read: "auditd's log /var/log/audit/audit.log: 12 records".
        public var sources: [String]
    }

    public static func readAll() -> Reading {
        var records: [SeccompAuditRecord] = []
        var sources: [String] = []
        if let auditd = runningAuditd() {
            let file = auditLogFile(configDirectory: auditd.configDirectory)
            if let data = FileManager.default.contents(atPath: file) {
                let found = SeccompAuditRecord.parse(String(decoding: data, as: UTF8.self))
                records += found
                sources.append("auditd's log \(file) (auditd runs, pid \(auditd.pid)): \(found.count) records")
            } else {
                sources.append("auditd's log \(file) (auditd runs, pid \(auditd.pid)): cannot be read")
            }
        } else {
            sources.append("auditd: not running")
        }
        let kernel = SeccompAuditRecord.parse(kernelLog())
        records += kernel
        sources.append("the kernel log (/dev/kmsg): \(kernel.count) records")
        if let journal = journal() {
            let found = SeccompAuditRecord.parse(journal)
            records += found
            sources.append("the journal (journalctl _AUDIT_TYPE=1326): \(found.count) records")
        }
        return Reading(records: records, sources: sources)
    }

    /// The kernel log as /dev/kmsg holds it now (without waiting for more).
    public static func kernelLog() -> String {
        let fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 {
                text += String(decoding: buffer[0..<n], as: UTF8.self)
                if !text.hasSuffix("\n") { text += "\n" }
            } else if n < 0 && errno == EPIPE {
                continue // a record was overwritten while reading: skip it
            } else {
                break // EAGAIN: nothing more
            }
        }
        return text
    }

    /// The audit daemon, if one runs: its pid and the configuration directory it was given (`-c`).
    static func runningAuditd() -> (pid: Int32, configDirectory: String)? {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
                  comm.trimmingCharacters(in: .whitespacesAndNewlines) == "auditd",
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            var directory = "/etc/audit"
            if let index = arguments.firstIndex(of: "-c"), index + 1 < arguments.count { directory = arguments[index + 1] }
            return (pid, directory)
        }
        return nil
    }

    /// `log_file` from auditd.conf (default /var/log/audit/audit.log).
    static func auditLogFile(configDirectory: String) -> String {
        let text = (try? String(contentsOfFile: configDirectory + "/auditd.conf", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == "log_file", !parts[1].isEmpty { return parts[1] }
        }
        return "/var/log/audit/audit.log"
    }

    /// journald's copy of the seccomp audit records, where journalctl exists (not checked on
    /// this project's machines, which run no systemd).
    static func journal() -> String? {
        guard let journalctl = ["/usr/bin/journalctl", "/bin/journalctl"].first(where: FileManager.default.isExecutableFile) else {
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: journalctl)
        process.arguments = ["--no-pager", "-o", "cat", "_AUDIT_TYPE=1326"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        // journald keeps the message without its type: make every line a seccomp record.
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { "type=1326 " + $0 }.joined(separator: "\n")
    }
}
