import Foundation

public struct CgroupError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The cgroup v2 hierarchy of this host: where it is mounted (read from mountinfo, never
/// assumed), and the mapping between a cgroup's id — the inode number of its directory, which
/// is what the kernel programs report — and its path.
public final class CgroupHierarchy: @unchecked Sendable {
    /// Where cgroup2 is mounted, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified.
    public let mountPoint: String
    // Guarded by `lock`: the resolver is shared by the pipeline and the container namer.
    private var pathsByID: [UInt64: String?] = [:]
    static let cacheLimit = 65_536
    private let lock = NSLock()

    public init(mountPoint: String) {
        self.mountPoint = mountPoint
    }

    /// Finds the cgroup2 mount in /proc/self/mountinfo.
    public static func system(mountInfoPath: String = "/proc/self/mountinfo") throws -> CgroupHierarchy {
        guard let text = try? String(contentsOfFile: mountInfoPath, encoding: .utf8) else {
            throw CgroupError("cannot read \(mountInfoPath)")
        }
        guard let mountPoint = cgroup2MountPoint(mountInfo: text) else {
            throw CgroupError("no cgroup2 filesystem is mounted (none in \(mountInfoPath)): Vigil needs the "
                + "unified cgroup hierarchy; mount it with `mount -t cgroup2 none /sys/fs/cgroup/unified`")
        }
        return CgroupHierarchy(mountPoint: mountPoint)
    }

    /// The mount point of the first cgroup2 filesystem in a mountinfo text (proc(5): the mount
    /// point is field 5; the filesystem type follows the " - " separator; spaces are \040).
    public static func cgroup2MountPoint(mountInfo: String) -> String? {
        for line in mountInfo.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let separator = fields.firstIndex(of: "-"), separator + 1 < fields.count, fields.count > 4 else { continue }
            if fields[separator + 1] == "cgroup2" {
                return unescapeMountField(String(fields[4]))
            }
        }
        return nil
    }

    /// A mountinfo field as written (spaces, tabs, newlines and backslashes as octal escapes), unescaped.
    public static func unescapeMountField(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var out: [UInt8] = []
        let bytes = Array(field.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
               let value = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(value)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Absolute filesystem path of a cgroup given by its path inside the hierarchy ("/a/b").
    public func directory(of cgroupPath: String) -> String {
        cgroupPath == "/" ? mountPoint : mountPoint + (cgroupPath.hasPrefix("/") ? cgroupPath : "/" + cgroupPath)
    }

    /// The path inside the hierarchy for a directory under the mount point.
    public func cgroupPath(ofDirectory directory: String) throws -> String {
        let standardized = (directory as NSString).standardizingPath
        guard standardized == mountPoint || standardized.hasPrefix(mountPoint + "/") else {
            throw CgroupError("\(directory) is not inside the cgroup v2 hierarchy mounted at \(mountPoint)")
        }
        let rest = String(standardized.dropFirst(mountPoint.count))
        return rest.isEmpty ? "/" : rest
    }

    /// A cgroup's id: the inode number of its directory.
    public func id(of cgroupPath: String) throws -> UInt64 {
        var info = stat()
        let directory = directory(of: cgroupPath)
        guard stat(directory, &info) == 0 else {
            throw CgroupError("no cgroup \(cgroupPath) (\(directory): \(String(cString: strerror(errno))))")
        }
        remember(id: UInt64(info.st_ino), path: cgroupPath)
        return UInt64(info.st_ino)
    }

    /// The cgroup's path for an id, from a cache, or by walking the hierarchy once on a miss
    /// (cgroups are created far less often than events happen). Unknown ids are cached too, until
    /// `forget`, so a stream of events from a vanished cgroup does not walk the tree each time.
    public func path(of id: UInt64) -> String? {
        lock.lock()
        if let cached = pathsByID[id] {
            lock.unlock()
            return cached
        }
        lock.unlock()
        let found = search(id: id)
        lock.lock()
        if pathsByID.count >= Self.cacheLimit { pathsByID.removeAll(keepingCapacity: true) } // a bound, should ids never be forgotten
        pathsByID[id] = .some(found)
        lock.unlock()
        return found
    }

    public func forget(id: UInt64) {
        lock.lock()
        pathsByID[id] = nil
        lock.unlock()
    }

    /// Records a cgroup's path (the kernel told the agent where it was made).
    public func remember(id: UInt64, path: String) {
        lock.lock()
        pathsByID[id] = .some(path)
        lock.unlock()
    }

    /// Every cgroup at or below `cgroupPath`, as (path, id); used to watch an existing subtree.
    public func subtree(of cgroupPath: String) throws -> [(path: String, id: UInt64)] {
        var result: [(path: String, id: UInt64)] = []
        try forEachInSubtree(of: cgroupPath) { result.append(($0, $1)) }
        return result
    }

    /// Visits a cgroup and its descendants, each before its children are listed: a watch placed
    /// in `body` covers children created meanwhile (the kernel's cgroup_mkdir program adds those
    /// of watched parents), and the listing finds those created before.
    public func forEachInSubtree(of cgroupPath: String, _ body: (_ path: String, _ id: UInt64) throws -> Void) throws {
        var queue: [String] = [cgroupPath]
        try body(cgroupPath, try id(of: cgroupPath))
        var index = 0
        while index < queue.count {
            let path = queue[index]
            index += 1
            for child in childDirectories(of: directory(of: path)) {
                let childPath = path == "/" ? "/" + child.name : path + "/" + child.name
                remember(id: child.inode, path: childPath)
                try body(childPath, child.inode)
                queue.append(childPath)
            }
        }
    }

    private func search(id: UInt64) -> String? {
        var queue = ["/"]
        if (try? self.id(of: "/")) == id { return "/" }
        while let path = queue.popLast() {
            for child in childDirectories(of: directory(of: path)) {
                let childPath = path == "/" ? "/" + child.name : path + "/" + child.name
                if child.inode == id {
                    remember(id: id, path: childPath)
                    return childPath
                }
                queue.append(childPath)
            }
        }
        return nil
    }

    private func childDirectories(of directory: String) -> [(name: String, inode: UInt64)] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var children: [(String, UInt64)] = []
        while let entry = readdir(dir) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            children.append((name, UInt64(entry.pointee.d_ino)))
        }
        return children
    }

    // MARK: creating and removing

    /// Creates a cgroup (the parent must exist) and returns its id.
    public func create(_ cgroupPath: String) throws -> UInt64 {
        let directory = directory(of: cgroupPath)
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw CgroupError("cannot create cgroup \(directory): \(String(cString: strerror(errno)))")
        }
        return try id(of: cgroupPath)
    }

    /// Removes an empty cgroup and its empty descendants. Fails (EBUSY) while a process is left.
    public func remove(_ cgroupPath: String) throws {
        let directory = directory(of: cgroupPath)
        for child in childDirectories(of: directory) {
            try remove(cgroupPath + "/" + child.name)
        }
        if rmdir(directory) != 0 && errno != ENOENT {
            throw CgroupError("cannot remove cgroup \(directory): \(String(cString: strerror(errno)))")
        }
    }
}
