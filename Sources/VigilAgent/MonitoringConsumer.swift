import Foundation
import VigilBPF
import VigilCore

/// `vigil monitor`: checks each event against the stable profile and prints anomalies (folded
/// and rate limited); checks the kernel's syscall bitmaps on every tick.
public final class MonitoringConsumer: EventConsumer {
    private var detector: Detector
    private var reporter: AnomalyReporter
    private let resolver: SyscallResolver
    private let sink: EventSink
    private var line = JSONLineWriter()
    private var lastWorkload: WorkloadIdentity?

    /// Events checked and found in the profile, and anomalies found, since start.
    public private(set) var checked: UInt64 = 0
    public private(set) var findings: [AnomalyRule: UInt64] = [:]

    public init(profile: Profile, resolver: SyscallResolver, node: String, sink: EventSink,
                settings: AnomalyReporter.Settings = .init(), clock: BootClock = .system(),
                runtimeExes: [String] = RuntimeExecutables.onThisHost()) {
        detector = Detector(profile: profile, resolver: resolver, runtimeExes: runtimeExes)
        reporter = AnomalyReporter(profile: profile, node: node, clock: clock, settings: settings)
        self.resolver = resolver
        self.sink = sink
    }

    public var profile: Profile { detector.profile }
    public var emitted: [AnomalyRule: UInt64] { reporter.emitted }

    /// Loads the profile's exact behaviour into the kernel under `profileID`, so known events of
    /// cgroups watched with that id never reach userspace.
    public func loadIntoKernel(_ probes: KernelProbes, profileID: UInt32) throws {
        try probes.loadKnownBehaviour(of: detector, profileID: profileID)
    }

    public func consume(_ event: RawEvent, workload: WorkloadIdentity, processes: ProcessTable) {
        checked += 1
        guard let finding = detector.check(event, execDigest: event.kind == .exec ? processes[event.pid]?.execDigest : nil) else { return }
        findings[finding.rule, default: 0] += 1
        lastWorkload = workload
        line.removeAll()
        reporter.report(finding, event: event, workload: workload, processes: processes, into: &line)
        if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
    }

    /// Checks the syscalls the kernel saw, and emits folded repeats and throttle changes.
    public func tick(probes: KernelProbes, now: UInt64 = BootClock.nowBootNanoseconds()) {
        line.removeAll()
        var seen = SyscallBitmap()
        for syscalls in probes.syscallBitmaps().values { seen.formUnion(syscalls.workload) }
        let unexpected = detector.unexpectedSyscalls(seen, namedBy: resolver)
        if !unexpected.isEmpty {
            findings[.unexpectedSyscall] = UInt64(unexpected.count)
            reporter.reportSyscalls(unexpected, workload: lastWorkload, now: now, into: &line)
        }
        reporter.flush(now: now, into: &line)
        if !line.bytes.isEmpty { line.bytes.withUnsafeBytes { sink.write($0) } }
        sink.flush()
    }
}
