import Foundation
import VigilCore
import VigilProfiles
import VigilSeccomp
import VigilTestSupport
import XCTest

/// The two real servers the seccomp claims are proven on — the example model server (Python) and
/// nginx from Debian — learned outside any container runtime, with `vigil learn -- COMMAND`, the
/// way a developer would on their machine: normal traffic, then SIGTERM (vigil passes it on, so
/// the shutdown is learned too).
enum ServerWorkloads {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// nginx's page, the same on the host and in the test image.
    static let indexHTML = Containerd.indexHTML

    /// nginx with a master and two workers; its pid file and temporary files in `directory`.
    static func nginxConfiguration(port: Int, directory: String, root: String) -> String {
        """
        user www-data; worker_processes 2; pid \(directory)/nginx.pid; error_log stderr notice; daemon off;
        events { worker_connections 64; }
        http {
          access_log off;
          client_body_temp_path \(directory)/body; proxy_temp_path \(directory)/proxy; fastcgi_temp_path \(directory)/fastcgi;
          uwsgi_temp_path \(directory)/uwsgi; scgi_temp_path \(directory)/scgi;
          server { listen 127.0.0.1:\(port); root \(root); location = /healthz { return 200 "ok"; } }
        }
        """
    }

    enum Server: String, CaseIterable {
        case modelServer = "model-server"
        case nginx
    }

    /// Learns `server` with `vigil learn` into `profiles` as `workload`; returns the replies to
    /// its traffic and the learned profile. A fresh working directory each time, as a container
    /// starts from a fresh filesystem.
    static func learn(_ server: Server, workload: String, profiles: String, port: Int) throws -> (replies: [String], profile: Profile) {
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let command: [String]
        switch server {
        case .modelServer:
            try FileManager.default.createDirectory(atPath: work + "/models", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: repository + "/examples/model-server/models/weights.json", toPath: work + "/models/weights.json")
            command = ["/usr/bin/python3", "-B", repository + "/examples/model-server/server.py", "--models", work + "/models",
                       "--port", "\(port)", "--cache", work + "/cache"]
        case .nginx:
            try FileManager.default.createDirectory(atPath: work + "/srv", withIntermediateDirectories: true)
            try indexHTML.write(toFile: work + "/srv/index.html", atomically: true, encoding: .utf8)
            try nginxConfiguration(port: port, directory: work, root: work + "/srv").write(toFile: work + "/nginx.conf", atomically: true, encoding: .utf8)
            chmod(work, 0o755)
            command = ["/usr/sbin/nginx", "-c", work + "/nginx.conf"]
        }
        let learner = Process()
        learner.executableURL = URL(fileURLWithPath: VigilBinary.path)
        // Learning lasts the command's whole life; the profile is promoted after, as a person
        // ends a learning run (`vigil profile promote`).
        learner.arguments = ["learn", "--workload", workload, "--profiles", profiles, "--min-duration", "1h", "--"] + command
        learner.standardOutput = FileHandle.nullDevice
        learner.standardError = FileHandle.nullDevice
        try learner.run()
        let replies: [String]
        do {
            replies = try traffic(server, port: port)
        } catch {
            learner.terminate()
            learner.waitUntilExit()
            throw error
        }
        learner.terminate() // SIGTERM: vigil passes it to the server, whose shutdown is learned
        learner.waitUntilExit()
        XCTAssertEqual(learner.terminationStatus, 0, "\(server) exits 0 on SIGTERM")
        XCTAssertEqual(try VigilBinary.run(["profile", "promote", workload, "--profiles", profiles]).status, 0)
        let profile = try XCTUnwrap(try DirectoryProfileStore(root: profiles).latest(workload: workload))
        XCTAssertEqual(profile.state, .stable)
        return (replies, profile)
    }

    /// The requests of a normal day: answered the same way by every replica, confined or not.
    static func traffic(_ server: Server, port: Int) throws -> [String] {
        try waitForHTTP(port: port)
        switch server {
        case .modelServer:
            var replies = [try HTTP.body(HTTP.request("GET", "/healthz", port: port))]
            for i in 0..<8 {
                replies.append(try HTTP.body(HTTP.request("POST", "/predict", port: port, body: #"{"x": [\#(i), 1, 2]}"#)))
            }
            return replies
        case .nginx:
            return try (0..<8).map { i in try HTTP.body(HTTP.request("GET", i % 2 == 0 ? "/healthz" : "/index.html", port: port)) }
        }
    }

    static func waitForHTTP(port: Int) throws {
        for _ in 0..<100 {
            if (try? HTTP.request("GET", "/healthz", port: port)) != nil { return }
            usleep(100_000)
        }
        throw TestSupportError(description: "nothing answers on port \(port)")
    }
}

/// The README's tightness figures: printed by the tests that prove the profiles.
enum Tightness {
    static func report(_ label: String, _ profile: Profile) {
        let resolver = SeccompSyscallResolver()
        let parts = SeccompPolicy.composition(profile)
        func x86(_ names: [String]) -> Int { names.filter { resolver.number(of: $0, abi: .x86_64) != nil }.count }
        print("tightness: \(label): \(x86(Array(parts.all))) of \(resolver.count(abi: .x86_64)) x86_64 syscalls allowed = "
            + "\(x86(parts.workload)) workload + \(x86(parts.runtime)) runtime + \(x86(parts.baseline)) baseline")
    }
}

extension HTTP {
    /// The body of a response.
    static func body(_ response: String) throws -> String {
        guard let range = response.range(of: "\r\n\r\n") else { throw TestSupportError(description: "not an HTTP response: \(response)") }
        return String(response[range.upperBound...])
    }
}
