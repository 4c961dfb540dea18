import CVigilABI
import Foundation
import VigilCore
import VigilSeccomp
import VigilTestSupport
import XCTest

/// A connection to the cloud's instance metadata service that the profile lacks is
/// `metadata-service-access` (critical), wherever it is written; learned, it is the profile's.
final class MetadataServiceTests: XCTestCase {
    private let resolver = SeccompSyscallResolver()

    private func profile(egress: [EgressRule] = []) -> Profile {
        Profile(workload: "ml/deployment/llm/server", state: .stable,
                learning: LearningEvidence(started: Date(), lastNew: Date(), minDuration: 0, quietPeriod: 0), egress: egress)
    }

    private func ipv4(_ text: String) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4)
        XCTAssertEqual(inet_pton(AF_INET, text, &bytes), 1)
        return bytes
    }

    private func ipv6(_ text: String) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(inet_pton(AF_INET6, text, &bytes), 1)
        return bytes
    }

    private func check(_ detector: inout Detector, _ record: [UInt8], serving: Bool = false) throws -> Finding? {
        try record.withRawEvent { detector.check($0, serving: serving) }
    }

    private func connect(ipv4 text: String, port: UInt16 = 80) -> [UInt8] {
        RecordBuilder.network(family: UInt16(VIGIL_AF_INET), address: ipv4(text), port: port)
    }

    private func connect(ipv6 text: String, port: UInt16 = 80) -> [UInt8] {
        RecordBuilder.network(family: UInt16(VIGIL_AF_INET6), address: ipv6(text), port: port)
    }

    func testTheProvidersServicesAreCriticalAndOtherDestinationsAreNot() throws {
        var detector = Detector(profile: profile(egress: [EgressRule(address: "10.0.0.9", port: 443, protocol: "tcp")]), resolver: resolver)
        for record in [connect(ipv4: "169.254.169.254"), connect(ipv6: "fd00:ec2::254"), connect(ipv4: "169.254.170.2"),
                       connect(ipv6: "::ffff:169.254.169.254"), connect(ipv4: "100.100.100.200", port: 8080)] {
            let finding = try check(&detector, record)
            XCTAssertEqual(finding?.rule, .metadataServiceAccess)
        }
        XCTAssertEqual(AnomalyRule.metadataServiceAccess.severity, "critical")
        XCTAssertEqual(try check(&detector, connect(ipv4: "169.254.169.253"))?.rule, .unexpectedEgress, "a neighbour is not the service")
        XCTAssertEqual(try check(&detector, connect(ipv6: "::ffff:10.0.0.8"))?.rule, .unexpectedEgress)
        XCTAssertNil(try check(&detector, connect(ipv4: "10.0.0.9", port: 443)))
    }

    /// A workload that uses the service (a cloud SDK fetching its role's credentials) learns it.
    func testALearnedServiceIsTheProfilesAndAStartupOnlyOneIsStartupOnly() throws {
        let learned = EgressRule(address: "169.254.169.254", port: 80, protocol: "tcp")
        var detector = Detector(profile: profile(egress: [learned]), resolver: resolver)
        XCTAssertNil(try check(&detector, connect(ipv4: "169.254.169.254")))
        XCTAssertEqual(try check(&detector, connect(ipv4: "169.254.169.254", port: 8080))?.rule, .metadataServiceAccess, "another port")

        var startup = profile(egress: [learned])
        startup.startupOnly = StartupRules(execs: [], fileWrites: [], egress: [learned])
        var phased = Detector(profile: startup, resolver: resolver)
        XCTAssertNil(try check(&phased, connect(ipv4: "169.254.169.254")))
        XCTAssertEqual(try check(&phased, connect(ipv4: "169.254.169.254"), serving: true)?.rule, .startupOnlyBehaviour)
        XCTAssertEqual(try check(&phased, connect(ipv6: "fd00:ec2::254"), serving: true)?.rule, .metadataServiceAccess)
    }

    func testTheListIsConfigurable() throws {
        let own = MetadataServices(networks: [try XCTUnwrap(IPNetwork("10.96.0.0/24"))])
        var detector = Detector(profile: profile(), resolver: resolver, metadataServices: own)
        XCTAssertEqual(try check(&detector, connect(ipv4: "10.96.0.17"))?.rule, .metadataServiceAccess)
        XCTAssertEqual(try check(&detector, connect(ipv4: "169.254.169.254"))?.rule, .unexpectedEgress, "the list replaces the default")
        XCTAssertEqual(MetadataServices.standard.networks.count, MetadataServices.defaultAddresses.count, "every default parses")
    }
}
