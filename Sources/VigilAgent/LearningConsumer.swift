import Foundation
import VigilBPF
import VigilCore
import VigilProfiles
import VigilSeccomp

/// `vigil learn`: folds events and the kernel's syscall bitmaps into a profile, checkpoints it
/// to the store every interval (a crash loses at most one), and reports the learning state.
public final class LearningConsumer: EventConsumer {
    public private(set) var learner: Learner
    private let store: ProfileStore
    private let checkpointInterval: TimeInterval
    private var lastCheckpoint = Date()

    public init(learner: Learner, store: ProfileStore, checkpointInterval: TimeInterval) {
        self.learner = learner
        self.store = store
        self.checkpointInterval = checkpointInterval
    }

    public func consume(_ event: RawEvent, workload: WorkloadIdentity, processes: ProcessTable) {
        learner.observe(event, now: Date(), execDigest: event.kind == .exec ? processes[event.pid]?.execDigest : nil)
    }

    /// Reads the syscall bitmaps, applies the end-of-learning rule, and checkpoints when due.
    /// Returns the state after it.
    @discardableResult
    public func tick(probes: KernelProbes, now: Date = Date(), force: Bool = false) throws -> LearningState {
        for syscalls in probes.syscallBitmaps().values {
            learner.observeSyscalls(syscalls, now: now)
        }
        let wasStable = learner.isStable
        if learner.capReached != nil { learner.stabilize(now: now) } // past a limit: learning ends (Learner.Limits)
        let state = learner.evaluate(now: now)
        if force || state == .stable && !wasStable || now.timeIntervalSince(lastCheckpoint) >= checkpointInterval {
            try store.save(learner.snapshot())
            lastCheckpoint = now
        }
        return state
    }

    /// The learned command ended (its shutdown is in the profile).
    public func commandEnded() {
        learner.observeContainerStop()
    }

    /// Ends learning now, whatever the rule says, and saves.
    public func stabilize(now: Date = Date()) throws {
        learner.stabilize(now: now)
        try store.save(learner.snapshot())
    }
}
