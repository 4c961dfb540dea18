import Foundation

/// A stand-in Kubernetes API server for tests (fake-apiserver.py beside this file): real TLS
/// with a CA made for the test by openssl, a bearer token checked at every request, pods served
/// from JSON files, WorkloadProfile objects held with the API server's semantics. The client
/// under test is the real one; only the cluster is missing.
public final class FakeAPIServer {
    public let directory: String
    public let port: Int
    public var url: String { "https://127.0.0.1:\(port)" }
    public var caFile: String { directory + "/ca.crt" }
    /// A CA the server's certificate does not chain to.
    public var otherCAFile: String { directory + "/other-ca.crt" }
    public var tokenFile: String { directory + "/token" }
    private let process: Process

    /// `certificateNames`: the server certificate's subjectAltName (the client connects to 127.0.0.1).
    public init(certificateNames: String = "IP:127.0.0.1,DNS:localhost") throws {
        directory = NSTemporaryDirectory() + "vigil-apiserver-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/pods", withIntermediateDirectories: true)
        for ca in ["ca", "other-ca"] {
            try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                              "-keyout", "\(ca).key", "-out", "\(ca).crt", "-days", "1", "-subj", "/CN=vigil-test-\(ca)",
                              "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                             in: directory)
        }
        try "subjectAltName=\(certificateNames)\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
            .write(toFile: directory + "/server.ext", atomically: true, encoding: .utf8)
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
                          "-out", "server.csr", "-subj", "/CN=kubernetes"], in: directory)
        try Self.openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                          "-out", "server.crt", "-days", "1", "-extfile", "server.ext"], in: directory)
        try "token-1\n".write(toFile: directory + "/token", atomically: true, encoding: .utf8)

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("fake-apiserver.py").path
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, directory + "/server.crt", directory + "/server.key", directory + "/pods",
                             directory + "/token", directory + "/port"]
        try process.run()
        var port: Int?
        for _ in 0..<100 where port == nil {
            if let text = try? String(contentsOfFile: directory + "/port", encoding: .utf8) { port = Int(text) } else { usleep(50_000) }
        }
        guard let port else {
            process.terminate()
            throw TestSupportError(description: "fake-apiserver.py did not start (python3 with ssl needed)")
        }
        self.port = port
    }

    deinit { stop() }

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Serves a pod as the API server would: controller owner reference and labels in metadata.
    public func addPod(namespace: String, name: String, uid: String, labels: [String: String] = [:],
                       controller: (kind: String, name: String)? = nil) throws {
        var metadata: [String: Any] = ["namespace": namespace, "name": name, "uid": uid, "labels": labels,
                                       "resourceVersion": "4711", "creationTimestamp": "2026-11-26T10:00:00Z"]
        if let controller {
            metadata["ownerReferences"] = [["apiVersion": controller.kind == "ReplicaSet" ? "apps/v1" : "batch/v1",
                                            "kind": controller.kind, "name": controller.name, "uid": UUID().uuidString.lowercased(),
                                            "controller": true, "blockOwnerDeletion": true]]
        }
        let pod: [String: Any] = ["kind": "Pod", "apiVersion": "v1", "metadata": metadata,
                                  "spec": ["nodeName": "node-a", "containers": [["name": "server", "image": "registry/llm:1.4"]]],
                                  "status": ["phase": "Running"]]
        try FileManager.default.createDirectory(atPath: "\(directory)/pods/\(namespace)", withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: pod).write(to: URL(fileURLWithPath: "\(directory)/pods/\(namespace)/\(name).json"))
    }

    public func setToken(_ token: String) throws {
        try (token + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
    }

    /// From now on every request gets a plain 404, as from a proxy or another server on the port.
    public func answerLikeAProxy() {
        _ = FileManager.default.createFile(atPath: directory + "/pods/proxy", contents: Data())
    }

    /// From now on every request is refused with 403 (an RBAC rule missing).
    public func forbid() {
        _ = FileManager.default.createFile(atPath: directory + "/pods/forbidden", contents: Data())
    }

    /// The next watch request finds no history (an etcd compaction): any resourceVersion before
    /// now is answered with 410 Expired.
    public func compact() {
        _ = FileManager.default.createFile(atPath: directory + "/pods/compact", contents: Data())
    }

    /// A network partition: the server stops answering (connections hang, requests time out)
    /// until `heal()`.
    public func partition() {
        kill(process.processIdentifier, SIGSTOP)
    }

    public func heal() {
        kill(process.processIdentifier, SIGCONT)
    }

    /// Requests are answered again (after `forbid()`).
    public func allow() {
        try? FileManager.default.removeItem(atPath: directory + "/pods/forbidden")
    }

    /// `GET <path> <Authorization header>`, one per request, in order.
    public var requests: [String] {
        ((try? String(contentsOfFile: directory + "/pods/requests.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    static func openssl(_ arguments: [String], in directory: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestSupportError(description: "openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(text)")
        }
    }
}

/// A test fixture that could not be set up, and why.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}
