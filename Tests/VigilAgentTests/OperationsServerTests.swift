import Foundation
import NIOCore
import Prometheus
import VigilOperations
import XCTest

/// The operations endpoint holds up against slow and crowding clients, and says when the agent's
/// loop stopped (so the kubelet restarts an agent that no longer reads events).
final class OperationsServerTests: XCTestCase {
    private func connect(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return fd
    }

    /// The first bytes of the reply to a GET, or "" when the server closed without one.
    private func get(_ path: String, port: Int) -> String {
        let fd = connect(port)
        defer { close(fd) }
        let request = "GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var reply = [UInt8]()
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        return String(decoding: reply, as: UTF8.self)
    }

    /// Waits until the server closes the connection; true if it did within `seconds`.
    private func closedByServer(_ fd: Int32, within seconds: Double) -> Bool {
        var pending = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pending, 1, Int32(seconds * 1000)) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    func testIdleAndSurplusConnectionsAreClosed() throws {
        let server = OperationsServer(registry: PrometheusCollectorRegistry(), idleTimeout: .milliseconds(300), maximumConnections: 4)
        let port = try server.start(host: "127.0.0.1", port: 0)
        defer { server.stop() }
        // Four idle clients hold every slot; a fifth is closed on arrival, and the four are closed
        // once idle for the timeout.
        let idle = (0..<4).map { _ in connect(port) }
        defer { idle.forEach { close($0) } }
        usleep(50_000)
        let surplus = connect(port)
        defer { close(surplus) }
        XCTAssertTrue(closedByServer(surplus, within: 0.2), "a connection past the cap is closed at once")
        for fd in idle { XCTAssertTrue(closedByServer(fd, within: 2), "an idle connection is closed after the idle timeout") }
        usleep(100_000)
        XCTAssertTrue(get("/healthz", port: port).hasPrefix("HTTP/1.1 200"), "the slots are free again")
    }

    func testHealthzFailsWhenTheLoopStalls() throws {
        let server = OperationsServer(registry: PrometheusCollectorRegistry(), stallAfter: .milliseconds(300))
        let port = try server.start(host: "127.0.0.1", port: 0)
        defer { server.stop() }
        server.heartbeat()
        XCTAssertTrue(get("/healthz", port: port).hasPrefix("HTTP/1.1 200"))
        usleep(600_000)
        let stalled = get("/healthz", port: port)
        XCTAssertTrue(stalled.hasPrefix("HTTP/1.1 503") && stalled.contains("the agent's loop has not run"), stalled)
        server.heartbeat()
        XCTAssertTrue(get("/healthz", port: port).hasPrefix("HTTP/1.1 200"))
    }
}
