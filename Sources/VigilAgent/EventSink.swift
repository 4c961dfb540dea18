#if canImport(Glibc)
import Glibc
#endif

/// Where JSON lines go. A seam: stdout today, a rotated file or a network sink tomorrow.
public protocol EventSink: AnyObject {
    /// One or more complete lines.
    func write(_ lines: UnsafeRawBufferPointer)
    func flush()
    /// Why lines could not be written (a full device, a reader gone), with how many were lost;
    /// nil while every line was written. A capture stops when its output fails.
    var failure: SinkFailure? { get }
}

extension EventSink {
    public var failure: SinkFailure? { nil }
}

public struct SinkFailure: Sendable, CustomStringConvertible {
    public var problem: String
    public var lostLines: UInt64
    public var description: String { "\(problem) (\(lostLines) event lines lost)" }
}

/// Buffers lines and writes them to a file descriptor in large writes.
public final class FileDescriptorSink: EventSink {
    private let fd: Int32
    private let name: String
    private var buffer: [UInt8] = []
    private let flushThreshold: Int
    public private(set) var failure: SinkFailure?

    public init(fd: Int32 = STDOUT_FILENO, name: String = "standard output", flushThreshold: Int = 64 << 10) {
        self.fd = fd
        self.name = name
        self.flushThreshold = flushThreshold
        buffer.reserveCapacity(flushThreshold * 2)
    }

    public func write(_ lines: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: lines)
        if buffer.count >= flushThreshold { flush() }
    }

    public func flush() {
        guard !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        if let failure {
            self.failure?.lostLines = failure.lostLines + Self.lines(in: buffer[...])
            return
        }
        var offset = 0
        buffer.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    let problem = errno == EPIPE ? "\(name): the reader went away" : "\(name): \(String(cString: strerror(errno)))"
                    failure = SinkFailure(problem: problem, lostLines: Self.lines(in: buffer[offset...]))
                    return
                }
                offset += n
            }
        }
    }

    /// Lines begun in `bytes` (a cut line counts).
    private static func lines(in bytes: ArraySlice<UInt8>) -> UInt64 {
        guard !bytes.isEmpty else { return 0 }
        let newlines = UInt64(bytes.lazy.filter { $0 == UInt8(ascii: "\n") }.count)
        return bytes.last == UInt8(ascii: "\n") ? newlines : newlines + 1
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

    public private(set) var failure: SinkFailure?

    public init(path: String, maxBytes: Int) throws {
        self.path = path
        self.maxBytes = maxBytes
        fd = try Self.open(path)
        var info = stat()
        fstat(fd, &info)
        size = Int(info.st_size)
    }

    /// Appends to a regular file, never through a link (the agent writes host paths as root).
    private static func open(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SinkError("eventsFile \(path): cannot open: \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw SinkError("eventsFile \(path): is not a regular file")
        }
        return fd
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
        if written != buffer.count {
            let lost = UInt64(buffer[max(written, 0)...].lazy.filter { $0 == UInt8(ascii: "\n") }.count)
            failure = SinkFailure(problem: "eventsFile \(path): \(written < 0 ? String(cString: strerror(errno)) : "short write")",
                                  lostLines: (failure?.lostLines ?? 0) + lost)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private func rotate() {
        flush()
        close(fd)
        rename(path, path + ".1")
        do {
            fd = try Self.open(path)
        } catch {
            fd = -1
            failure = SinkFailure(problem: "\(error)", lostLines: failure?.lostLines ?? 0)
        }
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

    public var failure: SinkFailure? { sinks.lazy.compactMap(\.failure).first }
}

public struct SinkError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
