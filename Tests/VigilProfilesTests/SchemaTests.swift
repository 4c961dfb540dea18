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
        XCTAssertEqual(Set(schema["required"] as? [String] ?? []), Set(properties.keys).subtracting(["seccomp", "models", "modelReaders"]),
                       "seccomp is optional (a hand-written profile gets today's allowances), and so are models and their readers (none loaded)")
        let learning = try XCTUnwrap(written["learning"] as? [String: Any])
        XCTAssertTrue(Set(learning.keys).isSubset(of: Set(learningProperties.keys)), "\(learning.keys)")
    }
}
