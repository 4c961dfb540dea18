import ArgumentParser
import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilRuntime

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the execs, file writes and egress connections of a command, a cgroup or the host as JSON lines.",
        discussion: """
        vigil trace -- COMMAND [ARGS...]   run COMMAND in a cgroup of its own; exit with its status
        vigil trace --cgroup PATH          watch an existing cgroup v2 (and its descendants) until interrupted
        vigil trace --all                  watch every process but vigil itself until interrupted
        """
    )

    @OptionGroup var capture: CaptureOptions

    @Flag(name: .long, help: "Watch every process on the host (but vigil itself).")
    var all = false

    @Option(name: .long, help: "Also save the raw kernel records to this file, for replay (length-prefixed records).")
    var record: String?

    func validate() throws {
        try capture.validate(watchAll: all, allowAll: true)
    }

    func run() throws {
        let status = try reportingFailures { () throws -> Int32 in
            let hierarchy = try CgroupHierarchy.system()
            let probes = try capture.loadProbes(watchAll: all)
            let sink = FileDescriptorSink()
            let pipeline = try EventPipeline(kernel: probes, directory: CommandDirectory(hierarchy: hierarchy, workload: nil),
                                             consumer: EventPrinter(node: capture.nodeName, sink: sink), sink: sink, node: capture.nodeName)
            if let record {
                // Written in place (a device such as /dev/null is fine), never through a link.
                let fd = open(record, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
                guard fd >= 0 else {
                    throw CommandFailure("--record \(record): cannot write: \(String(cString: strerror(errno)))"
                        + (errno == ELOOP ? " (a symbolic link: name the file itself)" : ""))
                }
                pipeline.recordSink = FileDescriptorSink(fd: fd, name: "--record \(record)")
            }
            return try CaptureLoop(options: capture, hierarchy: hierarchy, pipeline: pipeline).run()
        }
        throw ExitCode(status)
    }
}
