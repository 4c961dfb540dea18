import Foundation
import VigilCore
import XCTest

/// The same workload, learned three times under the same traffic, gives the same seccomp profile:
/// what a workload calls only by timing (the Go runtime's housekeeping in runc, a sleep a signal
/// interrupts) comes from the allowances, not from luck in a learning run.
final class LearningStabilityTests: XCTestCase {
    func testThreeLearningRunsGiveTheSameSeccompProfile() throws {
        try KernelTestSupport.requireRoot()
        let profiles = try KernelTestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: profiles) }
        let port = 25000 + Int(getpid() % 5000)
        for server in ServerWorkloads.Server.allCases {
            var sets: [Set<String>] = []
            for run in 1...3 {
                let learned = try ServerWorkloads.learn(server, workload: "\(server.rawValue)-\(run)", profiles: profiles, port: port)
                sets.append(SeccompPolicy.composition(learned.profile).all)
            }
            for (run, set) in sets.enumerated().dropFirst() {
                XCTAssertEqual(set, sets[0], "\(server) run \(run + 1): only in it \(set.subtracting(sets[0]).sorted()), "
                    + "missing from it \(sets[0].subtracting(set).sorted())")
            }
        }
    }
}
