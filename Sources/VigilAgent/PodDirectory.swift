import Foundation
import Logging
import VigilCore
import VigilRuntime

/// Names the containers of pods, off the event path: a cgroup the kernel made below a watched one
/// is named on a thread of its own — its path's layout gives the container id, the runtime's
/// state (written a moment after the cgroup) the pod and how it was started, the API server (if
/// configured) its labels and owner — and the answer reaches the event loop through
/// `takeResolved()`. The loop reads only what is already known; a lookup never waits.
public final class PodDirectory: ContainerDirectory {
    public struct Settings: Sendable {
        public var namespaces = AgentConfiguration.Namespaces()
        public var podSelector = LabelSelector()
        /// After a failed API lookup, none for this long.
        public var retryInterval: Double = 30
        /// How long a container may take to be named (its runtime state to appear, the API server
        /// to answer) before it is given up on: its waiting events are dropped and counted.
        public var nameTimeout: Double = 60
        /// With `.ready`, a named container's pod is read again every `readyPollInterval` seconds
        /// until its status says the container is ready (`takeServing()`).
        public var servingTrigger: AgentConfiguration.Serving.Trigger = .accept
        public var readyPollInterval: Double = 2
        public init() {}
    }

    private let hierarchy: CgroupHierarchy
    private let namer: ContainerNamer

    // The event loop's: what is known, and what was asked and not answered yet.
    private var known: [UInt64: ContainerLookup] = [:]
    private var asked: Set<UInt64> = []
    /// Lookups the API server did not answer, for the metrics.
    public private(set) var lookupFailures: UInt64 = 0

    public init(hierarchy: CgroupHierarchy, stateRoots: [String], podMetadata: PodMetadataSource?, settings: Settings) {
        self.hierarchy = hierarchy
        namer = ContainerNamer(hierarchy: hierarchy, stateReader: RuntimeStateReader(roots: stateRoots), podMetadata: podMetadata,
                               settings: settings)
    }

    public func lookup(_ cgroupID: UInt64) -> ContainerLookup {
        if let known = known[cgroupID] { return known }
        if asked.insert(cgroupID).inserted { namer.ask(cgroupID) }
        return .pending
    }

    public func cgroupCreated(_ cgroupID: UInt64, parent: UInt64, name: String) {
        if let parentPath = hierarchy.path(of: parent) {
            hierarchy.remember(id: cgroupID, path: parentPath == "/" ? "/" + name : parentPath + "/" + name)
        }
        _ = lookup(cgroupID) // start naming it now, before its first event
    }

    public func cgroupRemoved(_ cgroupID: UInt64) {
        known[cgroupID] = nil
        asked.remove(cgroupID)
        hierarchy.forget(id: cgroupID)
    }

    public func takeResolved() -> [(cgroupID: UInt64, lookup: ContainerLookup)] {
        let (answers, failures) = namer.takeAnswers()
        lookupFailures += UInt64(failures)
        var resolved: [(UInt64, ContainerLookup)] = []
        for (cgroupID, lookup) in answers where asked.remove(cgroupID) != nil {
            known[cgroupID] = lookup
            resolved.append((cgroupID, lookup))
        }
        return resolved
    }

    public func takeServing() -> [UInt64] {
        namer.takeServing().filter { if case .container = known[$0] { return true } else { return false } }
    }

    public var count: Int { known.count + asked.count }
    public var cgroupIDs: [UInt64] { Array(known.keys) + Array(asked) }

    /// Cgroups being named (asked about, not answered yet).
    public var unresolved: Int { asked.count }

    /// Containers named so far (watched or not).
    public var namedContainers: Int {
        known.values.filter { if case .container = $0 { return true } else { return false } }.count
    }
}

/// Names one container at a time on a queue of its own: its path's layout gives the container
/// id, the runtime's state (written a moment after the cgroup) the pod and how it was started, the
/// API server (if configured) its labels and owner. Answers go to a mailbox the event loop empties.
/// Its one piece of mutable state is touched only on `queue`.
final class ContainerNamer: @unchecked Sendable {
    private let hierarchy: CgroupHierarchy
    private let stateReader: RuntimeStateReader
    private let podMetadata: PodMetadataSource?
    private let settings: PodDirectory.Settings
    private let queue = DispatchQueue(label: "vigil.container-namer")
    private let answers = Mailbox<(UInt64, ContainerLookup)>()
    private let failures = Mailbox<Void>()
    private let serving = Mailbox<UInt64>()
    private let logger = Logger(label: "vigil.containers")
    /// After an API failure, no lookup until then (on `queue` only).
    private var lookupsPausedUntil = Date.distantPast

    init(hierarchy: CgroupHierarchy, stateReader: RuntimeStateReader, podMetadata: PodMetadataSource?, settings: PodDirectory.Settings) {
        self.hierarchy = hierarchy
        self.stateReader = stateReader
        self.podMetadata = podMetadata
        self.settings = settings
    }

    func ask(_ cgroupID: UInt64) {
        let askedAt = Date()
        queue.async { self.name(cgroupID, askedAt: askedAt) }
    }

    /// The answers since the last call, and how many API lookups failed meanwhile.
    func takeAnswers() -> (answers: [(UInt64, ContainerLookup)], failures: Int) {
        (answers.takeAll(), failures.takeAll().count)
    }

    /// Containers whose pod says they are ready since the last call (with the `ready` trigger).
    func takeServing() -> [UInt64] { serving.takeAll() }

    private func answer(_ cgroupID: UInt64, _ lookup: ContainerLookup) {
        answers.put((cgroupID, lookup))
    }

    private func retry(_ cgroupID: UInt64, askedAt: Date, after seconds: Double) {
        queue.asyncAfter(deadline: .now() + seconds) { self.name(cgroupID, askedAt: askedAt) }
    }

    private func name(_ cgroupID: UInt64, askedAt: Date) {
        guard let path = hierarchy.path(of: cgroupID) else { return answer(cgroupID, .notAContainer) } // gone already
        guard let cgroup = ContainerCgroup.parse(path) else { return answer(cgroupID, .notAContainer) }
        // The runtime writes its state a moment after it makes the cgroup, before the entrypoint runs.
        guard let state = stateReader.state(containerID: cgroup.containerID) else {
            let waited = Date().timeIntervalSince(askedAt)
            guard waited < settings.nameTimeout else {
                logger.warning("no runtime state for a container: its events are dropped and counted",
                               metadata: ["cgroup": "\(path)", "waited": "\(Int(waited))s"])
                return answer(cgroupID, .unnamed)
            }
            // Often there within milliseconds, while the container's first events wait (PendingEvents).
            return retry(cgroupID, askedAt: askedAt, after: waited < 1 ? 0.01 : waited < 5 ? 0.05 : 1)
        }
        guard var pod = PodIdentity(annotations: state.annotations), settings.namespaces.admits(pod.namespace) else {
            return answer(cgroupID, .excluded) // a sandbox (pause) container, or a namespace not watched
        }
        var declaredModelDigests: Set<String> = []
        var readyContainers: Set<String> = []
        var protectRequested = false
        if let podMetadata {
            guard Date() >= lookupsPausedUntil else {
                return retry(cgroupID, askedAt: askedAt, after: lookupsPausedUntil.timeIntervalSinceNow)
            }
            let metadata: PodMetadata?
            do {
                metadata = try podMetadata.pod(namespace: pod.namespace, name: pod.pod, uid: cgroup.podUID)
            } catch {
                failures.put(())
                lookupsPausedUntil = Date().addingTimeInterval(settings.retryInterval)
                let waited = Date().timeIntervalSince(askedAt)
                guard waited + settings.retryInterval <= settings.nameTimeout else {
                    logger.warning("pod metadata unavailable: the container's events are dropped and counted", metadata: [
                        "pod": "\(pod.namespace)/\(pod.pod)", "error": "\(error)", "waited": "\(Int(waited))s",
                    ])
                    return answer(cgroupID, .unnamed)
                }
                logger.warning("pod metadata unavailable; the pod's events wait (past the queue's room they are dropped and counted)", metadata: [
                    "pod": "\(pod.namespace)/\(pod.pod)", "error": "\(error)", "retry": "\(settings.retryInterval)s",
                ])
                return retry(cgroupID, askedAt: askedAt, after: settings.retryInterval)
            }
            guard let metadata, settings.podSelector.matches(metadata.labels) else { return answer(cgroupID, .excluded) }
            pod.owner = metadata.owner
            declaredModelDigests = Set(metadata.modelDigests)
            readyContainers = metadata.readyContainerIDs
            protectRequested = metadata.protectRequested
        }
        let identity = WorkloadIdentity(id: pod.workloadKey, namespace: pod.namespace, pod: pod.pod, container: pod.container,
                                        containerID: cgroup.containerID, image: pod.image, cgroup: path)
        var container = Container(identity: identity, workload: pod.workloadKey, runtime: state.runtime,
                                  declaredModelDigests: declaredModelDigests, protectRequested: protectRequested)
        container.rootPid = state.initPid
        answer(cgroupID, .container(container))
        if settings.servingTrigger == .ready, podMetadata != nil {
            awaitReadiness(ReadinessWatch(cgroupID: cgroupID, namespace: pod.namespace, pod: pod.pod, uid: cgroup.podUID,
                                          containerID: cgroup.containerID), ready: readyContainers)
        }
    }

    /// A starting container whose pod is read until its status says it is ready.
    private struct ReadinessWatch {
        var cgroupID: UInt64
        var namespace: String
        var pod: String
        var uid: String
        var containerID: String
    }

    private func awaitReadiness(_ watch: ReadinessWatch, ready: Set<String>) {
        if ready.contains(watch.containerID) { return serving.put(watch.cgroupID) }
        queue.asyncAfter(deadline: .now() + settings.readyPollInterval) { self.checkReadiness(watch) }
    }

    private func checkReadiness(_ watch: ReadinessWatch) {
        // The container gone (its cgroup removed), or its pod: nothing to wait for.
        guard hierarchy.path(of: watch.cgroupID) != nil, let podMetadata else { return }
        guard Date() >= lookupsPausedUntil else {
            queue.asyncAfter(deadline: .now() + lookupsPausedUntil.timeIntervalSinceNow) { self.checkReadiness(watch) }
            return
        }
        do {
            guard let metadata = try podMetadata.pod(namespace: watch.namespace, name: watch.pod, uid: watch.uid) else { return }
            awaitReadiness(watch, ready: metadata.readyContainerIDs)
        } catch {
            failures.put(())
            lookupsPausedUntil = Date().addingTimeInterval(settings.retryInterval)
            queue.asyncAfter(deadline: .now() + settings.retryInterval) { self.checkReadiness(watch) }
        }
    }
}
