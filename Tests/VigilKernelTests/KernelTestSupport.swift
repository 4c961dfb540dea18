import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilRuntime
import VigilTestSupport
import XCTest

/// Tests here load Vigil's programs into the running kernel and start real processes in real
/// cgroups. They need root; under CI (CI=true) a missing privilege is a failure, not a skip.
enum KernelTestSupport {
    /// A test node's agent configuration: its pods under `kubepods`, runc's state, the profile
    /// store and the seccomp root under `work`; learning ends 2 s after the last new behaviour.
    static func nodeConfiguration(kubepods: String, work: String) -> AgentConfiguration {
        var configuration = AgentConfiguration()
        configuration.cgroupRoots = [kubepods]
        configuration.runtimeStateRoots = [work + "/runc"]
        configuration.profiles = work + "/profiles"
        configuration.seccompRoot = work + "/seccomp"
        configuration.learning.minDuration = 0
        configuration.learning.quietPeriod = 2
        return configuration
    }

    static func requireRoot() throws {
        guard geteuid() != 0 else { return }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("kernel tests must run as root under CI")
            throw XCTSkip("not root")
        }
        throw XCTSkip("needs root to load BPF programs and create cgroups; run `sudo swift test`")
    }

    /// The vigil-workload binary built beside the test bundle.
    static var workload: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = (exe as NSString).deletingLastPathComponent
        // swift test runs <products>/VigilPackageTests.xctest; the products are beside it.
        while !FileManager.default.fileExists(atPath: directory + "/vigil-workload") && directory != "/" {
            directory = (directory as NSString).deletingLastPathComponent
        }
        return realpath(directory + "/vigil-workload")
    }

    static func realpath(_ path: String) -> String {
        guard let resolved = Glibc.realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/vigil-test-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw CgroupError("mkdtemp failed") }
        return realpath(String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// A fresh cgroup under the v2 root, removed at the end of the test.
    static func makeCgroup(_ test: XCTestCase, hierarchy: CgroupHierarchy) throws -> (path: String, id: UInt64) {
        let path = "/vigil-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let id = try hierarchy.create(path)
        test.addTeardownBlock { try? hierarchy.remove(path) }
        return (path, id)
    }
}

/// A printing pipeline (`vigil trace`) on freshly loaded programs, watching a fresh cgroup of the test.
struct TracedCgroup {
    let hierarchy: CgroupHierarchy
    let probes: KernelProbes
    let sink = MemorySink()
    let pipeline: EventPipeline
    private let printer: RecordingPrinter
    let path: String
    let id: UInt64

    init(_ test: XCTestCase, node: String = "n", options: KernelProbes.Options = .init()) throws {
        try KernelTestSupport.requireRoot()
        hierarchy = try CgroupHierarchy.system()
        probes = try KernelProbes(options: options)
        printer = RecordingPrinter(EventPrinter(node: node, sink: sink))
        pipeline = try EventPipeline(kernel: probes, directory: CommandDirectory(hierarchy: hierarchy, workload: nil),
                                     consumer: printer, sink: sink, node: node)
        (path, id) = try KernelTestSupport.makeCgroup(test, hierarchy: hierarchy)
        try probes.watch(cgroupID: id)
    }

    /// The syscalls every cgroup below the test's made: those still there, read from the kernel's
    /// bitmaps, and those removed (a container runc deleted), from their cgroup_rmdir records.
    func syscallsBelow() throws -> CgroupSyscalls {
        try pipeline.drain()
        var seen = CgroupSyscalls(workload: SyscallBitmap())
        for (id, syscalls) in probes.syscallBitmaps() where id != self.id { seen.formUnion(syscalls) }
        for syscalls in printer.removed.values { seen.formUnion(syscalls) }
        return seen
    }

    /// The binaries exec'd as entrypoints so far (the kernel's VIGIL_FLAG_ENTRYPOINT).
    var entrypoints: [String] { printer.entrypoints }

    /// Runs vigil-workload with these actions in the cgroup (or in `cgroup`) and waits for it.
    @discardableResult
    func run(_ actions: [String], in cgroup: String? = nil) throws -> LaunchedProcess {
        let process = try LaunchedProcess.start([KernelTestSupport.workload] + actions,
                                                cgroupDirectory: hierarchy.directory(of: cgroup ?? path))
        XCTAssertEqual(process.status(block: true), .exited(0), "workload \(actions)")
        return process
    }
}


/// Prints every event (`vigil trace`) and keeps the last syscalls of the cgroups removed, and
/// the binaries the kernel saw the runtime's init exec as the entrypoint.
final class RecordingPrinter: EventConsumer {
    private let printer: EventPrinter
    private(set) var removed: [UInt64: CgroupSyscalls] = [:]
    private(set) var entrypoints: [String] = []

    init(_ printer: EventPrinter) {
        self.printer = printer
    }

    func consume(_ event: RawEvent, container: Container, processes: ProcessTable) {
        if event.kind == .exec && event.isEntrypoint { entrypoints.append(String(decoding: event.exe, as: UTF8.self)) }
        printer.consume(event, container: container, processes: processes)
    }

    func cgroupRemoved(_ cgroupID: UInt64, lastSyscalls: CgroupSyscalls) {
        removed[cgroupID] = lastSyscalls
    }
}
