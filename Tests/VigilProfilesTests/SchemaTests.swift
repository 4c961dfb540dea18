import Foundation
import VigilCore
import VigilProfiles
import XCTest
import Yams

/// The published schema and the example profile stay in step with the code.
final class SchemaTests: XCTestCase {
    private var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func testTheExampleProfileLoads() throws {
        let profile = try DirectoryProfileStore.load(file: repository + "/profiles/examples/model-server.yaml")
        XCTAssertEqual(profile.workload, "model-server")
        XCTAssertEqual(profile.state, .stable)
        XCTAssertFalse(profile.syscalls.x86_64.isEmpty)
    }

    func testTheSchemaNamesExactlyTheFieldsVigilWrites() throws {
        let schemaData = try Data(contentsOf: URL(fileURLWithPath: repository + "/profiles/profile.schema.json"))
        let schema = try XCTUnwrap(try JSONSerialization.jsonObject(with: schemaData) as? [String: Any])
        let properties = try XCTUnwrap(schema["properties"] as? [String: Any])
        let learningProperties = try XCTUnwrap((properties["learning"] as? [String: Any])?["properties"] as? [String: Any])

        let text = try String(contentsOfFile: repository + "/profiles/examples/model-server.yaml", encoding: .utf8)
        let written = try XCTUnwrap(try Yams.load(yaml: text) as? [String: Any])
        XCTAssertEqual(Set(written.keys), Set(properties.keys))
        XCTAssertEqual(Set(schema["required"] as? [String] ?? []), Set(properties.keys).subtracting(["seccomp", "models", "modelReaders", "startupOnly"]),
                       "seccomp is optional (a hand-written profile gets today's allowances), and so are models and their readers (none loaded), and startup-only rules (never served)")
        let learning = try XCTUnwrap(written["learning"] as? [String: Any])
        XCTAssertTrue(Set(learning.keys).isSubset(of: Set(learningProperties.keys)), "\(learning.keys)")
    }

    /// Startup-only rules are written and read back, and must be rules of the profile itself.
    func testStartupOnlyRulesAreTheProfilesOwn() throws {
        var profile = try DirectoryProfileStore.load(file: repository + "/profiles/examples/model-server.yaml")
        profile.egress = [EgressRule(address: "10.0.0.9", port: 443, protocol: "tcp")]
        profile.startupOnly = StartupRules(execs: profile.execs, fileWrites: [], egress: profile.egress)
        let text = try ProfileCodec.encode(profile)
        XCTAssertEqual(try ProfileCodec.decode(text, file: "p.yaml"), profile)
        let foreign = text.replacingOccurrences(of: "  egress:\n  - address: 10.0.0.9", with: "  egress:\n  - address: 10.0.0.10")
        XCTAssertNotEqual(foreign, text)
        XCTAssertThrowsError(try ProfileCodec.decode(foreign, file: "p.yaml")) { error in
            XCTAssertTrue("\(error)".contains("startupOnly.egress[0]"), "\(error)")
        }
    }
}
