import Foundation
import VigilCore
import VigilProfiles
import VigilTestSupport
import XCTest

/// Vigil writes host paths as root: names map to files one to one and stay inside their root, a
/// link planted in the way is refused, and only regular files are ever replaced.
final class SafeFilesTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        var template = Array((NSTemporaryDirectory() + "vigil-safe-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { throw FileError(path: "tmp", problem: "mkdtemp") }
        root = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    private func profile(_ workload: String) -> Profile {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        return Profile(workload: workload, state: .stable, learning: LearningEvidence(started: now, lastNew: now, minDuration: 0, quietPeriod: 0),
                       syscalls: SyscallLists(x86_64: ["read"]))
    }

    /// The collisions found: `/` as `-` made these one seccomp file; `/` as `.` made `a/b` and
    /// `a.b` one store directory; replacing non-ASCII letters made `é` and `è` one.
    /// A store whose path runs through a file: a clear error (found by the command-line fuzzer:
    /// newer Foundation's underlying POSIXError crashed a forced cast to NSError).
    func testADirectoryUnderAFileIsAClearError() throws {
        FileManager.default.createFile(atPath: root + "/file", contents: Data())
        XCTAssertThrowsError(try SafeDirectory.open(root + "/file/store/sub", create: true)) { error in
            XCTAssertTrue("\(error)".contains("Not a directory"), "\(error)")
        }
    }

    func testWorkloadNamesMapToFilesOneToOne() throws {
        let pairs = [("team/deployment/web-api/main", "team/deployment/web/api-main"), ("a/b", "a.b"), ("ml/x/é/c", "ml/x/è/c"),
                     ("a_2fb", "a/b"), ("A/b", "a/b"), ("..", "_2e_2e"), ("/x", "_2fx")]
        for (a, b) in pairs {
            XCTAssertNotEqual(WorkloadFileName.encode(a), WorkloadFileName.encode(b), "\(a) and \(b)")
            XCTAssertNotEqual(SeccompExport.localhostProfile(workload: a), SeccompExport.localhostProfile(workload: b))
            XCTAssertNotEqual(SeccompExport.resourceName(a), SeccompExport.resourceName(b))
        }
        XCTAssertEqual(WorkloadFileName.encode("ml/deployment/llm-server/server"), "ml.deployment.llm-server.server", "readable")
        let long = String(repeating: "a", count: 300)
        XCTAssertLessThanOrEqual(WorkloadFileName.encode(long).utf8.count, 200)
        XCTAssertNotEqual(WorkloadFileName.encode(long), WorkloadFileName.encode(long + "b"))

        // Random names: never two in one file, never a name that leaves its directory.
        var random = SeededRandom(seed: 42)
        var seen: [String: String] = [:]
        let alphabet = Array("ab/._-Aé\u{0}~%\\ \n")
        for _ in 0..<20000 {
            let name = String((0..<Int.random(in: 0...12, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
            let encoded = WorkloadFileName.encode(name)
            if let other = seen[encoded] { XCTAssertEqual(other, name, "\(other.debugDescription) and \(name.debugDescription) share \(encoded)") }
            seen[encoded] = name
            XCTAssertFalse(encoded.isEmpty || encoded == "." || encoded == ".." || encoded.hasPrefix(".") || encoded.contains("/")
                || encoded.utf8.contains(0), "\(name.debugDescription) -> \(encoded)")
        }
    }

    func testTheStoreKeepsEveryWorkloadInsideItsRoot() throws {
        let store = DirectoryProfileStore(root: root + "/store")
        for workload in ["..", "../../etc", "a/b", "a.b", "/abs"] {
            try store.save(profile(workload))
            XCTAssertEqual(try store.latest(workload: workload)?.workload, workload)
        }
        let entries = try FileManager.default.contentsOfDirectory(atPath: root)
        XCTAssertEqual(entries, ["store"], "nothing written beside the store")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/store").count, 5, "five workloads, five directories")
    }

    /// A `vigil` link under the seccomp root (pointing at, say, /etc) is refused, not followed.
    func testALinkPlantedUnderTheSeccompRootIsNotFollowed() throws {
        let target = root + "/elsewhere"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/seccomp", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/seccomp/vigil", withDestinationPath: target)
        XCTAssertThrowsError(try SeccompExport.install(profile("w"), mode: .enforce, seccompRoot: root + "/seccomp")) { error in
            XCTAssertTrue("\(error)".contains("is not a directory (a file or a symbolic link is in its place)"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target), [], "nothing written through the link")
        // A link where the profile file goes is refused too.
        try FileManager.default.removeItem(atPath: root + "/seccomp/vigil")
        try FileManager.default.createDirectory(atPath: root + "/seccomp/vigil", withIntermediateDirectories: true)
        try "keep\n".write(toFile: target + "/victim", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: root + "/seccomp/vigil/w.json", withDestinationPath: target + "/victim")
        XCTAssertThrowsError(try SeccompExport.install(profile("w"), mode: .enforce, seccompRoot: root + "/seccomp"))
        XCTAssertEqual(try String(contentsOfFile: target + "/victim", encoding: .utf8), "keep\n")
    }

    /// `--out` onto something that is not a regular file (a device, a pipe, a link) is refused:
    /// replacing it by rename is how a host's /dev/null became a regular file.
    func testOnlyRegularFilesAreReplaced() throws {
        XCTAssertEqual(mkfifo(root + "/pipe", 0o600), 0)
        XCTAssertThrowsError(try AtomicFile.write(Data("x".utf8), to: root + "/pipe")) { error in
            XCTAssertTrue("\(error)".contains("is not a regular file (a pipe)"), "\(error)")
        }
        var info = stat()
        XCTAssertEqual(lstat(root + "/pipe", &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "still a pipe")
        try FileManager.default.createDirectory(atPath: root + "/dir", withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write(Data("x".utf8), to: root + "/dir"))
        // A regular file is replaced, and no temporary file is left beside it.
        try AtomicFile.write(Data("one".utf8), to: root + "/file.json")
        try AtomicFile.write(Data("two".utf8), to: root + "/file.json")
        XCTAssertEqual(try String(contentsOfFile: root + "/file.json", encoding: .utf8), "two")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root).sorted(), ["dir", "file.json", "pipe"])
    }

    /// A temporary name planted in advance cannot redirect the write: temporary names are random
    /// and created with O_EXCL.
    func testAPlantedTemporaryNameChangesNothing() throws {
        let victim = root + "/victim"
        try "keep\n".write(toFile: victim, atomically: true, encoding: .utf8)
        let directory = root + "/profiles/w"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The names the old code used: .v1.yaml.tmp-<pid>.
        try FileManager.default.createSymbolicLink(atPath: "\(directory)/.v1.yaml.tmp-\(getpid())", withDestinationPath: victim)
        try DirectoryProfileStore(root: root + "/profiles").save(profile("w"))
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "keep\n")
        XCTAssertNotNil(try DirectoryProfileStore(root: root + "/profiles").latest(workload: "w"))
    }

    /// The newest version cannot be read: the last good one is used, and a new version never
    /// writes over either.
    func testACorruptNewestVersionNeverHidesNorOverwritesAGoodOne() throws {
        let store = DirectoryProfileStore(root: root + "/profiles")
        try store.save(profile("w"))
        let corrupt = store.path(workload: "w", version: 2)
        try "apiVersion: vigil.dev/v1alpha1\nkind: WorkloadProfile\nworkload: w\nversion: 2\nstate: sideways\n"
            .write(toFile: corrupt, atomically: true, encoding: .utf8)
        let usable = try store.latestUsable(workload: "w")
        XCTAssertEqual(usable.profile?.version, 1)
        XCTAssertEqual(usable.unusable.count, 1)
        XCTAssertTrue(usable.unusable[0].description.contains("v2.yaml"), "\(usable.unusable)")
        XCTAssertEqual(usable.nextVersion, 3, "a new version goes after the broken one")
        // A profile file moved by hand to another version's name is not taken for that version.
        try FileManager.default.copyItem(atPath: store.path(workload: "w", version: 1), toPath: store.path(workload: "w", version: 4))
        XCTAssertEqual(try store.latestUsable(workload: "w").profile?.version, 1)
    }

    func testTheStoreIsCheckedAtStart() throws {
        try "x".write(toFile: root + "/file", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DirectoryProfileStore(root: root + "/file").checkWritable()) { error in
            XCTAssertTrue("\(error)".contains("is a file, not a directory"), "\(error)")
        }
        XCTAssertNoThrow(try DirectoryProfileStore(root: root + "/fresh").checkWritable())
    }
}
