import Foundation
import VigilCore
import VigilProfiles
import VigilSeccomp
import VigilTestSupport
import XCTest
import Yams

/// Hostile or broken input to the parsers — random bytes, random YAML and JSON structures, and
/// mutations of valid documents — gives a value or a clear error, never a trap. Seeded: a
/// failure prints its seed and case, so it can be replayed.
final class ParserFuzzTests: XCTestCase {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func testProfilesDecodeOrFailWithAProfileError() throws {
        let example = try String(contentsOfFile: Self.repository + "/profiles/examples/model-server.yaml", encoding: .utf8)
        var random = SeededRandom(seed: 1)
        for iteration in 0..<3000 {
            let text: String
            switch iteration % 3 {
            case 0: text = Fuzz.mutate(example, &random)
            case 1: text = Fuzz.yamlDocument(&random, keys: Array(ProfileCodec.knownFields[""]!) + ["learning", "extra"])
            default: text = String(decoding: Fuzz.bytes(&random, count: Int.random(in: 0...300, using: &random)), as: UTF8.self)
            }
            do {
                let profile = try ProfileCodec.decode(text, file: "case-\(iteration)")
                // What decodes also encodes, and reads back the same.
                let again = try ProfileCodec.decode(try ProfileCodec.encode(profile), file: "re-encoded")
                XCTAssertEqual(again, profile, "case \(iteration): round trip")
            } catch is ProfileError {
                continue
            } catch {
                XCTFail("case \(iteration): not a ProfileError: \(error)\n\(text.prefix(300))")
            }
        }
        // Bytes that are not UTF-8 at all.
        XCTAssertThrowsError(try ProfileCodec.decode(Data([0xff, 0xfe, 0x00, 0x41]), file: "binary")) { error in
            XCTAssertTrue("\(error)".contains("is not UTF-8 text"), "\(error)")
        }
    }

    /// A misspelt or unknown field is an error, as the schema says (additionalProperties: false).
    func testUnknownProfileFieldsAreRefused() throws {
        let example = try String(contentsOfFile: Self.repository + "/profiles/examples/model-server.yaml", encoding: .utf8)
        for (edit, field) in [("state: stable", "state: stable\nstat: learning"), ("  containers: 1", "  containers: 1\n  container: 2"),
                              ("- exe: /usr/bin/python3.11", "- exe: /usr/bin/python3.11\n  args: [x]")] {
            XCTAssertThrowsError(try ProfileCodec.decode(example.replacingOccurrences(of: edit, with: field), file: "p")) { error in
                XCTAssertTrue("\(error)".contains("is not a profile field"), "\(error)")
            }
        }
        // Numbers at the edge of Int: refused, not a trap when a version is added to.
        XCTAssertThrowsError(try ProfileCodec.decode(example.replacingOccurrences(of: "version: 1", with: "version: 9223372036854775807"), file: "p")) {
            XCTAssertTrue("\($0)".contains("must be from 1 to 1000000000"), "\($0)")
        }
        XCTAssertThrowsError(try ProfileCodec.decode(example.replacingOccurrences(of: "workload: model-server", with: "workload: [unclosed"), file: "p")) {
            XCTAssertTrue("\($0)".contains("is not valid YAML") && "\($0)".contains("line"), "line and column: \($0)")
        }
    }

    func testSeccompProfilesDecodeAndCompileOrFailClearly() throws {
        let valid = String(decoding: try SeccompPolicy.oci(Profile(workload: "w", learning: LearningEvidence(
            started: Date(), lastNew: Date(), minDuration: 0, quietPeriod: 0), syscalls: SyscallLists(x86_64: ["read", "write"]))).json(),
                           as: UTF8.self)
        var random = SeededRandom(seed: 2)
        for iteration in 0..<2000 {
            let text: String
            switch iteration % 3 {
            case 0: text = Fuzz.mutate(valid, &random)
            case 1: text = Fuzz.jsonDocument(&random, keys: ["defaultAction", "defaultErrnoRet", "architectures", "syscalls", "names",
                                                             "action", "errnoRet"])
            default: text = String(decoding: Fuzz.bytes(&random, count: Int.random(in: 0...200, using: &random)), as: UTF8.self)
            }
            let profile: OCISeccomp
            do {
                profile = try OCISeccomp.decode(Data(text.utf8))
            } catch let problem as DecodingProblem {
                XCTAssertFalse(problem.description.isEmpty)
                continue
            } catch {
                XCTFail("case \(iteration): not a DecodingProblem: \(error)")
                continue
            }
            do { _ = try SeccompFilter(profile) } catch is SeccompError {} catch { XCTFail("case \(iteration): \(error)") }
        }
    }
}
