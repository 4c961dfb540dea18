import Foundation

/// The binaries that start workloads on this host: vigil itself (`vigil learn -- COMMAND`) and
/// the OCI runtimes. As the parent of an exec they are recorded as `(runtime)`.
public enum RuntimeExecutables {
    static let candidates = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc",
                             "/usr/bin/crun", "/usr/local/bin/crun"]

    public static func onThisHost() -> [String] {
        var result: [String] = []
        if let own = resolve("/proc/self/exe") { result.append(own) }
        for candidate in candidates {
            if let path = resolve(candidate), !result.contains(path) { result.append(path) }
        }
        return result
    }

    private static func resolve(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
