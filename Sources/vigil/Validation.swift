import ArgumentParser
import Foundation
import VigilCore
import VigilProfiles

/// A workload name as the command line takes it: the key a profile is stored under.
enum WorkloadArgument {
    static let maximumBytes = 512

    static func check(_ name: String, flag: String = "--workload") throws {
        guard !name.isEmpty else { throw ValidationError("\(flag) must not be empty") }
        guard name.utf8.count <= maximumBytes else {
            throw ValidationError("\(flag) is \(name.utf8.count) bytes long; a workload name has at most \(maximumBytes)")
        }
        guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw ValidationError("\(flag) contains a control character")
        }
        guard !name.hasPrefix("/"), !name.hasSuffix("/"), !name.contains("//") else {
            throw ValidationError("\(flag) '\(name)': a workload name is parts separated by single slashes (namespace/kind/name/container), or one word")
        }
    }
}

/// A profile reference: NAME (its newest version), NAME@VERSION (or NAME@vVERSION), or a YAML file.
enum ProfileReference {
    static func load(_ reference: String, store: DirectoryProfileStore) throws -> Profile {
        guard !reference.isEmpty else { throw CommandFailure("give a workload name, NAME@VERSION, or a profile file") }
        if reference.hasSuffix(".yaml") || reference.contains("/") && FileManager.default.fileExists(atPath: reference) {
            return try DirectoryProfileStore.load(file: reference)
        }
        if let at = reference.lastIndex(of: "@") {
            let name = String(reference[..<at])
            var versionText = reference[reference.index(after: at)...]
            if versionText.hasPrefix("v") { versionText = versionText.dropFirst() }
            if !versionText.isEmpty, versionText.allSatisfy(\.isASCII), versionText.allSatisfy(\.isNumber) {
                guard let version = Int(versionText), (1...ProfileCodec.maximumVersion).contains(version) else {
                    throw CommandFailure("'\(reference)': a version is a number from 1 to \(ProfileCodec.maximumVersion)")
                }
                try WorkloadArgument.check(name, flag: "the workload in '\(reference)'")
                return try store.load(workload: name, version: version)
            }
        }
        try WorkloadArgument.check(reference, flag: "the workload '\(reference)'")
        return try store.requireLatest(reference)
    }
}

/// Reads a whole file the user named, pipes and /dev/stdin included, with an error that says which.
func readUserFile(_ path: String, flag: String) throws -> Data {
    func failure(_ reason: String) -> CommandFailure { CommandFailure("\(flag) \(path): cannot read: \(reason)") }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw failure(String(cString: strerror(errno))) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw failure(String(cString: strerror(errno))) }
    guard info.st_mode & S_IFMT != S_IFDIR else { throw failure("it is a directory") }
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 {
            if errno == EINTR { continue }
            throw failure(String(cString: strerror(errno)))
        }
        if n == 0 { return data }
        data.append(contentsOf: buffer[0..<n])
        guard data.count <= 256 << 20 else { throw failure("larger than 256 MiB") }
    }
}
