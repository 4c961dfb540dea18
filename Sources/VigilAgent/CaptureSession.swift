import VigilBPF
import VigilCore
import VigilRuntime

/// What a capture session hands each event to: printing it (trace), learning from it (learn),
/// checking it (monitor). Called on the polling thread, one record at a time; the event is a
/// view of the ring buffer, valid only during the call.
public protocol EventConsumer: AnyObject {
    func consume(_ event: RawEvent, workload: WorkloadIdentity, processes: ProcessTable)
    /// Events the consumer received but could not use, counted (the agent's unnamed containers).
    var drops: DropCounts { get }
}

extension EventConsumer {
    public var drops: DropCounts { DropCounts() }
}

/// The capture pipeline: ring buffer → decode → attribute to a cgroup → consumer, all on the
/// polling thread, without allocating per event. Turns the kernel's drop counters into
/// `agent.drops` lines on the sink.
public final class CaptureSession {
    public let probes: KernelProbes
    private let hierarchy: CgroupHierarchy
    private let sink: EventSink
    private let consumer: EventConsumer
    private let encoder: EventEncoder
    private var processes = ProcessTable()
    private var line = JSONLineWriter()
    private var reader: RingBufferReader!
    private var reportedDrops = DropCounts()
    private var decodeFailures: UInt64 = 0
    private var reportedDecodeFailures: UInt64 = 0
    private var recordBuffer: [UInt8] = []

    /// Records received, by kind (exits included, though not printed).
    public private(set) var received: [EventKind: UInt64] = [:]
    /// When set, every raw record is also written here in the RecordFile format, for replay.
    public var recordSink: EventSink?

    public init(probes: KernelProbes, hierarchy: CgroupHierarchy, node: String, sink: EventSink,
                consumer: EventConsumer, clock: BootClock = .system()) throws {
        self.probes = probes
        self.hierarchy = hierarchy
        self.sink = sink
        self.consumer = consumer
        self.encoder = EventEncoder(node: node, clock: clock)
        self.reader = try RingBufferReader(probes: probes) { [unowned self] bytes in
            self.handle(bytes)
        }
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
        if event.kind == .exec && event.exeHasNoFile {
            // Read now, while the process runs: a fileless binary is known by its content.
            processes.setExecDigest(ExecutableDigest.sha256(pid: event.pid), pid: event.pid)
        }
        consumer.consume(event, workload: WorkloadIdentity(cgroup: hierarchy.path(of: event.cgroupID)), processes: processes)
    }

    /// Waits up to `timeoutMilliseconds` for events and handles those ready.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32) throws -> Int {
        let n = try reader.poll(timeoutMilliseconds: timeoutMilliseconds)
        flush()
        return n
    }

    /// Handles everything already in the ring buffer.
    @discardableResult
    public func drain() throws -> Int {
        let n = try reader.drain()
        flush()
        return n
    }

    private func flush() {
        sink.flush()
        recordSink?.flush()
    }

    /// Why the session's output (the sink, or the record file) failed, if it did.
    public var outputFailure: SinkFailure? {
        sink.failure ?? recordSink?.failure
    }

    /// Events lost so far: in the kernel and by the consumer.
    public func dropCounts() -> DropCounts {
        probes.dropCounts().adding(consumer.drops)
    }

    /// Prints an `agent.drops` line for each counter that grew since the last call; returns
    /// the totals.
    @discardableResult
    public func reportDrops() -> DropCounts {
        let current = dropCounts()
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

    public func consume(_ event: RawEvent, workload: WorkloadIdentity, processes: ProcessTable) {
        line.removeAll()
        if encoder.encode(event, workload: workload, processes: processes, into: &line) {
            line.bytes.withUnsafeBytes { sink.write($0) }
        }
    }
}
