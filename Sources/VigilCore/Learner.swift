import Foundation

/// Builds a workload's profile from its events (learn mode). Generalises what varies between
/// runs, remembers when it last saw something new, and declares the profile stable after the
/// minimum learning time plus a quiet period with nothing new. A stable profile learns nothing
/// more: from then on, new behaviour is the detector's business.
public struct Learner: Sendable {
    public private(set) var profile: Profile
    private let generalizer: Generalizer
    private let resolver: SyscallResolver
    private var keys = BehaviourKeys()
    /// Raw behaviour hashes already folded into the profile: repeats cost a set lookup.
    private var seen: Set<UInt64> = []
    private var execs: Set<ExecRule>
    private var fileWrites: LearnedFileWrites
    private var destinations: Set<EgressRule>
    private var syscalls: SyscallBitmap
    /// What a container runtime was seen to call after it installed the filter (x86_64).
    private var runtimeAfterFilter = SyscallBitmap()
    /// Those not in any measured allowance, by name (kept from a resumed profile too).
    private var unmeasuredRuntimeCalls: Set<String>
    private var runtimes: Set<ObservedRuntime>
    private var containers: Set<UInt64> = []
    /// The rules also followed by a container that served (a subset of the above); the rest are
    /// startup-only (`Profile.startupOnly`) once any container served.
    private var served: ServedRules

    public init(profile: Profile, resolver: SyscallResolver, runtimeExes: [String] = []) {
        self.profile = profile
        self.resolver = resolver
        keys = BehaviourKeys(runtimeExes: runtimeExes)
        generalizer = Generalizer(modelPaths: profile.modelPaths)
        execs = Set(profile.execs)
        fileWrites = LearnedFileWrites(profile.fileWrites, generalizer: generalizer)
        destinations = Set(profile.egress)
        syscalls = SyscallBitmap(profile.syscalls, resolver: resolver)
        unmeasuredRuntimeCalls = Set(profile.seccomp?.runtime ?? []).subtracting(SeccompAllowances.allRuntimeSyscalls)
        runtimes = Set(profile.learning.runtimes ?? [])
        served = ServedRules(profile)
    }

    /// A new profile for a workload that has none.
    public static func start(workload: String, modelPaths: [String], minDuration: Double, quietPeriod: Double,
                             version: Int = 1, now: Date, resolver: SyscallResolver, runtimeExes: [String] = []) -> Learner {
        let evidence = LearningEvidence(started: now, lastNew: now, minDuration: minDuration, quietPeriod: quietPeriod)
        return Learner(profile: Profile(workload: workload, version: version, learning: evidence, modelPaths: modelPaths),
                       resolver: resolver, runtimeExes: runtimeExes)
    }

    public var isStable: Bool { profile.state == .stable }

    /// The most one workload's profile may grow to: a workload that writes thousands of files
    /// of new names (broken, or hostile) must not make every checkpoint, every check, and the
    /// agent's memory grow with it. Past a limit the learner takes nothing more of that kind and
    /// says so (`capReached`); the agent then ends the workload's learning (see NodeAgent).
    public struct Limits: Sendable, Equatable {
        public var execs = 1024
        public var fileWriteRules = 4096
        public var destinations = 1024
        /// Distinct raw behaviours remembered to skip repeats (a cache: past it, repeats are
        /// generalised again, which costs time, not memory).
        public var seenBehaviours = 65536
        /// Distinct containers counted.
        public var containers = 4096
        public init() {}
    }

    public var limits = Limits()
    /// The first limit reached, as "file-write rules (4096)"; nil while under every one.
    public private(set) var capReached: String?

    private mutating func admit(_ count: Int, _ limit: Int, _ what: String) -> Bool {
        guard count >= limit else { return true }
        if capReached == nil { capReached = "\(what) (\(limit))" }
        return false
    }

    private mutating func firstSighting(_ hash: UInt64) -> Bool {
        if seen.contains(hash) { return false }
        if seen.count < limits.seenBehaviours { seen.insert(hash) }
        return true
    }

    /// Distinguishes a serving container's sightings from its startup's in the `seen` cache: a
    /// behaviour first seen at startup is new again the first time a serving container repeats it.
    private static let servingSalt: UInt64 = 0x5e5e_1f1f_5e5e_1f1f

    /// A container of the workload served (accepted its first connection) while it learned:
    /// from now on the profile has phases.
    public mutating func observeServing(now: Date) {
        guard !isStable, !served.any else { return }
        served.any = true
        learned("serving", "a container served: what only startup does is startup-only from now on", now: now)
    }

    /// Something new: learning's quiet period starts again, and the profile says what it was.
    private mutating func learned(_ kind: String, _ rule: @autoclosure () -> String, now: Date) {
        profile.learning.lastNew = now
        var recent = profile.learning.recentlyNew ?? []
        recent.append(NewBehaviour(at: now, kind: kind, rule: rule()))
        profile.learning.recentlyNew = Array(recent.suffix(NewBehaviour.kept))
    }

    /// Folds one event into the profile. Returns true when it added something new. `serving`: the
    /// event's container serves (`observeServing`); what only containers starting up do is
    /// startup-only.
    @discardableResult
    public mutating func observe(_ event: RawEvent, now: Date, execDigest: String? = nil, serving: Bool = false) -> Bool {
        guard !isStable, !event.kind.isBookkeeping else { return false }
        profile.learning.events += 1
        if containers.count < limits.containers, containers.insert(event.cgroupID).inserted {
            profile.learning.containers = max(profile.learning.containers, containers.count)
        }
        let isNew: Bool
        let salt = serving ? Self.servingSalt : 0
        switch event.kind {
        case .exec where event.exeHasNoFile:
            // Learned exactly, by content, never generalised: see BehaviourKeys.filelessExe.
            let exe = BehaviourKeys.filelessExe(event, digest: execDigest)
            guard execDigest != nil, firstSighting(keys.filelessExecHash(exe, event) ^ salt) else { return false }
            let rule = ExecRule(exe: exe, parent: keys.parentName(event))
            guard execs.contains(rule) || admit(execs.count, limits.execs, "execs") else { return false }
            let added = execs.insert(rule).inserted
            isNew = (serving && served.execs.insert(rule).inserted) || added
            if isNew { learned("exec", rule.parent.isEmpty ? rule.exe : "\(rule.exe) from \(rule.parent)", now: now) }
        case .exec:
            let hash = keys.execHash(event)
            guard firstSighting(hash ^ salt) else { return false }
            let rule = ExecRule(exe: generalizer.generalizeExecutable(String(decoding: event.exe, as: UTF8.self)), parent: keys.parentName(event))
            guard execs.contains(rule) || admit(execs.count, limits.execs, "execs") else { return false }
            let added = execs.insert(rule).inserted
            isNew = (serving && served.execs.insert(rule).inserted) || added
            if isNew { learned("exec", rule.parent.isEmpty ? rule.exe : "\(rule.exe) from \(rule.parent)", now: now) }
        case .file:
            // Model reads are learned by content once hashed (`observeModel`).
            guard let op = event.fileOperation, op != .readModel else { return false }
            let path = keys.filePath(event)
            let hash = BehaviourHash.fileWrite(path: path.withUnsafeBytes { BehaviourHash.text($0) }, op: op)
            guard firstSighting(hash ^ salt) else { return false }
            let rule = fileWrites.rule(for: generalizer.generalize(String(decoding: path, as: UTF8.self)), op: op.contractName)
            guard fileWrites.contains(rule) || admit(fileWrites.count, limits.fileWriteRules, "file-write rules") else { return false }
            let added = fileWrites.insert(rule, op: op.contractName)
            isNew = (serving && served.fileOps[rule, default: []].insert(op.contractName).inserted) || added
            if isNew { learned("fileWrite", "\(op.contractName) \(rule)", now: now) }
        case .network:
            let destination = Destination(event)
            guard firstSighting(UInt64(truncatingIfNeeded: destination.hashValue) ^ salt) else { return false }
            let rule = EgressRule(address: destination.addressText, port: Int(destination.port), protocol: destination.protocolName)
            guard destinations.contains(rule) || admit(destinations.count, limits.destinations, "destinations") else { return false }
            let added = destinations.insert(rule).inserted
            isNew = (serving && served.destinations.insert(rule).inserted) || added
            if isNew { learned("egress", "\(rule.protocol) \(rule.address):\(rule.port)", now: now) }
        case .exit, .cgroup:
            return false
        }
        return isNew
    }

    /// Folds what the kernel recorded for the workload's cgroups into the profile: the
    /// workload's syscalls, and what its container runtime called after installing the filter
    /// (new only when no measured allowance has it). Returns true when something was new.
    @discardableResult
    public mutating func observeSyscalls(_ seen: CgroupSyscalls, now: Date) -> Bool {
        guard !isStable else { return false }
        var new: [String] = []
        let added = seen.workload.subtracting(syscalls)
        if !added.isEmpty {
            syscalls.formUnion(seen.workload)
            // A call every filter allows whatever was learned (the asynchronous baseline) is
            // kept but is not news: when one first shows up is a matter of timing, and the quiet
            // period would start again for what changes no filter and no verdict.
            new += added.compactMap { abi, number in
                let name = resolver.name(of: number, abi: abi) ?? "syscall_\(number)"
                return SeccompAllowances.baseline(for: abi).contains(name) ? nil : name
            }
        }
        for (abi, number) in seen.runtimeAfterFilter.subtracting(runtimeAfterFilter) {
            runtimeAfterFilter.insert(number, abi: abi)
            let name = resolver.name(of: number, abi: abi) ?? "syscall_\(number)"
            if !SeccompAllowances.allRuntimeSyscalls.contains(name), unmeasuredRuntimeCalls.insert(name).inserted { new.append("\(name) (runtime)") }
        }
        if !new.isEmpty { learned("syscalls", new.sorted().joined(separator: " "), now: now) }
        return !new.isEmpty
    }

    /// A container of the workload ran under this runtime, in this no_new_privs mode.
    public mutating func observeRuntime(_ runtime: ObservedRuntime) {
        guard !isStable, runtimes.insert(runtime).inserted else { return }
        profile.learning.runtimes = runtimes.sorted()
    }

    /// The workload loaded a model file with this content. Returns whether the profile had not
    /// seen that (path, content) before.
    @discardableResult
    public mutating func observeModel(_ rule: ModelRule, now: Date) -> Bool {
        guard !isStable else { return false }
        var models = Set(profile.models ?? [])
        guard models.count < Self.maximumModels, models.insert(rule).inserted else { return false }
        profile.models = models.sorted()
        learned("model", "\(rule.path) sha256 \(rule.sha256)", now: now)
        return true
    }

    /// An executable opened a model file. Returns whether it had not before.
    @discardableResult
    public mutating func observeModelReader(_ exe: String, now: Date) -> Bool {
        guard !isStable else { return false }
        var readers = Set(profile.modelReaders ?? [])
        guard readers.count < Self.maximumModels, readers.insert(exe).inserted else { return false }
        profile.modelReaders = readers.sorted()
        learned("modelReader", exe, now: now)
        return true
    }

    /// Model files (path, content) a profile keeps: a server loads a handful; past this, what
    /// it loads is not a model set to verify.
    public static let maximumModels = 256

    /// A container of the workload ended while it learned: its shutdown is in the profile.
    public mutating func observeContainerStop() {
        guard !isStable else { return }
        profile.learning.stoppedContainers = (profile.learning.stoppedContainers ?? 0) + 1
    }

    /// Runtime calls seen after the filter that no measured allowance lists: the allowance
    /// table (`SeccompAllowances`) is behind the runtime on this node.
    public var runtimeCallsBeyondAllowance: [String] { unmeasuredRuntimeCalls.sorted() }

    /// Applies the end-of-learning rule; returns the state after it.
    @discardableResult
    public mutating func evaluate(now: Date) -> LearningState {
        guard !isStable else { return .stable }
        let learnedLongEnough = now.timeIntervalSince(profile.learning.started) >= profile.learning.minDuration
        let quietLongEnough = now.timeIntervalSince(profile.learning.lastNew) >= profile.learning.quietPeriod
        if learnedLongEnough && quietLongEnough { stabilize(now: now) }
        return profile.state
    }

    /// Ends learning now, whatever the rule says (`vigil profile promote`).
    public mutating func stabilize(now: Date) {
        guard !isStable else { return }
        profile = snapshot()
        profile.state = .stable
        profile.learning.stableSince = now
    }

    /// The profile as it stands: generalised, collapsed, sorted, ready to store.
    /// Takes in what other nodes learned of the workload (its cluster profile): their rules become
    /// this learner's, without counting as new here.
    public mutating func absorb(_ other: Profile) {
        guard !isStable, other.version == profile.version else { return }
        execs.formUnion(other.execs)
        for rule in other.fileWrites { for op in rule.ops { fileWrites.insert(rule.path, op: op) } }
        destinations.formUnion(other.egress)
        served.formUnion(ServedRules(other, unphasedServe: true))
        syscalls.formUnion(SyscallBitmap(other.syscalls, resolver: resolver))
        runtimes.formUnion(other.learning.runtimes ?? [])
    }

    public func snapshot() -> Profile {
        guard !isStable else { return profile }
        var result = profile
        result.execs = execs.sorted()
        result.fileWrites = generalizer.collapse(fileWrites.rules)
        result.egress = Self.collapse(destinations).sorted()
        result.startupOnly = served.any ? served.startupRules(of: result) : nil
        for abi in SyscallABI.allCases {
            result.syscalls[abi] = (0..<SyscallBitmap.slots)
                .filter { syscalls.contains($0, abi: abi) }
                .map { resolver.name(of: $0, abi: abi) ?? "syscall_\($0)" }
                .sorted()
        }
        result.seccomp = .current(observedRuntimeCalls: unmeasuredRuntimeCalls, i386: !result.syscalls.i386.isEmpty)
        return result
    }

    /// Four or more IPv4 addresses of one /24 (IPv6: one /64) on the same port and protocol
    /// become that network: a service behind rotating addresses is one destination.
    static func collapse(_ rules: Set<EgressRule>) -> [EgressRule] {
        var groups: [String: [EgressRule]] = [:]
        for rule in rules {
            guard let network = IPNetwork(rule.address), network.prefixLength == network.bytes.count * 8 else {
                groups["\(rule)"] = [rule]
                continue
            }
            let prefix = network.family == AddressFamily.ipv4 ? 3 : 8
            let key = "\(network.bytes.prefix(prefix))|\(rule.port)|\(rule.protocol)"
            groups[key, default: []].append(rule)
        }
        var result: [EgressRule] = []
        for group in groups.values {
            guard group.count >= 4, let first = IPNetwork(group[0].address) else {
                result.append(contentsOf: group)
                continue
            }
            let isV4 = first.family == AddressFamily.ipv4
            var base = first.bytes
            for i in (isV4 ? 3 : 8)..<base.count { base[i] = 0 }
            let text = isV4 ? base.map(String.init).joined(separator: ".") + "/24"
                            : base.withUnsafeBytes { Destination(family: AddressFamily.ipv6, ipProtocol: 0, port: 0, address: $0).addressText } + "/64"
            result.append(EgressRule(address: text, port: group[0].port, protocol: group[0].protocol))
        }
        return result
    }
}
