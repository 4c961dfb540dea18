// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Vigil",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "vigil", targets: ["vigil"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.70.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
        // SHA-256 (already built for async-http-client's TLS stack).
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        // The event layout, shared with bpf/ (the header lives there); no libbpf here.
        .target(name: "CVigilABI"),
        // libbpf, behind a few C shims; only VigilBPF imports it.
        .target(
            name: "CVigilBPF",
            dependencies: ["CVigilABI"],
            linkerSettings: [.linkedLibrary("bpf"), .linkedLibrary("elf"), .linkedLibrary("z")]
        ),
        // fork/exec into a cgroup: the few lines that cannot be written safely in Swift.
        .target(name: "CVigilSys"),
        // libseccomp: syscall names per architecture, filters.
        .target(name: "CVigilSeccomp", linkerSettings: [.linkedLibrary("seccomp")]),

        // Pure Swift: events, decoding, JSON encoding. Tested from recorded records.
        .target(name: "VigilCore", dependencies: ["CVigilABI"]),
        // Loads the embedded BPF object, attaches, polls the ring buffer, updates maps.
        .target(
            name: "VigilBPF",
            dependencies: ["VigilCore", "CVigilBPF", "CVigilABI"],
            plugins: ["BPFBuild"]
        ),
        // Syscall names (and, later, filters) from libseccomp.
        .target(name: "VigilSeccomp", dependencies: ["VigilCore", "CVigilSeccomp"]),
        // The profile store: YAML files, versions, atomic writes, clear errors for broken files.
        .target(name: "VigilProfiles", dependencies: ["VigilCore", .product(name: "Yams", package: "Yams"),
                                                      .product(name: "Crypto", package: "swift-crypto")]),
        // cgroup v2: where it is mounted, id -> path, creating one, starting a process in it.
        .target(name: "VigilRuntime", dependencies: ["VigilCore", "CVigilSys"]),
        // The Kubernetes API (a pod's labels and owner), over TLS with the service account.
        .target(
            name: "VigilKubernetes",
            dependencies: [
                "VigilRuntime",
                "VigilProfiles",
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The pipelines that connect a source of events to sinks.
        .target(
            name: "VigilAgent",
            dependencies: ["VigilCore", "VigilRuntime", "VigilProfiles", "VigilSeccomp", "CVigilSys",
                           .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The agent's operations endpoint: Prometheus /metrics, /healthz, /readyz (read-only).
        .target(
            name: "VigilOperations",
            dependencies: [
                "VigilAgent", "VigilCore",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "vigil",
            dependencies: [
                "VigilAgent", "VigilBPF", "VigilRuntime", "VigilCore", "VigilProfiles", "VigilSeccomp", "VigilOperations",
                "VigilKubernetes", "CVigilSys",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A small C workload for tests and benchmarks: exact, repeatable syscalls.
        .executableTarget(name: "vigil-workload"),
        // Benchmarks (throughput and overhead figures for the README), not tests.
        .executableTarget(
            name: "vigil-bench",
            dependencies: ["VigilAgent", "VigilBPF", "VigilRuntime", "VigilCore", "VigilSeccomp", "VigilProfiles", "VigilTestSupport"]
        ),

        .plugin(name: "BPFBuild", capability: .buildTool()),

        .testTarget(name: "VigilCoreTests", dependencies: ["VigilCore", "CVigilABI", "VigilSeccomp", "VigilTestSupport"]),
        .testTarget(name: "VigilRuntimeTests", dependencies: ["VigilRuntime"]),
        // Test helpers shared by test targets and the soak benchmark: records built as the kernel
        // lays them out, a simulated node (cgroups, runtime state, a recorded kernel) for the agent
        // without root, a stand-in API server with real TLS, a containerd driven over CRI.
        .target(name: "VigilTestSupport", dependencies: ["VigilAgent", "VigilCore", "VigilProfiles", "VigilRuntime", "CVigilABI",
                                                         .product(name: "Yams", package: "Yams")],
                path: "Tests/VigilTestSupport", exclude: ["fake-apiserver.py", "cri"]),
        .testTarget(name: "VigilKubernetesTests", dependencies: ["VigilKubernetes", "VigilRuntime", "VigilProfiles", "VigilCore", "VigilTestSupport"]),
        .testTarget(
            name: "VigilProfilesTests",
            dependencies: ["VigilProfiles", "VigilCore", "VigilSeccomp", "CVigilABI", "VigilTestSupport", .product(name: "Yams", package: "Yams")]
        ),
        // The agent without the kernel or root: its whole pipeline on a recorded kernel, configuration,
        // operations endpoint.
        .testTarget(name: "VigilAgentTests", dependencies: ["VigilAgent", "VigilCore", "VigilOperations", "VigilProfiles", "VigilRuntime",
                                                            "VigilKubernetes",
                                                            "VigilSeccomp", "VigilTestSupport", "CVigilABI",
                                                            .product(name: "Prometheus", package: "swift-prometheus"),
                                                            .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "VigilKernelTests",
            dependencies: ["VigilAgent", "VigilBPF", "VigilRuntime", "VigilCore", "VigilProfiles", "VigilSeccomp", "VigilOperations", "VigilKubernetes", "VigilTestSupport", "vigil-workload", "vigil", "vigil-bench",
                           .product(name: "Yams", package: "Yams"), .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Fixtures"] // BPF C that the tests compile: a stack chain, a program every verifier refuses
        ),
    ],
    swiftLanguageModes: [.v6]
)
