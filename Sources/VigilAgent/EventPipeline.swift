import Foundation
import VigilCore

/// What the pipeline hands each event to: printing it (`vigil trace`), or the workloads that
/// learn and check it (`WorkloadRegistry`). Called on the polling thread, one event at a time;
/// the event is a view of the ring buffer, valid only during the call.
public protocol EventConsumer: AnyObject {
    func consume(_ event: RawEvent, container: Container, processes: ProcessTable)
    /// A watched cgroup was removed; `lastSyscalls` is what it called since the bitmaps were last read.
    func cgroupRemoved(_ cgroupID: UInt64, lastSyscalls: CgroupSyscalls)
    /// The container's pod says it is ready (`serving.trigger: ready`): its startup is over.
    func containerServes(_ cgroupID: UInt64, container: Container)
    /// The directory named a container, before any event of it may have arrived (protect mode
    /// starts here, so it holds from the container's first exec).
    func containerNamed(_ cgroupID: UInt64, container: Container)
}

extension EventConsumer {
    public func cgroupRemoved(_ cgroupID: UInt64, lastSyscalls: CgroupSyscalls) {}
    public func containerServes(_ cgroupID: UInt64, container: Container) {}
    public func containerNamed(_ cgroupID: UInt64, container: Container) {}
}

/// The path of every record: ring buffer → decode (no copy, no allocation) → the process table →
/// who the cgroup is (a read of what the directory knows) → the consumer. Nothing slow happens
/// here: naming a new container is the directory's work, off this path; its events wait in a
/// bounded queue meanwhile and are replayed once it is named. Everything lost on the way — by
/// the kernel, undecodable, or of a container that could not be named — is counted and said in
/// `agent.drops` lines.
public final class EventPipeline {
    public let kernel: KernelFacade
    private let directory: ContainerDirectory
    private let consumer: EventConsumer
    private let sink: EventSink
    private let encoder: EventEncoder
    public private(set) var processes = ProcessTable()
    private var pending = PendingEvents()
    /// Cgroups removed while being named: their last syscalls, until the name comes.
    private var awaitingRemoval: [UInt64: CgroupSyscalls] = [:]
    private var line = JSONLineWriter()
    private var recordBuffer: [UInt8] = []
    private var reportedDrops = DropCounts()
    /// Losses in the pipeline itself (stages `decode` and `unidentified`).
    private var ownDrops = DropCounts()
    private var decodeFailures: UInt64 = 0

    /// Records received, by kind (bookkeeping included).
    public private(set) var received: [EventKind: UInt64] = [:]
    /// When set, every raw record is also written here in the RecordFile format, for replay.
    public var recordSink: EventSink?

    public init(kernel: KernelFacade, directory: ContainerDirectory, consumer: EventConsumer, sink: EventSink, node: String,
                clock: BootClock = .system()) throws {
        self.kernel = kernel
        self.directory = directory
        self.consumer = consumer
        self.sink = sink
        self.encoder = EventEncoder(node: node, clock: clock)
        try kernel.setRecordHandler { [unowned self] bytes in self.handle(bytes) }
    }

    private func handle(_ bytes: UnsafeRawBufferPointer) {
        if let recordSink {
            recordBuffer.removeAll(keepingCapacity: true)
            RecordFile.append(bytes, to: &recordBuffer)
            recordBuffer.withUnsafeBytes { recordSink.write($0) }
        }
        let event: RawEvent
        do {
            event = try RawEvent(decoding: bytes)
        } catch {
            decodeFailures += 1
            return
        }
        received[event.kind, default: 0] += 1
        processes.observe(event)
        switch event.kind {
        case .cgroup where event.cgroupOperation != .serving:
            cgroupChanged(event)
            return
        case .exit:
            return
        case .exec where event.exeHasNoFile:
            // Read now, while the process runs: a binary without a file is known by its content.
            processes.setExecDigest(ExecutableDigest.sha256(pid: event.pid), pid: event.pid)
        default:
            break
        }
        dispatch(event, bytes)
    }

    private func dispatch(_ event: RawEvent, _ bytes: UnsafeRawBufferPointer) {
        switch directory.lookup(event.cgroupID) {
        case .container(let container):
            consumer.consume(event, container: container, processes: processes)
        case .pending:
            if pending.add(bytes, cgroupID: event.cgroupID) { return }
            // No room left: the namer (on its own queue) may have answered meanwhile.
            takeResolved()
            if case .container(let container) = directory.lookup(event.cgroupID) {
                consumer.consume(event, container: container, processes: processes)
            } else {
                ownDrops[.unidentified, event.kind] += 1
            }
        case .unnamed:
            ownDrops[.unidentified, event.kind] += 1
        case .notAContainer, .excluded:
            break
        }
    }

    private func cgroupChanged(_ event: RawEvent) {
        switch event.cgroupOperation {
        case .created?:
            directory.cgroupCreated(event.cgroupID, parent: event.parentCgroupID, name: String(decoding: event.cgroupName, as: UTF8.self))
        case .removed?:
            let lookup = directory.lookup(event.cgroupID)
            if case .pending = lookup {
                // A short-lived container still being named: its waiting events are replayed, and
                // it is removed, once it is.
                awaitingRemoval[event.cgroupID] = event.lastSyscalls
            } else {
                remove(event.cgroupID, as: lookup, lastSyscalls: event.lastSyscalls)
            }
        case .serving?, nil:
            break
        }
    }

    /// Replays the waiting events of containers the directory named since the last turn, drops
    /// (and counts) those of containers it could not name, and takes excluded containers off the
    /// kernel's watch list.
    private func takeResolved() {
        for (cgroupID, lookup) in directory.takeResolved() {
            if let lastSyscalls = awaitingRemoval.removeValue(forKey: cgroupID) {
                remove(cgroupID, as: lookup, lastSyscalls: lastSyscalls)
            } else {
                settle(cgroupID, as: lookup)
            }
        }
        for cgroupID in directory.takeServing() {
            if case .container(let container) = directory.lookup(cgroupID) { consumer.containerServes(cgroupID, container: container) }
        }
    }

    private func remove(_ cgroupID: UInt64, as lookup: ContainerLookup, lastSyscalls: CgroupSyscalls) {
        settle(cgroupID, as: lookup)
        consumer.cgroupRemoved(cgroupID, lastSyscalls: lastSyscalls)
        directory.cgroupRemoved(cgroupID)
    }

    private func settle(_ cgroupID: UInt64, as lookup: ContainerLookup) {
        if case .excluded = lookup { kernel.quiet(cgroupID: cgroupID) }
        if case .container(let container) = lookup { consumer.containerNamed(cgroupID, container: container) }
        let waiting = pending.take(cgroupID)
        for record in waiting {
            record.withUnsafeBytes { bytes in
                guard let event = try? RawEvent(decoding: bytes) else { return }
                switch lookup {
                case .container(let container): consumer.consume(event, container: container, processes: processes)
                case .unnamed, .pending: ownDrops[.unidentified, event.kind] += 1
                case .notAContainer, .excluded: break
                }
            }
        }
    }

    /// Waits up to `timeoutMilliseconds` for records and handles those ready, then the containers
    /// named meanwhile.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32) throws -> Int {
        let n = try kernel.poll(timeoutMilliseconds: timeoutMilliseconds)
        takeResolved()
        flush()
        return n
    }

    /// Handles everything already in the ring buffer.
    @discardableResult
    public func drain() throws -> Int {
        let n = try kernel.drain()
        takeResolved()
        flush()
        return n
    }

    private func flush() {
        sink.flush()
        recordSink?.flush()
    }

    /// Why the output (the sink, or the record file) failed, if it did.
    public var outputFailure: SinkFailure? {
        sink.failure ?? recordSink?.failure
    }

    /// Events waiting for their container's name, and the containers they belong to.
    public var pendingEvents: (events: Int, containers: Int) { (pending.count, pending.containers) }

    /// At exit: the events still waiting for their container's name will never be handled; they
    /// are counted as dropped (`unidentified`) so that the last `agent.drops` lines say so.
    public func abandonPending() {
        for record in pending.takeAll() {
            record.withUnsafeBytes { bytes in
                guard let event = try? RawEvent(decoding: bytes) else { return }
                ownDrops[.unidentified, event.kind] += 1
            }
        }
    }

    /// Cgroups removed while being named, waiting for the name.
    public var removalsAwaitingNames: Int { awaitingRemoval.count }

    /// Events lost so far: in the kernel and here.
    public func dropCounts() -> DropCounts {
        kernel.dropCounts().adding(ownDrops)
    }

    /// Prints an `agent.drops` line for each counter that grew since the last call; returns the totals.
    @discardableResult
    public func reportDrops() -> DropCounts {
        let current = dropCounts()
        sweepIfRemovalsLost(current)
        let now = BootClock.nowBootNanoseconds()
        for (stage, kind, total) in current.nonZero where total > reportedDrops[stage, kind] {
            line.removeAll()
            encoder.encodeDrops(stage: stage.name, kind: kind.contractName, count: total - reportedDrops[stage, kind],
                                total: total, atBoot: now, into: &line)
            line.bytes.withUnsafeBytes { sink.write($0) }
        }
        if decodeFailures > reportedDecodeFailures {
            line.removeAll()
            encoder.encodeDrops(stage: DropStage.decode.name, kind: "unknown", count: decodeFailures - reportedDecodeFailures,
                                total: decodeFailures, atBoot: now, into: &line)
            line.bytes.withUnsafeBytes { sink.write($0) }
            reportedDecodeFailures = decodeFailures
        }
        reportedDrops = current
        sink.flush()
        return current
    }

    private var reportedDecodeFailures: UInt64 = 0
    private var cgroupRecordsLost: UInt64 = 0

    /// A cgroup_rmdir record lost (ring buffer full) would leave a removed cgroup held here for
    /// ever: the kernel forgot it, the agent did not. When the kernel counts such a loss, every
    /// cgroup the directory holds is checked against the kernel's watch list (one map lookup
    /// each), and those gone are removed as their record would have (their last syscalls were
    /// lost with it, and counted).
    private func sweepIfRemovalsLost(_ drops: DropCounts) {
        let lost = DropStage.allCases.reduce(0) { $0 + drops[$1, .cgroup] }
        guard lost > cgroupRecordsLost else { return }
        cgroupRecordsLost = lost
        for cgroupID in directory.cgroupIDs where !kernel.isWatched(cgroupID: cgroupID) && awaitingRemoval[cgroupID] == nil {
            remove(cgroupID, as: directory.lookup(cgroupID), lastSyscalls: CgroupSyscalls(workload: SyscallBitmap()))
        }
    }
}

/// `vigil trace`: every event as a JSON line.
public final class EventPrinter: EventConsumer {
    private var encoder: EventEncoder
    private let sink: EventSink
    private var line = JSONLineWriter()

    public init(node: String, sink: EventSink, clock: BootClock = .system()) {
        encoder = EventEncoder(node: node, clock: clock)
        self.sink = sink
    }

    public func consume(_ event: RawEvent, container: Container, processes: ProcessTable) {
        line.removeAll()
        if encoder.encode(event, workload: container.identity, processes: processes, into: &line) {
            line.bytes.withUnsafeBytes { sink.write($0) }
        }
    }
}
