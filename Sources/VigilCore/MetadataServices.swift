/// The cloud's instance metadata services: where a process on a node asks for the node's role
/// (and a pod, on some clouds, for its own) credentials. A connection there that the profile
/// never learned is `metadata-service-access`, critical, not a mere `unexpected-egress`: it is the
/// step from a popped pod to the cloud account.
public struct MetadataServices: Sendable, Equatable {
    /// Where the providers serve them; the agent's `metadataServices` replaces the list.
    public static let defaultAddresses = [
        "169.254.169.254", // AWS, Google Cloud, Azure, Oracle, DigitalOcean, OpenStack (IPv4)
        "fd00:ec2::254", // AWS over IPv6
        "169.254.170.2", // AWS ECS task credentials
        "169.254.170.23", "fd00:ec2::23", // AWS EKS Pod Identity agent
        "fd20:ce::254", // Google Cloud over IPv6
        "100.100.100.200", // Alibaba Cloud
        "fe80::a9fe:a9fe", // OpenStack over IPv6
    ]

    public static let standard = MetadataServices(networks: defaultAddresses.compactMap(IPNetwork.init))

    public let networks: [IPNetwork]

    public init(networks: [IPNetwork]) {
        self.networks = networks
    }

    /// Whether the destination is one of them; an IPv4 address written as IPv6 (`::ffff:a.b.c.d`,
    /// what a dual-stack socket connects to) is its IPv4 self.
    public func contains(_ destination: Destination) -> Bool {
        let target = destination.unmappedIPv4 ?? destination
        return networks.contains { $0.contains(target) }
    }
}

extension Destination {
    /// The IPv4 destination an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) stands for.
    var unmappedIPv4: Destination? {
        guard family == AddressFamily.ipv6 else { return nil }
        return withUnsafeBytes(of: (high, low)) { bytes -> Destination? in
            guard bytes.prefix(10).allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff else { return nil }
            return Destination(family: AddressFamily.ipv4, ipProtocol: ipProtocol, port: port,
                               address: UnsafeRawBufferPointer(rebasing: bytes[12..<16]))
        }
    }
}
