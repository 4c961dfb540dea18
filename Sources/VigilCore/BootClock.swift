#if canImport(Glibc)
import Glibc
#endif

/// Turns the kernel's boot-time stamps (bpf_ktime_get_boot_ns, which keeps counting through
/// suspend) into wall-clock time, and wall-clock time into RFC 3339 text without Foundation.
public struct BootClock: Sendable {
    /// Wall-clock nanoseconds minus boot-time nanoseconds, measured once.
    public let offsetNanoseconds: Int64

    public init(offsetNanoseconds: Int64) {
        self.offsetNanoseconds = offsetNanoseconds
    }

    /// Reads both clocks now.
    public static func system() -> BootClock {
        var boot = timespec(), real = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        clock_gettime(CLOCK_REALTIME, &real)
        let bootNs = Int64(boot.tv_sec) * 1_000_000_000 + Int64(boot.tv_nsec)
        let realNs = Int64(real.tv_sec) * 1_000_000_000 + Int64(real.tv_nsec)
        return BootClock(offsetNanoseconds: realNs - bootNs)
    }

    public static func nowBootNanoseconds() -> UInt64 {
        var boot = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        return UInt64(boot.tv_sec) * 1_000_000_000 + UInt64(boot.tv_nsec)
    }

    public func unixNanoseconds(boot: UInt64) -> Int64 {
        Int64(bitPattern: boot) &+ offsetNanoseconds
    }

    /// `"2026-11-26T19:51:24.123456789Z"`, quotes included.
    public func writeTimestamp(boot: UInt64, to out: inout JSONLineWriter) {
        Self.writeRFC3339(unixNanoseconds: unixNanoseconds(boot: boot), to: &out)
    }

    public static func writeRFC3339(unixNanoseconds: Int64, to out: inout JSONLineWriter) {
        let seconds = unixNanoseconds >= 0 ? unixNanoseconds / 1_000_000_000 : (unixNanoseconds - 999_999_999) / 1_000_000_000
        let nanos = UInt64(unixNanoseconds - seconds * 1_000_000_000)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = UInt64(seconds - days * 86_400)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        out.byte(UInt8(ascii: "\""))
        out.unsigned(UInt64(year), minimumDigits: 4)
        out.byte(UInt8(ascii: "-"))
        out.unsigned(UInt64(month), minimumDigits: 2)
        out.byte(UInt8(ascii: "-"))
        out.unsigned(UInt64(day), minimumDigits: 2)
        out.byte(UInt8(ascii: "T"))
        out.unsigned(secondOfDay / 3600, minimumDigits: 2)
        out.byte(UInt8(ascii: ":"))
        out.unsigned(secondOfDay / 60 % 60, minimumDigits: 2)
        out.byte(UInt8(ascii: ":"))
        out.unsigned(secondOfDay % 60, minimumDigits: 2)
        out.byte(UInt8(ascii: "."))
        out.unsigned(nanos, minimumDigits: 9)
        out.raw("Z\"")
    }

    /// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
