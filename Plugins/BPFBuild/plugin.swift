import Foundation
import PackagePlugin

/// Compiles the kernel programs in bpf/ with clang -target bpf and embeds the linked object in
/// the target that applies this plugin (see bpf/build.sh). Runs again whenever bpf/ changes.
@main
struct BPFBuild: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let bpfDirectory = context.package.directoryURL.appending(path: "bpf")
        let sources = try FileManager.default.contentsOfDirectory(atPath: bpfDirectory.path)
            .filter { $0.hasSuffix(".c") || $0.hasSuffix(".h") || $0.hasSuffix(".sh") }
            .map { bpfDirectory.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL
        let clang = (try? context.tool(named: "clang").url.path) ?? "clang"
        return [
            .buildCommand(
                displayName: "Compiling BPF programs (bpf/*.bpf.c)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [bpfDirectory.appending(path: "build.sh").path, output.path, clang],
                inputFiles: sources,
                outputFiles: [output.appending(path: "EmbeddedBPFObject.swift")]
            ),
        ]
    }
}
