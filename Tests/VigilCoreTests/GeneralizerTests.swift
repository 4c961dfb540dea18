import Foundation
@testable import VigilCore
import XCTest

final class GeneralizerTests: XCTestCase {
    private let generalizer = Generalizer(modelPaths: ["/models/**", "/srv/llm/weights.safetensors"])

    func testComponentRules() {
        let cases: [(String, String)] = [
            ("/proc/4242/status", "/proc/*/status"),
            ("/proc/self/oom_score_adj", "/proc/*/oom_score_adj"),
            ("/tmp/tmp8x1k2abc/out.bin", "/tmp/tmp*/out.bin"),
            ("/tmp/tmpq_a9zk.json", "/tmp/tmp*.json"),
            ("/var/cache/2f9a7c1e0b3d4a5f/blob", "/var/cache/*/blob"),
            ("/run/c/123e4567-e89b-12d3-a456-426614174000.sock", "/run/c/*.sock"),
            ("/ckpt/checkpoint-1200.pt", "/ckpt/checkpoint-*.pt"),
            ("/var/log/app.log.3", "/var/log/app.log.*"),
            ("/tmp/data.Xy7a9Q", "/tmp/data.*"),
            ("/tmp/model-server-cache/last-request.json", "/tmp/model-server-cache/last-request.json"),
            ("/srv/deadbeef/x", "/srv/deadbeef/x"),           // 8 hex letters, no digit: a word, kept
            ("/srv/cafe1234beef/x", "/srv/*/x"),
        ]
        for (input, expected) in cases {
            XCTAssertEqual(generalizer.generalize(input), expected, input)
        }
    }

    func testModelArtifactsAreNeverGeneralised() {
        XCTAssertEqual(generalizer.generalize("/models/llama-7b/shard-00001.safetensors"), "/models/llama-7b/shard-00001.safetensors")
        XCTAssertEqual(generalizer.generalize("/srv/llm/weights.safetensors"), "/srv/llm/weights.safetensors")
        XCTAssertTrue(generalizer.isModelArtifact("/models/a/b/c"))
        XCTAssertFalse(generalizer.isModelArtifact("/srv/llm/other"))
    }

    func testDirectoriesWithManyChildrenOfOneShapeCollapse() {
        let many = (0..<10).map { FileWriteRule(path: "/data/out/part-\(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"][$0]).parquet", ops: ["create"]) }
        let few = [FileWriteRule(path: "/data/other/x.txt", ops: ["create"]), FileWriteRule(path: "/data/other/y.txt", ops: ["truncate"])]
        let models = (0..<10).map { FileWriteRule(path: "/models/m\(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"][$0]).bin", ops: ["create"]) }
        let collapsed = generalizer.collapse(many + few + models)
        XCTAssertTrue(collapsed.contains(FileWriteRule(path: "/data/out/*.parquet", ops: ["create"])))
        XCTAssertEqual(collapsed.filter { $0.path.hasPrefix("/data/out/") }.count, 1)
        XCTAssertEqual(collapsed.filter { $0.path.hasPrefix("/data/other/") }.count, 2, "below the threshold: kept")
        XCTAssertEqual(collapsed.filter { $0.path.hasPrefix("/models/") }.count, 10, "model artifacts are never collapsed")
    }

    /// What BentoML's and KServe's workers left in a learning run (POSIX semaphores of random
    /// names; joblib's, named by pid and a random suffix): one rule allows them all, so the rest
    /// go. A rule the covering one does not allow every operation of stays, as do rules of other
    /// directories and model artifacts.
    func testRulesAnotherRuleAllowsAreDropped() {
        let shm = ["/dev/shm/sem.*": ["create", "unlink"], "/dev/shm/sem.IjYcPa": ["create", "unlink"],
                   "/dev/shm/sem.joblib-*-*n*pcicd": ["unlink"], "/dev/shm/sem.joblib-*-ilrhm*c_": ["unlink"],
                   "/dev/shm/sem.other": ["create", "truncate"], "/dev/shm/other": ["create"],
                   "/dev/sem.x": ["create"], "/models/sem.weights": ["create"]]
        let generalizer = Generalizer(modelPaths: ["/models/**"])
        let rules = shm.map { FileWriteRule(path: $0.key, ops: $0.value) } + [FileWriteRule(path: "/models/*", ops: ["create"])]
        XCTAssertEqual(generalizer.collapse(rules).map(\.path), [
            "/dev/sem.x", "/dev/shm/other", "/dev/shm/sem.*", "/dev/shm/sem.other", "/models/*", "/models/sem.weights",
        ])
    }

    /// Scratch files — created and removed — of three names or more in a directory fold into one
    /// rule for their operations: what their names share around a `*` (`*.lock`; nothing for
    /// random names: `*`); two do not; a file only created is another rule, covered once the
    /// fold allows creating it; model artifacts are kept.
    func testTransientFilesOfADirectoryFoldIntoItsWildcard() {
        let generalizer = Generalizer(modelPaths: ["/models/**"])
        let rules = [
            FileWriteRule(path: "/tmp/ylqrznvb", ops: ["create", "unlink"]), FileWriteRule(path: "/tmp/omxlxd_*", ops: ["create", "unlink"]),
            FileWriteRule(path: "/tmp/*hkdx*e", ops: ["create", "open_write", "unlink"]), FileWriteRule(path: "/tmp/kept.json", ops: ["create"]),
            FileWriteRule(path: "/tmp/moved", ops: ["rename"]),
            FileWriteRule(path: "/var/run/a.lock", ops: ["create", "unlink"]), FileWriteRule(path: "/var/run/b", ops: ["create", "unlink"]),
            FileWriteRule(path: "/models/a", ops: ["create", "unlink"]), FileWriteRule(path: "/models/b", ops: ["create", "unlink"]),
            FileWriteRule(path: "/models/c", ops: ["create", "unlink"]),
            FileWriteRule(path: "/run/lock/a.lock", ops: ["create", "unlink"]), FileWriteRule(path: "/run/lock/zz.lock", ops: ["create", "unlink"]),
            FileWriteRule(path: "/run/lock/b*.lock", ops: ["create", "unlink"]), FileWriteRule(path: "/run/lock/b1", ops: ["create"]),
        ]
        XCTAssertEqual(generalizer.collapse(rules), [
            FileWriteRule(path: "/models/a", ops: ["create", "unlink"]), FileWriteRule(path: "/models/b", ops: ["create", "unlink"]),
            FileWriteRule(path: "/models/c", ops: ["create", "unlink"]),
            FileWriteRule(path: "/run/lock/*.lock", ops: ["create", "unlink"]), FileWriteRule(path: "/run/lock/b1", ops: ["create"]),
            FileWriteRule(path: "/tmp/*", ops: ["create", "open_write", "unlink"]), FileWriteRule(path: "/tmp/moved", ops: ["rename"]),
            FileWriteRule(path: "/var/run/a.lock", ops: ["create", "unlink"]), FileWriteRule(path: "/var/run/b", ops: ["create", "unlink"]),
        ])
    }
}

final class PathPatternTests: XCTestCase {
    /// The detector matches a profile's file patterns as one tree (`PatternTree`): for every
    /// path and operation it must say what matching each pattern alone says.
    func testThePatternTreeAgreesWithEachPattern() {
        let rules: [(String, Set<FileOperation>)] = [
            ("/tmp/*", [.create]), ("/var/lib/**/state", [.create, .truncate]), ("/a/b*/c", [.openWrite]), ("/models/**", [.unlink]),
            ("/srv/*/cache/*.bin", [.create]), ("/x/**/y/*", [.rename]), ("/tmp/*/noisy/aab/state", [.create]),
            ("/tmp/*/noisy/aac/state", [.create]), ("/tmp/**", [.unlink]), ("/srv/app/cache/a.bin", [.truncate]),
        ]
        let patterns = rules.map { (path: PathPattern($0.0), ops: $0.1) }
        let tree = PatternTree(patterns)
        let paths = ["/tmp/a", "/tmp", "/var/lib/state", "/var/lib/x/y/state", "/a/b1/c", "/a/b/c", "/models", "/models/w/x.bin",
                     "/srv/app/cache/a.bin", "/srv/app/cache/a.txt", "/x/y/z", "/x/q/y/z", "//tmp//a", "/", "/tmp/vigil-x/noisy/aab/state",
                     "/tmp/vigil-x/noisy/aad/state", "/srv/app/cache/sub/a.bin", "/var/lib/state/more"]
        var agreed = 0
        for path in paths {
            for op in [FileOperation.openWrite, .create, .truncate, .rename, .unlink] {
                let expected = patterns.contains { $0.ops.contains(op) && $0.path.matches(path) }
                var bytes = Array(path.utf8)
                let actual = bytes.withUnsafeMutableBytes { tree.matches(UnsafeRawBufferPointer($0), op: op) }
                XCTAssertEqual(actual, expected, "\(path) \(op)")
                if expected { agreed += 1 }
            }
        }
        XCTAssertGreaterThan(agreed, 10)
    }

    func testMatching() {
        XCTAssertTrue(PathPattern("/tmp/tmp*.json").matches("/tmp/tmpab12.json"))
        XCTAssertFalse(PathPattern("/tmp/tmp*.json").matches("/tmp/x/tmpab12.json"), "* stays within a component")
        XCTAssertTrue(PathPattern("/proc/*/status").matches("/proc/1/status"))
        XCTAssertFalse(PathPattern("/proc/*/status").matches("/proc/1/stat"))
        XCTAssertTrue(PathPattern("/models/**").matches("/models/a/b/c.bin"))
        XCTAssertTrue(PathPattern("/models/**").matches("/models"))
        XCTAssertFalse(PathPattern("/models/**").matches("/modelsx/a"))
        XCTAssertTrue(PathPattern("/a/**/z").matches("/a/z"))
        XCTAssertTrue(PathPattern("/a/**/z").matches("/a/b/c/z"))
        XCTAssertFalse(PathPattern("/a/**/z").matches("/a/b/c/y"))
        XCTAssertTrue(PathPattern("/exact/path").isExact)
        XCTAssertTrue(PathPattern("/exact/path").matches("/exact/path"))
        XCTAssertFalse(PathPattern("/exact/path").matches("/exact/path2"))
    }
}

func destination(family: UInt16, _ address: [UInt8], port: UInt16 = 443, protocol ipProtocol: UInt16 = 6) -> Destination {
    address.withUnsafeBytes { Destination(family: family, ipProtocol: ipProtocol, port: port, address: $0) }
}

final class NetworkTests: XCTestCase {
    func testCIDRContainment() throws {
        let v4 = try XCTUnwrap(IPNetwork("10.1.0.0/16"))
        let inside = destination(family: 2, [10, 1, 200, 3])
        let outside = destination(family: 2, [10, 2, 0, 1])
        XCTAssertTrue(v4.contains(inside))
        XCTAssertFalse(v4.contains(outside))
        let v6 = try XCTUnwrap(IPNetwork("2001:db8::/32"))
        var address = [UInt8](repeating: 0, count: 16)
        address[0] = 0x20; address[1] = 0x01; address[2] = 0x0d; address[3] = 0xb8; address[15] = 9
        XCTAssertTrue(v6.contains(destination(family: 10, address)))
        XCTAssertNil(IPNetwork("10.0.0.0/33"))
        XCTAssertNil(IPNetwork("not-an-ip"))
    }

    func testAddressesOfOneSubnetCollapse() {
        let rules = Set((1...5).map { EgressRule(address: "10.0.3.\($0)", port: 443, protocol: "tcp") }
            + [EgressRule(address: "10.0.4.1", port: 443, protocol: "tcp"), EgressRule(address: "10.0.3.9", port: 80, protocol: "tcp")])
        let collapsed = Learner.collapse(rules).sorted()
        XCTAssertEqual(collapsed, [
            EgressRule(address: "10.0.3.0/24", port: 443, protocol: "tcp"),
            EgressRule(address: "10.0.3.9", port: 80, protocol: "tcp"),
            EgressRule(address: "10.0.4.1", port: 443, protocol: "tcp"),
        ])
    }

}
