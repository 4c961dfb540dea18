import Foundation

/// A loopback listener the workload connects to (TCP) or sends to (UDP), on an ephemeral port.
/// A TCP one listens but never accepts: connections complete in the kernel's backlog and then
/// hear nothing, as from a blackholed server.
public final class LoopbackSocket {
    public let fd: Int32
    public let port: UInt16

    public init(family: Int32, type: Int32) throws {
        let fd = socket(family, type, 0)
        guard fd >= 0 else { throw TestSupportError(description: "socket: \(errno)") }
        var storage = sockaddr_storage()
        var length: socklen_t
        if family == AF_INET {
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            }
        } else {
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_addr = in6addr_loopback
            }
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw TestSupportError(description: "bind: \(errno)") }
        if type == Int32(SOCK_STREAM.rawValue) { listen(fd, 16) }
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = withUnsafeBytes(of: &storage) { raw in
            UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))
        }
    }

    deinit { close(fd) }

    /// What reached it so far, taken now: connections completed (TCP) or datagrams (UDP).
    public func arrivals() -> Int {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var count = 0
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length)
        while true {
            if type == Int32(SOCK_STREAM.rawValue) {
                let accepted = accept(fd, nil, nil)
                guard accepted >= 0 else { return count }
                close(accepted)
            } else {
                var byte: UInt8 = 0
                guard recv(fd, &byte, 1, 0) >= 0 else { return count }
            }
            count += 1
        }
    }

    /// A TCP port on 127.0.0.1 free a moment ago (bound, read, released), for a server to take.
    public static func freePort() throws -> UInt16 {
        try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue)).port
    }

    /// Connects to 127.0.0.1:`port` and closes, retrying until `timeout` seconds have passed
    /// (the server may not listen yet). Returns whether a connection was made.
    @discardableResult
    public static func connect(port: UInt16, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(fd)
            if connected == 0 { return true }
            usleep(20_000)
        } while Date() < deadline
        return false
    }
}
