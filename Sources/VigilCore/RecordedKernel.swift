import CVigilABI

/// A kernel made of recorded records: replays ring-buffer records (from `vigil trace --record`,
/// or built by a test) through the same rules the BPF programs apply — only watched cgroups are
/// reported, cgroups made below a watched one are watched, a removed one leaves the watch list
/// with its last bitmaps, known behaviour is dropped and counted — so the agent's whole pipeline
/// runs, and is measured, without root or BPF. The way swift-nio tests channels with
/// `EmbeddedChannel`: a real pipeline, a fake edge.
public final class RecordedKernel: KernelFacade {
    private var handler: ((UnsafeRawBufferPointer) -> Void)?
    private var queue: [[UInt8]] = []
    private var watched: [UInt64: UInt32] = [:]
    private var quieted: Set<UInt64> = []
    private var bitmaps: [UInt64: CgroupSyscalls] = [:]
    private var known: [UInt32: KnownBehaviour] = [:]
    private var knownModels: [UInt32: Set<FileVersion>] = [:]
    private var suppressed: [EventKind: UInt64] = [:]
    private var joiner = PathJoiner()
    /// Drops the test wants the kernel to report.
    public var drops = DropCounts()

    public init() {}

    // MARK: what a test does

    /// Queues records to be handed over at the next poll.
    public func enqueue(_ record: [UInt8]) {
        queue.append(record)
    }

    /// Queues every record of a RecordFile.
    public func enqueue(recordFile data: [UInt8]) throws {
        try data.withUnsafeBytes { raw in
            try RecordFile.forEachRecord(in: raw) { queue.append(Array($0)) }
        }
    }

    /// What the syscall bitmap of a watched cgroup holds (as raw_syscalls/sys_enter fills it).
    public func recordSyscalls(_ syscalls: CgroupSyscalls, cgroupID: UInt64) {
        guard watched[cgroupID] != nil, !quieted.contains(cgroupID) else { return }
        bitmaps[cgroupID, default: CgroupSyscalls(workload: SyscallBitmap())].formUnion(syscalls)
    }

    public var pendingRecords: Int { queue.count }
    public var watchedCount: Int { watched.count }
    public var knownEntries: Int { known.values.reduce(0) { $0 + $1.count } }
    public func profileID(of cgroupID: UInt64) -> UInt32? { watched[cgroupID] }

    // MARK: KernelFacade

    public func setRecordHandler(_ handler: @escaping (UnsafeRawBufferPointer) -> Void) throws {
        self.handler = handler
    }

    public func poll(timeoutMilliseconds: Int32) throws -> Int { deliver() }

    public func drain() throws -> Int { deliver() }

    private func deliver() -> Int {
        let records = queue
        queue.removeAll(keepingCapacity: true)
        var delivered = 0
        for var record in records where admit(record) {
            enforce(&record)
            record.withUnsafeBytes { handler?($0) }
            delivered += 1
        }
        return delivered
    }

    /// Protect mode, as process_exec and the egress guard apply it: an exec outside the
    /// enforced rules is killed (but the entrypoint), a destination outside them refused; the
    /// record says so.
    private func enforce(_ record: inout [UInt8]) {
        let flag: UInt32? = record.withUnsafeBytes { raw in
            guard let event = try? RawEvent(decoding: raw), let protection = protections[event.cgroupID],
                  let profile = watched[event.cgroupID], profile != 0, let enforcement = enforcements[profile] else { return nil }
            switch event.kind {
            case .exec where protection.exec && !event.isEntrypoint:
                let hash = BehaviourHash.exec(exe: BehaviourHash.text(event.exe), parent: BehaviourHash.text(event.parentExe))
                return event.exeHasNoFile || !enforcement.execHashes.contains(hash) ? UInt32(VIGIL_FLAG_KILLED) : nil
            case .network where protection.egress:
                return enforcement.allows(Destination(event)) ? nil : UInt32(VIGIL_FLAG_DENIED)
            default:
                return nil
            }
        }
        guard let flag else { return }
        let offset = MemoryLayout<vigil_header>.offset(of: \vigil_header.flags)!
        record.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: raw.load(fromByteOffset: offset, as: UInt32.self) | flag, toByteOffset: offset, as: UInt32.self)
        }
    }

    /// The BPF programs' rules, in Swift.
    private func admit(_ record: [UInt8]) -> Bool {
        record.withUnsafeBytes { raw -> Bool in
            guard let event = try? RawEvent(decoding: raw) else { return true } // let the pipeline count it
            if event.kind == .cgroup {
                switch event.cgroupOperation {
                case .created?:
                    guard let profile = watched[event.parentCgroupID] else { return false }
                    if watched[event.cgroupID] == nil {
                        watched[event.cgroupID] = profile
                        if quieted.contains(event.parentCgroupID) { quieted.insert(event.cgroupID) }
                    }
                    return true
                case .removed?:
                    guard watched.removeValue(forKey: event.cgroupID) != nil else { return false }
                    protections[event.cgroupID] = nil
                    bitmaps[event.cgroupID] = nil
                    quieted.remove(event.cgroupID)
                    return true
                case .serving?:
                    return watched[event.cgroupID] != nil && !quieted.contains(event.cgroupID)
                case nil:
                    return false
                }
            }
            guard let profile = watched[event.cgroupID], !quieted.contains(event.cgroupID) else { return false }
            guard profile != 0, let behaviour = known[profile], isKnown(event, behaviour, profile: profile) else { return true }
            suppressed[event.kind, default: 0] += 1
            return false
        }
    }

    private func isKnown(_ event: RawEvent, _ behaviour: KnownBehaviour, profile: UInt32) -> Bool {
        switch event.kind {
        case .exec:
            guard !event.exeHasNoFile else { return false }
            return behaviour.execHashes.contains(BehaviourHash.exec(exe: BehaviourHash.text(event.exe),
                                                                    parent: BehaviourHash.text(event.parentExe)))
        case .file:
            guard let op = event.fileOperation else { return false }
            if op == .readModel {
                let version = event.fileVersion
                return version.changeNanoseconds != 0 && knownModels[profile]?.contains(version) == true
                    && behaviour.modelReaders.contains(BehaviourHash.text(event.modelReaderExe))
            }
            let path = op == .rename ? event.fileTarget : event.filePath
            joiner.join(directory: path.directory, name: path.name)
            let hash = joiner.buffer.withUnsafeBytes { BehaviourHash.text($0) }
            return behaviour.files.contains(KnownBehaviour.FileKey(kind: BehaviourHash.fileKind(op), hash: hash))
        case .network:
            return behaviour.destinations.contains(Destination(event))
        case .exit, .cgroup:
            return false
        }
    }

    public func watch(cgroupID: UInt64, profileID: UInt32) throws {
        watched[cgroupID] = profileID
    }

    /// What the agent told the kernel of each cgroup's model directories.
    public private(set) var modelDirectories: [UInt64: Set<FileIdentity>] = [:]

    public private(set) var modelDirectoryPaths: [UInt64: Set<String>] = [:]

    public func setModelDirectories(cgroupID: UInt64, _ directories: Set<FileIdentity>, paths: Set<String>) throws {
        modelDirectories[cgroupID] = directories.isEmpty ? nil : directories
        modelDirectoryPaths[cgroupID] = paths.isEmpty ? nil : paths
    }

    public func unwatch(cgroupID: UInt64) {
        protections[cgroupID] = nil
        modelDirectories[cgroupID] = nil
        watched[cgroupID] = nil
        bitmaps[cgroupID] = nil
        quieted.remove(cgroupID)
    }

    public func quiet(cgroupID: UInt64) {
        if watched[cgroupID] != nil { quieted.insert(cgroupID) }
    }

    public func isWatched(cgroupID: UInt64) -> Bool { watched[cgroupID] != nil }
    public func isQuiet(cgroupID: UInt64) -> Bool { quieted.contains(cgroupID) }

    public func syscallBitmaps() -> [UInt64: CgroupSyscalls] {
        var result = bitmaps
        for id in watched.keys where result[id] == nil { result[id] = CgroupSyscalls(workload: SyscallBitmap()) }
        return result
    }

    public func loadKnownBehaviour(_ behaviour: KnownBehaviour, profileID: UInt32) throws {
        known[profileID] = behaviour
    }

    public func loadKnownModel(_ version: FileVersion, profileID: UInt32) throws {
        knownModels[profileID, default: []].insert(version)
    }

    public func unloadKnownBehaviour(profileID: UInt32) {
        knownModels[profileID] = nil
        known[profileID] = nil
    }

    /// What the agent told the kernel to enforce, per profile, and where.
    public private(set) var enforcements: [UInt32: Enforcement] = [:]
    public private(set) var protections: [UInt64: Protection] = [:]

    public private(set) var guardedRoots: [String] = []

    public func guardEgress(cgroupDirectory: String) throws {
        if !guardedRoots.contains(cgroupDirectory) { guardedRoots.append(cgroupDirectory) }
    }

    public func loadEnforcement(_ enforcement: Enforcement, profileID: UInt32) throws {
        enforcements[profileID] = enforcement
    }

    public func unloadEnforcement(profileID: UInt32) {
        enforcements[profileID] = nil
    }

    /// (Model writes are not mirrored: which paths are below a model directory is the kernel's
    /// dentry walk; the kernel tests cover them.)
    public func protect(cgroupID: UInt64, _ protection: Protection) throws {
        guard watched[cgroupID] != nil else {
            if protection != .none { throw KernelFacadeError("cannot protect cgroup \(cgroupID): it is not watched") }
            return
        }
        protections[cgroupID] = protection == .none ? nil : protection
    }

    public func dropCounts() -> DropCounts { drops }
    public func suppressedCounts() -> [EventKind: UInt64] { suppressed }
    public func ringBufferFill() -> Double { 0 }
    public func programStats() -> [ProgramStats] { [] }
}
