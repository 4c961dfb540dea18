import Foundation

/// The kernel log as /dev/kmsg holds it now (without waiting for more).
public enum KernelLog {
    public static func readAvailable() -> String {
        let fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 {
                text += String(decoding: buffer[0..<n], as: UTF8.self)
                if !text.hasSuffix("\n") { text += "\n" }
            } else if n < 0 && errno == EPIPE {
                continue // a record was overwritten while reading: skip it
            } else {
                break // EAGAIN: nothing more
            }
        }
        return text
    }
}
