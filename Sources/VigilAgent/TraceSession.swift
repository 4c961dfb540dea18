import VigilBPF
import VigilCore
import VigilRuntime

/// The capture pipeline of `vigil trace`: ring buffer → decode → attribute to a cgroup →
/// JSON line → sink, all on the polling thread, one record at a time, without allocating per
/// event. Also turns the kernel's drop counters into `agent.drops` lines.
public final class TraceSession {
    public let probes: KernelProbes
    private let hierarchy: CgroupHierarchy
    private let sink: EventSink
    private var encoder: EventEncoder
    private var processes = ProcessTable()
    private var line = JSONLineWriter()
    private var reader: RingBufferReader!
    private var reportedDrops = DropCounts()
    private var decodeFailures: UInt64 = 0
    private var reportedDecodeFailures: UInt64 = 0

    /// Records received, by kind (exits included, though not printed).
    public private(set) var received: [EventKind: UInt64] = [:]
    /// When set, every raw record is also written here in the RecordFile format, for replay.
    public var recordSink: EventSink?
    private var recordBuffer: [UInt8] = []

    public init(probes: KernelProbes, hierarchy: CgroupHierarchy, node: String, sink: EventSink,
                clock: BootClock = .system()) throws {
        self.probes = probes
        self.hierarchy = hierarchy
        self.sink = sink
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
        let workload = WorkloadIdentity(cgroup: hierarchy.path(of: event.cgroupID))
        line.removeAll()
        if encoder.encode(event, workload: workload, processes: processes, into: &line) {
            line.bytes.withUnsafeBytes { sink.write($0) }
        }
    }

    /// Waits up to `timeoutMilliseconds` for events and prints those ready.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32) throws -> Int {
        let n = try reader.poll(timeoutMilliseconds: timeoutMilliseconds)
        sink.flush()
        recordSink?.flush()
        return n
    }

    /// Prints everything already in the ring buffer.
    @discardableResult
    public func drain() throws -> Int {
        let n = try reader.drain()
        sink.flush()
        recordSink?.flush()
        return n
    }

    /// Prints an `agent.drops` line for each counter that grew since the last call; returns
    /// the totals.
    @discardableResult
    public func reportDrops() -> DropCounts {
        let current = probes.dropCounts()
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
