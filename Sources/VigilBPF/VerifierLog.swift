/// What libbpf's log says about a build the kernel refused: the program it was loading and the
/// verifier's last words on it, which name the limit hit ("combined stack size of 2 calls is 560.
/// Too large", "R2 unbounded memory access", "extern (func ksym) 'bpf_rdonly_cast': not found in
/// kernel or module BTFs"). The whole log runs to thousands of lines; an operator needs these.
struct VerifierLog {
    /// The program libbpf names last ("libbpf: prog 'NAME': ..."), if any.
    var program: String?
    /// The verifier's last lines before its summary, or libbpf's own complaint when the
    /// verifier never ran; nil when the log says nothing.
    var reason: String?

    /// How many of the verifier's last lines make the reason: the failing instruction and the
    /// refusal itself.
    static let reasonLines = 2

    init(_ log: String) {
        let lines = log.split(separator: "\n", omittingEmptySubsequences: true)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        program = lines.reversed().lazy.compactMap(Self.programName).first
        if let begin = lines.lastIndex(where: { $0.contains("BEGIN PROG LOAD LOG") }) {
            let verifier = lines[(begin + 1)...].prefix { !$0.contains("END PROG LOAD LOG") }
                .filter { !$0.hasPrefix("processed ") && !$0.hasPrefix("verification time") && !$0.hasPrefix("stack depth") }
            reason = verifier.isEmpty ? nil : verifier.suffix(Self.reasonLines).joined(separator: " / ")
        } else {
            // The verifier never ran (an extern the kernel lacks, a map type it does not have):
            // libbpf's first line that is not a summary of the failure says why.
            reason = lines.first { line in
                line.hasPrefix("libbpf:") && !line.contains("failed to load object") && !line.contains("failed to load: -")
                    && !line.contains("BPF program load failed")
            }.map { String($0.dropFirst("libbpf:".count)).trimmingCharacters(in: .whitespaces) }
        }
    }

    private static func programName(_ line: String) -> String? {
        guard let start = line.range(of: "prog '") else { return nil }
        let rest = line[start.upperBound...]
        guard let end = rest.firstIndex(of: "'") else { return nil }
        return String(rest[..<end])
    }
}
