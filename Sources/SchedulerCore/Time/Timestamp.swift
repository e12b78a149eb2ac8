import Foundation

/// ISO 8601 text for instants, as the API and PostgreSQL exchange them.
public enum Timestamp {
    /// Rounds to the microsecond, the precision PostgreSQL stores. Never traps: an
    /// instant beyond what `Int64` microseconds can hold (or not a number) is clamped to
    /// the nearest end (NaN to 0).
    /// Counted from the reference date `Date` keeps (2001), not from 1970: a `Date` holds
    /// every microsecond exactly only within 2^32 s (136 years) of 2001, and adding the 31
    /// years in floating point first would cost instants after 2106 their last one. Further
    /// out a `Date` is a few microseconds off (9999: up to 32).
    public static func microseconds(_ date: Date) -> Int64 {
        if date.timeIntervalSinceReferenceDate.isNaN { return 0 }
        let sinceReference = clamped((date.timeIntervalSinceReferenceDate * 1_000_000).rounded())
        if sinceReference == .min { return .min }
        let (sum, overflow) = sinceReference.addingReportingOverflow(referenceMicroseconds)
        return overflow ? .max : sum
    }

    /// 2001-01-01 (the reference date of `Date`) in microseconds since 1970.
    static let referenceMicroseconds: Int64 = 978_307_200_000_000

    /// Whole seconds since the epoch, rounded down, clamped as `microseconds(_:)` is.
    public static func seconds(_ date: Date) -> Int64 {
        clamped(date.timeIntervalSince1970.rounded(.down))
    }

    /// A whole number as `Int64`, clamped to its range (NaN to 0) instead of trapping.
    public static func clamped(_ value: Double) -> Int64 {
        if value.isNaN { return 0 }
        // 2^63 is exactly representable; anything at or past it does not fit.
        if value >= 9_223_372_036_854_775_807.0 { return .max }
        if value <= -9_223_372_036_854_775_808.0 { return .min }
        return Int64(value)
    }

    public static func date(microseconds: Int64) -> Date {
        let (sinceReference, overflow) = microseconds.subtractingReportingOverflow(referenceMicroseconds)
        return Date(timeIntervalSinceReferenceDate: (overflow ? Double(Int64.min) : Double(sinceReference)) / 1_000_000)
    }

    /// `2026-11-30T16:32:09.123456Z`; the fraction only when it is not zero.
    public static func format(_ date: Date) -> String {
        let micros = microseconds(date)
        let seconds = micros.floorDivided(by: 1_000_000)
        let fraction = Int(micros.floorModulo(1_000_000))
        var text = CivilDateTime(wallSeconds: seconds).description
        if fraction != 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: 6 - digits.count) + digits
        }
        return text + "Z"
    }

    /// Reads `YYYY-MM-DD[T| ]hh:mm[:ss[.ffffff]][Z|±hh[:mm]|±hhmm]`. Without an offset the
    /// time is taken as UTC. Returns nil for anything else, including impossible dates.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ width: Int) -> Int? {
            guard index + width <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<index + width] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += width
            return value
        }
        func take(_ character: Character) -> Bool {
            guard index < bytes.count, bytes[index] == character.asciiValue else { return false }
            index += 1
            return true
        }
        guard let year = number(4), take("-"), let month = number(2), take("-"), let day = number(2) else { return nil }
        guard take("T") || take("t") || take(" ") else { return nil }
        guard let hour = number(2), take(":"), let minute = number(2) else { return nil }
        var second = 0
        var micros = 0
        if take(":") {
            guard let value = number(2) else { return nil }
            second = value
            if take(".") || take(",") {
                var digits = 0
                var scale = 100_000
                while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                    micros += Int(bytes[index] - UInt8(ascii: "0")) * scale
                    scale /= 10
                    digits += 1
                    index += 1
                }
                guard digits > 0 else { return nil }
            }
        }
        var offsetSeconds = 0
        if take("Z") || take("z") {
        } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let offsetHours = number(2), offsetHours <= 23 else { return nil }
            var offsetMinutes = 0
            if take(":") {
                guard let value = number(2) else { return nil }
                offsetMinutes = value
            } else if index < bytes.count {
                guard let value = number(2) else { return nil }
                offsetMinutes = value
            }
            guard offsetMinutes < 60 else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        }
        guard index == bytes.count else { return nil }
        guard (1...9999).contains(year), (1...12).contains(month),
            (1...CivilDateTime.daysInMonth(year: year, month: month)).contains(day),
            hour <= 23, minute <= 59, second <= 59
        else { return nil }
        let wall = CivilDateTime(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        let utcSeconds = wall.wallSeconds - Int64(offsetSeconds)
        // Years 1-9999 and offsets under a day: at most about 2.5e17, far inside Int64.
        return date(microseconds: utcSeconds * 1_000_000 + Int64(micros))
    }
}
