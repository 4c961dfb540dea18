import CVigilABI

/// What a ring-buffer record is, by its header's `kind`.
public enum EventKind: UInt32, Sendable, CaseIterable {
    case exec = 1
    case file = 2
    case network = 3
    case exit = 4

    /// The `kind` field of the JSON contract, for the kinds that are printed.
    public var contractName: String {
        switch self {
        case .exec: "process.exec"
        case .file: "file.write"
        case .network: "network.connect"
        case .exit: "process.exit"
        }
    }

    var recordSize: Int {
        switch self {
        case .exec: MemoryLayout<vigil_exec_event>.size
        case .file: MemoryLayout<vigil_file_event>.size
        case .network: MemoryLayout<vigil_net_event>.size
        case .exit: MemoryLayout<vigil_exit_event>.size
        }
    }
}

public enum FileOperation: UInt32, Sendable {
    case openWrite = 1, create, truncate, rename, unlink

    public var contractName: String {
        switch self {
        case .openWrite: "open_write"
        case .create: "create"
        case .truncate: "truncate"
        case .rename: "rename"
        case .unlink: "unlink"
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

    /// Checks the record's kind and size against the ABI; nothing else is read until asked for.
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
}

/// Offsets into the records, taken from the C layout so that they follow the ABI header.
enum Layout {
    static let flags = MemoryLayout<vigil_header>.offset(of: \vigil_header.flags)!
    static let bootNanoseconds = MemoryLayout<vigil_header>.offset(of: \vigil_header.boot_ns)!
    static let cgroupID = MemoryLayout<vigil_header>.offset(of: \vigil_header.cgroup_id)!
    static let processStart = MemoryLayout<vigil_header>.offset(of: \vigil_header.start_boot_ns)!
    static let pid = MemoryLayout<vigil_header>.offset(of: \vigil_header.tgid)!
    static let tid = MemoryLayout<vigil_header>.offset(of: \vigil_header.tid)!
    static let ppid = MemoryLayout<vigil_header>.offset(of: \vigil_header.ppid)!
    static let uid = MemoryLayout<vigil_header>.offset(of: \vigil_header.uid)!
    static let gid = MemoryLayout<vigil_header>.offset(of: \vigil_header.gid)!
    static let comm = MemoryLayout<vigil_header>.offset(of: \vigil_header.comm)!

    static let execExeLength = MemoryLayout<vigil_exec_event>.offset(of: \vigil_exec_event.exe_len)!
    static let execArgsLength = MemoryLayout<vigil_exec_event>.offset(of: \vigil_exec_event.args_len)!
    static let execExe = MemoryLayout<vigil_exec_event>.offset(of: \vigil_exec_event.exe)!
    static let execArgs = MemoryLayout<vigil_exec_event>.offset(of: \vigil_exec_event.args)!

    static let fileOp = MemoryLayout<vigil_file_event>.offset(of: \vigil_file_event.op)!
    static let fileOpenFlags = MemoryLayout<vigil_file_event>.offset(of: \vigil_file_event.open_flags)!
    static let fileReturn = MemoryLayout<vigil_file_event>.offset(of: \vigil_file_event.ret)!
    static let filePath = MemoryLayout<vigil_file_event>.offset(of: \vigil_file_event.path)!
    static let fileTarget = MemoryLayout<vigil_file_event>.offset(of: \vigil_file_event.target)!
    static let pathDirLength = MemoryLayout<vigil_path>.offset(of: \vigil_path.dir_len)!
    static let pathNameLength = MemoryLayout<vigil_path>.offset(of: \vigil_path.name_len)!
    static let pathDir = MemoryLayout<vigil_path>.offset(of: \vigil_path.dir)!
    static let pathName = MemoryLayout<vigil_path>.offset(of: \vigil_path.name)!

    static let netOp = MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.op)!
    static let netFamily = MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.family)!
    static let netPort = MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.port)!
    static let netProtocol = MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.protocol)!
    static let netSockType = MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.sock_type)!
    static let netReturn = MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.ret)!
    static let netAddress = MemoryLayout<vigil_net_event>.offset(of: \vigil_net_event.addr)!

    static let exitCode = MemoryLayout<vigil_exit_event>.offset(of: \vigil_exit_event.exit_code)!

    static let pathCapacity = Int(VIGIL_PATH_LEN)
    static let argsCapacity = Int(VIGIL_ARGS_LEN)
}

/// A path as a syscall named it: `name` as passed, and for a relative name the directory it was
/// relative to, resolved in the kernel.
public struct RawPath {
    public let directory: UnsafeRawBufferPointer
    public let name: UnsafeRawBufferPointer
}

extension RawEvent {
    // MARK: exec

    public var exe: UnsafeRawBufferPointer {
        text(at: Layout.execExe, capacity: Layout.pathCapacity, length: Int(load(Layout.execExeLength, as: UInt32.self)))
    }

    /// argv as the kernel holds it: NUL-separated.
    public var arguments: UnsafeRawBufferPointer {
        text(at: Layout.execArgs, capacity: Layout.argsCapacity, length: Int(load(Layout.execArgsLength, as: UInt32.self)))
    }

    // MARK: file

    public var fileOperation: FileOperation? { FileOperation(rawValue: load(Layout.fileOp, as: UInt32.self)) }
    public var openFlags: UInt32 { load(Layout.fileOpenFlags, as: UInt32.self) }
    /// The syscall's return value: >= 0 on success, -errno on failure.
    public var fileResult: Int64 { load(Layout.fileReturn, as: Int64.self) }
    public var filePath: RawPath { path(at: Layout.filePath) }
    public var fileTarget: RawPath { path(at: Layout.fileTarget) }

    private func path(at offset: Int) -> RawPath {
        RawPath(
            directory: text(at: offset + Layout.pathDir, capacity: Layout.pathCapacity,
                            length: Int(load(offset + Layout.pathDirLength, as: UInt32.self))),
            name: text(at: offset + Layout.pathName, capacity: Layout.pathCapacity,
                       length: Int(load(offset + Layout.pathNameLength, as: UInt32.self)))
        )
    }

    // MARK: network

    public var networkOperation: NetworkOperation? { NetworkOperation(rawValue: load(Layout.netOp, as: UInt32.self)) }
    public var addressFamily: UInt16 { load(Layout.netFamily, as: UInt16.self) }
    public var port: UInt16 { load(Layout.netPort, as: UInt16.self) }
    public var ipProtocol: UInt16 { load(Layout.netProtocol, as: UInt16.self) }
    public var socketType: UInt16 { load(Layout.netSockType, as: UInt16.self) }
    public var networkResult: Int64 { load(Layout.netReturn, as: Int64.self) }
    /// 4 bytes for IPv4, 16 for IPv6, in network order.
    public var address: UnsafeRawBufferPointer {
        text(at: Layout.netAddress, capacity: 16, length: addressFamily == 2 ? 4 : 16)
    }

    // MARK: exit

    public var exitCode: Int32 { load(Layout.exitCode, as: Int32.self) }
}
