import Foundation
import VigilCore

/// One workload's profile through its life — learning, then monitoring (some or all of its
/// containers protected, see `protectedContainers`), then
/// retired when none of its containers has run for a while — and the containers of it this node
/// runs. The phase is an explicit state; `WorkloadRegistry` moves it along.
public final class Workload {
    public enum Phase {
        case learning(Learner)
        case monitoring(Monitor)
        /// No longer held in memory (its profile is in the store), or between two phases.
        case retired
    }

    /// A stable profile at work: the detector checks events, the reporter decides when a finding
    /// becomes a line.
    public struct Monitor: Sendable {
        public var detector: Detector
        public var reporter: AnomalyReporter
        /// What protect mode enforces (and, for the others, would enforce) for this profile.
        public var enforcement: Enforcement
    }

    public let key: String
    /// The id under which its known behaviour sits in the kernel's maps.
    public let profileID: UInt32
    public private(set) var phase: Phase
    /// Its containers on this node, by cgroup id.
    var containers: [UInt64: Container] = [:]
    /// How its containers were started (a nil member: a runtime Vigil could not tell).
    var runtimes: Set<ObservedRuntime?> = []
    /// The runtimes its installed seccomp profile was checked against.
    var seccompCheckedFor: Set<ObservedRuntime?> = []
    var lastCheckpoint = Date()
    /// A stable profile whose save failed: saved again at the next checkpoint time.
    var unsaved: Profile?
    /// When its last container went; nil while it has one.
    var emptySince: Date?
    /// Model contents this agent has said it saw loaded (`model.load`) or reported as changed.
    var reportedModels: Set<String> = []
    /// Model-hashing problems already logged (each said once; at most 64 remembered).
    var modelProblemsSaid: Set<String> = []
    /// Containers whose model directories did not all exist when they were met: looked for
    /// again at each tick (a server that downloads its weights at start makes them then).
    var modelDirectoriesMissing: [UInt64: UInt32] = [:]
    /// The process each container was met through (its entrypoint, mostly): the model hasher
    /// reads through its root when the process that opened a file is gone.
    var firstPids: [UInt64: UInt32] = [:]
    /// Its containers that serve (accepted a connection since they started, or are ready with
    /// `serving.trigger: ready`): held to the profile without its startup-only rules. A restarted
    /// container is a new cgroup: it starts up.
    public internal(set) var servingContainers: Set<UInt64> = []
    /// Its containers in protect mode (the kernel kills and refuses for them).
    public internal(set) var protectedContainers: Set<UInt64> = []
    /// Its `Enforcement` is in the kernel's maps (loaded with its first protected container).
    var enforcementLoaded = false

    init(key: String, profileID: UInt32, phase: Phase) {
        self.key = key
        self.profileID = profileID
        self.phase = phase
    }

    public var state: LearningState? {
        switch phase {
        case .learning: .learning
        case .monitoring: .stable
        case .retired: nil
        }
    }

    /// The profile as it stands (a learning one: as last snapshotted by the learner's rules).
    public var profile: Profile? {
        switch phase {
        case .learning(let learner): learner.profile
        case .monitoring(let monitor): monitor.detector.profile
        case .retired: nil
        }
    }

    /// The profile as it would be saved now (a learning one generalised and collapsed).
    public var snapshot: Profile? {
        switch phase {
        case .learning(let learner): learner.snapshot()
        case .monitoring(let monitor): monitor.detector.profile
        case .retired: nil
        }
    }

    /// The limit a learning profile reached (see `Learner.Limits`), if any.
    public var capReached: String? {
        if case .learning(let learner) = phase { return learner.capReached }
        return nil
    }

    /// Mutates the learner in place. The phase lets go of it first, so its sets are not copied:
    /// taking a value out of an enum and putting it back would copy them on every event.
    @discardableResult
    func withLearner<R>(_ body: (inout Learner) throws -> R) rethrows -> R? {
        guard case .learning(var learner) = phase else { return nil }
        phase = .retired
        defer { phase = .learning(learner) }
        return try body(&learner)
    }

    /// The same for the monitor.
    @discardableResult
    func withMonitor<R>(_ body: (inout Monitor) throws -> R) rethrows -> R? {
        guard case .monitoring(var monitor) = phase else { return nil }
        phase = .retired
        defer { phase = .monitoring(monitor) }
        return try body(&monitor)
    }

    func startMonitoring(_ monitor: Monitor) {
        phase = .monitoring(monitor)
    }

    func startLearning(_ learner: Learner) {
        phase = .learning(learner)
        seccompCheckedFor = []
    }

    func retire() {
        phase = .retired
    }

    /// The identity anomalies found without a triggering event (syscalls) are labelled with.
    var someContainer: WorkloadIdentity? {
        containers.values.first?.identity
    }
}
