import Foundation
import VigilAgent
import VigilProfiles
import VigilTestSupport
import XCTest

/// The agent's configuration, hostile or careless: every input gives a configuration or an error
/// that names the file (and the field), never a trap.
final class ConfigurationFuzzTests: XCTestCase {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func testAnyInputGivesAConfigurationOrAFieldError() throws {
        let sample = try String(contentsOfFile: Self.repository + "/deploy/examples/agent-local.yaml", encoding: .utf8)
        var keys = AgentConfiguration.fieldNames
        for fields in AgentConfiguration.sectionFields.values { keys += fields }
        var random = SeededRandom(seed: 3)
        for iteration in 0..<3000 {
            let text: String
            switch iteration % 3 {
            case 0: text = Fuzz.mutate(sample, &random)
            case 1: text = Fuzz.yamlDocument(&random, keys: keys + ["unknown"])
            default: text = String(decoding: Fuzz.bytes(&random, count: Int.random(in: 0...200, using: &random)), as: UTF8.self)
            }
            do {
                let configuration = try AgentConfiguration.parse(text, file: "case-\(iteration)")
                // What is accepted is sane: finite durations, a port, absolute roots.
                XCTAssertTrue(configuration.learning.minDuration.isFinite && configuration.learning.quietPeriod.isFinite)
                XCTAssertNotNil(configuration.metricsHostPort)
                XCTAssertTrue(configuration.cgroupRoots.allSatisfy { $0.hasPrefix("/") })
            } catch let error as ProfileError {
                XCTAssertEqual(error.file, "case-\(iteration)")
            } catch {
                XCTFail("case \(iteration): not a ProfileError: \(error)\n\(text.prefix(200))")
            }
        }
    }

    func testCarelessValuesAreRefusedWithTheField() throws {
        for (text, expected) in [
            ("learning: {minDuration: .inf}\n", "learning.minDuration"),
            ("learning: {quietPeriod: .nan}\n", "learning.quietPeriod"),
            ("learning: {checkpointInterval: 1e400}\n", "learning.checkpointInterval"),
            ("kubernetes: {retryInterval: .inf}\n", "kubernetes.retryInterval"),
            ("kubernetes: {timeout: .nan}\n", "kubernetes.timeout"),
            ("eventsFileMaxBytes: 9223372036854775807\n", "eventsFileMaxBytes"),
            ("learning:\n  minDuration: [1\n", "is not valid YAML"),
            ("metricsAddress: 'nowhere'\n", "metricsAddress"),
        ] {
            XCTAssertThrowsError(try AgentConfiguration.parse(text, file: "c.yaml")) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(text): \(error)")
            }
        }
        XCTAssertThrowsError(try AgentConfiguration.parse("learning:\n  minDuration: [1\n", file: "c.yaml")) { error in
            XCTAssertTrue("\(error)".contains("line 2"), "line and column: \(error)")
        }
    }
}
