import Foundation
import Hummingbird
import SchedulerCore
import Testing

@Suite("Schedules API")
struct ScheduleAPITests {
    static let fieldOrder = [
        "url", "id", "frequency", "triggered", "cron_definition", "interval_definition", "timezone", "endpoint", "payload",
        "auth_token", "next_send_at", "enabled", "created_at", "created_by", "updated_at", "updated_by", "disabled_reason",
        // The controls this service adds, after the original's fields.
        "paused_note", "paused_by", "paused_at", "start_at", "end_at", "catchup_window", "overlap", "jitter", "dst_gap", "dst_overlap",
    ]

    /// The path part of an absolute URL.
    func path(_ url: JSONValue?) throws -> String {
        let text = try #require(url?.stringValue)
        return String(text[try #require(text.range(of: "/api/")).lowerBound...])
    }

    @Test("create answers 201 with Location and the schedule in the contract's field order")
    func create() async throws {
        try await APIHarness.run { api in
            let before = Date()
            let reply = try await api.send(
                .post, "/api/v1/schedule/",
                json:
                    #"{"endpoint":"http://receiver.example.org/hook","interval_definition":"5 minutes","payload":{"z":1,"a":[true,null]},"auth_token":"abc","unknown":"ignored"}"#
            )
            #expect(reply.status == .created, "\(reply.text)")
            let schedule = try #require(reply.object)
            #expect(schedule.keys == Self.fieldOrder)
            #expect(reply.headers[.location] == schedule["url"]?.stringValue)
            let id = try #require(schedule["id"]?.stringValue)
            #expect(UUID(uuidString: id) != nil && id == id.lowercased())
            #expect(try path(schedule["url"]) == "/api/v1/schedule/\(id)/")
            #expect(schedule["payload"]?.serialized == #"{"z":1,"a":[true,null]}"#)
            #expect(schedule["triggered"] == .int(0))
            #expect(schedule["enabled"] == .bool(true))
            #expect(schedule["timezone"] == .string("UTC"))
            #expect(schedule["frequency"] == .null && schedule["cron_definition"] == .null)
            #expect(try path(schedule["created_by"]).hasPrefix("/api/v1/user/"))
            #expect(schedule["created_by"] == schedule["updated_by"])
            let next = try #require(schedule["next_send_at"]?.stringValue.flatMap(Timestamp.parse))
            #expect(next.timeIntervalSince(before) >= 299 && next.timeIntervalSince(before) <= 305)
            #expect(schedule["created_at"]?.stringValue?.hasSuffix("Z") == true)

            // It is stored: retrieve gives the same.
            let fetched = try await api.send(.get, "/api/v1/schedule/\(id)/")
            #expect(fetched.status == .ok)
            #expect(fetched.json == reply.json)
            let stored = try await api.pool.query("SELECT payload::text, next_send_at FROM schedules WHERE id = $1", [id])
            #expect(stored.first?["payload"] == #"{"z":1,"a":[true,null]}"#)
        }
    }

    @Test("a cron schedule's next_send_at is its next run in its zone")
    func cronNextRun() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(
                #"{"endpoint":"http://e.org/h","cron_definition":"0 9 * * *","timezone":"America/New_York"}"#)
            let next = try #require(schedule["next_send_at"]?.stringValue.flatMap(Timestamp.parse))
            let expected = try #require(
                try CronExpression(parsing: "0 9 * * *").nextDate(after: Date(), in: TimeZone(identifier: "America/New_York")!))
            #expect(next == expected)
        }
    }

    @Test("bad input is a 400 naming the field, with the contract's messages")
    func validation() async throws {
        try await APIHarness.run { api in
            let cases: [(String, String, String)] = [
                (#"{"cron_definition":"* * * * *"}"#, "endpoint", "This field is required."),
                (#"{"endpoint":"ftp://e.org"}"#, "endpoint", "Enter a valid URL."),
                (
                    #"{"endpoint":"http://e.org","cron_definition":"99 * * * *"}"#, "cron_definition",
                    "99 * * * * is not a valid crontab string: minute value 99 is out of range 0-59"
                ),
                (
                    #"{"endpoint":"http://e.org","interval_definition":"every minute"}"#, "interval_definition",
                    "every minute is not a valid interval string: integer and period (from: days, hours, minutes, seconds, microseconds) e.g. 1 minutes"
                ),
                (
                    #"{"endpoint":"http://e.org","cron_definition":"* * * * *","interval_definition":"1 minutes"}"#, "non_field_errors",
                    "Give either cron_definition or interval_definition, not both (set the other to null)."
                ),
                (
                    #"{"endpoint":"http://e.org","timezone":"Nowhere/Land"}"#, "timezone",
                    "Nowhere/Land is not a known IANA time zone (for example UTC or Europe/London)."
                ),
                (#"{"endpoint":"http://e.org","enabled":"sometimes"}"#, "enabled", "Must be a valid boolean."),
                (#"{"endpoint":"http://e.org","frequency":-1}"#, "frequency", "Ensure this value is greater than or equal to 1."),
                (#"{"endpoint":"http://e.org","next_send_at":"next tuesday"}"#, "next_send_at", FieldErrors.badDatetime),
                ("[]", "non_field_errors", "Invalid data. Expected a dictionary, but got list."),
            ]
            for (body, field, message) in cases {
                let reply = try await api.send(.post, "/api/v1/schedule/", json: body)
                #expect(reply.status == .badRequest, "\(body)")
                #expect(reply.errors(field) == [message], "\(body) -> \(reply.text)")
            }
            // Nothing was written.
            #expect(try await api.pool.query("SELECT count(*) FROM schedules").first?[0] == "0")
        }
    }

    @Test("malformed JSON is a 400, a huge body a 413, never a 500")
    func malformed() async throws {
        try await APIHarness.run(environment: ["MAX_BODY_BYTES": "2048"]) { api in
            let broken = try await api.send(.post, "/api/v1/schedule/", json: #"{"endpoint": "http://e.org""#)
            #expect(broken.status == .badRequest)
            #expect(broken.detail?.hasPrefix("JSON parse error - ") == true)
            let huge = try await api.send(
                .post, "/api/v1/schedule/", json: #"{"endpoint":"http://e.org","payload":""# + String(repeating: "x", count: 4000) + #""}"#)
            #expect(huge.status == .contentTooLarge)
            #expect(huge.detail == "Request body is larger than 2048 bytes.")
            let binary = try await api.send(.post, "/api/v1/schedule/", json: "\u{FFFD}\u{0}")
            #expect(binary.status == .badRequest)
        }
    }

    @Test("unknown and malformed ids are 404; other methods are 405")
    func notFound() async throws {
        try await APIHarness.run { api in
            for method in [HTTPRequest.Method.get, .put, .patch, .delete] {
                for id in [UUID().uuidString, "not-a-uuid", "123"] {
                    let reply = try await api.send(
                        method, "/api/v1/schedule/\(id)/", json: method == .get || method == .delete ? nil : #"{"endpoint":"http://e.org"}"#
                    )
                    #expect(reply.status == .notFound, "\(method) \(id)")
                    #expect(reply.detail == "Not found.")
                }
            }
            let wrongMethod = try await api.send(.delete, "/api/v1/schedule/")
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.detail == "Method \"DELETE\" not allowed.")
            #expect(wrongMethod.headers[.allow] == "GET, POST")
        }
    }

    @Test("lists are newest first and paged with limit, offset, count, next and previous")
    func paging() async throws {
        try await APIHarness.run { api in
            var ids: [String] = []
            for index in 0..<7 {
                let schedule = try await api.createSchedule(#"{"endpoint":"http://e.org/\#(index)"}"#)
                ids.append(try #require(schedule["id"]?.stringValue))
            }
            // PAGE_SIZE is 3 in the harness.
            let first = try await api.send(.get, "/api/v1/schedule/")
            let page = try #require(first.object)
            #expect(page.keys == ["count", "next", "previous", "results"])
            #expect(page["count"] == .int(7))
            #expect(page["previous"] == .null)
            #expect(try path(page["next"]) == "/api/v1/schedule/?limit=3&offset=3")
            #expect(results(page) == Array(ids.reversed()[0..<3]))

            let middle = try #require(try await api.send(.get, try path(page["next"])).object)
            #expect(results(middle) == Array(ids.reversed()[3..<6]))
            #expect(try path(middle["previous"]) == "/api/v1/schedule/?limit=3")
            let last = try #require(try await api.send(.get, try path(middle["next"])).object)
            #expect(results(last) == [ids[0]])
            #expect(last["next"] == .null)
            #expect(try path(last["previous"]) == "/api/v1/schedule/?limit=3&offset=3")

            let custom = try #require(try await api.send(.get, "/api/v1/schedule/?limit=5&offset=1").object)
            #expect(results(custom).count == 5)
            #expect(try path(custom["next"]) == "/api/v1/schedule/?limit=5&offset=6")
            // Nonsense paging values fall back to the defaults.
            let nonsense = try #require(try await api.send(.get, "/api/v1/schedule/?limit=-4&offset=abc").object)
            #expect(results(nonsense) == Array(ids.reversed()[0..<3]))
        }
    }

    @Test("lists filter by enabled and endpoint, and keep filters in their links")
    func filters() async throws {
        try await APIHarness.run { api in
            _ = try await api.createSchedule(#"{"endpoint":"http://a.org/x?y=1"}"#)
            _ = try await api.createSchedule(#"{"endpoint":"http://b.org/","enabled":false}"#)
            for _ in 0..<4 { _ = try await api.createSchedule(#"{"endpoint":"http://b.org/"}"#) }
            let disabled = try #require(try await api.send(.get, "/api/v1/schedule/?enabled=false").object)
            #expect(disabled["count"] == .int(1))
            let enabledB = try #require(try await api.send(.get, "/api/v1/schedule/?enabled=true&endpoint=http%3A%2F%2Fb.org%2F").object)
            #expect(enabledB["count"] == .int(4))
            #expect(try path(enabledB["next"]) == "/api/v1/schedule/?enabled=true&endpoint=http%3A%2F%2Fb.org%2F&limit=3&offset=3")
            let a = try #require(try await api.send(.get, "/api/v1/schedule/?endpoint=http%3A%2F%2Fa.org%2Fx%3Fy%3D1").object)
            #expect(a["count"] == .int(1))
            let bad = try await api.send(.get, "/api/v1/schedule/?enabled=perhaps")
            #expect(bad.status == .badRequest)
            #expect(bad.errors("enabled") == ["Select a valid choice. perhaps is not one of the available choices."])
        }
    }

    @Test("PUT replaces, PATCH updates, DELETE removes")
    func update() async throws {
        try await APIHarness.run { api in
            let created = try await api.createSchedule(#"{"endpoint":"http://e.org/1","interval_definition":"1 hours","payload":{"n":1}}"#)
            let id = try #require(created["id"]?.stringValue)
            let uri = "/api/v1/schedule/\(id)/"

            let missingEndpoint = try await api.send(.put, uri, json: #"{"enabled":false}"#)
            #expect(missingEndpoint.status == .badRequest)
            #expect(missingEndpoint.errors("endpoint") == ["This field is required."])

            let put = try await api.send(.put, uri, json: #"{"endpoint":"http://e.org/2","payload":{"n":2}}"#, token: api.adminToken)
            #expect(put.status == .ok)
            #expect(put.object?["endpoint"] == .string("http://e.org/2"))
            #expect(put.object?["interval_definition"] == .string("1 hours"), "PUT keeps fields it does not name")
            #expect(put.object?["updated_by"] != created["updated_by"], "updated_by is the caller")
            #expect(put.object?["created_by"] == created["created_by"])

            let disabled = try await api.send(.patch, uri, json: #"{"enabled":false}"#)
            #expect(disabled.status == .ok)
            #expect(disabled.object?["enabled"] == .bool(false))
            #expect(disabled.object?["payload"]?.serialized == #"{"n":2}"#)
            #expect(try await api.send(.get, "/api/v1/schedule/?enabled=false").object?["count"] == .int(1))

            let chosen = try await api.send(.patch, uri, json: #"{"next_send_at":"2030-01-02T03:04:05+02:00"}"#)
            #expect(chosen.object?["next_send_at"] == .string("2030-01-02T01:04:05Z"))

            let switched = try await api.send(.patch, uri, json: #"{"interval_definition":null,"cron_definition":"@daily"}"#)
            #expect(switched.status == .ok)
            #expect(switched.object?["cron_definition"] == .string("@daily"))
            #expect(switched.object?["next_send_at"]?.stringValue?.hasSuffix("T00:00:00Z") == true)

            let both = try await api.send(.patch, uri, json: #"{"interval_definition":"1 minutes"}"#)
            #expect(both.status == .badRequest)
            #expect(both.errors("non_field_errors").count == 1)

            let deleted = try await api.send(.delete, uri)
            #expect(deleted.status == .noContent)
            #expect(deleted.text.isEmpty)
            #expect(try await api.send(.get, uri).status == .notFound)
            #expect(try await api.send(.delete, uri).status == .notFound)
        }
    }

    @Test("concurrent PATCHes of different fields both land")
    func concurrentPatches() async throws {
        try await APIHarness.run { api in
            let created = try await api.createSchedule(#"{"endpoint":"http://e.org/1"}"#)
            let uri = "/api/v1/schedule/\(try #require(created["id"]?.stringValue))/"
            // Rounds of four PATCHes at once, each naming another field: an update that
            // rewrote the row from a stale read would lose another's field in some round.
            for round in 1...40 {
                let bodies = [
                    #"{"auth_token":"secret\#(round)"}"#, #"{"frequency":\#(round)}"#, #"{"payload":{"round":\#(round)}}"#,
                    #"{"endpoint":"http://e.org/\#(round)"}"#,
                ]
                let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for body in bodies { group.addTask { try await api.send(.patch, uri, json: body).status } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(statuses == [.ok, .ok, .ok, .ok])
                let final = try #require(try await api.send(.get, uri).object)
                #expect(final["auth_token"] == .string("secret\(round)"), "round \(round)")
                #expect(final["frequency"] == .int(round), "round \(round)")
                #expect(final["payload"]?.objectValue?["round"] == .int(round), "round \(round)")
                #expect(final["endpoint"] == .string("http://e.org/\(round)"), "round \(round)")
            }
        }
    }

    func results(_ page: JSONObject) -> [String] {
        guard case .array(let items)? = page["results"] else { return [] }
        return items.compactMap { $0.objectValue?["id"]?.stringValue }
    }
}
