public enum DropStage: UInt32, CaseIterable, Sendable {
    case ringBufferFull = 0
    case pendingFull = 1
    /// Decoded by the agent but not understood (a record from a mismatched object).
    case decode = 3
    /// Received from a pod's container the agent could not name yet (its runtime state or its
    /// pod's metadata missing), so not learned from or checked.
    case unidentified = 4

    public var name: String {
        switch self {
        case .ringBufferFull: "ring_buffer_full"
        case .pendingFull: "pending_full"
        case .decode: "decode"
        case .unidentified: "unidentified"
        }
    }
}

/// Events lost, by where they were lost and what they were.
public struct DropCounts: Equatable, Sendable {
    private var counts: [UInt32: UInt64] = [:]

    public init() {}

    public subscript(stage: DropStage, kind: EventKind) -> UInt64 {
        get { counts[stage.rawValue << 8 | kind.rawValue] ?? 0 }
        set { counts[stage.rawValue << 8 | kind.rawValue] = newValue }
    }

    public var total: UInt64 { counts.values.reduce(0, +) }

    /// Both counts added, stage by stage and kind by kind.
    public func adding(_ other: DropCounts) -> DropCounts {
        var sum = self
        sum.counts.merge(other.counts, uniquingKeysWith: +)
        return sum
    }

    /// Entries that are not zero, in a stable order.
    public var nonZero: [(stage: DropStage, kind: EventKind, count: UInt64)] {
        DropStage.allCases.flatMap { stage in
            EventKind.allCases.compactMap { kind in
                let n = self[stage, kind]
                return n > 0 ? (stage, kind, n) : nil
            }
        }
    }
}
