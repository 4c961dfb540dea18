import Foundation
import Logging
import VigilCore
import VigilProfiles

/// Keeps this node's learning in the cluster's profiles, and the cluster's profiles on this node,
/// from a thread of its own (every call to the API server blocks; the loop that empties the ring
/// buffer must not). Once an interval the loop hands over its learning workloads; a round then
/// merges each into its cluster profile (a write only when the node adds something, or when
/// learning ends), reads every cluster profile, installs the seccomp filter of every stable one
/// — whether or not this node ever ran the workload, so a pod starts on any node — and removes
/// the filters it installed for profiles since deleted. Reading costs one list of metadata and a
/// GET per object changed since the last round that is stable or of a workload this node runs. The loop takes the merged profiles back
/// (`takeMerged`) to adopt those that became stable, and asks the last read (`cached`) when it
/// meets a workload for the first time. With the API server unreachable, rounds fail, are
/// counted and logged once per cause, and the node goes on from its own store.
///
/// Between rounds a watch of the stable profiles (`startWatching`) reads again as soon as one
/// turns stable, changes, relearns or is deleted (at most once a second), so a new filter reaches
/// every node in about a second, not a `syncInterval`; the rounds remain the fallback when the
/// watch fails.
public final class ClusterSync: @unchecked Sendable {
    private let store: ClusterProfileStore
    private let node: String
    private let installer: SeccompInstaller
    private let queue = DispatchQueue(label: "vigil.cluster-sync")
    private let logger = Logger(label: "vigil.cluster")
    private let lock = NSLock()
    // Guarded by `lock`:
    private var running = false
    private var cache: [String: ClusterProfile] = [:]
    private var merged: [ClusterProfile] = []
    private var counters = Counters()
    /// Workloads this node ran at the last round, read again by the watch's reads.
    private var runningWorkloads: Set<String> = []
    private var snapshotVersion: String?
    private var readScheduled = false
    private var lastWatchRead = Date.distantPast
    private var watching = false
    /// The last watch ended as the server ends watches, or reported a change: rounds need not list.
    private var watchHealthy = false
    private var roundsWithoutRead = 0
    private var stopping = false
    private let watchEnded = DispatchGroup()
    private let wake = DispatchSemaphore(value: 0)
    // Only on `queue`:
    private var installed: [String: Profile] = [:]
    private var lastFailure: String?
    /// Objects that cannot be read, said once until they change.
    private var reportedProblems: Set<String> = []

    public struct Counters: Sendable, Equatable {
        /// Writes to the cluster (a merge that added something, or ended learning).
        public var writes: UInt64 = 0
        /// Merges and reads that failed (the API server down, refusing, or the object too large).
        public var failures: UInt64 = 0
        public var rounds: UInt64 = 0
        /// Seccomp filters installed or removed for the cluster's stable profiles.
        public var installs: UInt64 = 0
        public var removals: UInt64 = 0
        /// Changes the watch reported, and times it had to list again because its version expired.
        public var watchEvents: UInt64 = 0
        public var watchExpiries: UInt64 = 0
    }

    /// The smallest gap between two reads the watch triggers: a burst of changes is one read.
    static let watchReadGap = 1.0
    /// With a working watch, one round in this many lists the cluster's profiles.
    static let resyncRounds = 10

    public init(store: ClusterProfileStore, node: String, seccompRoot: String) {
        self.store = store
        self.node = node
        self.installer = SeccompInstaller(seccompRoot: seccompRoot)
    }

    /// Starts a round with these learners' profiles, unless one is still running (an API server
    /// slower than the interval: rounds never pile up).
    /// `workloads`: those this node runs, whose cluster profiles are read whatever their state.
    public func startRound(learners: [Learner], workloads: Set<String> = [], now: Date = Date()) {
        let free = lock.withLock { () -> Bool in
            guard !running else { return false }
            running = true
            return true
        }
        guard free else { return }
        lock.withLock { runningWorkloads = workloads }
        queue.async { [self] in
            // While the watch works, it reads whenever a stable profile changes; the rounds then
            // only merge, and list every `resyncRounds`-th time in case a change was missed.
            let read = lock.withLock { () -> Bool in
                roundsWithoutRead += 1
                guard !watchHealthy || roundsWithoutRead >= Self.resyncRounds else { return false }
                return true
            }
            round(learners.map { $0.snapshot() }, workloads: workloads, now: now, read: read)
            lock.withLock { running = false }
        }
    }

    /// Runs a round now and waits for it (at start, so a node that joins late knows the stable
    /// profiles before its first container; and in tests).
    public func runRound(learners: [Learner] = [], workloads: Set<String> = [], now: Date = Date()) {
        queue.sync { round(learners.map { $0.snapshot() }, workloads: workloads, now: now) }
    }

    private func round(_ profiles: [Profile], workloads: Set<String>, now: Date, read: Bool = true) {
        var results: [ClusterProfile] = [], wrote: UInt64 = 0, failures: UInt64 = 0
        for profile in profiles {
            do {
                let (cluster, write) = try store.merge(profile, from: node, now: now)
                results.append(cluster)
                if write { wrote += 1 }
            } catch {
                failures += 1
                failed("could not merge \(profile.workload) into the cluster's profile: \(error)")
            }
        }
        var snapshot: ClusterSnapshot?
        if read { do {
            lock.withLock { roundsWithoutRead = 0 }
            snapshot = try store.current(including: workloads.union(profiles.map(\.workload)))
            let problems = snapshot?.problems ?? []
            for problem in problems where !reportedProblems.contains(problem) {
                logger.warning("a WorkloadProfile is ignored", metadata: ["problem": "\(problem)"])
            }
            reportedProblems = Set(problems)
        } catch {
            failures += 1
            failed("could not read the cluster's profiles: \(error)")
        } }
        // A workload this node learns that is stable in the cluster is adopted now, not at its
        // next merge (the watch's reads merge nothing).
        let learning = Set(profiles.map(\.workload)).union(workloads)
        for cluster in snapshot?.profiles ?? [] where cluster.profile.state == .stable && learning.contains(cluster.profile.workload)
            && !results.contains(where: { $0.profile.workload == cluster.profile.workload }) {
            results.append(cluster)
        }
        if failures == 0 && lastFailure != nil {
            logger.notice("the cluster's profiles are reachable again")
            lastFailure = nil
        }
        let (installs, removals) = snapshot.map(install) ?? (0, 0)
        lock.withLock {
            if let version = snapshot?.resourceVersion { snapshotVersion = version }
            if let snapshot { cache = Dictionary(snapshot.profiles.map { ($0.profile.workload, $0) }, uniquingKeysWith: { a, _ in a }) }
            for cluster in results { cache[cluster.profile.workload] = cluster }
            merged += results
            counters.rounds += 1
            counters.writes += wrote
            counters.failures += failures
            counters.installs += installs
            counters.removals += removals
        }
    }

    /// Installs every stable profile's filter that changed since this agent last installed it,
    /// and removes those it installed whose profile is gone from the cluster (one relearning
    /// keeps its filter: its pods still name it).
    private func install(_ snapshot: ClusterSnapshot) -> (UInt64, UInt64) {
        var installs: UInt64 = 0, removals: UInt64 = 0
        for cluster in snapshot.profiles where cluster.profile.state == .stable {
            let profile = cluster.profile
            guard installed[profile.workload] != profile else { continue }
            let runtimes = Set((profile.learning.runtimes ?? []).map(Optional.some))
            switch installer.install(profile, runtimes: runtimes) {
            case .installed(let localhostProfile):
                installed[profile.workload] = profile
                installs += 1
                logger.info("seccomp profile installed from the cluster", metadata: ["workload": "\(profile.workload)",
                                                                                     "localhostProfile": "\(localhostProfile)"])
            case .refused(let reason):
                installed[profile.workload] = profile // said once per version of the profile
                logger.error("the cluster's seccomp profile was not installed", metadata: ["workload": "\(profile.workload)", "reason": "\(reason)"])
            }
        }
        for workload in installed.keys where !snapshot.workloads.contains(workload) {
            do {
                try SeccompExport.uninstall(workload: workload, seccompRoot: installer.seccompRoot)
                removals += 1
                logger.info("seccomp profile removed: its WorkloadProfile is gone", metadata: ["workload": "\(workload)"])
            } catch {
                logger.error("seccomp profile not removed", metadata: ["workload": "\(workload)", "error": "\(error)"])
            }
            installed[workload] = nil
        }
        return (installs, removals)
    }

    /// Starts the watch on a thread of its own: it blocks in the API server's answer.
    public func startWatching() {
        let start = lock.withLock { () -> Bool in
            guard !watching, !stopping else { return false }
            watching = true
            return true
        }
        guard start else { return }
        watchEnded.enter()
        let thread = Thread { [self] in
            watchLoop()
            watchEnded.leave()
        }
        thread.name = "vigil.cluster-watch"
        thread.start()
    }

    /// Ends the watch and waits (a few seconds at most) for its thread.
    public func stopWatching() {
        lock.withLock { stopping = true }
        wake.signal()
        store.cancelWatches()
        _ = watchEnded.wait(timeout: .now() + 5)
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    private func watchLoop() {
        var version: String?
        var backoff = 1.0
        var lastWatchError: String?
        while !isStopping {
            if version == nil {
                version = lock.withLock { snapshotVersion }
                if version == nil {
                    queue.sync { round([], workloads: lock.withLock { runningWorkloads }, now: Date()) }
                    version = lock.withLock { snapshotVersion }
                }
            }
            guard let from = version else {
                _ = wake.wait(timeout: .now() + backoff)
                backoff = min(backoff * 2, 30)
                continue
            }
            do {
                version = try store.watchStable(from: from) { [weak self] in self?.changed() }
                backoff = 1
                if lastWatchError != nil {
                    logger.notice("the watch of the cluster's stable profiles works again")
                    lastWatchError = nil
                }
                lock.withLock {
                    watchHealthy = version != nil
                    if version == nil {
                        // Too old: the next list is the new start.
                        counters.watchExpiries += 1
                        snapshotVersion = nil
                    }
                }
            } catch {
                guard !isStopping else { return }
                lock.withLock {
                    counters.failures += 1
                    watchHealthy = false
                }
                if "\(error)" != lastWatchError {
                    lastWatchError = "\(error)"
                    logger.warning("the watch of the cluster's stable profiles failed; rounds read them every syncInterval meanwhile",
                                   metadata: ["error": "\(error)"])
                }
                _ = wake.wait(timeout: .now() + backoff)
                backoff = min(backoff * 2, 30)
            }
        }
    }

    /// A stable profile changed: one read soon, however many changes come before it.
    private func changed() {
        let delay = lock.withLock { () -> Double? in
            counters.watchEvents += 1
            watchHealthy = true
            guard !readScheduled else { return nil }
            readScheduled = true
            return max(0, Self.watchReadGap - Date().timeIntervalSince(lastWatchRead))
        }
        guard let delay else { return }
        queue.asyncAfter(deadline: .now() + delay) { [self] in
            let workloads = lock.withLock { () -> Set<String> in
                readScheduled = false
                lastWatchRead = Date()
                return runningWorkloads
            }
            round([], workloads: workloads, now: Date())
        }
    }

    /// A failure is logged when its cause changes, not at every round of an outage.
    private func failed(_ text: String) {
        guard text != lastFailure else { return }
        lastFailure = text
        logger.warning("cluster profiles unavailable; learning and monitoring go on from the node's store", metadata: ["error": "\(text)"])
    }

    /// The cluster profiles merged since the last call.
    public func takeMerged() -> [ClusterProfile] {
        lock.withLock {
            defer { merged.removeAll() }
            return merged
        }
    }

    /// The workload's cluster profile as last read or written.
    public func cached(_ workload: String) -> ClusterProfile? {
        lock.withLock { cache[workload] }
    }

    public var counts: Counters { lock.withLock { counters } }
}
