import Foundation
import HTTPTypes
import Hummingbird
import Postgres
import SchedulerAPI
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

/// The API's bounds: what a client gets when it crosses one (a 400 naming the field, or
/// a clamped page), and never a trap of the server.
@Suite("Limits and bad input, through the API", .scratch)
struct LimitsAPITests {
    @Test(
        "every list answers a page for offsets and limits at Int64's edges",
        arguments: ["/api/v1/schedule/", "/api/v1/user/", "/api/v1/group/", "/api/v1/webhook/", "/api/v1/failed-tasks/"])
    func paging(path: String) async throws {
        try await APIHarness.run { api in
            for query in [
                "offset=9223372036854775807", "offset=-9223372036854775808", "offset=99999999999999999999999",
                "limit=9223372036854775807&offset=9223372036854775807", "limit=-1&offset=abc", "limit=0&offset=%00",
            ] {
                let reply = try await api.send(.get, "\(path)?\(query)", token: api.adminToken)
                #expect(reply.status == .ok, "\(path)?\(query): \(reply.status) \(reply.text)")
                let page = try #require(reply.object, "\(path)?\(query)")
                #expect(page["results"] != nil)
                #expect(page["next"] == .null, "\(path)?\(query)")
            }
            let clamped = try await api.send(.get, "\(path)?offset=9223372036854775807", token: api.adminToken)
            let previous = try #require(clamped.object?["previous"]?.stringValue)
            #expect(previous.contains("offset=\(PageRequest.maximumOffset - 3)"), "\(previous)")
        }
    }

    @Test("a schedule's deliveries page too, at any offset")
    func deliveriesPaging() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://example.org/hook"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            let reply = try await api.send(.get, "/api/v1/schedule/\(id)/deliveries/?offset=9223372036854775807&limit=9223372036854775807")
            #expect(reply.status == .ok)
        }
    }

    @Test("writes past a bound are 400s naming the field")
    func bounds() async throws {
        try await APIHarness.run(environment: ["MAX_PAYLOAD_BYTES": "64", "SCHEDULE_MIN_INTERVAL": "10s", "SCHEDULE_MAX_HORIZON": "30d"]) {
            api in
            let endpoint = #""endpoint":"http://example.org/hook""#
            let cases: [(String, String)] = [
                (#"{\#(endpoint),"auth_token":"abc\r\nX-Injected: yes"}"#, "auth_token"),
                (#"{\#(endpoint),"interval_definition":"1 microseconds"}"#, "interval_definition"),
                (#"{\#(endpoint),"interval_definition":"9 seconds"}"#, "interval_definition"),
                (#"{\#(endpoint),"interval_definition":"106751991 days"}"#, "interval_definition"),
                (#"{\#(endpoint),"interval_definition":"9223372036854775807 microseconds"}"#, "interval_definition"),
                (#"{\#(endpoint),"next_send_at":"9999-12-31T23:59:59Z"}"#, "next_send_at"),
                (#"{\#(endpoint),"next_send_at":"1900-01-01T00:00:00Z"}"#, "next_send_at"),
                (#"{\#(endpoint),"next_send_at":"\#(Timestamp.format(Date().addingTimeInterval(31 * 86_400)))"}"#, "next_send_at"),
                (#"{\#(endpoint),"payload":{"text":"\#(String(repeating: "a", count: 64))"}}"#, "payload"),
                (#"{\#(endpoint),"frequency":9223372036854775807}"#, "frequency"),
                (#"{"endpoint":"http://example.org/a\u0000b"}"#, "endpoint"),
                (#"{"endpoint":"http://example.org/a\r\nHost: evil"}"#, "endpoint"),
            ]
            for (body, field) in cases {
                let reply = try await api.send(.post, "/api/v1/schedule/", json: body)
                #expect(reply.status == .badRequest, "\(body): \(reply.status)")
                #expect(!reply.errors(field).isEmpty, "\(body) names \(field): \(reply.text)")
            }
            // Within the bounds, accepted.
            let ok = try await api.send(
                .post, "/api/v1/schedule/",
                json:
                    #"{\#(endpoint),"interval_definition":"10 seconds","payload":{"a":1},"next_send_at":"\#(Timestamp.format(Date().addingTimeInterval(29 * 86_400)))"}"#
            )
            #expect(ok.status == .created, "\(ok.text)")
            #expect(ok.object?["disabled_reason"] == .null)
        }
    }

    @Test("a NUL character in a list filter is a 400, not a server error (found by the fuzzer)")
    func nulFilter() async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/v1/schedule/?endpoint=a%00b&enabled=false")
            #expect(reply.status == .badRequest, "\(reply.text)")
            #expect(!reply.errors("endpoint").isEmpty)
        }
    }

    @Test("a webhook target with a control character is refused")
    func webhookTarget() async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(
                .post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"http://example.org/\r\nx"}"#)
            #expect(reply.status == .badRequest)
            #expect(!reply.errors("target").isEmpty)
        }
    }

    @Test("a stored schedule beat disabled shows why")
    func disabledReason() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://example.org/hook","interval_definition":"1 hours"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            try await api.pool.query(
                "UPDATE schedules SET enabled = false, disabled_reason = 'the interval is too short' WHERE id = $1", [id])
            let reply = try await api.send(.get, "/api/v1/schedule/\(id)/")
            #expect(reply.object?["disabled_reason"] == .string("the interval is too short"))
            #expect(reply.object?["enabled"] == .bool(false))
        }
    }

    @Test("no free database connection within DATABASE_POOL_TIMEOUT is a 503 with Retry-After, not a wait forever")
    func poolBusy() async throws {
        let pool = PostgresPool(url: try await TestDatabase.fresh(), size: 1, checkoutTimeout: 0.3, logger: TestDatabase.logger)
        defer { pool.close() }
        let token = try await UserStore(pool: pool, minter: TokenMinter(secretKey: APIHarness.secretKey)).issueToken(
            email: "busy@example.org", admin: false
        ).token
        let configuration = try Configuration(
            environment: ["SECRET_KEY": APIHarness.secretKey, "BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2f"])
        let application = Application(
            router: buildRouter(configuration: configuration, pool: pool, logger: TestDatabase.logger), logger: TestDatabase.logger)
        try await application.test(.router) { client in
            // The only connection is busy for 5 s.
            let holder = Task { try await pool.query("SELECT pg_sleep(5)") }
            try await Task.sleep(for: .milliseconds(200))
            let started = Date()
            let response = try await client.executeRequest(
                uri: "/api/v1/schedule/", method: .get, headers: [.authorization: "Token \(token)"], body: nil)
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.retryAfter] != nil)
            #expect(Date().timeIntervalSince(started) < 3, "answered long before the connection came free")
            _ = try await holder.value
            let after = try await client.executeRequest(
                uri: "/api/v1/schedule/", method: .get, headers: [.authorization: "Token \(token)"], body: nil)
            #expect(after.status == .ok)
        }
    }

    @Test("a stranger's sign-in body past 4 KiB is a 413 before it is parsed, and a large object is quick to refuse")
    func signInBody() async throws {
        try await APIHarness.run { api in
            let keys = (0..<80_000).map { #""k\#($0)":1"# }.joined(separator: ",")
            let started = ContinuousClock.now
            let reply = try await api.send(
                .post, "/console/session/", json: "{\(keys)}", token: .some(nil), headers: [HTTPField.Name("X-Scheduler-Console")!: "1"])
            #expect(reply.status == .contentTooLarge, "\(reply.status) \(reply.text)")
            #expect(reply.detail == "Request body is larger than 4096 bytes.")
            #expect(ContinuousClock.now - started < .seconds(2))
            // A token fits well inside it.
            let fine = try await api.send(
                .post, "/console/session/", json: #"{"token": "\#(api.userToken)"}"#, token: .some(nil),
                headers: [HTTPField.Name("X-Scheduler-Console")!: "1"])
            #expect(fine.status == .ok, "\(fine.text)")
        }
    }

    @Test("ten schedules whose payloads are 18,000-key objects list quickly, keys in their order")
    func manyKeyPayloads() async throws {
        try await APIHarness.run(environment: ["PAGE_SIZE": "10"]) { api in
            let payload = "{" + (0..<18_000).map { #""k\#($0)":1"# }.joined(separator: ",") + "}"
            for _ in 0..<10 {
                _ = try await api.createSchedule(#"{"endpoint":"http://example.org/hook","payload":\#(payload)}"#)
            }
            let started = ContinuousClock.now
            let reply = try await api.send(.get, "/api/v1/schedule/?limit=10")
            let elapsed = ContinuousClock.now - started
            #expect(reply.status == .ok)
            let results = try #require(reply.object?["results"].flatMap { if case .array(let items) = $0 { items } else { nil } })
            #expect(results.count == 10)
            let first = try #require(results.first?.objectValue?["payload"]?.objectValue)
            #expect(first.count == 18_000 && first.keys.first == "k0" && first.keys.last == "k17999")
            // Quadratic key handling took 6.3 s for this list in a release build.
            #expect(elapsed < .seconds(3), "listing took \(elapsed)")
        }
    }

    @Test("next_send_at in 2099, as the original took, is accepted; past the year 9999 it is not")
    func farNextSendAt() async throws {
        try await APIHarness.run { api in
            let schedule = try await api.createSchedule(#"{"endpoint":"http://example.org/hook","interval_definition":"1 hours"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            let patched = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"next_send_at": "2099-01-01T00:00:00Z"}"#)
            #expect(patched.status == .ok, "\(patched.text)")
            #expect(patched.object?["next_send_at"]?.stringValue == "2099-01-01T00:00:00Z")
            let beyond = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"next_send_at": "10000-01-01T00:00:00Z"}"#)
            #expect(beyond.status == .badRequest)
            #expect(!beyond.errors("next_send_at").isEmpty)
        }
    }
}
