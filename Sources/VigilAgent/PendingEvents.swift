import VigilCore

/// Events of containers not yet named, kept (copied: a record is a view of the ring buffer) until
/// their container is, then replayed — so a container's first exec is learned under its
/// workload's name, not lost. Bounded per container and in all: what does not fit is dropped and
/// counted (`unidentified`), never kept without limit. (Tetragon's pkg/eventcache does the same.)
public struct PendingEvents: Sendable {
    public let perContainer: Int
    public let total: Int
    private var queues: [UInt64: [[UInt8]]] = [:]
    public private(set) var count = 0

    /// A container may fill a quarter of the room: one writing 50,000 files a second from its
    /// first millisecond is named (~10 ms) before its share is full, and three others still fit.
    public init(perContainer: Int = 1024, total: Int = 4096) {
        self.perContainer = perContainer
        self.total = total
    }

    /// Keeps a copy of the record; false when there is no room (the caller counts the drop).
    public mutating func add(_ record: UnsafeRawBufferPointer, cgroupID: UInt64) -> Bool {
        guard count < total, queues[cgroupID, default: []].count < perContainer else { return false }
        queues[cgroupID, default: []].append(Array(record))
        count += 1
        return true
    }

    /// The container's waiting records, oldest first; it has none left after.
    public mutating func take(_ cgroupID: UInt64) -> [[UInt8]] {
        let records = queues.removeValue(forKey: cgroupID) ?? []
        count -= records.count
        return records
    }

    /// Every waiting record, of every container; none are left after.
    public mutating func takeAll() -> [[UInt8]] {
        defer {
            queues.removeAll()
            count = 0
        }
        return queues.values.flatMap { $0 }
    }

    public var containers: Int { queues.count }
}
