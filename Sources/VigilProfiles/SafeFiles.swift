import Crypto
import Foundation

/// A file Vigil could not read or write, and what to do about it.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    init(path: String, errno code: Int32, doing: String) {
        var advice = ""
        switch code {
        case EACCES, EPERM: advice = " (no permission: run as root, or choose a directory you own)"
        case ENOSPC, EDQUOT: advice = " (the device is full)"
        case EROFS: advice = " (a read-only filesystem: mount it read-write)"
        case ENAMETOOLONG: advice = " (the name is too long)"
        case ENOTDIR: advice = " (a part of the path is a file, not a directory)"
        case ELOOP: advice = " (a symbolic link, which Vigil does not follow where it writes)"
        default: break
        }
        self.init(path: path, problem: "cannot \(doing): \(String(cString: strerror(code)))\(advice)")
    }

    public var description: String { "\(path): \(problem)" }

    /// The errno under a Foundation file error (EIO when it has none). The underlying error is a
    /// `POSIXError` in newer Foundation, an `NSError` in older: a forced cast to either crashes.
    static func underlyingErrno(_ error: Error) -> Int32 {
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey]
        if let posix = underlying as? POSIXError { return posix.code.rawValue }
        if let nsError = underlying as? NSError { return Int32(nsError.code) }
        return EIO
    }
}

/// A directory Vigil writes into as root on a node: opened once, by descriptor, and everything
/// below it reached with `openat` and O_NOFOLLOW — a symbolic link planted under it (a `vigil`
/// link in the kubelet's seccomp root, say) is refused, not followed. Files are replaced
/// atomically through a temporary file with an unpredictable name created with O_EXCL, and only
/// ever over a regular file: a device, a directory or a link at the target is refused.
public final class SafeDirectory: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Opens `path` (created with its missing parents when `create`). The path itself is the
    /// operator's choice (a configured root, an --out directory) and is followed as given.
    public static func open(_ path: String, create: Bool) throws -> SafeDirectory {
        let path = path.isEmpty ? "." : path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw FileError(path: path, problem: "is a file, not a directory")
        }
        if create {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw FileError(path: path, errno: FileError.underlyingErrno(error), doing: "create the directory")
            }
        }
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, errno: errno, doing: "open the directory") }
        return SafeDirectory(path: path, fd: fd)
    }

    /// The directory `name` below this one (created 0755 when missing and `create`), never
    /// through a symbolic link.
    public func subdirectory(_ name: String, create: Bool) throws -> SafeDirectory {
        try Self.checkName(name, in: path)
        let full = path + "/" + name
        var child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if child < 0 && errno == ENOENT && create {
            guard mkdirat(fd, name, 0o755) == 0 || errno == EEXIST else { throw FileError(path: full, errno: errno, doing: "create the directory") }
            child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard child >= 0 else {
            let code = errno
            if code == ENOTDIR || code == ELOOP {
                throw FileError(path: full, problem: "is not a directory (a file or a symbolic link is in its place): move it away")
            }
            throw FileError(path: full, errno: code, doing: "open the directory")
        }
        return SafeDirectory(path: full, fd: child)
    }

    /// Replaces `name` with `data`: written to a new temporary file beside it, synced, renamed
    /// over it, and the directory synced — a crash leaves the old file or the new one.
    public func writeAtomically(_ data: Data, to name: String, mode: mode_t = 0o644) throws {
        try Self.checkName(name, in: path)
        let target = path + "/" + name
        var existing = stat()
        if fstatat(fd, name, &existing, AT_SYMLINK_NOFOLLOW) == 0 && existing.st_mode & S_IFMT != S_IFREG {
            throw FileError(path: target, problem: "exists and is not a regular file (\(Self.kind(existing.st_mode))): Vigil replaces only regular files")
        }
        let temporary = ".\(name.prefix(200)).\(UInt64.random(in: 0...UInt64.max).hexadecimal).tmp"
        let file = openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard file >= 0 else { throw FileError(path: target, errno: errno, doing: "create a temporary file beside it") }
        var failure: Int32 = 0
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(file, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += n
            }
        }
        if failure == 0 && fsync(file) != 0 { failure = errno }
        close(file)
        guard failure == 0 else {
            unlinkat(fd, temporary, 0)
            throw FileError(path: target, errno: failure, doing: "write")
        }
        guard renameat(fd, temporary, fd, name) == 0 else {
            let code = errno
            unlinkat(fd, temporary, 0)
            throw FileError(path: target, errno: code, doing: "replace")
        }
        fsync(fd)
    }

    /// The contents of the regular file `name`, nil when there is none; a link is not followed.
    public func read(_ name: String) throws -> Data? {
        try Self.checkName(name, in: path)
        let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else {
            if errno == ENOENT { return nil }
            throw FileError(path: path + "/" + name, errno: errno, doing: "read")
        }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw FileError(path: path + "/" + name, problem: "is not a regular file")
        }
        var result = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = Glibc.read(file, &buffer, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path: path + "/" + name, errno: errno, doing: "read")
            }
            if n == 0 { break }
            result.append(contentsOf: buffer[0..<n])
        }
        return result
    }

    /// Removes the regular file `name`; a name that is not there is fine, anything else in its
    /// place (a link, a directory) is left alone and said.
    public func removeFile(_ name: String) throws {
        try Self.checkName(name, in: path)
        var existing = stat()
        guard fstatat(fd, name, &existing, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return }
            throw FileError(path: path + "/" + name, errno: errno, doing: "look at")
        }
        guard existing.st_mode & S_IFMT == S_IFREG else {
            throw FileError(path: path + "/" + name, problem: "is not a regular file (\(Self.kind(existing.st_mode))): left in place")
        }
        guard unlinkat(fd, name, 0) == 0 || errno == ENOENT else { throw FileError(path: path + "/" + name, errno: errno, doing: "remove") }
        fsync(fd)
    }

    /// The names in this directory (not `.` and `..`).
    public func entries() -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else { return [] }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Probes that files can be created here (at start, so a read-only store fails then, not
    /// at the first checkpoint an hour later).
    public func checkWritable() throws {
        let probe = ".vigil-probe.\(UInt64.random(in: 0...UInt64.max).hexadecimal)"
        let file = openat(fd, probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw FileError(path: path, errno: errno, doing: "create files in it") }
        close(file)
        unlinkat(fd, probe, 0)
    }

    private static func checkName(_ name: String, in directory: String) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.utf8.contains(0) else {
            throw FileError(path: directory, problem: "'\(name)' is not a file name")
        }
        guard name.utf8.count <= 255 else {
            throw FileError(path: directory, problem: "a name of \(name.utf8.count) bytes is longer than a file name may be (255)")
        }
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFLNK: "a symbolic link"
        case S_IFCHR, S_IFBLK: "a device"
        case S_IFIFO: "a pipe"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
    }
}

/// Writes a file the user named (`--out`): the directory as given, the file replaced atomically
/// and only if it is a regular file.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let url = URL(fileURLWithPath: path)
        let name = url.lastPathComponent
        let directory = path.contains("/") ? (path as NSString).deletingLastPathComponent : "."
        guard !name.isEmpty, name != "/", !path.hasSuffix("/") else { throw FileError(path: path, problem: "names a directory, not a file") }
        try SafeDirectory.open(directory.isEmpty ? "/" : directory, create: true).writeAtomically(data, to: name, mode: mode)
    }
}

/// Workload names as file names, one to one: two workloads never share a profile directory or
/// a seccomp file, whatever their names. Lowercase letters, digits and `-` stand for
/// themselves, `/` is `.`, every other byte is `_` and two hex digits (`.` is `_2e`, `_` is
/// `_5f`, `A` is `_41`, each byte of a non-ASCII letter too), so the name can be read back. A
/// leading `/` is `_2f`, so no name is `.` or `..` or starts with a dot. A name longer than 200
/// bytes keeps its first 160 and ends with `~` and 32 hex digits of its SHA-256: `~` appears in
/// no other name.
public enum WorkloadFileName {
    public static func encode(_ workload: String) -> String {
        guard !workload.isEmpty else { return "_" }
        var out = ""
        out.reserveCapacity(workload.utf8.count)
        for (index, byte) in workload.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            case UInt8(ascii: "/") where index > 0:
                out.append(".")
            default:
                out.append("_" + String(byte >> 4, radix: 16) + String(byte & 0xf, radix: 16))
            }
        }
        guard out.utf8.count > 200 else { return out }
        var prefix = String(out.prefix(160))
        // Do not cut an escape in half.
        if let underscore = prefix.suffix(2).lastIndex(of: "_") { prefix = String(prefix[..<underscore]) }
        return prefix + "~" + workload.sha256Hex.prefix(32)
    }
}

extension UInt64 {
    var hexadecimal: String { String(self, radix: 16) }
}

extension String {
    /// The SHA-256 of the string's UTF-8, in lower-case hex.
    var sha256Hex: String { Data(utf8).sha256Hex }
}

extension Data {
    /// The SHA-256 of the bytes, in lower-case hex.
    public var sha256Hex: String { SHA256.hash(data: self).map { String(format: "%02x", $0) }.joined() }
}
