import Foundation

/// A seccomp profile in the OCI runtime-spec format (`linux.seccomp` of config.json; what the
/// kubelet reads from its seccomp root for `type: Localhost`).
public struct OCISeccomp: Codable, Equatable, Sendable {
    public var defaultAction: String
    public var defaultErrnoRet: UInt32?
    public var architectures: [String]
    public var syscalls: [Rule]

    public struct Rule: Codable, Equatable, Sendable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?

        public init(names: [String], action: String, errnoRet: UInt32? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
        }
    }

    public init(defaultAction: String, defaultErrnoRet: UInt32? = nil, architectures: [String], syscalls: [Rule]) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.syscalls = syscalls
    }

    /// An OCI seccomp JSON document; an error names the field at fault.
    public static func decode(_ data: Data) throws -> OCISeccomp {
        do {
            return try JSONDecoder().decode(OCISeccomp.self, from: data)
        } catch let error as DecodingError {
            throw DecodingProblem(error)
        }
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Every syscall name a rule with this action lists.
    public func names(withAction action: String) -> Set<String> {
        Set(syscalls.filter { $0.action == action }.flatMap(\.names))
    }
}

/// Turns a profile's syscalls into a seccomp filter that allows exactly them.
public enum SeccompPolicy {
    public enum Mode: String, CaseIterable, Sendable {
        /// Anything else fails with EPERM.
        case enforce
        /// Anything else kills the process (SIGSYS).
        case kill
        /// Anything else is allowed and logged by the kernel (audit type 1326): a trial run.
        case complain
    }

    static let enosys: UInt32 = 38
    static let eperm: UInt32 = 1

    /// The filter's allowed syscalls by where they come from. A name is counted once, in the
    /// first part that has it: the workload's own, then what only the runtime needs, then what
    /// only the asynchronous baseline adds.
    public struct Composition: Equatable, Sendable {
        public var workload: [String]
        public var runtime: [String]
        public var baseline: [String]
        public var all: Set<String> { Set(workload + runtime + baseline) }
    }

    /// A profile without a `seccomp` section (written by hand, or by an older vigil) gets
    /// today's allowances: every filter lets its runtime start the workload and lets the workload
    /// take signals and exit, whatever was learned.
    public static func composition(_ profile: Profile) -> Composition {
        let additions = profile.seccomp ?? .current(i386: !profile.syscalls.i386.isEmpty)
        let workload = Set(profile.syscalls.x86_64 + profile.syscalls.x32 + profile.syscalls.i386)
        let runtime = Set(additions.runtime).subtracting(workload)
        let baseline = Set(additions.baseline).subtracting(workload).subtracting(runtime)
        return Composition(workload: workload.sorted(), runtime: runtime.sorted(), baseline: baseline.sorted())
    }

    public static func oci(_ profile: Profile, mode: Mode = .enforce) -> OCISeccomp {
        let parts = composition(profile)
        var architectures = ["SCMP_ARCH_X86_64"]
        if !profile.syscalls.i386.isEmpty { architectures.append("SCMP_ARCH_X86") }
        if !profile.syscalls.x32.isEmpty { architectures.append("SCMP_ARCH_X32") }
        // One rule per origin, so the file itself shows what the workload needs and what was added.
        var rules = [parts.workload, parts.runtime, parts.baseline].filter { !$0.isEmpty }.map {
            OCISeccomp.Rule(names: $0, action: "SCMP_ACT_ALLOW")
        }
        if !parts.all.contains("clone3") {
            // glibc tries clone3 first and falls back to clone only on ENOSYS; EPERM would make
            // every thread or process creation fail.
            rules.append(OCISeccomp.Rule(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: enosys))
        }
        switch mode {
        case .enforce:
            return OCISeccomp(defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: eperm, architectures: architectures, syscalls: rules)
        case .kill:
            return OCISeccomp(defaultAction: "SCMP_ACT_KILL_PROCESS", architectures: architectures, syscalls: rules)
        case .complain:
            return OCISeccomp(defaultAction: "SCMP_ACT_LOG", architectures: architectures, syscalls: rules)
        }
    }

    /// What a runtime needs that the profile's filter would not allow: empty when the filter can
    /// start a container under that runtime and no_new_privs mode; nil when no allowance was
    /// ever measured for it (nothing can be promised).
    public static func missingRuntimeCalls(_ profile: Profile, for runtime: ObservedRuntime) -> [String]? {
        guard let allowance = SeccompAllowances.allowance(runtime: runtime.runtime, noNewPrivileges: runtime.noNewPrivileges) else {
            return nil
        }
        return allowance.syscalls.subtracting(composition(profile).all).sorted()
    }
}
