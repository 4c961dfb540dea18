import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// GET /metrics (Prometheus text), /healthz (the process serves), /readyz (the kernel programs
/// are loaded and the pods' cgroups watched; otherwise 503 with what it waits for). Nothing here
/// changes state: anything but GET is refused with 405.
public final class OperationsServer: Sendable {
    private let registry: PrometheusCollectorRegistry
    /// nil: ready; else what readiness waits for.
    private let notReadyBecause = NIOLockedValueBox<String?>("loading")
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: NIOLockedValueBox<Channel?> = NIOLockedValueBox(nil)

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
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
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(registry: registry, ready: ready))
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
        private var head: HTTPRequestHead?

        init(registry: PrometheusCollectorRegistry, ready: NIOLockedValueBox<String?>) {
            self.registry = registry
            self.ready = ready
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
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
            }
        }

        private func respond(to request: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8]) {
            guard request.method == .GET else { return (.methodNotAllowed, "text/plain", Array("read-only: GET only\n".utf8)) }
            switch request.uri.split(separator: "?").first.map(String.init) ?? "" {
            case "/metrics":
                return (.ok, "text/plain; version=0.0.4", registry.emitToBuffer())
            case "/healthz":
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
