import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilTestSupport
import XCTest

/// Which model a server loads: the kernel reports only the opens of files below the container's
/// model directories; the agent hashes each from the container's own view, says `model.load`
/// the first time it sees a content, learns the contents while learning, and reports a content it
/// never saw loaded once the profile is stable (`model-changed`).
final class ModelLoadTests: XCTestCase {
    private static let workload = "ml/deployment/llm-server/server"

    func testTheModelLoadedIsKnownByContentAndASwapIsReported() throws {
        try KernelTestSupport.requireRoot()
        try RuncContainer.available()
        let hierarchy = try CgroupHierarchy.system()
        let root = "/vigil-model-test-\(getpid())"
        _ = try hierarchy.create(root)
        let kubepods = root + "/kubepods"
        _ = try hierarchy.create(kubepods)
        addTeardownBlock { try? hierarchy.remove(root) }
        let work = try KernelTestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        let stateRoot = work + "/runc"
        var configuration = KernelTestSupport.nodeConfiguration(kubepods: kubepods, work: work)
        configuration.modelPaths = [.init(workload: "ml/*/llm-server/*", paths: ["/models/**"])]
        // What the team shipped: any other content loaded is model-unverified, learning or not.
        configuration.modelDigests = [.init(workload: "ml/*/llm-server/*", digests: ["sha256:" + Data("weights v1\n".utf8).sha256Hex])]
        let probes = try KernelProbes()
        let sink = MemorySink()
        let agent = try NodeAgent(configuration: configuration, kernel: probes, hierarchy: hierarchy, sink: sink, node: "node-a")
        XCTAssertEqual(try agent.start(), [kubepods])

        /// A replica whose image carries `weights` at /models/weights.bin (and a symlink to it).
        func replica(_ pod: String, weights: String, _ script: String, ticking: Bool = false,
                     hostBinaries: [String: String] = [:], bindMounts: [(source: String, destination: String)] = []) throws {
            let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
            let container = try RuncContainer(self, args: ["sh", "-c", script],
                                              cgroupsPath: "\(kubepods)/besteffort/pod\(UUID().uuidString.lowercased())/\(id)",
                                              noNewPrivileges: true, seccomp: RuncContainer.recordingFilter,
                                              annotations: ["io.kubernetes.cri.sandbox-namespace": "ml", "io.kubernetes.cri.sandbox-name": pod,
                                                            "io.kubernetes.cri.container-name": "server"],
                                              id: id, stateRoot: stateRoot, writableRoot: true,
                                              files: ["/models/weights.bin": weights, "/etc/config.json": "{}"],
                                              symlinks: ["/weights": "/models/weights.bin"],
                                              hostBinaries: hostBinaries, bindMounts: bindMounts)
            let result = try container.runDetachedAndWait(pipeline: agent.pipeline, eachPoll: ticking ? { try agent.tick() } : nil)
            XCTAssertEqual(result.status, 0, result.output)
            agent.registry.waitForModelHashes()
            try agent.tick()
        }
        func digest(_ text: String) -> String { "sha256:" + Data(text.utf8).sha256Hex }
        func lines(_ kind: String) throws -> [[String: Any]] { try sink.objects.filter { $0["kind"] as? String == kind } }

        // The server starts (the agent names its container meanwhile), loads its weights, once
        // directly and once through a symlink, and reads a file outside the model directory.
        let load = "sleep 1; cat /models/weights.bin >/dev/null; cat /weights >/dev/null; cat /etc/config.json >/dev/null; sleep 0.3"
        try replica("llm-server-7d9c8f6b5-x2k4p", weights: "weights v1\n", load)
        let loads = try lines("model.load")
        XCTAssertEqual(loads.count, 1, "one content, said once: \(loads)")
        XCTAssertEqual(loads.first?[path: "model.path"] as? String, "/models/weights.bin")
        XCTAssertEqual(loads.first?[path: "model.sha256"] as? String, digest("weights v1\n"))
        XCTAssertEqual(loads.first?[path: "model.size"] as? Int, 11)
        XCTAssertEqual(loads.first?[path: "workload.pod"] as? String, "llm-server-7d9c8f6b5-x2k4p")
        XCTAssertEqual(loads.first?[path: "event.process.exe"] as? String, "/bin/busybox")
        XCTAssertEqual(loads.first?[path: "event.file.op"] as? String, "read_model")
        let hashing = try XCTUnwrap(agent.registry.modelHashing)
        XCTAssertEqual(hashing.hashed + hashing.cached, 2, "both opens of the weights reached the agent, the config's did not: \(hashing)")
        XCTAssertEqual(hashing.hashed, 1, "the second open was not read again")
        XCTAssertEqual(hashing.failures, 0)

        sleep(2) // the quiet period
        try agent.tick()
        XCTAssertEqual(agent.workloadStates[Self.workload], .stable)
        agent.waitForWrites()
        let profile = try XCTUnwrap(try DirectoryProfileStore(root: configuration.profiles).latest(workload: Self.workload))
        XCTAssertEqual(profile.models, [ModelRule(path: "/models/weights.bin", sha256: digest("weights v1\n"))])

        // A second replica loading the same weights: nothing to say.
        try replica("llm-server-7d9c8f6b5-q8w7e", weights: "weights v1\n", load)
        XCTAssertEqual(try lines("anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-changed" }.count, 0)
        // One whose weights were swapped: model-changed, critical, with both contents.
        try replica("llm-server-7d9c8f6b5-z9y8x", weights: "weights v2, swapped\n", load)
        let changed = try lines("anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-changed" }
        XCTAssertEqual(changed.count, 1, "reported once for its two opens: \(changed)")
        XCTAssertEqual(changed.first?[path: "anomaly.severity"] as? String, "critical")
        XCTAssertEqual(changed.first?[path: "event.model.sha256"] as? String, digest("weights v2, swapped\n"))
        XCTAssertEqual(changed.first?[path: "event.model.previous"] as? [String], [digest("weights v1\n")])
        XCTAssertEqual(changed.first?[path: "workload.pod"] as? String, "llm-server-7d9c8f6b5-z9y8x")
        XCTAssertEqual(try lines("model.load").count, 2, "the new content is also said to be loaded")
        let unverified = try lines("anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-unverified" }
        XCTAssertEqual(unverified.count, 1, "the swapped content was not declared: \(unverified)")
        XCTAssertEqual(unverified.first?[path: "event.model.declared"] as? [String], [digest("weights v1\n")])
        XCTAssertEqual(unverified.first?[path: "event.model.sha256"] as? String, digest("weights v2, swapped\n"))
        XCTAssertEqual(try lines("anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-artifact-read" }.count, 0,
                       "the readers were the ones learned")

        // A binary of its own reads the weights: model-artifact-read, with who and what.
        try replica("llm-server-7d9c8f6b5-a1b2c", weights: "weights v1\n", "sleep 1; cp /bin/busybox /tmp/busybox; /tmp/busybox cat /models/weights.bin >/dev/null && sleep 0.3")
        let reads = try lines("anomaly").filter { $0[path: "anomaly.rule"] as? String == "model-artifact-read" }
        XCTAssertEqual(reads.count, 1, "\(reads)")
        XCTAssertEqual(reads.first?[path: "event.file.reader_exe"] as? String, "/tmp/busybox")
        XCTAssertEqual(reads.first?[path: "event.file.path"] as? String, "/models/weights.bin")

        // The server reopens weights it loaded before: once verified (hashed, in the profile),
        // their opens by a known reader stay in the kernel. (No redirection to /dev/null here:
        // that open for writing is known behaviour too, and would be counted as suppressed.)
        func suppressedFiles() -> UInt64 { probes.suppressedCounts()[.file] ?? 0 }
        func opensSeen() -> UInt64 { (agent.registry.modelHashing?.hashed ?? 0) + (agent.registry.modelHashing?.cached ?? 0) }
        var (suppressedBefore, seenBefore) = (suppressedFiles(), opensSeen())
        try replica("llm-server-7d9c8f6b5-r3s4t", weights: "weights v1\n",
                    "sleep 1; cat /models/weights.bin; sleep 1.5; cat /models/weights.bin /weights; cat /weights; sleep 0.3",
                    ticking: true)
        XCTAssertEqual(opensSeen() - seenBefore, 1, "only the first open reached the agent")
        XCTAssertEqual(suppressedFiles() - suppressedBefore, 3, "the three later opens were dropped in the kernel")

        // Rewritten in place, same size, mtime set back: the ctime still moved, so the next open
        // by the same known reader is reported, hashed and found changed.
        (suppressedBefore, seenBefore) = (suppressedFiles(), opensSeen())
        try replica("llm-server-7d9c8f6b5-u5v6w", weights: "weights v1\n",
                    "sleep 1; cat /models/weights.bin >/dev/null; sleep 1.5; cp -p /models/weights.bin /tmp/original; "
                        + "echo 'weights v3' > /models/weights.bin; touch -r /tmp/original /models/weights.bin; "
                        + "cat /models/weights.bin >/dev/null; sleep 0.3", ticking: true)
        agent.registry.waitForModelHashes()
        try agent.tick()
        XCTAssertEqual(opensSeen() - seenBefore, 2, "the open after the rewrite reached the agent")
        let rewritten = try lines("anomaly").filter {
            $0[path: "anomaly.rule"] as? String == "model-changed" && $0[path: "event.model.sha256"] as? String == digest("weights v3\n")
        }
        let anomalies = try lines("anomaly")
        XCTAssertEqual(rewritten.count, 1, "\(anomalies)")

        // A program handed the weights as an open descriptor (no open of its own): reported at its exec.
        try replica("llm-server-7d9c8f6b5-h7j8k", weights: "weights v1\n",
                    "sleep 1; cp /bin/busybox /tmp/cat; exec 3< /models/weights.bin; /tmp/cat <&3 >/dev/null; sleep 0.3")
        let held = try lines("anomaly").filter {
            $0[path: "anomaly.rule"] as? String == "model-artifact-read" && $0[path: "event.file.reader_exe"] as? String == "/tmp/cat"
        }
        let everything = try lines("anomaly")
        XCTAssertEqual(held.count, 1, "\(everything)")
        XCTAssertEqual(held.first?[path: "event.file.held_across_exec"] as? Bool, true)
        XCTAssertEqual(held.first?[path: "event.file.path"] as? String, "/models/weights.bin")

        // Weights on a volume bind-mounted into the model directory, opened with openat2.
        let volume = work + "/adapters"
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
        try "adapter v1\n".write(toFile: volume + "/adapter.bin", atomically: false, encoding: .utf8)
        try replica("llm-server-7d9c8f6b5-m9n0p", weights: "weights v1\n",
                    "sleep 1; /opt/loader openat2-read:/models/adapters/adapter.bin; sleep 0.3",
                    hostBinaries: ["/opt/loader": KernelTestSupport.workload], bindMounts: [(volume, "/models/adapters")])
        let adapter = try lines("model.load").filter { $0[path: "model.path"] as? String == "/models/adapters/adapter.bin" }
        let loadsNow = try lines("model.load")
        XCTAssertEqual(adapter.count, 1, "\(loadsNow)")
        XCTAssertEqual(adapter.first?[path: "model.sha256"] as? String, digest("adapter v1\n"))
        XCTAssertEqual(try lines("anomaly").filter {
            $0[path: "anomaly.rule"] as? String == "model-artifact-read" && $0[path: "event.file.reader_exe"] as? String == "/opt/loader"
        }.count, 1)

        // A file read outside the model directory, on its filesystem (the kernel remembers "not a
        // model file" for it), then moved into it: its next open is a model read all the same.
        // One CPU for the reads, the move and the open: the kernel remembers per CPU.
        try replica("llm-server-7d9c8f6b5-s1t2u", weights: "weights v1\n",
                    "sleep 1; mkdir /staging; echo 'weights v4' > /staging/next.bin; taskset 1 sh -c '"
                        + "for i in 1 2 3; do cat /staging/next.bin >/dev/null; done; "
                        + "mv /staging/next.bin /models/next.bin; cat /models/next.bin >/dev/null'; sleep 0.3")
        let moved = try lines("model.load").filter { $0[path: "model.path"] as? String == "/models/next.bin" }
        let loadsAfterMove = try lines("model.load")
        XCTAssertEqual(moved.count, 1, "\(loadsAfterMove)")
        XCTAssertEqual(moved.first?[path: "model.sha256"] as? String, digest("weights v4\n"))
    }
}
