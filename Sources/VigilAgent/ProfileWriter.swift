import Foundation
import VigilCore
import VigilProfiles

/// Writes profiles on a thread of its own. Generalising, encoding and syncing a large profile
/// takes time in proportion to it; done on the loop that empties the ring buffer, one tenant's
/// big profile would make every other tenant's events drop. The loop hands over a copy of the
/// learner (a value: the copy is cheap until the learner next changes) and goes on; checkpoints
/// of one workload coalesce, so the queue is never longer than the number of workloads.
/// Outcomes come back to the loop through `takeOutcomes()`.
public final class ProfileWriter: @unchecked Sendable {
    public enum Outcome: Sendable {
        case saved(Profile)
        /// A stable profile saved: the loop installs its seccomp profile next.
        case promoted(Profile)
        case failed(workload: String, error: String)
    }

    private let store: ProfileStore
    private let queue = DispatchQueue(label: "vigil.profile-writer")
    private let lock = NSLock()
    private var latestCheckpoint: [String: Learner] = [:]
    private var outcomes: [Outcome] = []

    public init(store: ProfileStore) {
        self.store = store
    }

    /// Saves the learner's profile as it stands, unless a newer checkpoint of the same workload
    /// arrives before the writer gets to it.
    public func checkpoint(_ learner: Learner) {
        let workload = learner.profile.workload
        let alreadyQueued = lock.withLock { () -> Bool in
            defer { latestCheckpoint[workload] = learner }
            return latestCheckpoint[workload] != nil
        }
        guard !alreadyQueued else { return }
        queue.async { [self] in
            guard let learner = lock.withLock({ latestCheckpoint.removeValue(forKey: workload) }) else { return }
            write(learner.snapshot(), outcome: Outcome.saved)
        }
    }

    /// Saves a profile that just became stable (after any checkpoint of it already queued).
    public func promote(_ profile: Profile) {
        lock.withLock { _ = latestCheckpoint.removeValue(forKey: profile.workload) }
        queue.async { [self] in write(profile, outcome: Outcome.promoted) }
    }

    private func write(_ profile: Profile, outcome: (Profile) -> Outcome) {
        let result: Outcome
        do {
            try store.save(profile)
            result = outcome(profile)
        } catch {
            result = .failed(workload: profile.workload, error: "\(error)")
        }
        lock.withLock { outcomes.append(result) }
    }

    /// What was written (or could not be) since the last call.
    public func takeOutcomes() -> [Outcome] {
        lock.withLock {
            defer { outcomes.removeAll() }
            return outcomes
        }
    }

    /// Waits until everything handed over so far is written (at exit).
    public func drain() {
        queue.sync {}
    }
}
