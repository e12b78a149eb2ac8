import Foundation
import SchedulerCore
import Testing

@Suite("Schedule validation")
struct ScheduleValidationTests {
    let now = date("2026-06-01T12:00:00Z")

    func create(_ body: String) throws -> Result<ScheduleFields, FieldErrors> {
        ScheduleValidation.fields(from: try JSONParser.parse(body), existing: nil, partial: false, now: now)
    }

    func errors(_ body: String) throws -> FieldErrors {
        guard case .failure(let errors) = try create(body) else { throw TestFailure("expected errors for \(body)") }
        return errors
    }

    @Test("a cron schedule gets its next run in its zone")
    func cron() throws {
        let fields = try create(
            #"{"endpoint":"http://example.org/hook","cron_definition":"0 9 * * *","timezone":"Europe/London","payload":{"a":1}}"#
        ).get()
        #expect(fields.nextSendAt == date("2026-06-02T08:00:00Z"))
        #expect(fields.payload == .object(["a": .number("1")]))
        #expect(fields.enabled)
    }

    @Test("an interval schedule first runs one interval from now")
    func interval() throws {
        let fields = try create(#"{"endpoint":"https://example.org/hook","interval_definition":"5 minutes"}"#).get()
        #expect(fields.nextSendAt == date("2026-06-01T12:05:00Z"))
    }

    @Test("with neither definition, next_send_at makes a one-off, and without it the schedule never runs")
    func oneOff() throws {
        #expect(
            try create(#"{"endpoint":"http://example.org","next_send_at":"2026-06-01T14:30:00Z"}"#).get().nextSendAt
                == date("2026-06-01T14:30:00Z"))
        #expect(try create(#"{"endpoint":"http://example.org"}"#).get().nextSendAt == nil)
    }

    @Test("the contract's messages for bad definitions")
    func badDefinitions() throws {
        #expect(
            try errors(#"{"endpoint":"http://e.org","cron_definition":"61 * * * *"}"#).messages(for: "cron_definition")
                == ["61 * * * * is not a valid crontab string: minute value 61 is out of range 0-59"])
        #expect(
            try errors(#"{"endpoint":"http://e.org","interval_definition":"5 fortnights"}"#).messages(for: "interval_definition")
                == [
                    "5 fortnights is not a valid interval string: integer and period (from: days, hours, minutes, seconds, microseconds) e.g. 1 minutes"
                ])
        #expect(
            try errors(#"{"endpoint":"http://e.org","cron_definition":"* * * * *","interval_definition":"1 minutes"}"#).fields.map(\.field)
                == ["non_field_errors"])
    }

    @Test("endpoint is required and must be an absolute http(s) URL")
    func endpoint() throws {
        #expect(try errors("{}").messages(for: "endpoint") == ["This field is required."])
        for bad in [
            #""ftp://example.org""#, #""example.org/hook""#, #""http://""#, #""/relative""#, #""http://exa mple.org""#, "5", "null", #""""#,
        ] {
            #expect(try errors(#"{"endpoint":\#(bad)}"#).messages(for: "endpoint").count == 1, "endpoint \(bad)")
        }
        #expect(try create(#"{"endpoint":"http://localhost:9000/hook?x=1"}"#).get().endpoint == "http://localhost:9000/hook?x=1")
    }

    @Test("wrong types get field messages, all at once")
    func types() throws {
        let found = try errors(
            #"{"endpoint":"http://e.org","frequency":"many","enabled":"perhaps","next_send_at":"soon","timezone":"Mars/Olympus","auth_token":5}"#
        )
        #expect(found.fields.map(\.field) == ["frequency", "timezone", "auth_token", "next_send_at", "enabled"])
        #expect(found.messages(for: "frequency") == ["A valid integer is required."])
        #expect(found.messages(for: "enabled") == ["Must be a valid boolean."])
        #expect(
            try errors(#"{"endpoint":"http://e.org","frequency":0}"#).messages(for: "frequency") == [
                "Ensure this value is greater than or equal to 1."
            ])
    }

    @Test("a body that is not an object")
    func notObject() throws {
        #expect(try errors("[1]").messages(for: "non_field_errors") == ["Invalid data. Expected a dictionary, but got list."])
    }

    @Test("PATCH changes only what it names; a new definition recomputes next_send_at")
    func patch() throws {
        let existing = try create(#"{"endpoint":"http://e.org","interval_definition":"1 hours","next_send_at":"2026-06-01T20:00:00Z"}"#)
            .get()
        let later = date("2026-06-01T13:00:00Z")
        let disabled = try ScheduleValidation.fields(
            from: try JSONParser.parse(#"{"enabled":false}"#), existing: existing, partial: true, now: later
        ).get()
        #expect(
            disabled.enabled == false && disabled.nextSendAt == date("2026-06-01T20:00:00Z") && disabled.intervalDefinition == "1 hours")
        let switched = try ScheduleValidation.fields(
            from: try JSONParser.parse(#"{"interval_definition":null,"cron_definition":"0 * * * *"}"#), existing: existing, partial: true,
            now: later
        ).get()
        #expect(switched.nextSendAt == date("2026-06-01T14:00:00Z"))
        let reenabled = try ScheduleValidation.fields(
            from: try JSONParser.parse(#"{"enabled":true}"#), existing: disabled, partial: true, now: later
        ).get()
        #expect(reenabled.nextSendAt == date("2026-06-01T14:00:00Z"))
    }

    @Test("PUT needs the endpoint again")
    func put() throws {
        let existing = try create(#"{"endpoint":"http://e.org"}"#).get()
        let result = ScheduleValidation.fields(
            from: try JSONParser.parse(#"{"enabled":false}"#), existing: existing, partial: false, now: now)
        #expect(throws: FieldErrors.self) { try result.get() }
    }

    @Test("emails")
    func emails() {
        #expect(ScheduleValidation.isEmail("bob@example.org"))
        #expect(ScheduleValidation.isEmail("b.o+b@mail.example.co.za"))
        for bad in ["", "bob", "bob@", "@example.org", "bob@example", "bob@@example.org", "bo b@example.org", "bob@exa_mple.org"] {
            #expect(!ScheduleValidation.isEmail(bad), "\(bad)")
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
