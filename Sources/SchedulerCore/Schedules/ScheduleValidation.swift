import Foundation

/// Turns a request body into the fields of a schedule, with the contract's messages.
///
/// Decisions where the original was silent:
/// - an empty string for `cron_definition` or `interval_definition` means none;
/// - PUT needs `endpoint` (as on create) and leaves other omitted fields as they are,
///   as Django REST Framework's update does; PATCH needs nothing;
/// - `next_send_at` given is taken as the next run; `null` asks the service to compute it;
/// - otherwise it is recomputed from now when the definition or time zone changes, or when
///   a recurring schedule is enabled again; else it is kept.
public enum ScheduleValidation {
    public static let maximumEndpointLength = 2048
    public static let maximumAuthTokenLength = 1024
    public static let maximumDefinitionLength = 256
    public static let maximumPausedNoteLength = 500
    /// `catchup_window` in seconds: at least 10 (beat's own rounds take up to a few seconds
    /// in a large burst, and must not count as downtime), at most 366 days.
    public static let catchupWindowRange = 10...31_622_400

    public static func fields(
        from body: JSONValue, existing: ScheduleFields?, partial: Bool, now: Date, limits: ScheduleLimits = .standard
    ) -> Result<ScheduleFields, FieldErrors> {
        guard let object = body.objectValue else {
            return .failure(FieldErrors("non_field_errors", "Invalid data. Expected a dictionary, but got \(body.kindName)."))
        }
        var errors = FieldErrors()
        var fields = existing ?? ScheduleFields(endpoint: "")

        if let value = object["frequency"] {
            switch value {
            case .null: fields.frequency = nil
            default:
                if let int = integer(value) {
                    if int < 1 {
                        errors.add("frequency", "Ensure this value is greater than or equal to 1.")
                    } else if int > Int(Int32.max) {
                        errors.add("frequency", "Ensure this value is less than or equal to \(Int32.max).")
                    } else {
                        fields.frequency = int
                    }
                } else {
                    errors.add("frequency", FieldErrors.notInteger)
                }
            }
        }

        if let value = object["cron_definition"] {
            switch optionalString(value, maximumLength: maximumDefinitionLength) {
            case .failure(let message): errors.add("cron_definition", message)
            case .success(let text):
                if let text, !text.trimmingCharacters(in: .whitespaces).isEmpty {
                    do {
                        _ = try CronExpression(parsing: text)
                        fields.cronDefinition = text
                    } catch {
                        errors.add("cron_definition", "\(text) is not a valid crontab string: \(error.reason)")
                    }
                } else {
                    fields.cronDefinition = nil
                }
            }
        }

        if let value = object["interval_definition"] {
            switch optionalString(value, maximumLength: maximumDefinitionLength) {
            case .failure(let message): errors.add("interval_definition", message)
            case .success(let text):
                if let text, !text.trimmingCharacters(in: .whitespaces).isEmpty {
                    if let interval = IntervalDefinition(parsing: text) {
                        if let problem = ScheduleTiming.interval(interval).violation(of: limits) {
                            errors.add("interval_definition", "\(text) is not allowed: \(problem).")
                        } else {
                            fields.intervalDefinition = text
                        }
                    } else {
                        errors.add("interval_definition", "\(text) \(IntervalDefinition.errorSuffix)")
                    }
                } else {
                    fields.intervalDefinition = nil
                }
            }
        }

        if let value = object["timezone"] {
            switch value {
            case .string(let name) where !name.isEmpty && name.utf8.count <= 64 && TimeZone(identifier: name) != nil:
                fields.timezone = name
            case .string(let name):
                errors.add("timezone", "\(name) is not a known IANA time zone (for example UTC or Europe/London).")
            case .null: errors.add("timezone", FieldErrors.notNull)
            default: errors.add("timezone", FieldErrors.notString)
            }
        }

        if let value = object["endpoint"] {
            switch value {
            case .string(let url) where url.unicodeScalars.contains(where: isControl):
                errors.add("endpoint", FieldErrors.controlCharacters)
            case .string(let url) where isHTTPURL(url):
                if let refusal = limits.egress.refusal(forURL: url) {
                    errors.add("endpoint", "Deliveries may not go to this address: \(refusal).")
                } else {
                    fields.endpoint = url
                }
            case .string(let url) where url.isEmpty:
                errors.add("endpoint", "This field may not be blank.")
            case .string: errors.add("endpoint", FieldErrors.invalidURL)
            case .null: errors.add("endpoint", FieldErrors.notNull)
            default: errors.add("endpoint", FieldErrors.notString)
            }
        } else if !partial {
            errors.add("endpoint", FieldErrors.required)
        }

        if let value = object["payload"] {
            let size = value.serialized.utf8.count
            if size > limits.maximumPayloadBytes {
                errors.add(
                    "payload", "Ensure the payload has no more than \(limits.maximumPayloadBytes) bytes as JSON (it has \(size)).")
            } else {
                fields.payload = value
            }
        }

        if let value = object["auth_token"] {
            switch optionalString(value, maximumLength: maximumAuthTokenLength) {
            case .failure(let message): errors.add("auth_token", message)
            case .success(let text?) where text.unicodeScalars.contains(where: isControl):
                // It becomes a header of the POST: a line break would add headers of its own.
                errors.add("auth_token", FieldErrors.controlCharacters)
            case .success(let text): fields.authToken = text
            }
        }

        var nextSendAtGiven = false
        if let value = object["next_send_at"] {
            switch value {
            case .null:
                fields.nextSendAt = nil
            case .string(let text):
                if let date = Timestamp.parse(text) {
                    let latest = limits.latestNextSendAt(now: Timestamp.microseconds(now))
                    let micros = Timestamp.microseconds(date)
                    if micros < ScheduleLimits.earliestInstant || micros > latest {
                        let ahead = limits.horizon.map { " (at most \(ScheduleLimits.describe(microseconds: $0)) ahead)" } ?? ""
                        errors.add(
                            "next_send_at",
                            "Ensure this datetime is between 1970-01-01T00:00:00Z and \(Timestamp.format(Timestamp.date(microseconds: latest)))\(ahead)."
                        )
                    } else {
                        fields.nextSendAt = date
                        nextSendAtGiven = true
                    }
                } else {
                    errors.add("next_send_at", FieldErrors.badDatetime)
                }
            default:
                errors.add("next_send_at", FieldErrors.badDatetime)
            }
        }

        if let value = object["enabled"] {
            if let bool = boolean(value) {
                fields.enabled = bool
            } else {
                errors.add("enabled", value == .null ? FieldErrors.notNull : FieldErrors.notBoolean)
            }
        }

        if let value = object["paused_note"] {
            switch optionalString(value, maximumLength: maximumPausedNoteLength) {
            case .failure(let message): errors.add("paused_note", message)
            case .success(let text?) where text.unicodeScalars.contains(where: isControl):
                errors.add("paused_note", FieldErrors.controlCharacters)
            case .success(let text):
                // A note belongs to a pause: refused on a schedule that stays enabled; on one
                // being enabled again (a PUT of what GET returned), it is cleared below.
                if text != nil && fields.enabled && existing?.enabled != false {
                    errors.add("paused_note", "A note is kept only while the schedule is paused: send it with \"enabled\": false.")
                } else {
                    fields.pausedNote = text
                }
            }
        }
        if fields.enabled { fields.pausedNote = nil }

        for (key, keyPath) in [("start_at", \ScheduleWindow.start), ("end_at", \ScheduleWindow.end)] {
            guard let value = object[key] else { continue }
            switch value {
            case .null: fields.window[keyPath: keyPath] = nil
            case .string(let text):
                if let date = Timestamp.parse(text), ScheduleLimits.contains(instant: Timestamp.microseconds(date)) {
                    fields.window[keyPath: keyPath] = date
                } else if Timestamp.parse(text) != nil {
                    errors.add(key, "Ensure this datetime is between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z.")
                } else {
                    errors.add(key, FieldErrors.badDatetime)
                }
            default: errors.add(key, FieldErrors.badDatetime)
            }
        }
        if let start = fields.window.start, let end = fields.window.end, end <= start {
            errors.add("end_at", "Ensure end_at is after start_at.")
        }

        for (key, choices) in [
            ("dst_gap", DaylightSaving.Gap.allCases.map(\.rawValue)), ("dst_overlap", DaylightSaving.Overlap.allCases.map(\.rawValue)),
        ] {
            guard let value = object[key] else { continue }
            guard let text = value.stringValue, choices.contains(text) else {
                errors.add(
                    key, "\"\(value.stringValue ?? value.serialized)\" is not a valid choice: one of \(choices.joined(separator: ", ")).")
                continue
            }
            if key == "dst_gap" {
                fields.daylightSaving.gap = DaylightSaving.Gap(rawValue: text)!
            } else {
                fields.daylightSaving.overlap = DaylightSaving.Overlap(rawValue: text)!
            }
        }

        if let value = object["overlap"] {
            if let policy = value.stringValue.flatMap(OverlapPolicy.init(rawValue:)) {
                fields.overlap = policy
            } else {
                let choices = OverlapPolicy.allCases.map(\.rawValue).joined(separator: ", ")
                errors.add("overlap", "\"\(value.stringValue ?? value.serialized)\" is not a valid choice: one of \(choices).")
            }
        }

        if let value = object["jitter"] {
            if value == .null {
                fields.jitter = 0
            } else if let seconds = integer(value), (0...ScheduleJitter.maximumSeconds).contains(seconds) {
                fields.jitter = seconds
            } else {
                errors.add("jitter", "Ensure this value is a whole number of seconds from 0 to \(ScheduleJitter.maximumSeconds).")
            }
        }

        if let value = object["catchup_window"] {
            if value == .null {
                fields.catchupWindow = nil
            } else if let seconds = integer(value) {
                if catchupWindowRange.contains(seconds) {
                    fields.catchupWindow = seconds
                } else {
                    errors.add(
                        "catchup_window",
                        "Ensure this value is from \(catchupWindowRange.lowerBound) to \(catchupWindowRange.upperBound) seconds, or null (no limit)."
                    )
                }
            } else {
                errors.add("catchup_window", FieldErrors.notInteger)
            }
        }

        if errors.isEmpty, fields.cronDefinition != nil, fields.intervalDefinition != nil {
            errors.add(
                "non_field_errors",
                "Give either cron_definition or interval_definition, not both (set the other to null).")
        }
        if errors.isEmpty, case .cron(let cron, let zone, let daylightSaving) = fields.timing,
            cron.nextDate(after: now, in: zone, daylightSaving: daylightSaving) == nil,
            let text = fields.cronDefinition
        {
            errors.add("cron_definition", "\(text) is not a valid crontab string: it never fires after now")
        }
        if nextSendAtGiven, let next = fields.nextSendAt, !fields.window.contains(next) {
            errors.add("next_send_at", "Ensure this datetime is within start_at and end_at.")
        }
        guard errors.isEmpty else { return .failure(errors) }

        if !nextSendAtGiven {
            let timingChanged =
                existing == nil || existing?.cronDefinition != fields.cronDefinition
                || existing?.intervalDefinition != fields.intervalDefinition
                || (fields.cronDefinition != nil
                    && (existing?.timezone != fields.timezone || existing?.daylightSaving != fields.daylightSaving))
            let windowChanged = existing.map { $0.window != fields.window } ?? false
            let reenabled = existing?.enabled == false && fields.enabled
            let askedToCompute = object["next_send_at"] == .null
            if fields.timing.isRecurring && (timingChanged || askedToCompute || reenabled || windowChanged) {
                fields.nextSendAt = fields.window.firstRun(of: fields.timing, after: now)
            } else if timingChanged || askedToCompute {
                fields.nextSendAt = nil
            } else if let next = fields.nextSendAt, !fields.window.contains(next) {
                // A one-off whose time the new window leaves out does not run.
                fields.nextSendAt = nil
            }
        }
        return .success(fields)
    }

    /// C0 and C1 control characters, DEL, and the Unicode line and paragraph separators:
    /// none may reach a header, a URL or a log line.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// An absolute http or https URL with a host, at most 2,048 bytes.
    public static func isHTTPURL(_ text: String) -> Bool {
        guard text.utf8.count <= maximumEndpointLength, !text.contains(where: { $0.isWhitespace || $0.isNewline }),
            !text.unicodeScalars.contains(where: isControl),
            let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty,
            text.lowercased().hasPrefix(scheme + "://")
        else { return false }
        if let port = components.port, !(1...65535).contains(port) { return false }
        return true
    }

    /// A plain address check: `local@domain.tld`, no spaces, at most 254 bytes.
    public static func isEmail(_ text: String) -> Bool {
        guard text.utf8.count <= 254 else { return false }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64,
            !text.contains(where: { $0.isWhitespace || $0.isNewline || $0 == "," || $0 == "<" || $0 == ">" })
        else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return labels.count >= 2
            && labels.allSatisfy { label in
                !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                    && label.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" }
            }
    }

    /// Django REST Framework's integer field: a whole JSON number or a string of digits.
    static func integer(_ value: JSONValue) -> Int? {
        switch value {
        case .number: return value.integerValue
        case .string(let text): return Int(text.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }

    /// Django REST Framework's boolean field: true/false, 1/0 and their usual spellings.
    static func boolean(_ value: JSONValue) -> Bool? {
        switch value {
        case .bool(let bool): return bool
        case .number(let literal): return literal == "1" ? true : literal == "0" ? false : nil
        case .string(let text):
            switch text.lowercased() {
            case "true", "1", "yes", "on", "t", "y": return true
            case "false", "0", "no", "off", "f", "n": return false
            default: return nil
            }
        default: return nil
        }
    }

    static func optionalString(_ value: JSONValue, maximumLength: Int) -> Result<String?, FieldErrorMessage> {
        switch value {
        case .null: return .success(nil)
        case .string(let text) where text.utf8.count > maximumLength:
            return .failure(FieldErrorMessage("Ensure this field has no more than \(maximumLength) bytes (UTF-8)."))
        case .string(let text) where text.unicodeScalars.contains("\u{0}"):
            return .failure(FieldErrorMessage("Null characters are not allowed."))
        case .string(let text): return .success(text)
        default: return .failure(FieldErrorMessage(FieldErrors.notString))
        }
    }
}

/// One message for one field.
public struct FieldErrorMessage: Error, Sendable, Equatable, ExpressibleByStringLiteral {
    public let message: String
    public init(_ message: String) { self.message = message }
    public init(stringLiteral value: String) { message = value }
}

extension FieldErrors {
    mutating func add(_ field: String, _ message: FieldErrorMessage) { add(field, message.message) }
}
