import CVigilBPF
import Foundation

/// Delivers ring-buffer records to a handler, on the thread that calls `poll`. The handler
/// sees each record in place (no copy); it must not keep the buffer past its return.
public final class RingBufferReader {
    public typealias Handler = (UnsafeRawBufferPointer) -> Void

    private final class Box {
        let handler: Handler
        init(_ handler: @escaping Handler) { self.handler = handler }
    }

    private let ring: OpaquePointer
    private let box: Box

    /// The probes own their reader (and outlive it): the reader does not keep them.
    init(probes: KernelProbes, handler: @escaping Handler) throws {
        let box = Box(handler)
        let context = Unmanaged.passUnretained(box).toOpaque()
        guard let ring = ring_buffer__new(probes.eventsFD, { context, data, size in
            guard let context, let data else { return 0 }
            let box = Unmanaged<Box>.fromOpaque(context).takeUnretainedValue()
            box.handler(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }, context, nil) else {
            throw BPFError("could not open the ring buffer: \(String(cString: strerror(errno)))")
        }
        self.ring = ring
        self.box = box
    }

    deinit {
        ring_buffer__free(ring)
    }

    /// Waits up to `timeoutMilliseconds` (0: not at all) for a wakeup, then handles the records
    /// ready — also when none came: the programs wake the reader once per batch of records
    /// (`Options.wakeupBatchBytes`), so the timeout is what collects a batch not yet full.
    /// Returns how many were handled.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32) throws -> Int {
        let n = ring_buffer__poll(ring, timeoutMilliseconds)
        if n < 0 && n != -EINTR {
            throw BPFError("reading the ring buffer failed: \(String(cString: strerror(-n)))")
        }
        return n > 0 ? Int(n) : try drain()
    }

    /// Handles everything already in the ring buffer without waiting.
    @discardableResult
    public func drain() throws -> Int {
        let n = ring_buffer__consume(ring)
        if n < 0 {
            throw BPFError("reading the ring buffer failed: \(String(cString: strerror(-n)))")
        }
        return Int(n)
    }
}
