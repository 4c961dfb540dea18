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

/// Appends to a file, rotating it to `<path>.1` (replacing the previous one) when it would grow
/// past `maxBytes`: bounded disk use on the node, and the latest lines always in `<path>`.
public final class RotatingFileSink: EventSink {
    private let path: String
    private let maxBytes: Int
    private var fd: Int32
    private var size: Int
    private var buffer: [UInt8] = []

    public init(path: String, maxBytes: Int) throws {
        self.path = path
        self.maxBytes = maxBytes
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SinkError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        fstat(fd, &info)
        size = Int(info.st_size)
    }

    deinit {
        flush()
        close(fd)
    }

    public func write(_ lines: UnsafeRawBufferPointer) {
        if size + buffer.count + lines.count > maxBytes { rotate() }
        buffer.append(contentsOf: lines)
        if buffer.count >= 64 << 10 { flush() }
    }

    public func flush() {
        guard !buffer.isEmpty else { return }
        let written = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if written > 0 { size += written }
        buffer.removeAll(keepingCapacity: true)
    }

    private func rotate() {
        flush()
        close(fd)
        rename(path, path + ".1")
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        size = 0
    }
}

/// Writes every line to each of its sinks (stdout and a file, say).
public final class TeeSink: EventSink {
    private let sinks: [EventSink]

    public init(_ sinks: [EventSink]) {
        self.sinks = sinks
    }

    public func write(_ lines: UnsafeRawBufferPointer) {
        for sink in sinks { sink.write(lines) }
    }

    public func flush() {
        for sink in sinks { sink.flush() }
    }
}

public struct SinkError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
