/// What changed between two versions of a profile, as `+`/`-` lines (`vigil profile diff`).
public struct ProfileDiff: Sendable {
    public let lines: [String]

    public init(from a: Profile, to b: Profile) {
        var lines: [String] = []
        if a.workload != b.workload { lines.append("~ workload \(a.workload) -> \(b.workload)") }
        if a.version != b.version { lines.append("~ version \(a.version) -> \(b.version)") }
        if a.state != b.state { lines.append("~ state \(a.state.rawValue) -> \(b.state.rawValue)") }
        func compare<T: Hashable & Comparable>(_ name: String, _ old: [T], _ new: [T], _ text: (T) -> String) {
            let old = Set(old), new = Set(new)
            for item in new.subtracting(old).sorted() { lines.append("+ \(name) \(text(item))") }
            for item in old.subtracting(new).sorted() { lines.append("- \(name) \(text(item))") }
        }
        compare("modelPath", a.modelPaths, b.modelPaths) { $0 }
        let exec = { (rule: ExecRule) in "\(rule.exe) (parent \(rule.parent.isEmpty ? "-" : rule.parent))" }
        let fileWrite = { (rule: FileWriteRule) in "\(rule.path) [\(rule.ops.joined(separator: ","))]" }
        let egress = { (rule: EgressRule) in "\(rule.protocol) \(rule.address) port \(rule.port)" }
        compare("exec", a.execs, b.execs, exec)
        compare("fileWrite", a.fileWrites, b.fileWrites, fileWrite)
        compare("egress", a.egress, b.egress, egress)
        compare("model", a.models ?? [], b.models ?? []) { "\($0.path) \($0.sha256)" }
        compare("modelReader", a.modelReaders ?? [], b.modelReaders ?? []) { $0 }
        let startupA = a.startupOnly ?? StartupRules(), startupB = b.startupOnly ?? StartupRules()
        compare("startupOnly exec", startupA.execs, startupB.execs, exec)
        compare("startupOnly fileWrite", startupA.fileWrites, startupB.fileWrites, fileWrite)
        compare("startupOnly egress", startupA.egress, startupB.egress, egress)
        for abi in SyscallABI.allCases {
            compare("syscall/\(abi.name)", a.syscalls[abi], b.syscalls[abi]) { $0 }
        }
        self.lines = lines
    }
}
