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
        compare("exec", a.execs, b.execs) { "\($0.exe) (parent \($0.parent.isEmpty ? "-" : $0.parent))" }
        compare("fileWrite", a.fileWrites, b.fileWrites) { "\($0.path) [\($0.ops.joined(separator: ","))]" }
        compare("egress", a.egress, b.egress) { "\($0.protocol) \($0.address) port \($0.port)" }
        compare("model", a.models ?? [], b.models ?? []) { "\($0.path) \($0.sha256)" }
        compare("modelReader", a.modelReaders ?? [], b.modelReaders ?? []) { $0 }
        for abi in SyscallABI.allCases {
            compare("syscall/\(abi.name)", a.syscalls[abi], b.syscalls[abi]) { $0 }
        }
        self.lines = lines
    }
}
