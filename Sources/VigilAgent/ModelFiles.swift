import CVigilSys
import Crypto
import Foundation
import VigilCore
import VigilRuntime

/// The model files containers load, by content. The kernel reports a read-only open only when
/// the file is below one of the container's model directories (`directories(pid:patterns:)`
/// finds them, as the container sees them); each such open is hashed here, on a thread of its own,
/// from the container's own view of the file (`/proc/<pid>/root`, resolved inside it), and only
/// when the file is the one the kernel saw opened (same device and inode). Reading is paced
/// (`bytesPerSecond`) so that multi-GB weights do not take the node's disk and CPU; a file
/// already hashed (same device, inode, size and ctime: a write in place with the mtime set back
/// still changes the ctime) is not read again.
public final class ModelFiles: @unchecked Sendable {
    /// One open to hash, with what the agent needs to report it.
    public struct Job: Sendable {
        public var workload: String
        public var container: WorkloadIdentity
        /// Processes of the container whose root the file is read through, first alive first: the
        /// one that opened it (often gone by then: a `cat`), its parent, the container's first.
        public var pids: [UInt32]
        public var path: String
        /// The file as the kernel saw it opened.
        public var version: FileVersion
        /// The open as a `file.read` JSON object.
        public var read: [UInt8]
        public var bootNanoseconds: UInt64
        /// Contents the container's pod declares.
        public var declared: Set<String>

        public init(workload: String, container: WorkloadIdentity, pids: [UInt32], path: String, version: FileVersion,
                    read: [UInt8], bootNanoseconds: UInt64, declared: Set<String> = []) {
            self.declared = declared
            self.workload = workload
            self.container = container
            self.pids = pids
            self.path = path
            self.version = version
            self.read = read
            self.bootNanoseconds = bootNanoseconds
        }
    }

    public enum Outcome: Sendable, Equatable {
        case hashed(EventEncoder.ModelFile)
        /// The file could not be read as the kernel saw it (the process gone, the file replaced
        /// since the open), or was too large.
        case failed(String)
    }

    public struct Counters: Sendable, Equatable {
        public var hashed: UInt64 = 0
        public var bytesHashed: UInt64 = 0
        /// Opens of a file already hashed (same identity, size, mtime): not read again.
        public var cached: UInt64 = 0
        public var failures: UInt64 = 0
        /// Opens not hashed because `maximumQueued` were waiting.
        public var dropped: UInt64 = 0
        /// Bytes of files waiting to be hashed, or being hashed now.
        public var pendingBytes: UInt64 = 0
    }

    /// Read this fast at most (the default: 128 MiB/s; a 10 GiB file takes 80 s).
    public let bytesPerSecond: Double
    public static let maximumQueued = 256
    /// Contents remembered, so that reopening a file costs a `stat`.
    static let cacheCapacity = 1024

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [Job] = []
    private var results: [(Job, Outcome)] = []
    private var counters = Counters()
    private var stopped = false
    private var started = false
    // Only on the hashing thread:
    private var cache: [CacheKey: String] = [:]
    private var cacheOrder: [CacheKey] = []

    private typealias CacheKey = FileVersion

    public init(bytesPerSecond: Double = 128 * 1024 * 1024) {
        self.bytesPerSecond = bytesPerSecond
    }

    deinit { stop() }

    /// Queues an open to hash; false (counted) when `maximumQueued` are waiting.
    @discardableResult
    public func submit(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { return false }
        guard queue.count < Self.maximumQueued else {
            counters.dropped += 1
            return false
        }
        if !started {
            started = true
            let thread = Thread { [weak self] in self?.run() }
            thread.name = "vigil.model-hash"
            thread.start()
        }
        queue.append(job)
        condition.signal()
        return true
    }

    /// What was hashed since the last call.
    public func takeResults() -> [(job: Job, outcome: Outcome)] {
        condition.lock()
        defer { condition.unlock() }
        let taken = results
        results.removeAll()
        return taken.map { (job: $0.0, outcome: $0.1) }
    }

    public var counts: Counters {
        condition.lock()
        defer { condition.unlock() }
        return counters
    }

    /// Waits until every job queued so far has a result (tests, and the agent's last tick).
    public func waitUntilIdle(timeout: Double = 30) {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        while (!queue.isEmpty || counters.pendingBytes > 0 || busy) && Date() < deadline {
            condition.wait(until: min(deadline, Date().addingTimeInterval(0.05)))
        }
        condition.unlock()
    }

    private var busy = false

    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            if stopped {
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            busy = true
            condition.unlock()
            let outcome = hash(job)
            condition.lock()
            busy = false
            results.append((job, outcome))
            if case .failed = outcome { counters.failures += 1 }
            condition.broadcast()
            condition.unlock()
        }
    }

    private func hash(_ job: Job) -> Outcome {
        var root: Int32 = -1
        for pid in job.pids where pid > 0 && root < 0 { root = open("/proc/\(pid)/root", VIGIL_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        guard root >= 0 else { return .failed("no process of the container is left to read it through") }
        defer { close(root) }
        let fd = vigil_open_in_root(root, job.path, O_RDONLY)
        guard fd >= 0 else { return .failed("cannot be opened in the container: \(String(cString: strerror(-fd)))") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return .failed("fstat: \(String(cString: strerror(errno)))") }
        let identity = FileIdentity(statDevice: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        guard identity == job.version.identity, status.st_mode & S_IFMT == S_IFREG else {
            return .failed("not the file that was opened (replaced since, or not a regular file)")
        }
        let size = UInt64(status.st_size)
        let modified = UInt64(status.st_mtim.tv_sec) * 1_000_000_000 + UInt64(status.st_mtim.tv_nsec)
        let changed = UInt64(status.st_ctim.tv_sec) * 1_000_000_000 + UInt64(status.st_ctim.tv_nsec)
        let key = FileVersion(identity: identity, size: size, changeNanoseconds: changed)
        func model(_ digest: String) -> EventEncoder.ModelFile {
            EventEncoder.ModelFile(path: job.path, sha256: digest, size: size, modifiedNanoseconds: modified,
                                   version: key)
        }
        if let digest = cache[key] {
            condition.withLock { counters.cached += 1 }
            return .hashed(model(digest))
        }
        condition.withLock { counters.pendingBytes += size }
        defer { condition.withLock { counters.pendingBytes -= size } }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let began = Date()
        var total: UInt64 = 0
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                return .failed("read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            total += UInt64(n)
            // Paced: never ahead of bytesPerSecond since the file's first byte.
            let ahead = Double(total) / bytesPerSecond - Date().timeIntervalSince(began)
            if ahead > 0 { Thread.sleep(forTimeInterval: ahead) }
        }
        var after = stat()
        guard fstat(fd, &after) == 0, after.st_ctim.tv_sec == status.st_ctim.tv_sec, after.st_ctim.tv_nsec == status.st_ctim.tv_nsec,
              UInt64(after.st_size) == size, total == size else {
            return .failed("changed while it was read: hashed again at its next open")
        }
        let digest = "sha256:" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
        if cacheOrder.count >= Self.cacheCapacity {
            let evicted = cacheOrder.removeFirst()
            cache[evicted] = nil
        }
        cache[key] = digest
        cacheOrder.append(key)
        condition.withLock {
            counters.hashed += 1
            counters.bytesHashed += size
        }
        return .hashed(model(digest))
    }

    /// The model directories of a container, as its processes see them: for each pattern, the
    /// directory its fixed leading components name (`/models/**` -> `/models`), opened inside the
    /// container's root. A pattern with no fixed directory (`**/*.bin`) names none: it would make
    /// every read a model read. Returns what exists now — the directories, and for the kernel's
    /// first test the filesystems a model file can be on (`inode` 0: the directories' own, and
    /// those mounted below them, from the process's mountinfo) — and the patterns whose directory
    /// does not exist (yet).
    public static func directories(pid: UInt32, patterns: [String]) -> (found: Set<FileIdentity>, missing: [String]) {
        let root = open("/proc/\(pid)/root", VIGIL_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { return ([], patterns) }
        defer { close(root) }
        var found = Set<FileIdentity>(), missing: [String] = [], paths: [String] = []
        for pattern in patterns {
            guard let directory = PathPattern.fixedDirectory(of: pattern) else { continue }
            let fd = vigil_open_in_root(root, directory, VIGIL_O_PATH | O_DIRECTORY)
            guard fd >= 0 else {
                missing.append(pattern)
                continue
            }
            var status = stat()
            if fstat(fd, &status) == 0 {
                let identity = FileIdentity(statDevice: UInt64(status.st_dev), inode: UInt64(status.st_ino))
                found.insert(identity)
                found.insert(FileIdentity(device: identity.device, inode: 0))
                paths.append(directory)
            }
            close(fd)
        }
        if !paths.isEmpty, let mountinfo = try? String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8) {
            for device in devicesMounted(below: paths, mountinfo: mountinfo) { found.insert(FileIdentity(device: device, inode: 0)) }
        }
        return (found, missing)
    }

    /// The devices (the kernel's dev_t) of the mounts at or below `directories`, from a
    /// mountinfo text: `ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...`, the mount point as the
    /// process sees it, with spaces and the like written as octal escapes.
    public static func devicesMounted(below directories: [String], mountinfo: String) -> Set<UInt32> {
        var devices = Set<UInt32>()
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5)
            guard fields.count >= 5 else { continue }
            let numbers = fields[2].split(separator: ":")
            guard numbers.count == 2, let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) else { continue }
            let mountPoint = CgroupHierarchy.unescapeMountField(String(fields[4]))
            if directories.contains(where: { mountPoint == $0 || mountPoint.hasPrefix($0 + "/") }) {
                devices.insert(major << 20 | (minor & 0xfffff))
            }
        }
        return devices
    }
}
