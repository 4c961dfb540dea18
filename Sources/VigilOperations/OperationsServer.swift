import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// GET /metrics (Prometheus text), /healthz (the agent's loop is running: 503 when it has not
/// beaten for `stallAfter`, so the kubelet restarts an agent that stopped reading events),
/// /readyz (the kernel programs are loaded and the pods' cgroups watched; otherwise 503 with what
/// it waits for). Nothing here changes state: anything but GET is refused with 405. A connection
/// idle for `idleTimeout` is closed, and at most `maximumConnections` are served at once (more
/// are closed on arrival): a slow or crowding client cannot hold the endpoint.
public final class OperationsServer: Sendable {
    private let registry: PrometheusCollectorRegistry
    /// nil: ready; else what readiness waits for.
    private let notReadyBecause = NIOLockedValueBox<String?>("loading")
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: NIOLockedValueBox<Channel?> = NIOLockedValueBox(nil)
    private let liveness: Liveness
    private let idleTimeout: TimeAmount
    private let maximumConnections: Int
    private let connections = NIOLockedValueBox(0)

    /// When the agent's loop last beat, and how long it may stay silent.
    final class Liveness: Sendable {
        let lastBeat = NIOLockedValueBox<NIODeadline?>(nil)
        let stallAfter: TimeAmount
        init(stallAfter: TimeAmount) { self.stallAfter = stallAfter }

        /// nil while alive; else why not.
        var stalled: String? {
            guard let last = lastBeat.withLockedValue({ $0 }) else { return nil }
            let silent = NIODeadline.now() - last
            guard silent > stallAfter else { return nil }
            return "the agent's loop has not run for \(silent.nanoseconds / 1_000_000_000) s (limit \(stallAfter.nanoseconds / 1_000_000_000) s)"
        }
    }

    public init(registry: PrometheusCollectorRegistry, stallAfter: TimeAmount = .seconds(15), idleTimeout: TimeAmount = .seconds(10),
                maximumConnections: Int = 32) {
        self.registry = registry
        self.liveness = Liveness(stallAfter: stallAfter)
        self.idleTimeout = idleTimeout
        self.maximumConnections = maximumConnections
    }

    /// The agent's loop calls this on every turn.
    public func heartbeat() {
        liveness.lastBeat.withLockedValue { $0 = .now() }
    }

    public func setReady(_ value: Bool) {
        setReadiness(notReadyBecause: value ? nil : "loading")
    }

    /// nil: ready; else the reason /readyz gives with its 503.
    public func setReadiness(notReadyBecause reason: String?) {
        notReadyBecause.withLockedValue { $0 = reason }
    }

    /// Binds `host:port`; returns the port bound (useful with port 0).
    public func start(host: String, port: Int) throws -> Int {
        let registry = self.registry
        let ready = self.notReadyBecause
        let liveness = self.liveness
        let connections = self.connections
        let (idleTimeout, maximumConnections) = (self.idleTimeout, self.maximumConnections)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .childChannelInitializer { channel in
                let admitted = connections.withLockedValue { count -> Bool in
                    guard count < maximumConnections else { return false }
                    count += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in connections.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                    try pipeline.configureHTTPServerPipeline()
                    try pipeline.addHandler(Handler(registry: registry, ready: ready, liveness: liveness))
                }
            }
        let bound = try bootstrap.bind(host: host, port: port).wait()
        channel.withLockedValue { $0 = bound }
        return bound.localAddress?.port ?? port
    }

    public func stop() {
        if let bound = channel.withLockedValue({ $0 }) { try? bound.close().wait() }
        try? group.syncShutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let registry: PrometheusCollectorRegistry
        let ready: NIOLockedValueBox<String?>
        let liveness: Liveness
        private var head: HTTPRequestHead?

        init(registry: PrometheusCollectorRegistry, ready: NIOLockedValueBox<String?>, liveness: Liveness) {
            self.registry = registry
            self.ready = ready
            self.liveness = liveness
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent {
                context.close(promise: nil)
            } else {
                context.fireUserInboundEventTriggered(event)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let request):
                head = request
            case .body:
                break
            case .end:
                guard let request = head else { return }
                let (status, contentType, body) = respond(to: request)
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: contentType)
                headers.add(name: "Content-Length", value: String(body.count))
                headers.add(name: "Connection", value: "close")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
            }
        }

        private func respond(to request: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8]) {
            guard request.method == .GET else { return (.methodNotAllowed, "text/plain", Array("read-only: GET only\n".utf8)) }
            switch request.uri.split(separator: "?").first.map(String.init) ?? "" {
            case "/metrics":
                return (.ok, "text/plain; version=0.0.4", registry.emitToBuffer())
            case "/healthz":
                if let stalled = liveness.stalled { return (.serviceUnavailable, "text/plain", Array("not alive: \(stalled)\n".utf8)) }
                return (.ok, "text/plain", Array("ok\n".utf8))
            case "/readyz":
                guard let reason = ready.withLockedValue({ $0 }) else { return (.ok, "text/plain", Array("ready\n".utf8)) }
                return (.serviceUnavailable, "text/plain", Array("not ready: \(reason)\n".utf8))
            default:
                return (.notFound, "text/plain", Array("not found\n".utf8))
            }
        }
    }
}
