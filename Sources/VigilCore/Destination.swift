#if canImport(Glibc)
import CVigilABI
import Glibc

/// The address families records carry (vigil_abi.h: Linux's values on every architecture).
public enum AddressFamily {
    public static let ipv4 = UInt16(VIGIL_AF_INET)
    public static let ipv6 = UInt16(VIGIL_AF_INET6)
}
#endif

/// An egress destination as the kernel reports it: family, protocol, port, address bytes.
/// Hashable without allocating, so the detector can look one up per event.
public struct Destination: Hashable, Sendable {
    public var family: UInt16
    public var ipProtocol: UInt16
    public var port: UInt16
    public var high: UInt64 // address bytes 0..<8 (IPv4 in the first 4)
    public var low: UInt64  // address bytes 8..<16

    public init(family: UInt16, ipProtocol: UInt16, port: UInt16, address: UnsafeRawBufferPointer) {
        self.family = family
        self.ipProtocol = ipProtocol
        self.port = port
        var bytes = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &bytes) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: address.prefix(16)))
        }
        high = bytes.0
        low = bytes.1
    }

    public init(_ event: RawEvent) {
        self.init(family: event.addressFamily, ipProtocol: event.ipProtocol, port: event.port, address: event.address)
    }

    public var addressBytes: [UInt8] {
        withUnsafeBytes(of: (high, low)) { Array($0.prefix(family == AddressFamily.ipv4 ? 4 : 16)) }
    }

    public var addressText: String {
        var out = JSONLineWriter()
        addressBytes.withUnsafeBytes { EventEncoder.writeAddress($0, family: family, to: &out) }
        return String(decoding: out.bytes.dropFirst().dropLast(), as: UTF8.self)
    }

    public var protocolName: String { Self.protocolName(ipProtocol) }

    public static func protocolName(_ number: UInt16) -> String {
        switch number {
        case 6: "tcp"
        case 17: "udp"
        case 132: "sctp"
        case 136: "udplite"
        case 1: "icmp"
        case 58: "icmpv6"
        default: String(number)
        }
    }

    public static func protocolNumber(_ name: String) -> UInt16? {
        switch name {
        case "tcp": 6
        case "udp": 17
        case "sctp": 132
        case "udplite": 136
        case "icmp": 1
        case "icmpv6": 58
        default: UInt16(name)
        }
    }
}

/// An address or CIDR of an egress rule ("10.0.0.0/8", "2001:db8::/32", "127.0.0.1").
public struct IPNetwork: Hashable, Sendable {
    public let family: UInt16
    public let bytes: [UInt8]
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        let address = String(parts[0])
        var buffer = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, address, &buffer) == 1 {
            family = AddressFamily.ipv4
            bytes = Array(buffer.prefix(4))
        } else if inet_pton(AF_INET6, address, &buffer) == 1 {
            family = AddressFamily.ipv6
            bytes = buffer
        } else {
            return nil
        }
        let maxLength = bytes.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), length >= 0, length <= maxLength else { return nil }
            prefixLength = length
        } else {
            prefixLength = maxLength
        }
    }

    public func contains(_ destination: Destination) -> Bool {
        guard destination.family == family else { return false }
        let address = destination.addressBytes
        var remaining = prefixLength
        for i in 0..<bytes.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if address[i] & mask != bytes[i] & mask { return false }
            remaining -= bits
        }
        return true
    }
}
