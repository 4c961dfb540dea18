#if canImport(Glibc)
import Glibc
#endif

/// Where JSON lines go. A seam: stdout today, a rotated file or a network sink tomorrow.
public protocol EventSink: AnyObject {
    /// One or more complete lines.
    func write(_ lines: UnsafeRawBufferPointer)
    func flush()
}

/// Buffers lines and writes them to a file descriptor in large writes.
public final class FileDescriptorSink: EventSink {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let flushThreshold: Int

    public init(fd: Int32 = STDOUT_FILENO, flushThreshold: Int = 64 << 10) {
        self.fd = fd
        self.flushThreshold = flushThreshold
        buffer.reserveCapacity(flushThreshold * 2)
    }

    public func write(_ lines: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: lines)
        if buffer.count >= flushThreshold { flush() }
    }

    public func flush() {
        var offset = 0
        buffer.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return // stdout closed: nothing sensible to do but stop writing
                }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
