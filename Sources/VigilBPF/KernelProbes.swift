import CVigilABI
import CVigilBPF
import Foundation
import VigilCore

/// The loaded and attached kernel programs, their maps and their ring buffer. The only owner
/// of libbpf objects in Vigil; everything else talks to it through `KernelFacade`.
public final class KernelProbes: KernelFacade {
    public struct Options: Sendable {
        /// Report every process (but the agent) instead of only watched cgroups.
        public var watchAll = false
        /// Ring-buffer size in bytes: a power of two, at least one page.
        public var ringBufferBytes: UInt32 = 4 << 20
        /// Load `vigil.bpf.o` (or the build `variant` names) from here instead of the object built into the binary.
        public var objectDirectory: String?
        /// Which build of the programs to load; nil: the fastest this kernel takes.
        public var variant: ObjectVariant?
        /// The reader is woken once per this many bytes of records (a power of two; 0: for every
        /// record written while it is idle). Records in a batch not yet full wait for the reader's
        /// poll timeout. nil: a sixteenth of the ring buffer.
        public var wakeupBatchBytes: UInt32?

        public init(watchAll: Bool = false, ringBufferBytes: UInt32 = 4 << 20, objectDirectory: String? = nil,
                    variant: ObjectVariant? = nil, wakeupBatchBytes: UInt32? = nil) {
            self.watchAll = watchAll
            self.ringBufferBytes = ringBufferBytes
            self.objectDirectory = objectDirectory
            self.variant = variant
            self.wakeupBatchBytes = wakeupBatchBytes
        }
    }

    /// The three builds of the same programs (bpf/build.sh), newest first.
    public enum ObjectVariant: String, Sendable, CaseIterable {
        /// `vigil.bpf.o`: `taskBTF`, and the open file a model-read check looks at (its dentry,
        /// inode, mount, and their ancestors) read as plain loads through `bpf_rdonly_cast`
        /// (Linux 6.2+) instead of a helper call per field; opens decided at their exit alone,
        /// from the syscall's registers (`bpf_task_pt_regs`), with no enter program.
        case btfCasts = "vigil.bpf.o"
        /// `vigil-task-btf.bpf.o`: the current task read through its BTF type, syscalls in flight
        /// in task storage (Linux 5.12+): plain loads instead of helper calls on every hook.
        case taskBTF = "vigil-task-btf.bpf.o"
        /// `vigil-compat.bpf.o`: the same programs through helpers and a hash table (Linux 5.8-5.11).
        case compat = "vigil-compat.bpf.o"

        /// The variant this kernel's features call for (the fastest it may take).
        public static var forThisKernel: ObjectVariant {
            guard vigil_bpf_kernel_has_task_btf() else { return .compat }
            return vigil_bpf_kernel_has_btf_casts() ? .btfCasts : .taskBTF
        }

        /// What the loader tries, in order: `forThisKernel`, then every older build.
        public static var candidatesForThisKernel: [ObjectVariant] {
            Array(allCases.drop { $0 != forThisKernel })
        }

        fileprivate var embeddedBase64: String {
            switch self {
            case .btfCasts: EmbeddedBPFObject.base64
            case .taskBTF: EmbeddedBPFObject.taskBTFBase64
            case .compat: EmbeddedBPFObject.compatBase64
            }
        }
    }

    /// The build of the programs that is loaded.
    public let variant: ObjectVariant

    private let object: OpaquePointer
    private var links: [OpaquePointer]
    /// Protect mode's cgroup/connect* and cgroup/sendmsg* programs, and the roots they guard.
    private let guardPrograms: [OpaquePointer]
    private var guardedRoots: Set<String> = []
    private var statsFD: Int32 = -1
    private let watchedCgroupsFD: Int32
    private let cgroupSyscallsFD: Int32
    /// Moved on after each change to watched_cgroups, and each removal from known_behaviour, made here (`statesChanged`).
    private let stateGenerationFD: Int32
    private let dropsFD: Int32
    private let runtimeTaskCountFD: Int32
    private let knownBehaviourFD: Int32
    private let knownDestinationsFD: Int32
    private let knownModelsFD: Int32
    private let modelDirectoriesFD: Int32
    private let modelSwitchFD: Int32
    private let modelDirectoryPathsFD: Int32
    private let protectEgressFD: Int32
    private let protectRulesFD: Int32
    /// What `setModelDirectories` put in, per cgroup, to take out again.
    private var modelDirectories: [UInt64: Set<FileIdentity>] = [:]
    private var modelGeneration: UInt32 = 0
    private var modelDirectoryPaths: [UInt64: Set<UInt64>] = [:]
    let eventsFD: Int32
    public let ringBufferBytes: UInt32

    public init(options: Options = Options()) throws {
        try Preflight.check()
        let size = options.ringBufferBytes
        guard size >= 4096, size & (size - 1) == 0 else {
            throw BPFError("ring buffer size \(size) must be a power of two of at least 4096 bytes")
        }
        let batch = options.wakeupBatchBytes ?? size / 16
        guard batch & (batch &- 1) == 0 else {
            throw BPFError("wakeup batch \(batch) must be a power of two (or 0: a wakeup for every record)")
        }
        ringBufferBytes = size

        let loaded = try Self.loadFirstThatVerifies(options: options)
        variant = loaded.variant
        refusedBuilds = loaded.refused
        object = loaded.object
        links = loaded.links
        guardPrograms = loaded.guardPrograms
        absentSyscallHooks = loaded.absentSyscallHooks
        do {
            watchedCgroupsFD = try Self.mapFD(object, "watched_cgroups")
            cgroupSyscallsFD = try Self.mapFD(object, "cgroup_syscalls")
            stateGenerationFD = try Self.mapFD(object, "state_generation")
            dropsFD = try Self.mapFD(object, "drops")
            runtimeTaskCountFD = try Self.mapFD(object, "runtime_task_count")
            knownBehaviourFD = try Self.mapFD(object, "known_behaviour")
            knownDestinationsFD = try Self.mapFD(object, "known_destinations")
            knownModelsFD = try Self.mapFD(object, "known_models")
            modelDirectoriesFD = try Self.mapFD(object, "model_dirs")
            modelSwitchFD = try Self.mapFD(object, "model_switch")
            modelDirectoryPathsFD = try Self.mapFD(object, "model_dir_paths")
            protectEgressFD = try Self.mapFD(object, "protect_egress")
            protectRulesFD = try Self.mapFD(object, "protect_rules")
            eventsFD = try Self.mapFD(object, "events")
        } catch {
            for link in links { bpf_link__destroy(link) }
            bpf_object__close(object)
            throw error
        }
    }

    /// The running kernel's release, as `uname -r` prints it.
    public static var kernelRelease: String { Preflight.kernelRelease() }

    /// The faster builds this kernel refused before `variant` loaded, each with the verifier's
    /// reason: the agent logs them, since each costs per-event speed.
    public let refusedBuilds: [BuildRefusal]

    /// A build of the programs the kernel would not take, and why.
    public struct BuildRefusal: Sendable, CustomStringConvertible {
        public var variant: ObjectVariant
        /// The program that failed, when libbpf named one.
        public var program: String?
        /// The verifier's (or libbpf's) last words on it.
        public var reason: String

        public var description: String {
            "\(variant.rawValue): \(program.map { "program '\($0)': " } ?? "")\(reason)"
        }
    }

    private struct LoadedObject {
        var variant: ObjectVariant
        var refused: [BuildRefusal]
        var object: OpaquePointer
        var links: [OpaquePointer]
        var guardPrograms: [OpaquePointer]
        var absentSyscallHooks: [String]
    }

    /// Loads and attaches the fastest build the kernel verifies: the one its features call for
    /// (`ObjectVariant.forThisKernel`), else each older one in turn. A kernel's verifier may refuse
    /// what its features allow (a bound it cannot follow, a stack it adds up differently); a node
    /// must then run slower, not blind. With `options.variant`, that build only. When none loads,
    /// the error names the kernel and every build's refusal, and nothing is left loaded.
    private static func loadFirstThatVerifies(options: Options) throws -> LoadedObject {
        let candidates = options.variant.map { [$0] } ?? ObjectVariant.candidatesForThisKernel
        var refused: [BuildRefusal] = []
        for candidate in candidates {
            do {
                var loaded = try loadAndAttach(candidate, options: options)
                loaded.refused = refused
                return loaded
            } catch let refusal as BuildRefusalError {
                refused.append(refusal.refusal)
            }
        }
        let release = Preflight.kernelRelease()
        if options.variant != nil, let only = refused.first {
            throw BPFError("Linux \(release) refused the build asked for, \(only)")
        }
        throw BPFError("no build of Vigil's BPF programs loads on Linux \(release); the kernel refused each:\n"
            + refused.map { "  \($0)" }.joined(separator: "\n")
            + "\nVigil needs Linux 5.8 or later with BTF (/sys/kernel/btf/vmlinux). Nothing is being watched on "
            + "this node: report the kernel release and these lines to Vigil's maintainers.")
    }

    /// A build that did not load, as `loadFirstThatVerifies` goes on from it.
    private struct BuildRefusalError: Error {
        var refusal: BuildRefusal
    }

    private static func loadAndAttach(_ variant: ObjectVariant, options: Options) throws -> LoadedObject {
        vigil_bpf_capture_log()
        let image = try objectImage(directory: options.objectDirectory, variant: variant)
        var openOptions = bpf_object_open_opts()
        openOptions.sz = MemoryLayout<bpf_object_open_opts>.size
        let opened = "vigil".withCString { name -> OpaquePointer? in
            openOptions.object_name = name
            return image.withUnsafeBytes { bpf_object__open_mem($0.baseAddress, $0.count, &openOptions) }
        }
        guard let object = opened, libbpf_get_error(UnsafeRawPointer(object)) == 0 else {
            throw BPFError("could not open the BPF object \(variant.rawValue): \(takeLog())")
        }
        var links: [OpaquePointer] = []
        do {
            guard let events = bpf_object__find_map_by_name(object, "events") else {
                throw BPFError("the BPF object has no 'events' ring buffer: rebuild vigil")
            }
            bpf_map__set_max_entries(events, options.ringBufferBytes)
            let batch = options.wakeupBatchBytes ?? options.ringBufferBytes / 16
            var config = vigil_config(watch_all: options.watchAll ? 1 : 0, agent_tgid: UInt32(getpid()),
                                      wakeup_shift: batch == 0 ? 0 : UInt32(batch.trailingZeroBitCount), _pad: 0)
            var rc = vigil_bpf_set_rodata(object, "vigil_config", &config, MemoryLayout<vigil_config>.size)
            if rc == 0 {
                rc = BehaviourHash.key.withUnsafeBytes { vigil_bpf_set_rodata(object, "vigil_text_hash_key", $0.baseAddress, $0.count) }
            }
            guard rc == 0 else {
                throw BPFError("could not set the BPF programs' configuration (\(String(cString: strerror(-rc)))): rebuild vigil")
            }

            let absent = skipSyscallsThisArchitectureLacks(object)

            if bpf_object__load(object) != 0 {
                let err = errno
                let log = takeLog()
                if err == EPERM && !log.contains("BEGIN PROG LOAD LOG") {
                    throw BPFError("loading Vigil's BPF programs was not permitted: \(String(cString: strerror(err))). "
                        + "Run vigil as root, or with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE.\n\(log)")
                }
                let verdict = VerifierLog(log)
                throw BuildRefusalError(refusal: BuildRefusal(variant: variant, program: verdict.program,
                                                              reason: verdict.reason ?? String(cString: strerror(err))))
            }

            var guardPrograms: [OpaquePointer] = []
            var program = bpf_object__next_program(object, nil)
            while let current = program {
                let name = String(cString: bpf_program__name(current))
                let section = String(cString: bpf_program__section_name(current))
                guard bpf_program__autoload(current) else {
                    program = bpf_object__next_program(object, current)
                    continue
                }
                if section.hasPrefix("cgroup/") { // the egress guard: attached at roots (guardEgress)
                    guardPrograms.append(current)
                    program = bpf_object__next_program(object, current)
                    continue
                }
                guard let link = bpf_program__attach(current), libbpf_get_error(UnsafeRawPointer(link)) == 0 else {
                    let err = errno
                    throw BuildRefusalError(refusal: BuildRefusal(
                        variant: variant, program: name,
                        reason: "attaching to \(section) failed: \(String(cString: strerror(err))) "
                            + "(the kernel may lack this tracepoint) \(takeLog())"))
                }
                links.append(link)
                program = bpf_object__next_program(object, current)
            }
            return LoadedObject(variant: variant, refused: [], object: object, links: links,
                                guardPrograms: guardPrograms, absentSyscallHooks: absent)
        } catch {
            for link in links { bpf_link__destroy(link) }
            bpf_object__close(object)
            throw error
        }
    }

    /// Syscall tracepoints left out because this kernel's architecture has no such syscall (arm64
    /// has openat but not open, renameat2 but not rename: its programs see those calls there).
    public let absentSyscallHooks: [String]

    /// The section names of the programs of a build of vigil's objects (the hooks they attach
    /// to), read from the object without loading it.
    public static func hookSections(objectDirectory: String? = nil, variant: ObjectVariant = .btfCasts) throws -> [String] {
        let image = try objectImage(directory: objectDirectory, variant: variant)
        var options = bpf_object_open_opts()
        options.sz = MemoryLayout<bpf_object_open_opts>.size
        guard let object = image.withUnsafeBytes({ bpf_object__open_mem($0.baseAddress, $0.count, &options) }),
              libbpf_get_error(UnsafeRawPointer(object)) == 0 else {
            throw BPFError("could not open the BPF object: \(takeLog())")
        }
        defer { bpf_object__close(object) }
        var sections: [String] = []
        var program = bpf_object__next_program(object, nil)
        while let current = program {
            sections.append(String(cString: bpf_program__section_name(current)))
            program = bpf_object__next_program(object, current)
        }
        return sections
    }

    /// The syscalls newer architectures dropped for their *at forms; only these may be missing.
    static let legacySyscalls: Set<String> = ["open", "creat", "rename", "unlink", "rmdir"]

    /// Turns off the programs of legacy syscalls whose tracepoints this kernel does not have
    /// (tracefs says so); any other missing tracepoint is still an error at attach.
    private static func skipSyscallsThisArchitectureLacks(_ object: OpaquePointer) -> [String] {
        var skipped: [String] = []
        var program = bpf_object__next_program(object, nil)
        while let current = program {
            let section = String(cString: bpf_program__section_name(current))
            if !skippedOnThisArchitecture([section]).isEmpty {
                bpf_program__set_autoload(current, false)
                skipped.append(section.split(separator: "/").last.map(String.init) ?? section)
            }
            program = bpf_object__next_program(object, current)
        }
        return skipped
    }

    /// The sections among `sections` that hook a legacy syscall this kernel's architecture does
    /// not have (tracefs has no such event).
    public static func skippedOnThisArchitecture(_ sections: [String]) -> [String] {
        guard let events = ["/sys/kernel/tracing/events/syscalls", "/sys/kernel/debug/tracing/events/syscalls"]
            .first(where: { FileManager.default.fileExists(atPath: $0 + "/sys_enter_openat") }) else { return [] }
        return sections.filter { section in
            let event = section.split(separator: "/").last.map(String.init) ?? ""
            let call = event.replacingOccurrences(of: "sys_enter_", with: "").replacingOccurrences(of: "sys_exit_", with: "")
            return section.hasPrefix("tp/syscalls/") && legacySyscalls.contains(call) && !FileManager.default.fileExists(atPath: events + "/" + event)
        }
    }

    deinit {
        reader = nil
        for link in links { bpf_link__destroy(link) }
        bpf_object__close(object)
        if statsFD >= 0 { close(statsFD) }
    }

    private var reader: RingBufferReader?

    public func setRecordHandler(_ handler: @escaping (UnsafeRawBufferPointer) -> Void) throws {
        reader = try RingBufferReader(probes: self, handler: handler)
    }

    @discardableResult
    public func poll(timeoutMilliseconds: Int32) throws -> Int {
        try requireReader().poll(timeoutMilliseconds: timeoutMilliseconds)
    }

    @discardableResult
    public func drain() throws -> Int {
        try requireReader().drain()
    }

    private func requireReader() throws -> RingBufferReader {
        guard let reader else { throw BPFError("no record handler: call setRecordHandler first") }
        return reader
    }

    /// Report the processes of this cgroup (by its cgroup v2 id) and of cgroups created below it.
    /// A non-zero `profileID` names the known behaviour (see `loadKnownBehaviour`) that the
    /// kernel drops for this cgroup instead of reporting.
    public func watch(cgroupID: UInt64, profileID: UInt32) throws {
        var key = cgroupID
        var state = vigil_cgroup_state()
        if bpf_map_lookup_elem(watchedCgroupsFD, &key, &state) != 0 {
            state = vigil_cgroup_state()
        }
        state.profile_id = profileID
        defer { statesChanged() }
        guard bpf_map_update_elem(watchedCgroupsFD, &key, &state, UInt64(BPF_ANY)) == 0 else {
            throw BPFError("could not watch cgroup \(cgroupID): \(String(cString: strerror(errno))) "
                + "(at most \(watchedCgroupsCapacity) cgroups can be watched)")
        }
    }

    /// The syscalls each watched cgroup has made since it was watched (one that has made none
    /// has no entry), read from the kernel.
    public func syscallBitmaps() -> [UInt64: CgroupSyscalls] {
        var result: [UInt64: CgroupSyscalls] = [:]
        var key: UInt64 = 0
        var next: UInt64 = 0
        var previous: UnsafeMutableRawPointer? = nil
        while bpf_map_get_next_key(cgroupSyscallsFD, previous, &next) == 0 {
            var syscalls = vigil_cgroup_syscalls()
            if bpf_map_lookup_elem(cgroupSyscallsFD, &next, &syscalls) == 0 {
                result[next] = Self.bitmap(of: syscalls)
            }
            key = next
            previous = withUnsafeMutablePointer(to: &key) { UnsafeMutableRawPointer($0) }
        }
        return result
    }

    private static func bitmap(of state: vigil_cgroup_syscalls) -> CgroupSyscalls {
        let perABI = Int(VIGIL_SYSCALL_WORDS)
        let workload = withUnsafeBytes(of: state.syscalls) { raw in
            let words = raw.bindMemory(to: UInt64.self)
            return SyscallBitmap(words: (0..<Int(VIGIL_SYSCALL_ABI_COUNT.rawValue)).map { abi in
                Array(words[(abi * perABI)..<((abi + 1) * perABI)])
            })
        }
        let runtime = withUnsafeBytes(of: state.runtime_syscalls) { raw -> [SyscallBitmap] in
            let words = raw.bindMemory(to: UInt64.self)
            return (0..<2).map { row in
                var bitmap = SyscallBitmap()
                bitmap.words[SyscallABI.x86_64.rawValue] = Array(words[(row * perABI)..<((row + 1) * perABI)])
                return bitmap
            }
        }
        return CgroupSyscalls(workload: workload, runtimeBeforeFilter: runtime[0], runtimeAfterFilter: runtime[1])
    }

    /// Loads a stable profile's exact behaviour under `profileID`: from now on the kernel drops
    /// these events for cgroups watched with that id (counted as suppressed, never sent).
    /// (No generation moves: the kernel remembers only known answers, which behaviour added
    /// cannot make wrong.)
    public func loadKnownBehaviour(_ known: KnownBehaviour, profileID: UInt32) throws {
        try insert(known.execHashes.map { vigil_known_key(profile_id: profileID, kind: BehaviourHash.execKind, hash: $0) },
                   into: knownBehaviourFD, "known exec")
        try insert(known.files.map { vigil_known_key(profile_id: profileID, kind: $0.kind, hash: $0.hash) },
                   into: knownBehaviourFD, "known file write")
        try insert(known.destinations.map { Self.key($0, profileID: profileID) }, into: knownDestinationsFD, "known destination")
        try insert(known.modelReaders.map { vigil_known_key(profile_id: profileID, kind: BehaviourHash.fileKind(.readModel), hash: $0) },
                   into: knownBehaviourFD, "known model reader")
    }

    public func loadKnownModel(_ version: FileVersion, profileID: UInt32) throws {
        guard version.changeNanoseconds != 0 else { return } // the kernel cannot tell versions apart
        let key = vigil_known_model(profile_id: profileID, device: version.identity.device, inode: version.identity.inode,
                                    size: version.size, change_ns: version.changeNanoseconds)
        try insert([key], into: knownModelsFD, "known model file")
    }

    private static func key(_ destination: Destination, profileID: UInt32) -> vigil_known_destination {
        var key = vigil_known_destination()
        key.profile_id = profileID
        key.family = destination.family
        key.protocol = destination.ipProtocol
        key.port = destination.port
        withUnsafeMutableBytes(of: &key.addr) { raw in
            withUnsafeBytes(of: (destination.high, destination.low)) { raw.copyMemory(from: $0) }
        }
        return key
    }

    // MARK: protect mode

    /// Attaches the egress guard (cgroup/connect4|6, cgroup/sendmsg4|6) at a watched root, given as
    /// its directory under the cgroup v2 mount: every cgroup below it then passes its connects and
    /// datagrams through it (one lookup; refused only in containers protected with `protect`).
    /// Detached when these probes go (the agent stops): enforcement fails open.
    public func guardEgress(cgroupDirectory: String) throws {
        guard !guardedRoots.contains(cgroupDirectory) else { return }
        let fd = open(cgroupDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BPFError("cannot open cgroup \(cgroupDirectory) to attach the egress guard: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        for program in guardPrograms {
            guard let link = bpf_program__attach_cgroup(program, fd), libbpf_get_error(UnsafeRawPointer(link)) == 0 else {
                let err = errno
                throw BPFError("attaching the egress guard '\(String(cString: bpf_program__name(program)))' at \(cgroupDirectory) failed: "
                    + "\(String(cString: strerror(err))). \(Self.takeLog())")
            }
            links.append(link)
        }
        guardedRoots.insert(cgroupDirectory)
    }

    /// What protect mode enforces for `profileID`: its exec rules and egress prefixes.
    public func loadEnforcement(_ enforcement: Enforcement, profileID: UInt32) throws {
        unloadEnforcement(profileID: profileID)
        try insert(enforcement.execHashes.map { vigil_known_key(profile_id: profileID, kind: BehaviourHash.execKind, hash: $0) },
                   into: protectRulesFD, "protected exec rule")
        try insert(enforcement.fileWrites.map { vigil_known_key(profile_id: profileID, kind: $0.kind, hash: $0.hash) },
                   into: protectRulesFD, "protected file-write rule")
        try insert(enforcement.egress.map { prefix in
            var key = vigil_egress_key()
            key.prefixlen = UInt32(VIGIL_EGRESS_FIXED_BITS) + UInt32(prefix.network.prefixLength)
            key.profile_id = profileID
            key.family = UInt8(truncatingIfNeeded: prefix.network.family)
            key.protocol = UInt8(truncatingIfNeeded: prefix.ipProtocol)
            key.port = prefix.port
            withUnsafeMutableBytes(of: &key.addr) { raw in
                for (i, byte) in prefix.network.bytes.prefix(16).enumerated() { raw[i] = byte }
            }
            return key
        }, into: protectEgressFD, "protected egress rule")
    }

    /// Puts each key in a set-like map (value 1).
    private func insert<Key>(_ keys: [Key], into fd: Int32, _ what: String) throws {
        var present: UInt8 = 1
        for var key in keys {
            try check(bpf_map_update_elem(fd, &key, &present, UInt64(BPF_ANY)), what)
        }
    }

    public func unloadEnforcement(profileID: UInt32) {
        deleteKeys(protectRulesFD, as: vigil_known_key.self) { $0.profile_id == profileID }
        deleteKeys(protectEgressFD, as: vigil_egress_key.self) { $0.profile_id == profileID }
    }

    /// Which protections hold for this watched cgroup's processes (against the profile id it is
    /// watched with; none while that is 0).
    public func protect(cgroupID: UInt64, _ protection: Protection) throws {
        var id = cgroupID
        var state = vigil_cgroup_state()
        guard bpf_map_lookup_elem(watchedCgroupsFD, &id, &state) == 0 else {
            if protection != .none { throw BPFError("cannot protect cgroup \(cgroupID): it is not watched") }
            return
        }
        var flags = state.flags & ~(VIGIL_CGROUP_PROTECT_EGRESS | VIGIL_CGROUP_PROTECT_EXEC | VIGIL_CGROUP_PROTECT_MODELS)
        if protection.egress { flags |= VIGIL_CGROUP_PROTECT_EGRESS }
        if protection.exec { flags |= VIGIL_CGROUP_PROTECT_EXEC }
        if protection.modelWrites { flags |= VIGIL_CGROUP_PROTECT_MODELS }
        guard flags != state.flags else { return }
        state.flags = flags
        defer { statesChanged() }
        try check(bpf_map_update_elem(watchedCgroupsFD, &id, &state, UInt64(BPF_EXIST)), "protection of cgroup \(cgroupID)")
    }

    /// Removes every known-behaviour entry of `profileID` (a workload retired or relearned), so
    /// the maps hold only the profiles in use.
    public func unloadKnownBehaviour(profileID: UInt32) {
        defer { statesChanged() }
        deleteKeys(knownBehaviourFD, as: vigil_known_key.self) { $0.profile_id == profileID }
        deleteKeys(knownDestinationsFD, as: vigil_known_destination.self) { $0.profile_id == profileID }
        deleteKeys(knownModelsFD, as: vigil_known_model.self) { $0.profile_id == profileID }
    }

    private func deleteKeys<Key: BitwiseCopyable>(_ fd: Int32, as _: Key.Type, where matches: (Key) -> Bool) {
        var doomed: [Key] = []
        var key = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Key>.size, alignment: MemoryLayout<Key>.alignment)
        var next = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Key>.size, alignment: MemoryLayout<Key>.alignment)
        defer {
            key.deallocate()
            next.deallocate()
        }
        var previous: UnsafeMutableRawPointer? = nil
        while bpf_map_get_next_key(fd, previous, next) == 0 {
            let value = next.load(as: Key.self)
            if matches(value) { doomed.append(value) }
            swap(&key, &next)
            previous = key
        }
        for var value in doomed { bpf_map_delete_elem(fd, &value) }
    }

    /// Turns on the kernel's per-program run-time accounting (kernel.bpf_stats_enabled) for as
    /// long as these probes live. Returns false when the kernel refuses.
    @discardableResult
    public func enableRunTimeStats() -> Bool {
        guard statsFD < 0 else { return true }
        statsFD = bpf_enable_stats(BPF_STATS_RUN_TIME)
        return statsFD >= 0
    }

    /// How full the ring buffer is (0...1): bytes the kernel produced that userspace has not
    /// consumed yet, from the positions the ring buffer exposes in its first two pages.
    public func ringBufferFill() -> Double {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let consumer = mmap(nil, page, PROT_READ, MAP_SHARED, eventsFD, 0), consumer != MAP_FAILED else { return 0 }
        defer { munmap(consumer, page) }
        guard let producer = mmap(nil, page, PROT_READ, MAP_SHARED, eventsFD, off_t(page)), producer != MAP_FAILED else { return 0 }
        defer { munmap(producer, page) }
        let used = producer.load(as: UInt64.self) &- consumer.load(as: UInt64.self)
        return min(1, Double(used) / Double(ringBufferBytes))
    }

    /// Per program: how many times it ran and the kernel time it took (zero until
    /// `enableRunTimeStats`), and the runs the kernel skipped (always counted).
    public func programStats() -> [ProgramStats] {
        var result: [ProgramStats] = []
        var program = bpf_object__next_program(object, nil)
        while let current = program {
            if let info = Self.info(ofProgram: bpf_program__fd(current)) {
                result.append(ProgramStats(name: String(cString: bpf_program__name(current)), runs: info.run_cnt,
                                           nanoseconds: info.run_time_ns, misses: info.recursion_misses))
            }
            program = bpf_object__next_program(object, current)
        }
        return result
    }

    /// How many times the program (a descriptor) ran and the kernel time it took, or nil.
    static func runTime(ofProgram fd: Int32) -> (runs: UInt64, nanoseconds: UInt64)? {
        info(ofProgram: fd).map { ($0.run_cnt, $0.run_time_ns) }
    }

    private static func info(ofProgram fd: Int32) -> bpf_prog_info? {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        return bpf_obj_get_info_by_fd(fd, &info, &length) == 0 ? info : nil
    }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc == 0 else {
            throw BPFError("could not load \(what) into the kernel: \(String(cString: strerror(errno))) "
                + "(the known-behaviour maps hold \(capacity(of: knownBehaviourFD)) entries and \(capacity(of: knownDestinationsFD)) destinations)")
        }
    }

    /// A map's max_entries, as the loaded object has it.
    private func capacity(of fd: Int32) -> UInt32 {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        return bpf_obj_get_info_by_fd(fd, &info, &length) == 0 ? info.max_entries : 0
    }

    private var watchedCgroupsCapacity: UInt32 { capacity(of: watchedCgroupsFD) }

    /// Events the kernel dropped because the profile already had them, by kind.
    public func suppressedCounts() -> [EventKind: UInt64] {
        var result: [EventKind: UInt64] = [:]
        for kind in EventKind.allCases {
            result[kind] = dropCounter(stage: UInt32(VIGIL_SUPPRESSED_KNOWN.rawValue), kind: kind)
        }
        return result
    }

    /// One (stage, kind) counter of the `drops` map, summed over CPUs.
    private func dropCounter(stage: UInt32, kind: EventKind) -> UInt64? {
        var perCPU = [UInt64](repeating: 0, count: max(Int(libbpf_num_possible_cpus()), 1))
        var slot = stage * UInt32(VIGIL_KIND_COUNT.rawValue) + kind.rawValue
        guard bpf_map_lookup_elem(dropsFD, &slot, &perCPU) == 0 else { return nil }
        return perCPU.reduce(0, &+)
    }

    /// How many processes the kernel holds for the container runtime's (runc's init, from its
    /// move into a watched cgroup to its entrypoint's exec): zero but while containers start.
    /// While it is not, every syscall of a watched process costs a runtime_tasks lookup more.
    public func runtimeProcessCount() -> Int64 {
        var zero: UInt32 = 0
        var count: Int64 = 0
        return bpf_map_lookup_elem(runtimeTaskCountFD, &zero, &count) == 0 ? count : -1
    }

    public func unwatch(cgroupID: UInt64) {
        var key = cgroupID
        bpf_map_delete_elem(watchedCgroupsFD, &key)
        bpf_map_delete_elem(cgroupSyscallsFD, &key)
        statesChanged()
        try? setModelDirectories(cgroupID: cgroupID, [])
    }

    public func setModelDirectories(cgroupID: UInt64, _ directories: Set<FileIdentity>, paths: Set<String>) throws {
        let hashes = Set(paths.map(BehaviourHash.fnv1a))
        for hash in (modelDirectoryPaths[cgroupID] ?? []).subtracting(hashes) {
            var key = vigil_model_path_key(cgroup_id: cgroupID, hash: hash)
            bpf_map_delete_elem(modelDirectoryPathsFD, &key)
        }
        try insert(hashes.subtracting(modelDirectoryPaths[cgroupID] ?? []).map { vigil_model_path_key(cgroup_id: cgroupID, hash: $0) },
                   into: modelDirectoryPathsFD, "model directory path")
        modelDirectoryPaths[cgroupID] = hashes.isEmpty ? nil : hashes
        func key(_ directory: FileIdentity) -> vigil_model_dir_key {
            vigil_model_dir_key(cgroup_id: cgroupID, inode: directory.inode, device: directory.device, _pad: 0)
        }
        let old = modelDirectories[cgroupID] ?? []
        for directory in old.subtracting(directories) {
            var entry = key(directory)
            bpf_map_delete_elem(modelDirectoriesFD, &entry)
        }
        try insert(directories.subtracting(old).map(key), into: modelDirectoriesFD, "model directory")
        modelDirectories[cgroupID] = directories.isEmpty ? nil : directories
        if directories != old {
            // A new generation: the kernel's remembered "not below a model directory" verdicts
            // (outside_models) were about the old directories. 0 means none anywhere.
            modelGeneration = modelGeneration == UInt32.max ? 1 : modelGeneration + 1
            var zero: UInt32 = 0
            var generation: UInt32 = modelDirectories.isEmpty ? 0 : modelGeneration
            try check(bpf_map_update_elem(modelSwitchFD, &zero, &generation, UInt64(BPF_ANY)), "model switch")
        }
        var id = cgroupID
        var state = vigil_cgroup_state()
        guard bpf_map_lookup_elem(watchedCgroupsFD, &id, &state) == 0 else { return }
        let flags = directories.isEmpty ? state.flags & ~VIGIL_CGROUP_MODEL : state.flags | VIGIL_CGROUP_MODEL
        guard flags != state.flags else { return }
        state.flags = flags
        bpf_map_update_elem(watchedCgroupsFD, &id, &state, UInt64(BPF_EXIST))
        statesChanged()
    }

    public func quiet(cgroupID: UInt64) {
        var key = cgroupID
        var state = vigil_cgroup_state()
        guard bpf_map_lookup_elem(watchedCgroupsFD, &key, &state) == 0 else { return }
        state.flags |= VIGIL_CGROUP_QUIET
        bpf_map_update_elem(watchedCgroupsFD, &key, &state, UInt64(BPF_EXIST))
        statesChanged()
    }

    /// After each write to watched_cgroups and each removal from known_behaviour: the kernel's
    /// memory of syscalls that need nothing more and of whether their cgroup is watched
    /// (`recorded_syscalls`, bpf/vigil.bpf.h) no longer holds, whether for a cgroup now watched,
    /// watched no more, or made quiet (the bitmaps themselves are the kernel's alone, in
    /// cgroup_syscalls: no write here undoes a bit); nor does its memory of known writes
    /// (`known_writes`, bpf/file_open.bpf.c), for a profile that lost known behaviour.
    private func statesChanged() {
        var zero: UInt32 = 0
        var generation: UInt32 = 0
        _ = bpf_map_lookup_elem(stateGenerationFD, &zero, &generation)
        generation &+= 1
        bpf_map_update_elem(stateGenerationFD, &zero, &generation, UInt64(BPF_ANY))
    }

    public func isQuiet(cgroupID: UInt64) -> Bool {
        var key = cgroupID
        var state = vigil_cgroup_state()
        return bpf_map_lookup_elem(watchedCgroupsFD, &key, &state) == 0 && state.flags & VIGIL_CGROUP_QUIET != 0
    }

    public func isWatched(cgroupID: UInt64) -> Bool {
        var key = cgroupID
        var state = vigil_cgroup_state()
        return bpf_map_lookup_elem(watchedCgroupsFD, &key, &state) == 0
    }

    /// The kernel's drop counters, summed over CPUs; they only grow.
    public func dropCounts() -> DropCounts {
        var counts = DropCounts()
        // The kernel counts the first stages; decode and unidentified are the agent's own.
        for stage in [DropStage.ringBufferFull, .pendingFull] {
            for kind in EventKind.allCases {
                if let count = dropCounter(stage: stage.rawValue, kind: kind) { counts[stage, kind] = count }
            }
        }
        return counts
    }

    // MARK: loading

    private static func objectImage(directory: String?, variant: ObjectVariant) throws -> Data {
        if let directory {
            let path = (directory as NSString).appendingPathComponent(variant.rawValue)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BPFError("no BPF object at \(path) (from --bpf-dir): build it with `sh bpf/build.sh DIR`")
            }
            return data
        }
        guard let data = Data(base64Encoded: variant.embeddedBase64) else {
            throw BPFError("the BPF object built into vigil is damaged: rebuild vigil")
        }
        return data
    }

    private static func mapFD(_ object: OpaquePointer, _ name: String) throws -> Int32 {
        guard let map = bpf_object__find_map_by_name(object, name) else {
            throw BPFError("the BPF object has no map '\(name)': rebuild vigil")
        }
        return bpf_map__fd(map)
    }

    static func takeLog() -> String {
        var buffer = [CChar](repeating: 0, count: 8192)
        let n = vigil_bpf_take_log(&buffer, buffer.count)
        guard n > 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

