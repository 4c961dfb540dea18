import CVigilABI

/// What a ring-buffer record is, by its header's `kind`.
public enum EventKind: UInt32, Sendable, CaseIterable {
    case exec = 1
    case file = 2
    case network = 3
    case exit = 4
    case cgroup = 5

    /// The `kind` field of the JSON contract, for the kinds that are printed.
    public var contractName: String {
        switch self {
        case .exec: "process.exec"
        case .file: "file.write"
        case .network: "network.connect"
        case .exit: "process.exit"
        case .cgroup: "cgroup"
        }
    }

    /// Kinds that keep the agent's books (a process ended, a cgroup came or went), not behaviour:
    /// never printed, learned or checked.
    public var isBookkeeping: Bool { self == .exit || self == .cgroup }

    /// The smallest record of the kind: exec and file records are followed by their text (as long
    /// as their lengths say); a cgroup's creation stops before the bitmaps.
    var recordSize: Int {
        switch self {
        case .exec: MemoryLayout<vigil_exec_record>.size
        case .file: MemoryLayout<vigil_file_record>.size
        case .network: MemoryLayout<vigil_net_event>.size
        case .exit: MemoryLayout<vigil_exit_event>.size
        case .cgroup: Layout.cgroupSyscalls
        }
    }
}

public enum CgroupOperation: UInt32, Sendable {
    /// Made below a watched cgroup, and now watched too.
    case created = 1
    /// A watched cgroup removed: no longer watched; its last syscalls are in the record.
    case removed = 2
    /// A process of the cgroup accepted its first connection: the container serves from now on.
    case serving = 3
}

public enum FileOperation: UInt32, Sendable {
    case openWrite = 1, create, truncate, rename, unlink
    /// Opened for reading, under one of the container's model directories (the kernel checks).
    case readModel

    public var contractName: String {
        switch self {
        case .openWrite: "open_write"
        case .create: "create"
        case .truncate: "truncate"
        case .rename: "rename"
        case .unlink: "unlink"
        case .readModel: "read_model"
        }
    }
}

public enum NetworkOperation: UInt32, Sendable {
    case connect = 1, sendto, sendmsg

    public var contractName: String {
        switch self {
        case .connect: "connect"
        case .sendto: "sendto"
        case .sendmsg: "sendmsg"
        }
    }
}

public struct DecodeError: Error, Equatable, CustomStringConvertible {
    public var description: String
}

/// A view of one ring-buffer record. It does not own or copy the bytes: it is valid only while
/// the buffer it was decoded from is (inside the ring-buffer callback), which is what lets the
/// hot path decode without allocating.
public struct RawEvent {
    public let bytes: UnsafeRawBufferPointer
    public let kind: EventKind

    /// Checks the record's kind and size against the ABI, and that the text its lengths describe
    /// is inside it; nothing else is read until asked for.
    public init(decoding bytes: UnsafeRawBufferPointer) throws(DecodeError) {
        guard bytes.count >= MemoryLayout<vigil_header>.size, let base = bytes.baseAddress else {
            throw DecodeError(description: "record of \(bytes.count) bytes is shorter than the event header")
        }
        let rawKind = base.loadUnaligned(as: UInt32.self)
        guard let kind = EventKind(rawValue: rawKind) else {
            throw DecodeError(description: "unknown event kind \(rawKind)")
        }
        guard bytes.count >= kind.recordSize else {
            throw DecodeError(description: "\(kind) record of \(bytes.count) bytes, expected \(kind.recordSize)")
        }
        self.bytes = bytes
        self.kind = kind
        if let lengths = Layout.textLengths(of: kind) {
            var text = 0
            for index in 0..<lengths.count {
                let length = Int(load(lengths.offset + 4 * index, as: UInt32.self))
                guard length <= Layout.pathCapacity else {
                    throw DecodeError(description: "\(kind) record says a string of \(length) bytes, more than the \(Layout.pathCapacity) a string can have")
                }
                text += length
            }
            let room = bytes.count - kind.recordSize
            guard text <= room else {
                throw DecodeError(description: "\(kind) record of \(bytes.count) bytes says \(text) bytes of text follow its \(kind.recordSize) fixed bytes: cut or damaged")
            }
        }
    }

    @inline(__always)
    func load<T>(_ offset: Int, as: T.Type) -> T {
        bytes.baseAddress!.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    /// Bytes of a fixed-size char field, cut at `length` (or the field's capacity, or a NUL).
    @inline(__always)
    func text(at offset: Int, capacity: Int, length: Int? = nil) -> UnsafeRawBufferPointer {
        let start = bytes.baseAddress! + offset
        var count = min(length ?? capacity, capacity)
        if length == nil, let nul = UnsafeRawBufferPointer(start: start, count: count).firstIndex(of: 0) {
            count = nul
        }
        return UnsafeRawBufferPointer(start: start, count: count)
    }

    // MARK: header

    public var flags: UInt32 { load(Layout.flags, as: UInt32.self) }
    public var bootNanoseconds: UInt64 { load(Layout.bootNanoseconds, as: UInt64.self) }
    public var cgroupID: UInt64 { load(Layout.cgroupID, as: UInt64.self) }
    public var processStartBootNanoseconds: UInt64 { load(Layout.processStart, as: UInt64.self) }
    public var pid: UInt32 { load(Layout.pid, as: UInt32.self) }
    public var tid: UInt32 { load(Layout.tid, as: UInt32.self) }
    public var ppid: UInt32 { load(Layout.ppid, as: UInt32.self) }
    public var uid: UInt32 { load(Layout.uid, as: UInt32.self) }
    public var gid: UInt32 { load(Layout.gid, as: UInt32.self) }
    public var comm: UnsafeRawBufferPointer { text(at: Layout.comm, capacity: Int(VIGIL_COMM_LEN)) }

    public var argsTruncated: Bool { flags & UInt32(VIGIL_FLAG_ARGS_TRUNCATED) != 0 }
    public var pathTruncated: Bool { flags & UInt32(VIGIL_FLAG_PATH_TRUNCATED) != 0 }
    public var directoryUnresolved: Bool { flags & UInt32(VIGIL_FLAG_DIR_UNRESOLVED) != 0 }
    /// An exec by which the container runtime's init became the workload (its entrypoint).
    public var isEntrypoint: Bool { flags & UInt32(VIGIL_FLAG_ENTRYPOINT) != 0 }
    /// Protect mode refused this connect or datagram (EPERM): nothing left the socket.
    public var wasDenied: Bool { flags & UInt32(VIGIL_FLAG_DENIED) != 0 }
    /// Protect mode killed the process at this exec, before the program ran.
    public var wasKilled: Bool { flags & UInt32(VIGIL_FLAG_KILLED) != 0 }
    /// exec: the binary has no path (memfd_create, O_TMPFILE, another mount namespace): `exe` is
    /// its name only, e.g. `memfd:payload`.
    public var exeIsFileless: Bool { flags & UInt32(VIGIL_FLAG_EXE_FILELESS) != 0 }
    /// exec: the binary's file had no link left (deleted after it was started, or fileless).
    public var exeIsDeleted: Bool { flags & UInt32(VIGIL_FLAG_EXE_DELETED) != 0 }
    /// exec: the parent's binary has no path.
    public var parentIsFileless: Bool { flags & UInt32(VIGIL_FLAG_PARENT_FILELESS) != 0 }
    /// exec: what runs has no file a path could name now: only its content says what it is.
    public var exeHasNoFile: Bool { exeIsFileless || exeIsDeleted }
}

/// Offsets into the records, taken from the C layout so that they follow the ABI header.
enum Layout {
    @inline(__always) static var flags: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.flags)! }
    @inline(__always) static var bootNanoseconds: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.boot_ns)! }
    @inline(__always) static var cgroupID: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.cgroup_id)! }
    @inline(__always) static var processStart: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.start_boot_ns)! }
    @inline(__always) static var pid: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.tgid)! }
    @inline(__always) static var tid: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.tid)! }
    @inline(__always) static var ppid: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.ppid)! }
    @inline(__always) static var uid: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.uid)! }
    @inline(__always) static var gid: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.gid)! }
    @inline(__always) static var comm: Int { MemoryLayout<vigil_header>.offset(of: \vigil_header.comm)! }

    // An exec record's text lengths, then its text: exe, parent_exe, args (see vigil_abi.h).
    @inline(__always) static var execExeLength: Int { MemoryLayout<vigil_exec_record>.offset(of: \vigil_exec_record.exe_len)! }

    @inline(__always) static var fileOp: Int { MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.op)! }
    @inline(__always) static var fileOpenFlags: Int { MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.open_flags)! }
    @inline(__always) static var fileReturn: Int { MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.ret)! }
    @inline(__always) static var fileInode: Int { MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.inode)! }
    @inline(__always) static var fileDevice: Int { MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.device)! }
    @inline(__always) static var fileSize: Int { MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.size)! }
    @inline(__always) static var fileChange: Int { MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.change_ns)! }
    // A file record's text lengths, then its text: dir, name, target dir, target name.
    @inline(__always) static var fileDirLength: Int { MemoryLayout<vigil_file_record>.offset(of: \vigil_file_record.dir_len)! }

    /// Where a packed record's text lengths are: `count` consecutive UInt32s from `offset`, in the
    /// order its strings follow the fixed part (abi.c asserts that they are consecutive).
    @inline(__always) static func textLengths(of kind: EventKind) -> (offset: Int, count: Int)? {
        switch kind {
        case .exec: (execExeLength, 3)
        case .file: (fileDirLength, 4)
        default: nil
        }
    }

    @inline(__always) static var netOp: Int { MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.op)! }
    @inline(__always) static var netFamily: Int { MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.family)! }
    @inline(__always) static var netPort: Int { MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.port)! }
    @inline(__always) static var netProtocol: Int { MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.protocol)! }
    @inline(__always) static var netSockType: Int { MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.sock_type)! }
    @inline(__always) static var netReturn: Int { MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.ret)! }
    @inline(__always) static var netAddress: Int { MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.addr)! }

    @inline(__always) static var exitCode: Int { MemoryLayout<vigil_exit_event>.offset(of: \vigil_exit_event.exit_code)! }

    @inline(__always) static var cgroupOp: Int { MemoryLayout<vigil_cgroup_event>.offset(of: \vigil_cgroup_event.op)! }
    @inline(__always) static var cgroupNameLength: Int { MemoryLayout<vigil_cgroup_event>.offset(of: \vigil_cgroup_event.name_len)! }
    @inline(__always) static var cgroupParent: Int { MemoryLayout<vigil_cgroup_event>.offset(of: \vigil_cgroup_event.parent_id)! }
    @inline(__always) static var cgroupName: Int { MemoryLayout<vigil_cgroup_event>.offset(of: \vigil_cgroup_event.name)! }
    @inline(__always) static var cgroupSyscalls: Int { MemoryLayout<vigil_cgroup_event>.offset(of: \vigil_cgroup_event.syscalls)! }
    @inline(__always) static var cgroupRuntimeSyscalls: Int {
        MemoryLayout<vigil_cgroup_event>.offset(of: \vigil_cgroup_event.runtime_syscalls)!
    }

    static var pathCapacity: Int { Int(VIGIL_PATH_LEN) }
}

/// A path as a syscall named it: `name` as passed, and for a relative name the directory it was
/// relative to, resolved in the kernel.
public struct RawPath {
    public let directory: UnsafeRawBufferPointer
    public let name: UnsafeRawBufferPointer
}

extension RawEvent {
    // MARK: exec

    public var exe: UnsafeRawBufferPointer { packedText(0) }

    /// The parent process's binary when this exec happened (empty for a kernel thread).
    public var parentExe: UnsafeRawBufferPointer { packedText(1) }

    /// argv as the kernel holds it: NUL-separated.
    public var arguments: UnsafeRawBufferPointer { packedText(2) }

    /// The index-th string of a packed record (exec, file): it starts after the fixed part and the
    /// strings before it, whose lengths `init(decoding:)` checked fit in the record. Empty for a
    /// record of another kind.
    @inline(__always)
    private func packedText(_ index: Int) -> UnsafeRawBufferPointer {
        guard let lengths = Layout.textLengths(of: kind), index < lengths.count else {
            return UnsafeRawBufferPointer(start: bytes.baseAddress!, count: 0)
        }
        var start = kind.recordSize
        for earlier in 0..<index { start += Int(load(lengths.offset + 4 * earlier, as: UInt32.self)) }
        return UnsafeRawBufferPointer(start: bytes.baseAddress! + start, count: Int(load(lengths.offset + 4 * index, as: UInt32.self)))
    }

    // MARK: cgroup

    /// What happened to the cgroup `cgroupID` names (for a cgroup record, the cgroup's own id).
    public var cgroupOperation: CgroupOperation? { CgroupOperation(rawValue: load(Layout.cgroupOp, as: UInt32.self)) }
    public var parentCgroupID: UInt64 { load(Layout.cgroupParent, as: UInt64.self) }
    /// The cgroup directory's name (its last path component).
    public var cgroupName: UnsafeRawBufferPointer {
        text(at: Layout.cgroupName, capacity: Int(VIGIL_CGROUP_NAME_LEN), length: Int(load(Layout.cgroupNameLength, as: UInt32.self)))
    }

    /// A removed cgroup's last syscall bitmaps (empty for a created one).
    public var lastSyscalls: CgroupSyscalls {
        guard bytes.count >= MemoryLayout<vigil_cgroup_event>.size else { return CgroupSyscalls(workload: SyscallBitmap()) }
        let words = Int(VIGIL_SYSCALL_WORDS)
        func row(_ offset: Int) -> [UInt64] { (0..<words).map { load(offset + $0 * 8, as: UInt64.self) } }
        var workload = SyscallBitmap()
        for abi in SyscallABI.allCases { workload.words[abi.rawValue] = row(Layout.cgroupSyscalls + abi.rawValue * words * 8) }
        var before = SyscallBitmap(), after = SyscallBitmap()
        before.words[SyscallABI.x86_64.rawValue] = row(Layout.cgroupRuntimeSyscalls)
        after.words[SyscallABI.x86_64.rawValue] = row(Layout.cgroupRuntimeSyscalls + words * 8)
        return CgroupSyscalls(workload: workload, runtimeBeforeFilter: before, runtimeAfterFilter: after)
    }

    // MARK: file

    public var fileOperation: FileOperation? { FileOperation(rawValue: load(Layout.fileOp, as: UInt32.self)) }
    public var openFlags: UInt32 { load(Layout.fileOpenFlags, as: UInt32.self) }
    /// The syscall's return value: >= 0 on success, -errno on failure.
    public var fileResult: Int64 { load(Layout.fileReturn, as: Int64.self) }
    public var filePath: RawPath { RawPath(directory: packedText(0), name: packedText(1)) }
    public var fileTarget: RawPath { RawPath(directory: packedText(2), name: packedText(3)) }
    /// `readModel` only: the opened file's identity as the kernel knows it (the kernel's dev_t).
    public var fileIdentity: FileIdentity { FileIdentity(device: load(Layout.fileDevice, as: UInt32.self), inode: load(Layout.fileInode, as: UInt64.self)) }
    /// `readModel` only: the file's version when it was opened (no process can set a ctime back).
    public var fileVersion: FileVersion {
        FileVersion(identity: fileIdentity, size: load(Layout.fileSize, as: UInt64.self),
                    changeNanoseconds: load(Layout.fileChange, as: UInt64.self))
    }
    public var isModelRead: Bool { kind == .file && fileOperation == .readModel }
    /// `readModel` only: the file was not opened but held across an exec by the new program.
    public var heldAcrossExec: Bool { flags & UInt32(VIGIL_FLAG_INHERITED_FD) != 0 }
    /// `readModel` only: the executable of the process that opened the file (resolved in the kernel).
    public var modelReaderExe: UnsafeRawBufferPointer { fileTarget.name }

    // MARK: network

    public var networkOperation: NetworkOperation? { NetworkOperation(rawValue: load(Layout.netOp, as: UInt32.self)) }
    public var addressFamily: UInt16 { load(Layout.netFamily, as: UInt16.self) }
    public var port: UInt16 { load(Layout.netPort, as: UInt16.self) }
    public var ipProtocol: UInt16 { load(Layout.netProtocol, as: UInt16.self) }
    public var socketType: UInt16 { load(Layout.netSockType, as: UInt16.self) }
    public var networkResult: Int64 { load(Layout.netReturn, as: Int64.self) }
    /// 4 bytes for IPv4, 16 for IPv6, in network order.
    public var address: UnsafeRawBufferPointer {
        text(at: Layout.netAddress, capacity: 16, length: addressFamily == AddressFamily.ipv4 ? 4 : 16)
    }

    // MARK: exit

    public var exitCode: Int32 { load(Layout.exitCode, as: Int32.self) }
}

/// A file as the kernel names it: its superblock's device (the kernel's dev_t, MAJOR << 20 |
/// MINOR, not the userspace encoding `stat` returns) and its inode number.
public struct FileIdentity: Hashable, Sendable {
    public var device: UInt32
    public var inode: UInt64

    public init(device: UInt32, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// From `stat`'s st_dev (glibc's encoding) and st_ino.
    public init(statDevice: UInt64, inode: UInt64) {
        let major = ((statDevice >> 8) & 0xfff) | ((statDevice >> 32) & ~0xfff)
        let minor = (statDevice & 0xff) | ((statDevice >> 12) & ~0xff)
        self.init(device: UInt32(truncatingIfNeeded: (major << 20) | (minor & 0xfffff)), inode: inode)
    }
}

/// One version of a file: its identity, size and ctime (ns). A write changes the ctime (or the
/// size, or, replaced, the inode), and no process can set a ctime back, so a content verified
/// once is known by its version.
public struct FileVersion: Hashable, Sendable {
    public var identity: FileIdentity
    public var size: UInt64
    /// 0 when the kernel cannot tell (before Linux 6.11): never known.
    public var changeNanoseconds: UInt64

    public init(identity: FileIdentity, size: UInt64, changeNanoseconds: UInt64) {
        self.identity = identity
        self.size = size
        self.changeNanoseconds = changeNanoseconds
    }
}
