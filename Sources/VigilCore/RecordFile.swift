/// Raw ring-buffer records saved as they came from the kernel, for replay without a kernel
/// (tests, benchmarks, offline learning): each record is a little-endian UInt32 length followed by
/// that many bytes, exactly as `RawEvent` decodes them.
public enum RecordFile {
    public static func append(_ record: UnsafeRawBufferPointer, to data: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(record.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: record)
    }

    /// Calls `body` with each record in `data`; throws on a cut or damaged file, naming the offset.
    public static func forEachRecord(in data: UnsafeRawBufferPointer,
                                     _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = 0
        while offset < data.count {
            guard offset + 4 <= data.count else {
                throw DecodeError(description: "record file cut inside a length at byte \(offset)")
            }
            let length = Int(UInt32(littleEndian: data.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            offset += 4
            guard length <= data.count - offset else {
                throw DecodeError(description: "record file cut: record at byte \(offset - 4) says \(length) bytes, \(data.count - offset) remain")
            }
            try body(UnsafeRawBufferPointer(rebasing: data[offset..<offset + length]))
            offset += length
        }
    }
}
