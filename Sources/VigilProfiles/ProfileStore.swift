import Foundation
import VigilCore
import Yams

/// A profile file that cannot be used, and why: the file, the field when one is to blame, and
/// what is wrong with it.
public struct ProfileError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var field: String?
    public var problem: String

    public init(file: String, field: String? = nil, problem: String) {
        self.file = file
        self.field = field
        self.problem = problem
    }

    public var description: String {
        if let field { return "\(file): field '\(field)': \(problem)" }
        return "\(file): \(problem)"
    }
}

/// Where profiles live. A seam: a directory today (the repository's profiles/ or a host path on
/// a node), possibly a ConfigMap or an object store later.
public protocol ProfileStore: Sendable {
    /// The newest version of a workload's profile, nil if it has none.
    func latest(workload: String) throws -> Profile?
    func load(workload: String, version: Int) throws -> Profile
    func versions(workload: String) -> [Int]
    /// Writes the profile as its version, replacing a checkpoint of the same version atomically.
    func save(_ profile: Profile) throws
}

/// Profiles as YAML files: `<root>/<workload>/v<version>.yaml`, where the workload's key has `/`
/// turned into `.` (so `ml/deployment/llm/server` is `ml.deployment.llm.server/`).
public struct DirectoryProfileStore: ProfileStore {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    public static func directoryName(workload: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        return String(workload.map { $0 == "/" ? "." : (allowed.contains($0) ? $0 : "_") })
    }

    public func path(workload: String, version: Int) -> String {
        "\(root)/\(Self.directoryName(workload: workload))/v\(version).yaml"
    }

    public func versions(workload: String) -> [Int] {
        Self.versions(inDirectory: "\(root)/\(Self.directoryName(workload: workload))")
    }

    /// The versions whose `v<N>.yaml` files a workload's directory holds, oldest first.
    private static func versions(inDirectory directory: String) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name in
            guard name.hasPrefix("v"), name.hasSuffix(".yaml") else { return nil }
            return Int(name.dropFirst().dropLast(5))
        }.sorted()
    }

    public func latest(workload: String) throws -> Profile? {
        guard let version = versions(workload: workload).last else { return nil }
        return try load(workload: workload, version: version)
    }

    public func load(workload: String, version: Int) throws -> Profile {
        try Self.load(file: path(workload: workload, version: version))
    }

    public static func load(file: String) throws -> Profile {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ProfileError(file: file, problem: "cannot be read (missing, or no permission)")
        }
        return try ProfileCodec.decode(String(decoding: data, as: UTF8.self), file: file)
    }

    /// Every profile under the root; a broken file is reported and skipped, the others load.
    public func loadAll() -> (profiles: [Profile], errors: [ProfileError]) {
        var profiles: [Profile] = []
        var errors: [ProfileError] = []
        let directories = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
        for directory in directories {
            // The newest version of each workload is the one in force.
            guard let newest = Self.versions(inDirectory: "\(root)/\(directory)").last else { continue }
            let file = "\(root)/\(directory)/v\(newest).yaml"
            do {
                profiles.append(try Self.load(file: file))
            } catch let error as ProfileError {
                errors.append(error)
            } catch {
                errors.append(ProfileError(file: file, problem: "\(error)"))
            }
        }
        return (profiles, errors)
    }

    public func save(_ profile: Profile) throws {
        let file = path(workload: profile.workload, version: profile.version)
        let text = try ProfileCodec.encode(profile)
        try AtomicFile.write(Data(text.utf8), to: file)
    }
}

/// Write to a temporary file beside the target, fsync it, rename it over the target, fsync the
/// directory: a crash leaves the old file or the new one, never half of one.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = "\(directory)/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("create \(temporary)") }
        var ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        let writeErrno = errno
        close(fd)
        guard ok else {
            unlink(temporary)
            errno = writeErrno
            throw failure("write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            let error = failure("rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            fsync(dirfd)
            close(dirfd)
        }
    }

    private static func failure(_ what: String) -> ProfileError {
        ProfileError(file: what, problem: String(cString: strerror(errno)))
    }
}
