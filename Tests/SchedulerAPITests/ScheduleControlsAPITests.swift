import Foundation
import Hummingbird
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

/// What a schedule can be told beyond the original's fields: run now, pause with a note,
/// a window to run in, a catch-up window.
@Suite("Schedule controls API")
struct ScheduleControlsAPITests {
    enum APIError: Error { case unexpected(String) }

    func date(_ value: JSONValue?) throws -> Date {
        try #require(value?.stringValue.flatMap(Timestamp.parse))
    }

    @Test("a pause keeps its note, who paused and when; a resume clears them; a note without a pause is refused")
    func pauseNote() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://e.org/h","interval_definition":"1 hours"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            #expect(schedule["paused_note"] == .null && schedule["paused_by"] == .null && schedule["paused_at"] == .null)

            let refused = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"paused_note":"not paused"}"#)
            #expect(refused.status == .badRequest)
            #expect(
                refused.errors("paused_note") == [
                    #"A note is kept only while the schedule is paused: send it with "enabled": false."#
                ])

            let before = Date().addingTimeInterval(-1)
            let paused = try await api.send(
                .patch, "/api/v1/schedule/\(id)/", json: #"{"enabled":false,"paused_note":"receiver migrating until Friday"}"#)
            #expect(paused.status == .ok, "\(paused.text)")
            let body = try #require(paused.object)
            #expect(body["paused_note"] == .string("receiver migrating until Friday"))
            #expect(body["paused_by"] == body["updated_by"] && body["paused_by"] != .null)
            let pausedAt = try date(body["paused_at"])
            #expect(pausedAt >= before && pausedAt <= Date().addingTimeInterval(1))

            // The note can change while it stays paused; who paused it and when stay.
            let edited = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"paused_note":"until Monday"}"#)
            #expect(edited.object?["paused_note"] == .string("until Monday"))
            #expect(edited.object?["paused_at"] == body["paused_at"])

            // A PUT of what GET returned, enabled again: the note goes with the pause.
            var whole = try #require(edited.object)
            whole["enabled"] = .bool(true)
            let resumed = try await api.send(.put, "/api/v1/schedule/\(id)/", json: JSONValue.object(whole).serialized)
            #expect(resumed.status == .ok, "\(resumed.text)")
            #expect(resumed.object?["enabled"] == .bool(true))
            #expect(resumed.object?["paused_note"] == .null && resumed.object?["paused_by"] == .null)
            #expect(resumed.object?["paused_at"] == .null)

            // Bounded, and no control characters (it is shown in the console and logs).
            let long = String(repeating: "n", count: 501)
            let tooLong = try await api.send(
                .patch, "/api/v1/schedule/\(id)/", json: #"{"enabled":false,"paused_note":"\#(long)"}"#)
            #expect(
                tooLong.status == .badRequest && tooLong.errors("paused_note") == ["Ensure this field has no more than 500 bytes (UTF-8)."])
            let control = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"enabled":false,"paused_note":"a\nb"}"#)
            #expect(control.status == .badRequest && control.errors("paused_note") == [FieldErrors.controlCharacters])

            // Created paused: paused by its creator, at its creation.
            let created = try await api.createSchedule(
                #"{"endpoint":"http://e.org/h","interval_definition":"1 hours","enabled":false,"paused_note":"not yet"}"#)
            #expect(created["paused_note"] == .string("not yet") && created["paused_by"] == created["created_by"])
        }
    }

    @Test("start_at and end_at bound the runs: the first run at or after start_at, none after end_at")
    func window() async throws {
        try await APIHarness.run { api in
            // On a quarter hour, an hour ahead.
            let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 900).rounded(.up) * 900 + 3_600)
            let end = start.addingTimeInterval(1_800)
            // An interval that starts later runs first at start_at, then every interval.
            let interval = try await api.createSchedule(
                #"{"endpoint":"http://e.org/h","interval_definition":"10 minutes","start_at":"\#(Timestamp.format(start))","end_at":"\#(Timestamp.format(end))"}"#
            )
            #expect(try date(interval["next_send_at"]) == start)
            #expect(interval["start_at"] == .string(Timestamp.format(start)) && interval["end_at"] == .string(Timestamp.format(end)))
            let id = try #require(interval["id"]?.stringValue)
            let runs = try await api.send(.get, "/api/v1/schedule/\(id)/runs/?count=10")
            guard case .array(let items)? = runs.object?["runs"] else { throw APIError.unexpected(runs.text) }
            let times = items.compactMap { $0.objectValue?["at"]?.stringValue }
            #expect(
                times == (0...3).map { Timestamp.format(start.addingTimeInterval(Double($0) * 600)) },
                "start, +10, +20, +30 min: no run after end_at")
            #expect(runs.object?["description"]?.stringValue?.contains("until \(Timestamp.format(end))") == true)

            // A crontab: its first run at or after start_at.
            let cron = try await api.createSchedule(
                #"{"endpoint":"http://e.org/h","cron_definition":"*/15 * * * *","start_at":"\#(Timestamp.format(start.addingTimeInterval(60)))"}"#
            )
            #expect(try date(cron["next_send_at"]) == start.addingTimeInterval(900))

            // Moving end_at before the next run ends the schedule: no next run.
            let ended = try await api.send(
                .patch, "/api/v1/schedule/\(id)/",
                json: #"{"end_at":"\#(Timestamp.format(Date().addingTimeInterval(-60)))","start_at":null}"#)
            #expect(ended.status == .ok, "\(ended.text)")
            #expect(ended.object?["next_send_at"] == .null && ended.object?["enabled"] == .bool(true))
            let none = try await api.send(.get, "/api/v1/schedule/\(id)/runs/")
            #expect(none.object?["runs"] == .array([]))
            #expect(none.object?["description"]?.stringValue?.contains("ended at") == true)
            // Moving it later again starts it again.
            let again = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"end_at":null}"#)
            #expect(try date(again.object?["next_send_at"]) > Date())

            // Refused: an end not after the start, a next_send_at outside, bad times.
            let backwards = try await api.send(
                .post, "/api/v1/schedule/",
                json: #"{"endpoint":"http://e.org/h","start_at":"\#(Timestamp.format(end))","end_at":"\#(Timestamp.format(start))"}"#)
            #expect(backwards.status == .badRequest && backwards.errors("end_at") == ["Ensure end_at is after start_at."])
            let outside = try await api.send(
                .post, "/api/v1/schedule/",
                json:
                    #"{"endpoint":"http://e.org/h","next_send_at":"\#(Timestamp.format(end.addingTimeInterval(1)))","end_at":"\#(Timestamp.format(end))"}"#
            )
            #expect(
                outside.status == .badRequest && outside.errors("next_send_at") == ["Ensure this datetime is within start_at and end_at."])
            for bad in [#""tomorrow""#, "12", #""10000-01-01T00:00:00Z""#, "[]"] {
                let reply = try await api.send(.post, "/api/v1/schedule/", json: #"{"endpoint":"http://e.org/h","start_at":\#(bad)}"#)
                #expect(reply.status == .badRequest && !reply.errors("start_at").isEmpty, "start_at \(bad): \(reply.text)")
            }
        }
    }

    @Test("jitter: 0 to 3,600 seconds")
    func jitter() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://e.org/h","interval_definition":"1 minutes"}"#)
            #expect(schedule["jitter"] == .int(0))
            let id = try #require(schedule["id"]?.stringValue)
            let set = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"jitter":30}"#)
            #expect(set.object?["jitter"] == .int(30))
            for bad in ["-1", "3601", #""lots""#, "1.5", "[]"] {
                let reply = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"jitter":\#(bad)}"#)
                #expect(
                    reply.status == .badRequest
                        && reply.errors("jitter") == ["Ensure this value is a whole number of seconds from 0 to 3600."], "\(bad)")
            }
        }
    }

    @Test("overlap and the daylight-saving choices: their values, and a 400 naming the choices")
    func choices() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://e.org/h","cron_definition":"30 2 * * *"}"#)
            #expect(schedule["overlap"] == .string("allow") && schedule["dst_gap"] == .string("skip"))
            #expect(schedule["dst_overlap"] == .string("first"))
            let id = try #require(schedule["id"]?.stringValue)
            let set = try await api.send(
                .patch, "/api/v1/schedule/\(id)/", json: #"{"overlap":"buffer_one","dst_gap":"shift","dst_overlap":"both"}"#)
            #expect(set.object?["overlap"] == .string("buffer_one") && set.object?["dst_gap"] == .string("shift"))
            #expect(set.object?["dst_overlap"] == .string("both"))
            let bad = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"overlap":"queue"}"#)
            #expect(bad.errors("overlap") == [#""queue" is not a valid choice: one of allow, skip, buffer_one."#])
        }
    }

    @Test("catchup_window: 10 s to 366 days, or null")
    func catchupWindow() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(
                #"{"endpoint":"http://e.org/h","interval_definition":"1 minutes","catchup_window":300}"#)
            #expect(schedule["catchup_window"] == .int(300))
            let id = try #require(schedule["id"]?.stringValue)
            for bad in ["9", "31622401", "-1", #""soon""#, "1e99", "true"] {
                let reply = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"catchup_window":\#(bad)}"#)
                #expect(reply.status == .badRequest && !reply.errors("catchup_window").isEmpty, "\(bad): \(reply.text)")
            }
            let cleared = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"catchup_window":null}"#)
            #expect(cleared.object?["catchup_window"] == .null)
        }
    }

    @Test("run now: 202 with the delivery and its URL, marked manual, whatever the schedule's state; another's schedule is a 404")
    func trigger() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(
                #"{"endpoint":"http://e.org/h","interval_definition":"1 hours","enabled":false}"#)
            let id = try #require(schedule["id"]?.stringValue)
            let before = Date().addingTimeInterval(-1)
            let reply = try await api.send(.post, "/api/v1/schedule/\(id)/trigger/")
            #expect(reply.status == .accepted, "\(reply.text)")
            let delivery = try #require(reply.object)
            let deliveryID = try #require(delivery["id"]?.stringValue)
            #expect(delivery["origin"] == .string("manual") && delivery["state"] == .string("queued"))
            #expect(try date(delivery["scheduled_for"]) >= before)
            let location = try #require(reply.headers[.location])
            #expect(location.hasSuffix("/api/v1/schedule/\(id)/deliveries/\(deliveryID)/"))
            let path = String(location[try #require(location.range(of: "/api/")).lowerBound...])
            let fetched = try await api.send(.get, path)
            #expect(fetched.status == .ok && fetched.object?["id"] == .string(deliveryID))

            // Each run-now is a delivery of its own.
            let second = try await api.send(.post, "/api/v1/schedule/\(id)/trigger/")
            #expect(second.object?["id"] != nil && second.object?["id"] != delivery["id"])
            let listed = try await api.send(.get, "/api/v1/schedule/\(id)/deliveries/")
            #expect(listed.object?["count"] == .int(2))
            // The schedule itself is untouched: still disabled, nothing counted.
            let after = try await api.send(.get, "/api/v1/schedule/\(id)/")
            #expect(after.object?["enabled"] == .bool(false) && after.object?["triggered"] == .int(0))

            // Someone else's schedule, an unknown one, a malformed id: 404.
            let other = try await TenancyAPITests.otherUser(api)
            #expect(try await api.send(.post, "/api/v1/schedule/\(id)/trigger/", token: other).status == .notFound)
            #expect(try await api.send(.get, path, token: other).status == .notFound)
            #expect(try await api.send(.post, "/api/v1/schedule/\(UUID().uuidString)/trigger/").status == .notFound)
            #expect(try await api.send(.post, "/api/v1/schedule/nope/trigger/").status == .notFound)
            // A delivery under another schedule's path: 404.
            let another = try await api.createSchedule(#"{"endpoint":"http://e.org/h"}"#)
            let anotherID = try #require(another["id"]?.stringValue)
            #expect(try await api.send(.get, "/api/v1/schedule/\(anotherID)/deliveries/\(deliveryID)/").status == .notFound)
            #expect(try await api.send(.get, "/api/v1/schedule/\(id)/deliveries/nope/").status == .notFound)
        }
    }

    @Test("run now counts with the caller's creates a minute: past the quota, 429 with Retry-After")
    func triggerQuota() async throws {
        try await APIHarness.run(environment: ["QUOTA_CREATES_PER_MINUTE": "3"]) { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://e.org/h","interval_definition":"1 hours"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            #expect(try await api.send(.post, "/api/v1/schedule/\(id)/trigger/").status == .accepted)
            #expect(try await api.send(.post, "/api/v1/schedule/\(id)/trigger/").status == .accepted)
            let refused = try await api.send(.post, "/api/v1/schedule/\(id)/trigger/")
            #expect(refused.status == .tooManyRequests, "\(refused.text)")
            #expect(refused.headers[.retryAfter].flatMap { Int($0) }.map { (1...60).contains($0) } == true)
            let count = try await api.pool.query(
                "SELECT count(*) AS n FROM deliveries WHERE schedule_id = $1 AND origin = 'manual'", [id]
            ).first?["n"]
            #expect(count == "2")
        }
    }
}

@Suite("Schedule history API")
struct ScheduleHistoryAPITests {
    func entries(_ api: APIHarness, _ id: String, token: String?? = .none, query: String = "") async throws -> [JSONObject] {
        let reply = try await api.send(.get, "/api/v1/schedule/\(id)/history/\(query)", token: token)
        try #require(reply.status == .ok, "\(reply.text)")
        guard case .array(let items)? = reply.object?["results"] else { return [] }
        return items.compactMap(\.objectValue)
    }

    @Test(
        "every create, change, pause, resume, run-now and delete is kept: who, when, each field from what to what, secrets only as changed")
    func history() async throws {
        try await APIHarness.run(environment: ["PAGE_SIZE": "20"]) { api in
            let created = try await api.createSchedule(
                #"{"endpoint":"http://e.org/h","interval_definition":"1 hours","auth_token":"first-secret","payload":{"a":1}}"#)
            let id = try #require(created["id"]?.stringValue)
            let me = try #require(created["created_by"])
            var log = try await entries(api, id)
            #expect(log.map { $0["action"] } == [.string("created")])
            #expect(log.first?["by"] == me)
            let first = try #require(log.first?["changes"]?.objectValue)
            #expect(first["endpoint"] == .object(["from": .null, "to": .string("http://e.org/h")]))
            #expect(first["auth_token"] == .object(["changed": .bool(true)]))
            #expect(!(log.first?["changes"]?.serialized.contains("first-secret") ?? true), "a secret's value is never kept")

            _ = try await api.send(
                .patch, "/api/v1/schedule/\(id)/", json: #"{"endpoint":"http://e.org/other","auth_token":"second-secret"}"#)
            let big = String(repeating: "x", count: 2_000)
            _ = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"payload":{"big":"\#(big)"}}"#)
            _ = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"enabled":false,"paused_note":"moving"}"#)
            _ = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"enabled":true}"#)
            // A change that changes nothing is not an entry.
            _ = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"endpoint":"http://e.org/other"}"#)
            let triggered = try await api.send(.post, "/api/v1/schedule/\(id)/trigger/")
            log = try await entries(api, id)
            #expect(
                log.map { $0["action"]?.stringValue ?? "" } == ["triggered", "resumed", "paused", "changed", "changed", "created"])
            #expect(log[0]["changes"] == .object(["delivery": triggered.object?["id"] ?? .null]))
            #expect(log[1]["changes"]?.objectValue?["paused_note"] == .object(["from": .string("moving"), "to": .null]))
            #expect(log[2]["changes"]?.objectValue?["enabled"] == .object(["from": .bool(true), "to": .bool(false)]))
            #expect(
                log[3]["changes"]?.objectValue?["payload"]
                    == .object(["changed": .bool(true), "bytes": .object(["from": .int(7), "to": .int(2_010)])]))
            let change = try #require(log[4]["changes"]?.objectValue)
            #expect(change["endpoint"] == .object(["from": .string("http://e.org/h"), "to": .string("http://e.org/other")]))
            #expect(change["auth_token"] == .object(["changed": .bool(true)]) && !change.keys.contains("payload"))
            let times = log.compactMap { $0["at"]?.stringValue.flatMap(Timestamp.parse) }
            #expect(times == times.sorted(by: >), "newest first")

            // Someone else sees nothing of it; the owner still reads it once the schedule is deleted.
            let other = try await TenancyAPITests.otherUser(api)
            #expect(try await api.send(.get, "/api/v1/schedule/\(id)/history/", token: other).status == .notFound)
            #expect(try await api.send(.delete, "/api/v1/schedule/\(id)/").status == .noContent)
            log = try await entries(api, id)
            #expect(log.first?["action"] == .string("deleted") && log.first?["by"] == me)
            #expect(try await api.send(.get, "/api/v1/schedule/\(id)/history/", token: other).status == .notFound)
            #expect(try await api.send(.get, "/api/v1/schedule/\(UUID().uuidString)/history/").status == .notFound)
            // An admin reads any.
            #expect(try await entries(api, id, token: api.adminToken).count == 7)
        }
    }

    @Test("a schedule keeps its last 1,000 entries")
    func bounded() async throws {
        try await APIHarness.run { api in
            let created = try await api.createSchedule(#"{"endpoint":"http://e.org/h","interval_definition":"1 hours"}"#)
            let id = try #require(created["id"]?.stringValue)
            for n in 1...1_005 {
                let reply = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"payload":{"n":\#(n)}}"#)
                try #require(reply.status == .ok)
            }
            let page = try await api.send(.get, "/api/v1/schedule/\(id)/history/")
            #expect(page.object?["count"] == .int(ScheduleHistory.entriesPerSchedule))
            let newest = try #require(try await entries(api, id).first)
            #expect(
                newest["changes"]?.objectValue?["payload"]
                    == .object(["from": .object(["n": .int(1_004)]), "to": .object(["n": .int(1_005)])]))
        }
    }
}

@Suite("Backfill API")
struct BackfillAPITests {
    @Test("a backfill queues each occurrence of the range once: a second of the same range queues none; bounds and bad input are 400s")
    func backfill() async throws {
        try await APIHarness.run(environment: ["BACKFILL_MAX_OCCURRENCES": "50", "DELIVERY_RETENTION_DAYS": "2"]) { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://e.org/h","cron_definition":"*/10 * * * *"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            // The last whole hour: 00, 10, ..., 50 and the next hour's 00 (both ends inclusive).
            let to = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 3_600).rounded(.down) * 3_600)
            let from = to.addingTimeInterval(-3_600)
            let range = #"{"from":"\#(Timestamp.format(from))","to":"\#(Timestamp.format(to))"}"#
            let first = try await api.send(.post, "/api/v1/schedule/\(id)/backfill/", json: range)
            #expect(first.status == .accepted, "\(first.text)")
            #expect(first.object?["occurrences"] == .int(7) && first.object?["queued"] == .int(7))
            let stored = try await api.pool.query(
                "SELECT scheduled_for FROM deliveries WHERE schedule_id = $1 AND origin = 'backfill' ORDER BY scheduled_for", [id])
            #expect(
                stored.compactMap { $0["scheduled_for"].flatMap(Timestamp.parse) }
                    == (0...6).map { from.addingTimeInterval(Double($0) * 600) })
            // Again, and a range over it: only what was not queued before.
            let again = try await api.send(.post, "/api/v1/schedule/\(id)/backfill/", json: range)
            #expect(again.object?["occurrences"] == .int(7) && again.object?["queued"] == .int(0))
            let wider = try await api.send(
                .post, "/api/v1/schedule/\(id)/backfill/",
                json: #"{"from":"\#(Timestamp.format(from.addingTimeInterval(-1_200)))","to":"\#(Timestamp.format(to))"}"#)
            #expect(wider.object?["occurrences"] == .int(9) && wider.object?["queued"] == .int(2))
            let log = try await api.send(.get, "/api/v1/schedule/\(id)/history/")
            guard case .array(let entries)? = log.object?["results"] else { throw ScheduleControlsAPITests.APIError.unexpected(log.text) }
            #expect(entries.first?.objectValue?["action"] == .string("backfilled"))

            let cases: [(String, String, String)] = [
                ("{}", "from", "This field is required."),
                (#"{"from":"soon","to":"\#(Timestamp.format(to))"}"#, "from", FieldErrors.badDatetime),
                (
                    #"{"from":"\#(Timestamp.format(to))","to":"\#(Timestamp.format(from))"}"#, "to", "Ensure to is not before from."
                ),
                (
                    #"{"from":"\#(Timestamp.format(from))","to":"\#(Timestamp.format(Date().addingTimeInterval(600)))"}"#, "to",
                    "Ensure this datetime is not in the future: occurrences to come are sent when they are due."
                ),
                (
                    #"{"from":"\#(Timestamp.format(Date().addingTimeInterval(-3 * 86_400)))","to":"\#(Timestamp.format(to))"}"#, "from",
                    "Ensure this datetime is within the last 2 days (DELIVERY_RETENTION_DAYS): what was sent before is not known."
                ),
                (
                    #"{"from":"\#(Timestamp.format(to.addingTimeInterval(-86_400)))","to":"\#(Timestamp.format(to))"}"#,
                    "non_field_errors", "The range holds more than 50 occurrences (BACKFILL_MAX_OCCURRENCES): backfill it in parts."
                ),
            ]
            for (json, field, message) in cases {
                let reply = try await api.send(.post, "/api/v1/schedule/\(id)/backfill/", json: json)
                #expect(reply.status == .badRequest && reply.errors(field) == [message], "\(json): \(reply.text)")
            }
            let once = try await api.createSchedule(#"{"endpoint":"http://e.org/h","next_send_at":"\#(Timestamp.format(to))"}"#)
            let onceID = try #require(once["id"]?.stringValue)
            let none = try await api.send(.post, "/api/v1/schedule/\(onceID)/backfill/", json: range)
            #expect(none.errors("non_field_errors") == ["This schedule has no crontab or interval: it has no occurrences to backfill."])
            let other = try await TenancyAPITests.otherUser(api)
            #expect(try await api.send(.post, "/api/v1/schedule/\(id)/backfill/", json: range, token: other).status == .notFound)
        }
    }

    @Test("the queued occurrences count with the caller's creates a minute: past it, 429 and nothing queued")
    func quota() async throws {
        try await APIHarness.run(environment: ["QUOTA_CREATES_PER_MINUTE": "5"]) { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://e.org/h","interval_definition":"1 minutes"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            let to = Date().addingTimeInterval(-1)
            let reply = try await api.send(
                .post, "/api/v1/schedule/\(id)/backfill/",
                json: #"{"from":"\#(Timestamp.format(to.addingTimeInterval(-600)))","to":"\#(Timestamp.format(to))"}"#)
            #expect(reply.status == .tooManyRequests, "10 occurrences beside 1 create, over 5 a minute: \(reply.text)")
            let count = try await api.pool.query("SELECT count(*) AS n FROM deliveries WHERE schedule_id = $1", [id]).first?["n"]
            #expect(count == "0")
        }
    }
}
