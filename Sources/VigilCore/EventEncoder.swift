import CVigilABI
#if canImport(Glibc)
import Glibc
#endif

/// Who an event belongs to, as far as the agent knows. `trace` knows only the cgroup; the
/// Kubernetes fields are filled in when the container's identity is known.
public struct WorkloadIdentity: Sendable, Equatable {
    public var id: String?
    public var namespace: String?
    public var pod: String?
    public var container: String?
    public var containerID: String?
    public var image: String?
    public var cgroup: String?

    public init(id: String? = nil, namespace: String? = nil, pod: String? = nil, container: String? = nil,
                containerID: String? = nil, image: String? = nil, cgroup: String? = nil) {
        self.id = id
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.containerID = containerID
        self.image = image
        self.cgroup = cgroup
    }
}

/// Writes one event as one JSON line in the contract of DESIGN.md / the README. Reuses its
/// buffers: encoding an event does not allocate (but for names with non-ASCII bytes).
public struct EventEncoder: Sendable {
    public let node: String
    public let clock: BootClock
    private var joiner = PathJoiner()

    public init(node: String, clock: BootClock) {
        self.node = node
        self.clock = clock
    }

    /// Appends the event's line to `out`. Returns false, writing nothing, for records that are
    /// bookkeeping only (process exits).
    @discardableResult
    public mutating func encode(_ event: RawEvent, workload: WorkloadIdentity?, processes: ProcessTable,
                                into out: inout JSONLineWriter, newline: Bool = true) -> Bool {
        switch event.kind {
        case .exec: envelope("process.exec", atBoot: event.bootNanoseconds, into: &out)
        case .file: envelope(event.isModelRead ? "file.read" : "file.write", atBoot: event.bootNanoseconds, into: &out)
        case .network: envelope("network.connect", atBoot: event.bootNanoseconds, into: &out)
        case .exit, .cgroup: return false
        }
        if let workload {
            out.raw(",")
            writeWorkload(workload, to: &out)
        }
        out.raw(",")
        writeProcess(event, processes: processes, to: &out)
        switch event.kind {
        case .file:
            out.raw(",")
            writeFile(event, to: &out)
        case .network:
            out.raw(",")
            writeNetwork(event, to: &out)
        case .exec, .exit, .cgroup:
            break
        }
        out.byte(UInt8(ascii: "}"))
        if newline { out.newline() }
        return true
    }

    func writeWorkload(_ w: WorkloadIdentity, to out: inout JSONLineWriter) {
        out.key("workload")
        out.byte(UInt8(ascii: "{"))
        var separator = false
        Self.writeField("id", w.id, separator: &separator, to: &out)
        Self.writeField("namespace", w.namespace, separator: &separator, to: &out)
        Self.writeField("pod", w.pod, separator: &separator, to: &out)
        Self.writeField("container", w.container, separator: &separator, to: &out)
        Self.writeField("container_id", w.containerID, separator: &separator, to: &out)
        Self.writeField("image", w.image, separator: &separator, to: &out)
        Self.writeField("cgroup", w.cgroup, separator: &separator, to: &out)
        out.byte(UInt8(ascii: "}"))
    }

    @inline(__always)
    private static func writeField(_ name: StaticString, _ value: String?, separator: inout Bool,
                                   to out: inout JSONLineWriter) {
        guard let value else { return }
        if separator { out.raw(",") }
        separator = true
        out.key(name)
        out.string(value)
    }

    private func writeProcess(_ event: RawEvent, processes: ProcessTable, to out: inout JSONLineWriter) {
        out.key("process")
        out.raw("{")
        out.key("pid"); out.unsigned(UInt64(event.pid))
        out.raw(","); out.key("tid"); out.unsigned(UInt64(event.tid))
        out.raw(","); out.key("ppid"); out.unsigned(UInt64(event.ppid))
        out.raw(","); out.key("uid"); out.unsigned(UInt64(event.uid))
        out.raw(","); out.key("gid"); out.unsigned(UInt64(event.gid))
        out.raw(","); out.field("comm", bytes: event.comm)
        if event.kind == .exec {
            out.raw(","); out.field("exe", bytes: event.exe)
            if event.exeIsFileless { out.raw(","); out.key("exe_fileless"); out.bool(true) }
            if event.exeIsDeleted { out.raw(","); out.key("exe_deleted"); out.bool(true) }
            if let digest = processes[event.pid]?.execDigest { out.raw(","); out.key("exe_sha256"); out.string(digest) }
            out.raw(",")
            writeArguments(event.arguments, to: &out)
            if event.argsTruncated {
                out.raw(","); out.key("args_truncated"); out.bool(true)
            }
            out.raw(","); out.key("exec_id")
            writeExecID(pid: event.pid, execBootNanoseconds: event.bootNanoseconds, to: &out)
            let parentExe = event.parentExe
            if !parentExe.isEmpty {
                out.raw(","); out.field("parent_exe", bytes: parentExe)
                if event.parentIsFileless { out.raw(","); out.key("parent_fileless"); out.bool(true) }
            }
        } else if let entry = processes[event.pid] {
            out.raw(",")
            entry.exe.withUnsafeBytes { out.field("exe", bytes: $0) }
            out.raw(","); out.key("exec_id")
            writeExecID(pid: event.pid, execBootNanoseconds: entry.execBootNanoseconds, to: &out)
        }
        out.raw("}")
    }

    /// `"<pid>-<exec time in boot ns>"`: unique on a node for as long as it stays up.
    private func writeExecID(pid: UInt32, execBootNanoseconds: UInt64, to out: inout JSONLineWriter) {
        out.byte(UInt8(ascii: "\""))
        out.unsigned(UInt64(pid))
        out.byte(UInt8(ascii: "-"))
        out.unsigned(execBootNanoseconds)
        out.byte(UInt8(ascii: "\""))
    }

    /// `"args":[…]`, and `"args_base64":[…]` too when an argument is not UTF-8.
    private func writeArguments(_ args: UnsafeRawBufferPointer, to out: inout JSONLineWriter) {
        out.key("args")
        writeEach(args, to: &out) { out, argument in out.string(argument) }
        if !JSONLineWriter.isUTF8(args) {
            out.raw(","); out.key("args_base64")
            writeEach(args, to: &out) { out, argument in out.base64(argument) }
        }
    }

    /// argv is NUL-terminated strings back to back; a cut last one has no NUL.
    private func writeEach(_ args: UnsafeRawBufferPointer, to out: inout JSONLineWriter,
                           _ write: (inout JSONLineWriter, UnsafeRawBufferPointer) -> Void) {
        out.raw("[")
        var start = 0
        var first = true
        while start < args.count {
            var end = start
            while end < args.count && args[end] != 0 { end += 1 }
            if !first { out.raw(",") }
            first = false
            write(&out, UnsafeRawBufferPointer(rebasing: args[start..<end]))
            start = end + 1
        }
        out.raw("]")
    }

    private mutating func writeFile(_ event: RawEvent, to out: inout JSONLineWriter) {
        out.key("file")
        out.raw("{")
        writePath("path", event.filePath, to: &out)
        let op = event.fileOperation
        out.raw(","); out.key("op")
        if let op { out.string(op.contractName) } else { out.string("unknown") }
        if op == .rename {
            out.raw(",")
            writePath("target", event.fileTarget, to: &out)
        }
        if op != .rename && op != .unlink {
            out.raw(","); out.key("flags"); out.unsigned(UInt64(event.openFlags))
        }
        if event.pathTruncated {
            out.raw(","); out.key("path_truncated"); out.bool(true)
        }
        if event.directoryUnresolved {
            out.raw(","); out.key("dir_unresolved"); out.bool(true)
        }
        if op == .readModel {
            out.raw(","); out.field("reader_exe", bytes: event.modelReaderExe)
            if event.heldAcrossExec {
                out.raw(","); out.key("held_across_exec"); out.bool(true)
            }
            let identity = event.fileIdentity
            out.raw(","); out.key("inode"); out.unsigned(identity.inode)
            out.raw(","); out.key("device"); out.unsigned(UInt64(identity.device))
        }
        out.raw(",")
        Self.writeOutcome(event.fileResult, to: &out)
        out.raw("}")
    }

    private mutating func writePath(_ name: StaticString, _ path: RawPath, to out: inout JSONLineWriter) {
        joiner.join(directory: path.directory, name: path.name)
        joiner.buffer.withUnsafeBytes { out.field(name, bytes: $0) }
    }

    private func writeNetwork(_ event: RawEvent, to out: inout JSONLineWriter) {
        out.key("network")
        out.raw("{")
        out.key("protocol")
        switch event.ipProtocol {
        case 6: out.string("tcp")
        case 17: out.string("udp")
        case 132: out.string("sctp")
        case 136: out.string("udplite")
        case 1: out.string("icmp")
        case 58: out.string("icmpv6")
        default:
            out.byte(UInt8(ascii: "\"")); out.unsigned(UInt64(event.ipProtocol)); out.byte(UInt8(ascii: "\""))
        }
        let address = event.address
        out.raw(","); out.key("family")
        out.string(event.addressFamily == AddressFamily.ipv4 ? "ipv4" : "ipv6")
        out.raw(","); out.key("address")
        Self.writeAddress(address, family: event.addressFamily, to: &out)
        out.raw(","); out.key("port"); out.unsigned(UInt64(event.port))
        out.raw(","); out.key("op")
        out.string(event.networkOperation?.contractName ?? "unknown")
        out.raw(","); out.key("loopback"); out.bool(Self.isLoopback(address))
        out.raw(",")
        Self.writeOutcome(event.networkResult, to: &out)
        out.raw("}")
    }

    /// 127.0.0.0/8, ::1, and IPv4-mapped 127.0.0.0/8.
    public static func isLoopback(_ address: UnsafeRawBufferPointer) -> Bool {
        if address.count == 4 { return address[0] == 127 }
        guard address.count == 16 else { return false }
        if address[0..<15].allSatisfy({ $0 == 0 }) && address[15] == 1 { return true }
        return address[0..<10].allSatisfy({ $0 == 0 }) && address[10] == 0xff && address[11] == 0xff && address[12] == 127
    }

    static func writeAddress(_ address: UnsafeRawBufferPointer, family: UInt16, to out: inout JSONLineWriter) {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { text in
            let af: Int32 = family == AddressFamily.ipv4 ? AF_INET : AF_INET6
            guard inet_ntop(af, address.baseAddress, text.baseAddress, 64) != nil else {
                out.string("")
                return
            }
            out.string(UnsafeRawBufferPointer(start: text.baseAddress, count: strlen(text.baseAddress!)))
        }
    }

    /// `"outcome":"success"`, `"outcome":"in_progress"` (a non-blocking connect under way), or
    /// `"outcome":"failure","errno":"ENOENT"`.
    static func writeOutcome(_ result: Int64, to out: inout JSONLineWriter) {
        out.key("outcome")
        if result >= 0 {
            out.string("success")
        } else if result == -Int64(EINPROGRESS) {
            out.string("in_progress")
        } else {
            out.string("failure")
            out.raw(","); out.key("errno")
            if let name = vigil_errno_name(Int32(-result)) {
                out.string(UnsafeRawBufferPointer(start: name, count: strlen(name)))
            } else {
                out.byte(UInt8(ascii: "\"")); out.unsigned(UInt64(-result)); out.byte(UInt8(ascii: "\""))
            }
        }
    }
}

extension EventEncoder {
    // MARK: what the agent says

    /// `{"time":…,"node":…,"kind":"<kind>",` — the envelope every line starts with.
    private func envelope(_ kind: StaticString, atBoot boot: UInt64, into out: inout JSONLineWriter) {
        out.byte(UInt8(ascii: "{"))
        out.key("time")
        clock.writeTimestamp(boot: boot, to: &out)
        out.raw(","); out.key("node"); out.string(node)
        out.raw(","); out.key("kind"); out.string(kind)
    }

    /// `agent.drops`: events lost at a stage, since the last report and in all.
    public func encodeDrops(stage: String, kind: String, count: UInt64, total: UInt64, atBoot boot: UInt64,
                            into out: inout JSONLineWriter) {
        envelope("agent.drops", atBoot: boot, into: &out)
        out.raw(","); out.key("drops"); out.raw("{")
        out.key("stage"); out.string(stage)
        out.raw(","); out.key("event_kind"); out.string(kind)
        out.raw(","); out.key("count"); out.unsigned(count)
        out.raw(","); out.key("total"); out.unsigned(total)
        out.raw("}}")
        out.newline()
    }

    /// The profile an anomaly was found against.
    public struct ProfileReference: Sendable, Equatable {
        public var id: String
        public var version: Int
        public var state: LearningState
        public init(_ profile: Profile) {
            id = profile.workload
            version = profile.version
            state = profile.state
        }
    }

    /// `anomaly`: a rule broken, how often between `firstSeen` and `lastSeen` (boot clock), the
    /// profile, the workload, and the first event that broke it (already a JSON object).
    public func encodeAnomaly(rule: AnomalyRule, count: UInt64, firstSeen: UInt64, lastSeen: UInt64, profile: ProfileReference,
                              workload: WorkloadIdentity?, event: [UInt8], startupRule: StartupRule? = nil,
                              outcome: Finding.Outcome? = nil, into out: inout JSONLineWriter) {
        envelope("anomaly", atBoot: lastSeen, into: &out)
        if let workload {
            out.raw(","); writeWorkload(workload, to: &out)
        }
        out.raw(","); out.key("anomaly"); out.raw("{")
        out.key("rule"); out.string(rule.rawValue)
        out.raw(","); out.key("severity"); out.string(rule.severity)
        out.raw(","); out.key("count"); out.unsigned(count)
        out.raw(","); out.key("first_seen"); clock.writeTimestamp(boot: firstSeen, to: &out)
        out.raw(","); out.key("last_seen"); clock.writeTimestamp(boot: lastSeen, to: &out)
        out.raw(","); out.key("profile"); out.raw("{")
        out.key("id"); out.string(profile.id)
        out.raw(","); out.key("version"); out.unsigned(UInt64(profile.version))
        out.raw(","); out.key("state"); out.string(profile.state.rawValue)
        out.raw("}")
        if let startupRule {
            out.raw(","); out.key("startup_rule"); Self.writeRule(startupRule, to: &out)
        }
        if let outcome {
            out.raw(","); out.key(outcome.acted ? "action" : "would_action"); out.string(outcome.rawValue)
        }
        out.raw("}")
        out.raw(","); out.key("event")
        event.withUnsafeBytes { out.rawBytes($0) }
        out.raw("}")
        out.newline()
    }

    /// A profile rule as the profile writes it: `{"exec":{"exe":…,"parent":…}}`,
    /// `{"fileWrite":{"path":…,"ops":[…]}}`, `{"egress":{"address":…,"port":…,"protocol":…}}`.
    static func writeRule(_ rule: StartupRule, to out: inout JSONLineWriter) {
        out.raw("{")
        switch rule {
        case .exec(let exec):
            out.key("exec"); out.raw("{"); out.key("exe"); out.string(exec.exe)
            out.raw(","); out.key("parent"); out.string(exec.parent)
        case .fileWrite(let file):
            out.key("fileWrite"); out.raw("{"); out.key("path"); out.string(file.path)
            out.raw(","); out.key("ops"); out.raw("[")
            for (i, op) in file.ops.enumerated() {
                if i > 0 { out.raw(",") }
                out.string(op)
            }
            out.raw("]")
        case .egress(let egress):
            out.key("egress"); out.raw("{"); out.key("address"); out.string(egress.address)
            out.raw(","); out.key("port"); out.unsigned(UInt64(egress.port))
            out.raw(","); out.key("protocol"); out.string(egress.protocol)
        }
        out.raw("}}")
    }

    /// The object an `unexpected-syscall` anomaly carries as its event: the syscalls found.
    public func encodeSyscalls(_ syscalls: [(abi: SyscallABI, number: Int, name: String)], into out: inout JSONLineWriter) {
        out.raw("{"); out.key("syscalls"); out.raw("[")
        for (i, syscall) in syscalls.enumerated() {
            if i > 0 { out.raw(",") }
            out.raw("{"); out.key("name"); out.string(syscall.name)
            out.raw(","); out.key("number"); out.unsigned(UInt64(syscall.number))
            out.raw(","); out.key("abi"); out.string(syscall.abi.name)
            out.raw("}")
        }
        out.raw("]}")
    }

    /// `agent.throttle`: anomaly lines of a workload held back (started), or no longer (ended,
    /// with how many were).
    public func encodeThrottle(started: Bool, profile: String, suppressed: UInt64, limitPerSecond: Double, atBoot boot: UInt64,
                               into out: inout JSONLineWriter) {
        envelope("agent.throttle", atBoot: boot, into: &out)
        out.raw(","); out.key("throttle"); out.raw("{")
        out.key("state"); started ? out.string("started") : out.string("ended")
        out.raw(","); out.key("profile"); out.string(profile)
        if !started {
            out.raw(","); out.key("suppressed"); out.unsigned(suppressed)
        }
        out.raw(","); out.key("limit_per_second"); out.unsigned(UInt64(limitPerSecond))
        out.raw("}}")
        out.newline()
    }

    /// What a `profile.state` line says of a workload's profile.
    public struct ProfileState: Sendable, Equatable {
        public enum Seccomp: Sendable, Equatable {
            case installed(localhostProfile: String)
            case refused(reason: String)
        }

        public var workload: String
        public var version: Int?
        public var state: LearningState?
        public var containers: Int?
        public var events: Int?
        public var stoppedContainers: Int?
        public var seccomp: Seccomp?
        /// Something wrong with the profile (it could not be saved or read, learning ended early).
        public var problem: String?

        public init(workload: String, version: Int? = nil, problem: String? = nil) {
            self.workload = workload
            self.version = version
            self.problem = problem
        }

        /// The profile as it stands.
        public init(_ profile: Profile, seccomp: Seccomp? = nil) {
            workload = profile.workload
            version = profile.version
            state = profile.state
            containers = profile.learning.containers
            events = profile.learning.events
            stoppedContainers = profile.learning.stoppedContainers ?? 0
            self.seccomp = seccomp
        }
    }

    /// `profile.state`: a profile became stable, had its seccomp profile installed or refused, or
    /// has a problem.
    public func encodeProfileState(_ line: ProfileState, atBoot boot: UInt64, into out: inout JSONLineWriter) {
        envelope("profile.state", atBoot: boot, into: &out)
        out.raw(","); out.key("profile"); out.raw("{")
        out.key("id"); out.string(line.workload)
        if let version = line.version { out.raw(","); out.key("version"); out.unsigned(UInt64(version)) }
        if let state = line.state { out.raw(","); out.key("state"); out.string(state.rawValue) }
        if let containers = line.containers { out.raw(","); out.key("containers"); out.unsigned(UInt64(containers)) }
        if let events = line.events { out.raw(","); out.key("events"); out.unsigned(UInt64(events)) }
        if let stopped = line.stoppedContainers { out.raw(","); out.key("stopped_containers"); out.unsigned(UInt64(stopped)) }
        switch line.seccomp {
        case .installed(let relative)?:
            out.raw(","); out.key("seccomp"); out.string("installed")
            out.raw(","); out.key("seccomp_profile"); out.string(relative)
        case .refused(let reason)?:
            out.raw(","); out.key("seccomp"); out.string("refused")
            out.raw(","); out.key("reason"); out.string(reason)
        case nil:
            break
        }
        if let problem = line.problem { out.raw(","); out.key("problem"); out.string(problem) }
        out.raw("}}")
        out.newline()
    }
}

extension EventEncoder {
    /// A model file a workload loaded, identified by content.
    public struct ModelFile: Sendable, Equatable {
        public var path: String
        public var sha256: String
        public var size: UInt64
        public var modifiedNanoseconds: UInt64
        /// The version hashed: identity, size and ctime.
        public var version: FileVersion
        public var identity: FileIdentity { version.identity }
        /// `model-changed` only: the contents the profile knows instead.
        public var previous: [String]?
        /// `model-unverified` only: the contents declared for the workload.
        public var declared: [String]?

        public init(path: String, sha256: String, size: UInt64, modifiedNanoseconds: UInt64, version: FileVersion,
                    previous: [String]? = nil) {
            self.path = path
            self.sha256 = sha256
            self.size = size
            self.modifiedNanoseconds = modifiedNanoseconds
            self.version = version
            self.previous = previous
        }
    }

    /// `{"path":…,"sha256":…,"size":…,"mtime_ns":…,"inode":…,"device":…[,"previous":[…]]}`
    public func encodeModelFile(_ model: ModelFile, into out: inout JSONLineWriter) {
        out.raw("{"); out.key("path"); out.string(model.path)
        out.raw(","); out.key("sha256"); out.string(model.sha256)
        out.raw(","); out.key("size"); out.unsigned(model.size)
        out.raw(","); out.key("mtime_ns"); out.unsigned(model.modifiedNanoseconds)
        out.raw(","); out.key("inode"); out.unsigned(model.identity.inode)
        out.raw(","); out.key("device"); out.unsigned(UInt64(model.identity.device))
        for (name, digests) in [("previous" as StaticString, model.previous), ("declared", model.declared)] {
            guard let digests else { continue }
            out.raw(","); out.key(name); out.raw("[")
            for (i, digest) in digests.enumerated() {
                if i > 0 { out.raw(",") }
                out.string(digest)
            }
            out.raw("]")
        }
        out.raw("}")
    }

    /// `model.load`: the first time this agent saw a workload load a model file with this
    /// content; `read` is the open that loaded it (a `file.read` object).
    public func encodeModelLoad(_ model: ModelFile, workload: WorkloadIdentity?, read: [UInt8], atBoot boot: UInt64,
                                into out: inout JSONLineWriter) {
        envelope("model.load", atBoot: boot, into: &out)
        if let workload {
            out.raw(","); writeWorkload(workload, to: &out)
        }
        out.raw(","); out.key("model")
        encodeModelFile(model, into: &out)
        out.raw(","); out.key("event")
        read.withUnsafeBytes { out.rawBytes($0) }
        out.raw("}")
        out.newline()
    }

    /// The object a `model-changed` anomaly carries as its event: the model and the open.
    public func encodeModelEvidence(_ model: ModelFile, read: [UInt8], into out: inout JSONLineWriter) {
        out.raw("{"); out.key("model")
        encodeModelFile(model, into: &out)
        out.raw(","); out.key("read")
        read.withUnsafeBytes { out.rawBytes($0) }
        out.raw("}")
    }
}
