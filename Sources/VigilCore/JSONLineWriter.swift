import Foundation
/// Appends JSON to a reusable byte buffer. Nothing here allocates once the buffer has grown to
/// the size of a line, which is what keeps event encoding off the heap.
public struct JSONLineWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 4096) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Bytes that are already JSON (an encoded object).
    public mutating func rawBytes(_ json: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: json)
    }

    @inline(__always)
    public mutating func byte(_ value: UInt8) {
        bytes.append(value)
    }

    /// `"key":` — keys are literals in this code base and need no escaping.
    @inline(__always)
    public mutating func key(_ name: StaticString) {
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func string(_ text: StaticString) {
        bytes.append(UInt8(ascii: "\""))
        raw(text)
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { string(UnsafeRawBufferPointer($0)) }
    }

    /// `"key":"<bytes>"` for bytes that may not be UTF-8 (a file name can be any bytes): the
    /// string shows them with U+FFFD in place of what is not UTF-8, so the line stays valid JSON,
    /// and then `"key_base64":"<the bytes>"` keeps them recoverable (only when they are not UTF-8).
    public mutating func field(_ name: StaticString, bytes raw: UnsafeRawBufferPointer) {
        key(name)
        string(raw)
        if !Self.isUTF8(raw) {
            bytes.append(contentsOf: [UInt8(ascii: ","), UInt8(ascii: "\"")])
            self.raw(name)
            self.raw("_base64\":")
            base64(raw)
        }
    }

    /// True when the bytes are valid UTF-8 (ASCII is checked without decoding).
    @inline(__always)
    public static func isUTF8(_ raw: UnsafeRawBufferPointer) -> Bool {
        !raw.contains(where: { $0 >= 0x80 }) || String(validating: raw, as: UTF8.self) != nil
    }

    /// A JSON string holding the base64 (RFC 4648) of the bytes.
    public mutating func base64(_ raw: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: Data(raw).base64EncodedData())
        bytes.append(UInt8(ascii: "\""))
    }

    /// A JSON string from raw bytes (paths, argv, comm). Invalid UTF-8 is replaced by U+FFFD so
    /// that every line stays valid JSON (`field(_:bytes:)` also keeps the bytes).
    public mutating func string(_ raw: UnsafeRawBufferPointer) {
        if raw.contains(where: { $0 >= 0x80 }) {
            let decoded = String(decoding: raw, as: UTF8.self)
            var copy = decoded
            copy.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0)) }
        } else {
            appendEscaped(raw)
        }
    }

    private mutating func appendEscaped(_ input: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        // Copy runs of bytes that need no escaping in one append; most strings are one run.
        var runStart = 0
        for (index, b) in input.enumerated() where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[runStart..<index]))
            runStart = index + 1
            switch b {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(b)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(b)
            case UInt8(ascii: "\n"): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\t"): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20:
                raw("\\u00")
                bytes.append(Self.hexDigit(b >> 4))
                bytes.append(Self.hexDigit(b & 0xf))
            default: break
            }
        }
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[runStart...]))
        bytes.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    public mutating func integer<T: BinaryInteger>(_ value: T) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            unsigned(UInt64(-Int64(value)))
        } else {
            unsigned(UInt64(value))
        }
    }

    public mutating func unsigned(_ value: UInt64, minimumDigits: Int = 1) {
        // Digits come out last first; write them into a small stack buffer, then append once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { digits in
            var v = value
            var index = 24
            repeat {
                index -= 1
                digits[index] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            } while v > 0 || 24 - index < minimumDigits
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[index...]))
        }
    }

    public mutating func bool(_ value: Bool) {
        value ? raw("true") : raw("false")
    }

    public mutating func newline() {
        bytes.append(UInt8(ascii: "\n"))
    }
}
