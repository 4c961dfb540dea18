import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// Where the API server is and how to prove who the agent is.
public struct APIEndpoint: Sendable, Equatable {
    /// `https://host:port`, without a trailing path.
    public var apiServer: String
    public var tokenFile: String
    public var caFile: String
    /// Seconds a request may take, connection included.
    public var timeout: Double
    /// A token given inline (a kubeconfig's `token`), used instead of `tokenFile`.
    public var token: String?
    /// The CA given inline (a kubeconfig's `certificate-authority-data`), PEM, used instead of `caFile`.
    public var caPEM: [UInt8]?

    public init(apiServer: String, tokenFile: String, caFile: String, timeout: Double = 2, token: String? = nil, caPEM: [UInt8]? = nil) {
        self.apiServer = apiServer
        self.tokenFile = tokenFile
        self.caFile = caFile
        self.timeout = timeout
        self.token = token
        self.caPEM = caPEM
    }

    /// The API server's service address, as the kubelet puts it in every pod's environment.
    public static func apiServerFromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else { return nil }
        let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
        return host.contains(":") ? "https://[\(host)]:\(port)" : "https://\(host):\(port)"
    }
}

/// One HTTPS connection pool to the API server with the agent's service account: TLS checked
/// against the cluster CA, the token read from its file on every request (kubelets rotate
/// projected service-account tokens about hourly, and a token read once would expire under a
/// long-running agent), every request bounded by the endpoint's timeout.
final class APIConnection: Sendable {
    let endpoint: APIEndpoint
    private let client: HTTPClient
    /// For watches: no read timeout (a watch is quiet between changes); each is bounded by its
    /// deadline instead.
    private let streamingClient: HTTPClient

    /// Reads the CA now, so that a missing or broken mount fails at start, not at the first request.
    init(endpoint: APIEndpoint) throws {
        guard let url = URL(string: endpoint.apiServer), url.scheme == "https", url.host != nil,
              url.path.isEmpty || url.path == "/", url.query == nil else {
            throw KubernetesError.configuration("apiServer '\(endpoint.apiServer)' is not https://HOST[:PORT] (no path)")
        }
        guard endpoint.timeout > 0, endpoint.timeout <= 30 else {
            throw KubernetesError.configuration("timeout \(endpoint.timeout) is not between 0 and 30 seconds")
        }
        let roots: [NIOSSLCertificate]
        do {
            roots = try endpoint.caPEM.map { try NIOSSLCertificate.fromPEMBytes($0) } ?? NIOSSLCertificate.fromPEMFile(endpoint.caFile)
        } catch {
            throw KubernetesError.configuration("the cluster CA '\(endpoint.caFile)' cannot be read as PEM (\(error)): is the service account token mounted (automountServiceAccountToken: true)?")
        }
        guard !roots.isEmpty else { throw KubernetesError.configuration("the cluster CA '\(endpoint.caFile)' holds no certificate") }
        guard endpoint.token != nil || FileManager.default.isReadableFile(atPath: endpoint.tokenFile) else {
            throw KubernetesError.configuration("the service account token '\(endpoint.tokenFile)' cannot be read: is it mounted (automountServiceAccountToken: true)?")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(roots)
        tls.minimumTLSVersion = .tlsv12
        let timeout = TimeAmount.milliseconds(Int64(endpoint.timeout * 1000))
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow,
                                                     timeout: .init(connect: timeout, read: timeout))
        configuration.httpVersion = .http1Only
        var endpoint = endpoint
        if endpoint.apiServer.hasSuffix("/") { endpoint.apiServer.removeLast() }
        self.endpoint = endpoint
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        configuration.timeout = .init(connect: timeout)
        streamingClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit {
        try? client.syncShutdown()
        try? streamingClient.syncShutdown()
    }

    /// Blocks up to the endpoint's timeout. Throws only when no answer came; every HTTP status is
    /// the caller's to read.
    func send(_ method: HTTPMethod, _ path: String, json body: Data? = nil, accept: String = "application/json") throws -> (status: UInt, body: Data) {
        let request = try self.request(method, path, json: body, accept: accept)
        let response: HTTPClient.Response
        do {
            response = try client.execute(request: request, deadline: .now() + .milliseconds(Int64(endpoint.timeout * 1000))).wait()
        } catch {
            throw failure(method, path, error)
        }
        return (response.status.code, response.body.map { Data($0.readableBytesView) } ?? Data())
    }

    /// A streamed GET (a watch): `line` gets each newline-terminated line of a 200 answer as it
    /// arrives, on an event-loop thread; blocks until the server ends the answer, `deadline`
    /// seconds pass, or `cancel` is called on the handle `started` receives. Returns the status,
    /// and the body when it is not 200.
    func stream(_ path: String, accept: String, deadline seconds: Double, started: (StreamHandle) -> Void,
                line: @escaping @Sendable (Data) -> Void) throws -> (status: UInt, body: Data) {
        let request = try self.request(.GET, path, json: nil, accept: accept)
        let delegate = LineDelegate(line: line)
        let task = streamingClient.execute(request: request, delegate: delegate, deadline: .now() + .milliseconds(Int64(seconds * 1000)))
        started(StreamHandle(task: task))
        do {
            return try task.wait()
        } catch {
            throw failure(.GET, path, error)
        }
    }

    private func request(_ method: HTTPMethod, _ path: String, json body: Data?, accept: String) throws -> HTTPClient.Request {
        let token: String
        do {
            token = try endpoint.token
                ?? String(contentsOfFile: endpoint.tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw KubernetesError.unavailable("the service account token '\(endpoint.tokenFile)' cannot be read: \(error)")
        }
        var request = try HTTPClient.Request(url: endpoint.apiServer + path, method: method)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: accept)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        return request
    }

    private func failure(_ method: HTTPMethod, _ path: String, _ error: Error) -> KubernetesError {
        if error is NIOSSLError || error is NIOSSLExtraError {
            return .unavailable("\(method) \(endpoint.apiServer)\(path): TLS failed (\(error)): does the API server's certificate chain to '\(endpoint.caFile)' and name the host in apiServer?")
        }
        return .unavailable("\(method) \(endpoint.apiServer)\(path) failed: \(error)")
    }

    /// A `Status` the API server answered with: its reason and, for `NotFound`, the kind of object.
    static func status(_ body: Data) -> (reason: String, kind: String?, message: String)? {
        guard let status = try? JSONSerialization.jsonObject(with: body) as? [String: Any], status["kind"] as? String == "Status" else { return nil }
        return (status["reason"] as? String ?? "", (status["details"] as? [String: Any])?["kind"] as? String, status["message"] as? String ?? "")
    }
}

/// Cancels a stream from another thread.
struct StreamHandle: Sendable {
    fileprivate let task: HTTPClient.Task<(status: UInt, body: Data)>
    func cancel() { task.cancel() }
}

/// Splits a 200 answer into lines as they arrive; keeps (up to 64 KiB of) any other answer whole.
private final class LineDelegate: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = (status: UInt, body: Data)
    /// Lines of a watch are whole JSON objects; one longer than this is not an answer Vigil can use.
    static let longestLine = 4 << 20
    // Only touched on the task's event loop, one callback at a time.
    private var status: UInt = 0
    private var pending = Data()
    private let line: @Sendable (Data) -> Void

    init(line: @escaping @Sendable (Data) -> Void) {
        self.line = line
    }

    func didReceiveHead(task: HTTPClient.Task<Response>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        status = head.status.code
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Response>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        pending.append(contentsOf: buffer.readableBytesView)
        guard status == 200 else {
            if pending.count > 1 << 16 { pending = pending.prefix(1 << 16) }
            return task.eventLoop.makeSucceededVoidFuture()
        }
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let text = pending[pending.startIndex..<newline]
            if !text.isEmpty { line(Data(text)) }
            pending.removeSubrange(pending.startIndex...newline)
        }
        if pending.count > Self.longestLine {
            task.cancel()
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<Response>) throws -> Response {
        (status, status == 200 ? Data() : pending)
    }
}
