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

/// The newest version of a workload's profile that can be used, and the newer ones that could
/// not (each with what is wrong with it): a corrupt newest file never hides, nor gets written
/// over, an older good one.
public struct UsableProfile: Sendable {
    public var profile: Profile?
    public var unusable: [ProfileError]
    /// The number a new version must take: above every file there, broken ones included.
    public var nextVersion: Int

    public init(profile: Profile?, unusable: [ProfileError], nextVersion: Int) {
        self.profile = profile
        self.unusable = unusable
        self.nextVersion = nextVersion
    }
}

/// Profiles as YAML files: `<root>/<workload>/v<version>.yaml`, the workload's key turned into a
/// directory name one to one (`WorkloadFileName`: `ml/deployment/llm/server` is
/// `ml.deployment.llm.server`). Everything below the root is reached without following links.
public struct DirectoryProfileStore: ProfileStore {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    public static func directoryName(workload: String) -> String {
        WorkloadFileName.encode(workload)
    }

    public func path(workload: String, version: Int) -> String {
        "\(root)/\(Self.directoryName(workload: workload))/v\(version).yaml"
    }

    /// The workload's directory, nil when it has none yet (and `create` is false).
    private func directory(workload: String, create: Bool) throws -> SafeDirectory? {
        guard create || FileManager.default.fileExists(atPath: root) else { return nil }
        let rootDirectory = try SafeDirectory.open(root, create: create)
        do {
            return try rootDirectory.subdirectory(Self.directoryName(workload: workload), create: create)
        } catch let error as FileError where !create && !FileManager.default.fileExists(atPath: error.path) {
            return nil
        }
    }

    public func versions(workload: String) -> [Int] {
        guard let directory = try? directory(workload: workload, create: false) else { return [] }
        return Self.versions(in: directory.entries())
    }

    /// The versions `v<N>.yaml` names hold, oldest first.
    private static func versions(in names: [String]) -> [Int] {
        names.compactMap { name in
            guard name.hasPrefix("v"), name.hasSuffix(".yaml"), let number = Int(name.dropFirst().dropLast(5)), number >= 1 else { return nil }
            return number
        }.sorted()
    }

    public func latest(workload: String) throws -> Profile? {
        guard let version = versions(workload: workload).last else { return nil }
        return try load(workload: workload, version: version)
    }

    public func latestUsable(workload: String) throws -> UsableProfile {
        let all = versions(workload: workload)
        var unusable: [ProfileError] = []
        for version in all.reversed() {
            do {
                return UsableProfile(profile: try load(workload: workload, version: version), unusable: unusable,
                                     nextVersion: (all.last ?? 0) + 1)
            } catch let error as ProfileError {
                unusable.append(error)
            }
        }
        return UsableProfile(profile: nil, unusable: unusable, nextVersion: (all.last ?? 0) + 1)
    }

    public func load(workload: String, version: Int) throws -> Profile {
        let file = path(workload: workload, version: version)
        let data: Data?
        do {
            data = try directory(workload: workload, create: false)?.read("v\(version).yaml")
        } catch let error as FileError {
            throw ProfileError(file: file, problem: error.problem)
        }
        guard let data else { throw ProfileError(file: file, problem: "does not exist") }
        let profile = try ProfileCodec.decode(data, file: file)
        guard profile.workload == workload, profile.version == version else {
            throw ProfileError(file: file, problem: "holds \(profile.workload) v\(profile.version), not \(workload) v\(version): "
                + "it was copied or renamed by hand; put it back where `vigil` wrote it")
        }
        return profile
    }

    public static func load(file: String) throws -> Profile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw ProfileError(file: file, problem: FileError(path: file, errno: FileError.underlyingErrno(error), doing: "read").problem)
        }
        return try ProfileCodec.decode(data, file: file)
    }

    /// Every profile under the root; a broken file is reported and skipped, the others load.
    public func loadAll() -> (profiles: [Profile], errors: [ProfileError]) {
        var profiles: [Profile] = []
        var errors: [ProfileError] = []
        guard let rootDirectory = try? SafeDirectory.open(root, create: false) else { return ([], []) }
        for name in rootDirectory.entries().sorted() where !name.hasPrefix(".") {
            guard let directory = try? rootDirectory.subdirectory(name, create: false),
                  let newest = Self.versions(in: directory.entries()).last else { continue }
            let file = "\(root)/\(name)/v\(newest).yaml"
            do {
                guard let data = try directory.read("v\(newest).yaml") else { continue }
                profiles.append(try ProfileCodec.decode(data, file: file))
            } catch let error as ProfileError {
                errors.append(error)
            } catch {
                errors.append(ProfileError(file: file, problem: "\(error)"))
            }
        }
        return (profiles, errors)
    }

    public func save(_ profile: Profile) throws {
        let text = try ProfileCodec.encode(profile)
        do {
            try directory(workload: profile.workload, create: true)!.writeAtomically(Data(text.utf8), to: "v\(profile.version).yaml")
        } catch let error as FileError {
            throw ProfileError(file: path(workload: profile.workload, version: profile.version), problem: error.problem)
        }
    }

    /// Fails now, with what to fix, if profiles cannot be written under the root.
    public func checkWritable() throws {
        do {
            try SafeDirectory.open(root, create: true).checkWritable()
        } catch let error as FileError {
            throw ProfileError(file: root, problem: error.problem + " (the profile store)")
        }
    }
}
