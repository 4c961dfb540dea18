import Foundation
import VigilCore
import XCTest

/// A real OCI container, run by runc from a busybox-static root filesystem, the way containerd
/// would start it: a Kubernetes-style cgroupsPath, annotations, and a `linux.seccomp` section.
struct RuncContainer {
    let bundle: String
    let stateRoot: String
    let id: String

    struct Result: Equatable {
        var status: Int32
        var output: String
    }

    static func available() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc") || FileManager.default.isExecutableFile(atPath: "/usr/bin/runc"),
              FileManager.default.fileExists(atPath: "/bin/busybox") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("runc and busybox-static are missing: scripts/setup installs them") }
            throw XCTSkip("needs runc and busybox-static (scripts/setup installs them)")
        }
    }

    init(_ test: XCTestCase, args: [String], cgroupsPath: String, noNewPrivileges: Bool, seccomp: OCISeccomp?,
         annotations: [String: String] = [:], id: String? = nil, stateRoot: String? = nil, writableRoot: Bool = false,
         files: [String: String] = [:], symlinks: [String: String] = [:], hostBinaries: [String: String] = [:],
         bindMounts: [(source: String, destination: String)] = []) throws {
        self.id = id ?? "vigil-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        bundle = NSTemporaryDirectory() + "bundle-" + self.id
        self.stateRoot = stateRoot ?? bundle + "-state"
        let rootfs = bundle + "/rootfs"
        let fm = FileManager.default
        for directory in ["bin", "etc", "proc", "dev", "sys", "tmp"] {
            try fm.createDirectory(atPath: "\(rootfs)/\(directory)", withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        for applet in ["sh", "echo", "cat", "ls", "true", "unshare", "sleep", "id", "nc", "printf"] {
            try fm.createSymbolicLink(atPath: "\(rootfs)/bin/\(applet)", withDestinationPath: "busybox")
        }
        try "model-server\n".write(toFile: rootfs + "/etc/hostname", atomically: true, encoding: .utf8)
        for (path, content) in files {
            try fm.createDirectory(atPath: rootfs + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: rootfs + path, atomically: false, encoding: .utf8)
        }
        for (path, target) in symlinks { try fm.createSymbolicLink(atPath: rootfs + path, withDestinationPath: target) }
        for (path, host) in hostBinaries { try Self.copyBinary(host, to: path, rootfs: rootfs) }
        let ownsStateRoot = stateRoot == nil
        let (bundle, stateRoot, id) = (bundle, self.stateRoot, self.id)
        test.addTeardownBlock {
            _ = try? RuncContainer.runc(["--root", stateRoot, "delete", "--force", id])
            try? fm.removeItem(atPath: bundle)
            if ownsStateRoot { try? fm.removeItem(atPath: stateRoot) }
        }

        _ = try Self.runc(["spec", "--bundle", bundle])
        let configPath = bundle + "/config.json"
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
        var process = try XCTUnwrap(config["process"] as? [String: Any])
        process["terminal"] = false
        process["args"] = args
        process["noNewPrivileges"] = noNewPrivileges
        config["process"] = process
        var linux = try XCTUnwrap(config["linux"] as? [String: Any])
        linux["cgroupsPath"] = cgroupsPath
        if let seccomp {
            linux["seccomp"] = try JSONSerialization.jsonObject(with: seccomp.json())
        }
        config["linux"] = linux
        config["annotations"] = annotations
        if !bindMounts.isEmpty {
            var mounts = config["mounts"] as? [[String: Any]] ?? []
            for mount in bindMounts {
                mounts.append(["destination": mount.destination, "type": "bind", "source": mount.source, "options": ["rbind", "ro"]])
            }
            config["mounts"] = mounts
        }
        if writableRoot, var root = config["root"] as? [String: Any] {
            root["readonly"] = false
            config["root"] = root
        }
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: configPath))
    }

    /// Copies a host binary into the root filesystem at `path`, with the shared libraries and
    /// loader `ldd` names, at their host paths (a dynamically linked test program in a busybox root).
    static func copyBinary(_ host: String, to path: String, rootfs: String) throws {
        let fm = FileManager.default
        let ldd = Process()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [host]
        let output = Pipe()
        ldd.standardOutput = output
        try ldd.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ldd.waitUntilExit()
        let libraries = text.split(whereSeparator: \.isWhitespace).map(String.init).filter { $0.hasPrefix("/") }
        for (source, destination) in [(host, path)] + libraries.map({ ($0, $0) }) where !fm.fileExists(atPath: rootfs + destination) {
            try fm.createDirectory(atPath: rootfs + (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try fm.copyItem(atPath: URL(fileURLWithPath: source).resolvingSymlinksInPath().path, toPath: rootfs + destination)
        }
    }

    /// `runc run` in the foreground: the container's exit status and its standard output.
    func run() throws -> Result {
        let result = try Self.runc(["--root", stateRoot, "run", "--bundle", bundle, id])
        _ = try? Self.runc(["--root", stateRoot, "delete", "--force", id])
        return result
    }

    /// The same bundle run by crun, which refuses cgroup v1 and hybrid hierarchies (this
    /// machine's): it runs in a mount namespace of its own where /sys/fs/cgroup is a cgroup2
    /// mount, and leaves cgroups alone (`--cgroup-manager=disabled`). Everything else — the
    /// namespaces, the seccomp filter, no_new_privs — is crun's usual container setup.
    func runWithCrun() throws -> Result {
        let script = "mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && "
            + "exec crun --root \"$1\" --cgroup-manager=disabled run --bundle \"$2\" \"$3\""
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = ["-m", "sh", "-c", script, "sh", stateRoot + "-crun", bundle, id]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: stateRoot + "-crun")
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    static var crunAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/crun") && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")
    }

    @discardableResult
    static func runc(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc") ? "/usr/sbin/runc" : "/usr/bin/runc")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// A filter that allows everything (but `acct`), so that runc installs one while a workload is
    /// recorded: what runc itself calls after its seccomp() call is then seen, and must be allowed.
    static let recordingFilter = OCISeccomp(defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64"],
                                            syscalls: [.init(names: ["acct"], action: "SCMP_ACT_ERRNO", errnoRet: 1)])
}
