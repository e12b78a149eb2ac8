import Foundation
import SchedulerCore
import Testing

/// Random and extreme values thrown at every parser and every computation that takes a
/// value from outside: none may trap (a trap would end this test process), and each
/// answer must stay inside its documented bounds. The seed is fixed, so a failure repeats.
@Suite("Hostile input: property tests with a fixed seed")
struct HostileInputTests {
    static let rounds = 3000

    /// Int64's edges and the numbers around them, zero, and a few near-misses.
    static let extremeIntegers: [String] = [
        "0", "-0", "1", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "99999999999999999", "106751991", "106751992", "18446744073709551615", "2147483647", "2147483648",
        "000000000000000000000000000001", "1e9", "0x10", "+5", " 5", "5 ", "", "٣", "１２",
    ]

    static let garbage: [String] = [
        "", " ", "\u{0}", "\r\n", "abc", "∞", "NaN", "-", "--1", "1..2", "\u{202E}5", String(repeating: "9", count: 400),
        String(repeating: "a", count: 10_000),
    ]

    @Test("interval definitions: any text parses or not, and a parsed one never overflows a next run")
    func intervals() throws {
        var random = SeededRandom(seed: 1)
        let periods = ["days", "day", "hours", "minutes", "seconds", "microseconds", "weeks", "DAYS", ""]
        var texts: [String] = Self.garbage
        for number in Self.extremeIntegers { for period in periods { texts.append("\(number) \(period)") } }
        for _ in 0..<Self.rounds {
            texts.append("\(random.extremeInt64()) \(random.pick(periods))")
            texts.append(random.text(maxLength: 24))
        }
        let instants = Self.extremeDates(&random)
        for text in texts {
            guard let interval = IntervalDefinition(parsing: text) else { continue }
            #expect(interval.microseconds > 0, "\(text)")
            let timing = ScheduleTiming.interval(interval)
            for now in instants {
                if let next = timing.nextRun(after: now) {
                    #expect(next > now, "\(text) after \(now)")
                    #expect(ScheduleLimits.contains(instant: Timestamp.microseconds(next)))
                }
                let scheduled = random.pick(instants)
                if let next = try? timing.nextRun(afterFiring: scheduled, now: now) {
                    #expect(next > now, "\(text): fired \(scheduled) at \(now) gave \(next)")
                }
            }
        }
        // And the other half: what is well formed parses, to the value it says.
        let units: [(String, Int64)] = [
            ("days", 86_400_000_000), ("hours", 3_600_000_000), ("minutes", 60_000_000), ("seconds", 1_000_000),
        ]
        for _ in 0..<Self.rounds {
            let (name, unit) = random.pick(units)
            let every = Int64(random.int(in: 1...1_000_000))
            let singular = every == 1 && random.bool()
            let text = "\(every) \(singular ? String(name.dropLast()) : name)"
            let parsed = IntervalDefinition(parsing: text)
            #expect(parsed?.microseconds == every * unit, "\(text) parses to \(every * unit) µs")
        }
    }

    @Test("the interval of the report (106751991 days) is refused by the API and cannot be fired")
    func reportedInterval() throws {
        let interval = try #require(IntervalDefinition(parsing: "106751991 days"))
        let timing = ScheduleTiming.interval(interval)
        #expect(timing.violation(of: .standard) != nil)
        #expect(throws: ScheduleTimingError.self) {
            try timing.nextRun(afterFiring: date("2020-01-01T00:00:00Z"), now: date("2026-01-01T00:00:00Z"))
        }
        let micro = ScheduleTiming.interval(try #require(IntervalDefinition(parsing: "1 microseconds")))
        #expect(micro.violation(of: .standard)?.contains("shorter than the minimum of 1s") == true)
    }

    @Test("Retry-After: seconds and HTTP dates are clamped; negative, garbage and huge values never trap")
    func retryAfter() {
        var random = SeededRandom(seed: 2)
        let now = date("2026-06-01T12:00:00Z")
        var values =
            Self.extremeIntegers + Self.garbage + [
                "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 01 Jun 2026 12:00:30 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
            ]
        for _ in 0..<Self.rounds {
            values.append(String(random.extremeInt64()))
            values.append(random.text(maxLength: 40))
        }
        for value in values {
            if let milliseconds = RetryPolicy.milliseconds(retryAfter: value, now: now) {
                #expect((0...RetryPolicy.maximumRetryAfter).contains(milliseconds), "\(value) → \(milliseconds)")
            }
        }
        // What is well formed is read as what it says: seconds, and HTTP dates within the bound.
        for _ in 0..<Self.rounds {
            let seconds = random.int(in: 0...(RetryPolicy.maximumRetryAfter / 1000))
            #expect(RetryPolicy.milliseconds(retryAfter: String(seconds), now: now) == seconds * 1000, "\(seconds)")
            let later = now.addingTimeInterval(Double(random.int(in: 0...2_000_000)))
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
            let header = formatter.string(from: later)
            #expect(
                RetryPolicy.milliseconds(retryAfter: header, now: now) == Int(later.timeIntervalSince(now).rounded(.down)) * 1000,
                "\(header)")
        }
        #expect(RetryPolicy.milliseconds(retryAfter: "99999999999999999", now: now) == RetryPolicy.maximumRetryAfter)
        #expect(RetryPolicy.milliseconds(retryAfter: "-5", now: now) == nil)
        #expect(RetryPolicy.milliseconds(retryAfter: "120", now: now) == 120_000)
        #expect(RetryPolicy.milliseconds(retryAfter: "Mon, 01 Jun 2026 12:00:30 GMT", now: now) == 30_000)
        #expect(RetryPolicy.milliseconds(retryAfter: "Fri, 31 Dec 9999 23:59:59 GMT", now: now) == RetryPolicy.maximumRetryAfter)
        #expect(RetryPolicy.milliseconds(retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT", now: now) == 0)
        // And the decision it feeds: the longest delay queue, not a trap.
        let policy = RetryPolicy(maxAttempts: 6, delays: [5000, 30_000, 300_000])
        #expect(
            policy.decide(status: 503, error: nil, attempt: 1, retryAfter: "99999999999999999", now: now)
                == .retry(delayIndex: 2, reason: "HTTP 503"))
    }

    @Test("paging: any limit and offset give a bounded page, and the links never overflow")
    func paging() {
        var random = SeededRandom(seed: 3)
        var values = Self.extremeIntegers + Self.garbage
        for _ in 0..<Self.rounds { values.append(String(random.extremeInt64())) }
        for limit in values + [nil] {
            let offset = random.pick(values + [nil])
            let page = PageRequest(limit: limit, offset: offset, defaultLimit: 100, maximumLimit: 1000)
            #expect((1...1000).contains(page.limit))
            #expect((0...PageRequest.maximumOffset).contains(page.offset))
            for count in [0, 1, 1000, Int(Int32.max), Int.max] {
                if let next = page.nextOffset(count: count) { #expect(next > page.offset && next < count) }
            }
            let previous = page.previous
            if let before = previous.offset { #expect(before >= 0 && before < page.offset) }
        }
        let reported = PageRequest(limit: nil, offset: "9223372036854775807", defaultLimit: 100, maximumLimit: 1000)
        #expect(reported.offset == PageRequest.maximumOffset)
        #expect(reported.nextOffset(count: 5) == nil)
        #expect(
            PageRequest(limit: "-5", offset: "-5", defaultLimit: 100, maximumLimit: 1000)
                == PageRequest(limit: nil, offset: nil, defaultLimit: 100, maximumLimit: 1000))
    }

    @Test("timestamps: any text parses within 0001-9999 or not at all; any Date converts without trapping")
    func timestamps() throws {
        var random = SeededRandom(seed: 4)
        var texts =
            Self.garbage + [
                "9999-12-31T23:59:59.999999Z", "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "2026-02-29T00:00:00Z",
                "2026-01-01T00:00:00+23:59", "2026-01-01T00:00:00-99:00", "2026-01-01T24:00:00Z", "-infinity", "infinity",
                "2026-01-01T00:00:00.99999999999999999999999999Z", "0044-03-15 00:00:00+00 BC",
            ]
        for _ in 0..<Self.rounds { texts.append(random.timestampLike()) }
        for text in texts {
            guard let parsed = Timestamp.parse(text) else { continue }
            let micros = Timestamp.microseconds(parsed)
            #expect(micros > -62_200_000_000_000_000 && micros <= ScheduleLimits.latestInstant + 86_400_000_000, "\(text)")
            _ = Timestamp.format(parsed)
        }
        for instant in Self.extremeDates(&random) + [Date(timeIntervalSince1970: .nan), Date(timeIntervalSince1970: .infinity)] {
            _ = Timestamp.format(instant)
            _ = Timestamp.seconds(instant)
        }
        // The other half: the text of every instant of the range parses. Within 136 years of
        // 2001 (where a Date holds each microsecond) back to the same instant and text;
        // further out within the 32 µs a Date can tell apart there.
        let exact: ClosedRange<Int64> = -3_312_000_000...5_268_000_000
        for round in 0..<Self.rounds {
            let seconds =
                round.isMultiple(of: 2) ? random.int(in: -62_000_000_000...253_402_300_799) : random.int(in: -3_000_000_000...5_000_000_000)
            let micros = Int64(seconds) * 1_000_000 + Int64(random.int(in: 0...999_999))
            let text = Timestamp.format(Timestamp.date(microseconds: micros))
            let parsed = try #require(Timestamp.parse(text), "\(text) parses")
            if exact.contains(Int64(seconds)) {
                #expect(Timestamp.microseconds(parsed) == micros && Timestamp.format(parsed) == text, "\(text): \(micros)")
            } else {
                #expect(abs(Timestamp.microseconds(parsed) - micros) <= 32, "\(text): \(micros)")
            }
        }
        #expect(Timestamp.microseconds(Date(timeIntervalSince1970: .infinity)) == .max)
        #expect(Timestamp.microseconds(Date(timeIntervalSince1970: -.infinity)) == .min)
        #expect(Timestamp.microseconds(Date(timeIntervalSince1970: .nan)) == 0)
    }

    @Test("crontabs: token soup parses or is refused, and a parsed one finds its next run from any date")
    func crontabs() {
        var random = SeededRandom(seed: 5)
        let tokens = [
            "*", "?", "0", "59", "60", "-1", "1-5", "5-1", "*/15", "*/0", "*/99999999999999999999", "1,2", ",", "jan", "mon", "7",
            "2099", "2100", "1969", "1970-2099/50", "L", "#", "@hourly", "@reboot", "9223372036854775807", "",
        ]
        var expressions: [String] = Self.garbage
        for _ in 0..<Self.rounds {
            expressions.append((0..<random.int(in: 1...7)).map { _ in random.pick(tokens) }.joined(separator: " "))
        }
        let zones = ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
        let instants = Self.extremeDates(&random)
        for text in expressions {
            guard let cron = try? CronExpression(parsing: text) else { continue }
            for _ in 0..<3 {
                let after = random.pick(instants)
                if let next = cron.nextDate(after: after, in: zone(random.pick(zones))) {
                    #expect(next > after, "\(text) after \(after)")
                }
            }
        }
        // The other half: a well-formed "minute hour * * *" parses, and its next run falls on
        // that minute and hour of its zone, within a day.
        for _ in 0..<Self.rounds {
            let (minute, hour) = (random.int(in: 0...59), random.int(in: 0...23))
            let name = random.pick(zones)
            let text = "\(minute) \(hour) * * *"
            let after = Self.randomNow(&random)
            let cron = try? CronExpression(parsing: text)
            #expect(cron != nil, "\(text) parses")
            guard let next = cron?.nextDate(after: after, in: zone(name)) else {
                Issue.record("\(text) has a next run after \(after) in \(name)")
                continue
            }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone(name)
            let parts = calendar.dateComponents([.hour, .minute], from: next)
            // A daylight-saving gap may move a run that falls into it; otherwise it is exact.
            #expect(next > after && next.timeIntervalSince(after) <= 2 * 86_400, "\(text) after \(after): \(next)")
            if parts.minute != minute || parts.hour != hour {
                let gap =
                    zone(name).daylightSavingTimeOffset(for: next)
                    != zone(name).daylightSavingTimeOffset(for: next.addingTimeInterval(-86_400))
                #expect(gap, "\(text) in \(name) after \(after): \(next) is \(parts.hour ?? -1):\(parts.minute ?? -1)")
            }
        }
    }

    @Test("validation refuses what would become a header or an unbounded time, naming the field")
    func validation() throws {
        let now = date("2026-06-01T12:00:00Z")
        func errors(_ body: String) throws -> FieldErrors {
            guard
                case .failure(let errors) = ScheduleValidation.fields(
                    from: try JSONParser.parse(body), existing: nil, partial: false, now: now)
            else { throw TestFailure("expected errors for \(body)") }
            return errors
        }
        let endpoint = #""endpoint":"http://example.org/hook""#
        #expect(
            try errors(#"{\#(endpoint),"auth_token":"abc\r\nX-Injected: yes"}"#).messages(for: "auth_token") == [
                FieldErrors.controlCharacters
            ])
        #expect(try !errors(#"{\#(endpoint),"auth_token":"abc\u0085def"}"#).messages(for: "auth_token").isEmpty)
        #expect(try !errors(#"{"endpoint":"http://example.org/a\u0001b"}"#).messages(for: "endpoint").isEmpty)
        #expect(
            try errors(#"{\#(endpoint),"interval_definition":"1 microseconds"}"#).messages(for: "interval_definition").first?.contains(
                "minimum") == true)
        #expect(try !errors(#"{\#(endpoint),"interval_definition":"106751991 days"}"#).messages(for: "interval_definition").isEmpty)
        // As the original: any instant a crontab reaches (2099) or further, up to the last one a
        // program can compute with; past it, refused.
        for accepted in ["2099-01-01T00:00:00Z", "2099-12-31T23:59:00Z", "9999-12-31T23:59:59Z"] {
            let result = ScheduleValidation.fields(
                from: try JSONParser.parse(#"{\#(endpoint),"next_send_at":"\#(accepted)"}"#), existing: nil, partial: false, now: now)
            #expect(try result.get().nextSendAt == Timestamp.parse(accepted), "\(accepted)")
        }
        #expect(try !errors(#"{\#(endpoint),"next_send_at":"10000-01-01T00:00:00Z"}"#).messages(for: "next_send_at").isEmpty)
        #expect(try !errors(#"{\#(endpoint),"next_send_at":"1969-12-31T23:59:59Z"}"#).messages(for: "next_send_at").isEmpty)
        #expect(try !errors(#"{\#(endpoint),"frequency":9223372036854775807}"#).messages(for: "frequency").isEmpty)
        #expect(try !errors(#"{\#(endpoint),"frequency":-9223372036854775808}"#).messages(for: "frequency").isEmpty)
        #expect(try !errors(#"{\#(endpoint),"cron_definition":"0 0 1 1 * 1999"}"#).messages(for: "cron_definition").isEmpty)
        let big = String(repeating: "x", count: ScheduleLimits.standard.maximumPayloadBytes)
        #expect(try !errors(#"{\#(endpoint),"payload":"\#(big)"}"#).messages(for: "payload").isEmpty)
        // Inside the bounds, all is well.
        let fine = ScheduleValidation.fields(
            from: try JSONParser.parse(#"{\#(endpoint),"interval_definition":"1 seconds","auth_token":"abc\tdef is refused"}"#),
            existing: nil, partial: false, now: now)
        #expect(throws: FieldErrors.self) { try fine.get() }
        let ok = try ScheduleValidation.fields(
            from: try JSONParser.parse(
                #"{\#(endpoint),"interval_definition":"1 seconds","auth_token":"abc def","next_send_at":"2036-05-01T00:00:00Z"}"#),
            existing: nil, partial: false, now: now
        ).get()
        #expect(ok.authToken == "abc def")
    }

    @Test("random schedule bodies get fields or field errors, never a trap")
    func randomBodies() throws {
        var random = SeededRandom(seed: 6)
        let keys = [
            "endpoint", "cron_definition", "interval_definition", "timezone", "payload", "auth_token", "next_send_at", "enabled",
            "frequency",
        ]
        let values: [JSONValue] = [
            .null, .bool(true), .number("9223372036854775807"), .number("-1"), .number("1e308"), .number("0.5"), .string(""),
            .string("http://example.org/hook"), .string("5 minutes"), .string("1 microseconds"), .string("* * * * *"),
            .string("9999-12-31T23:59:59Z"), .string("Europe/London"), .string("\r\n"), .array([]), .object(JSONObject()),
        ]
        for _ in 0..<Self.rounds {
            var object = JSONObject()
            for _ in 0..<random.int(in: 0...6) {
                object[random.pick(keys)] = random.bool() ? random.pick(values) : .string(random.text(maxLength: 30))
            }
            let result = ScheduleValidation.fields(
                from: .object(object), existing: nil, partial: random.bool(), now: Self.randomNow(&random))
            if case .success(let fields) = result, let next = fields.nextSendAt {
                #expect(ScheduleLimits.contains(instant: Timestamp.microseconds(next)))
            }
        }
        // The other half: a well-formed body is accepted, with the fields it names.
        for round in 0..<Self.rounds {
            var object = JSONObject()
            object["endpoint"] = .string("https://example.org/hook/\(round)")
            if random.bool() {
                object["interval_definition"] = .string("\(random.int(in: 1...1000)) \(random.pick(["minutes", "hours", "days"]))")
            } else {
                object["cron_definition"] = .string("\(random.int(in: 0...59)) \(random.int(in: 0...23)) * * *")
            }
            if random.bool() { object["payload"] = .object(["round": .int(round)]) }
            if random.bool() { object["frequency"] = .int(random.int(in: 1...1000)) }
            let result = ScheduleValidation.fields(from: .object(object), existing: nil, partial: false, now: Self.randomNow(&random))
            guard case .success(let fields) = result else {
                Issue.record("a well-formed body is refused: \(JSONValue.object(object).serialized): \(result)")
                continue
            }
            #expect(fields.endpoint == "https://example.org/hook/\(round)")
        }
    }

    static func randomNow(_ random: inout SeededRandom) -> Date {
        Date(timeIntervalSince1970: Double(random.int(in: 0...4_000_000_000)))
    }

    /// Dates from the epoch's edges to Int64's, and ordinary ones.
    static func extremeDates(_ random: inout SeededRandom) -> [Date] {
        var dates = [
            Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: -1), Date.distantPast, Date.distantFuture,
            Timestamp.date(microseconds: .max), Timestamp.date(microseconds: .min),
            Timestamp.date(microseconds: ScheduleLimits.latestInstant),
            Date(timeIntervalSince1970: 1e300), Date(timeIntervalSince1970: -1e300), date("2026-03-29T01:00:00Z"),
        ]
        for _ in 0..<20 { dates.append(randomNow(&random)) }
        return dates
    }
}

/// SplitMix64: a small generator with a seed, so that every run draws the same values.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func bool() -> Bool { Bool.random(using: &self) }
    mutating func pick<T>(_ items: [T]) -> T { items[int(in: 0...(items.count - 1))] }

    /// Mostly edges: 0, ±1, Int64's ends, powers of ten; sometimes anything.
    mutating func extremeInt64() -> Int64 {
        switch int(in: 0...5) {
        case 0: return pick([0, 1, -1, .max, .min, .max - 1, .min + 1])
        case 1: return Int64(pick([1, 10, 1000, 1_000_000, 1_000_000_000_000, 1_000_000_000_000_000_000])) * (bool() ? 1 : -1)
        default: return Int64(bitPattern: next())
        }
    }

    /// Printable, control and non-ASCII characters mixed.
    mutating func text(maxLength: Int) -> String {
        let alphabet = Array("0123456789 -+:.,/*?@abcdefghijklmnopqrstuvwxyzTZ\u{0}\r\n\t\u{7F}\u{85}é∞日\u{202E}")
        return String((0..<int(in: 0...maxLength)).map { _ in pick(alphabet) })
    }

    /// Something close to an ISO 8601 timestamp, often a little wrong.
    mutating func timestampLike() -> String {
        func digits(_ count: Int, _ random: inout SeededRandom) -> String {
            String((0..<count).map { _ in random.pick(Array("0123456789")) })
        }
        var text = "\(digits(pick([1, 4, 4, 4, 5]), &self))-\(digits(2, &self))-\(digits(2, &self))\(pick(["T", " ", "t", "x"]))"
        text += "\(digits(2, &self)):\(digits(2, &self))"
        if bool() { text += ":\(digits(2, &self))" }
        if bool() { text += ".\(digits(int(in: 0...30), &self))" }
        text += pick(["Z", "", "+\(digits(2, &self)):\(digits(2, &self))", "-\(digits(4, &self))", "+99", "Zjunk"])
        return text
    }
}
