import CVigilABI
import Foundation
import VigilCore

/// Builds ring-buffer records as the kernel lays them out (the structs come from the same ABI
/// header the BPF programs use; exec and file records are followed by their text, packed), for
/// tests and benchmarks that run without a kernel.
public enum RecordBuilder {
    public static func header(kind: vigil_kind, pid: UInt32 = 4242, ppid: UInt32 = 4200, boot: UInt64 = 1_000_000_000,
                       cgroup: UInt64 = 77, comm: String = "python3", flags: UInt32 = 0) -> vigil_header {
        var header = vigil_header()
        header.kind = kind.rawValue
        header.flags = flags
        header.boot_ns = boot
        header.cgroup_id = cgroup
        header.start_boot_ns = 5
        header.tgid = pid
        header.tid = pid + 1
        header.ppid = ppid
        header.uid = 1000
        header.gid = 1001
        setText(&header.comm, comm)
        return header
    }

    public static func setText<T>(_ field: inout T, _ text: String) {
        withUnsafeMutableBytes(of: &field) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            let bytes = Array(text.utf8.prefix(raw.count))
            raw.copyBytes(from: bytes)
        }
    }

    public static func bytes<T>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    public static func exec(pid: UInt32 = 4242, exe: String, parent: String = "", args: [String], boot: UInt64 = 1_000_000_000,
                     flags: UInt32 = 0, cgroup: UInt64 = 77) -> [UInt8] {
        var record = vigil_exec_record()
        record.hdr = header(kind: VIGIL_KIND_EXEC, pid: pid, boot: boot, cgroup: cgroup, flags: flags)
        let exeBytes = Array(exe.utf8), parentBytes = Array(parent.utf8)
        let argv = Array(args.map { Array($0.utf8) + [0] }.joined())
        record.exe_len = UInt32(exeBytes.count)
        record.parent_exe_len = UInt32(parentBytes.count)
        record.args_len = UInt32(argv.count)
        return bytes(of: record) + exeBytes + parentBytes + argv
    }

    public static func file(pid: UInt32 = 4242, op: vigil_file_op, dir: String, name: String, targetDir: String = "",
                     targetName: String = "", result: Int64 = 0, openFlags: UInt32 = 0, flags: UInt32 = 0,
                     boot: UInt64 = 1_000_000_000, cgroup: UInt64 = 77, inode: UInt64 = 0, device: UInt32 = 0,
                     size: UInt64 = 0, changeNanoseconds: UInt64 = 0) -> [UInt8] {
        var record = vigil_file_record()
        record.inode = inode
        record.device = device
        record.size = size
        record.change_ns = changeNanoseconds
        record.hdr = header(kind: VIGIL_KIND_FILE, pid: pid, boot: boot, cgroup: cgroup, flags: flags)
        record.op = op.rawValue
        record.open_flags = openFlags
        record.ret = result
        let texts = [dir, name, targetDir, targetName].map { Array($0.utf8) }
        record.dir_len = UInt32(texts[0].count)
        record.name_len = UInt32(texts[1].count)
        record.target_dir_len = UInt32(texts[2].count)
        record.target_name_len = UInt32(texts[3].count)
        return bytes(of: record) + texts.joined()
    }

    public static func network(pid: UInt32 = 4242, op: vigil_net_op = VIGIL_NET_CONNECT, family: UInt16, address: [UInt8],
                        port: UInt16, protocol ipProtocol: UInt16 = 6, result: Int64 = 0, boot: UInt64 = 1_000_000_000,
                        cgroup: UInt64 = 77) -> [UInt8] {
        var event = vigil_net_event()
        event.hdr = header(kind: VIGIL_KIND_NET, pid: pid, boot: boot, cgroup: cgroup)
        event.op = op.rawValue
        event.family = family
        event.port = port
        event.protocol = ipProtocol
        event.sock_type = ipProtocol == 6 ? 1 : 2
        event.ret = result
        withUnsafeMutableBytes(of: &event.addr) { $0.copyBytes(from: address) }
        return bytes(of: event)
    }

    public static func exit(pid: UInt32 = 4242, cgroup: UInt64 = 77) -> [UInt8] {
        var event = vigil_exit_event()
        event.hdr = header(kind: VIGIL_KIND_EXIT, pid: pid, cgroup: cgroup)
        return bytes(of: event)
    }

    /// cgroup_mkdir's record: `cgroup` was made, named `name`, below the watched `parent`.
    public static func cgroupMade(_ cgroup: UInt64, parent: UInt64, name: String) -> [UInt8] {
        let event = cgroupEvent(cgroup, op: VIGIL_CGROUP_MKDIR, parent: parent, name: name)
        // A mkdir record ends before the bitmaps (a new cgroup's are empty).
        return Array(bytes(of: event).prefix(MemoryLayout<vigil_cgroup_event>.offset(of: \vigil_cgroup_event.syscalls)!))
    }

    /// The accept programs' record: a process of `cgroup` accepted its first connection.
    public static func serving(_ cgroup: UInt64, pid: UInt32 = 4242, boot: UInt64 = 1_000_000_000) -> [UInt8] {
        var event = cgroupEvent(cgroup, op: VIGIL_CGROUP_SERVING, parent: 0, name: "")
        event.hdr = header(kind: VIGIL_KIND_CGROUP, pid: pid, boot: boot, cgroup: cgroup)
        event.op = VIGIL_CGROUP_SERVING.rawValue
        return Array(bytes(of: event).prefix(MemoryLayout<vigil_cgroup_event>.offset(of: \vigil_cgroup_event.syscalls)!))
    }

    /// cgroup_rmdir's record: the watched `cgroup` was removed, having made `syscalls` (x86_64
    /// numbers) since the agent last read its bitmaps.
    public static func cgroupRemoved(_ cgroup: UInt64, parent: UInt64, name: String, syscalls: [Int] = []) -> [UInt8] {
        var event = cgroupEvent(cgroup, op: VIGIL_CGROUP_RMDIR, parent: parent, name: name)
        withUnsafeMutableBytes(of: &event.syscalls) { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for number in syscalls { words[number / 64] |= 1 << UInt64(number % 64) }
        }
        return bytes(of: event)
    }

    private static func cgroupEvent(_ cgroup: UInt64, op: vigil_cgroup_op, parent: UInt64, name: String) -> vigil_cgroup_event {
        var event = vigil_cgroup_event()
        event.hdr = header(kind: VIGIL_KIND_CGROUP, pid: 1, cgroup: cgroup, comm: "runc")
        event.op = op.rawValue
        event.parent_id = parent
        setText(&event.name, name)
        event.name_len = UInt32(name.utf8.count)
        return event
    }
}

extension Array where Element == UInt8 {
    @discardableResult
    public func withRawEvent<R>(_ body: (RawEvent) throws -> R) throws -> R {
        try withUnsafeBytes { try body(try RawEvent(decoding: $0)) }
    }
}
