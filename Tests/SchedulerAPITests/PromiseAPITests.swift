import Foundation
import Hummingbird
import Postgres
import SchedulerAPI
import SchedulerCore
import TestSupport
import Testing

/// README promises of the API that no other test shows.
@Suite("README promises, through the API")
struct PromiseAPITests {
    @Test("an empty definition string is null; changing the definition recomputes next_send_at, null asks for it")
    func emptyStringsAndRecomputation() async throws {
        try await APIHarness.run { api in
            let created = try await api.createSchedule(
                #"{"endpoint":"http://example.org/hook","interval_definition":"1 hours","cron_definition":""}"#)
            let id = try #require(created["id"]?.stringValue)
            #expect(created["cron_definition"] == .null, "an empty string counts as null")
            let first = try #require(created["next_send_at"]?.stringValue.flatMap(Timestamp.parse))
            #expect(abs(first.timeIntervalSinceNow - 3600) < 60)

            let switched = try await api.send(
                .patch, "/api/v1/schedule/\(id)/", json: #"{"interval_definition":"","cron_definition":"0 9 * * *"}"#)
            #expect(switched.status == .ok, "\(switched.text)")
            #expect(switched.object?["interval_definition"] == .null)
            let cronNext = try #require(switched.object?["next_send_at"]?.stringValue.flatMap(Timestamp.parse))
            #expect(cronNext != first)
            #expect(Timestamp.format(cronNext).contains("T09:00:00"), "recomputed from the new crontab")

            let chosen = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"next_send_at":"2030-01-01T00:00:00Z"}"#)
            #expect(chosen.object?["next_send_at"] == .string("2030-01-01T00:00:00Z"), "a client may choose the next run")
            let computed = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"next_send_at":null}"#)
            #expect(computed.object?["next_send_at"]?.stringValue == Timestamp.format(cronNext), "null asks the service to compute it")
        }
    }

    @Test("an unreachable database is a 503 with Retry-After, not a 500")
    func databaseDown() async throws {
        // Nothing listens on port 1.
        let pool = PostgresPool(url: "postgres://postgres@127.0.0.1:1/nothing", size: 1, logger: TestDatabase.logger)
        defer { pool.close() }
        let configuration = try Configuration(
            environment: ["SECRET_KEY": APIHarness.secretKey, "BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2f"])
        let application = Application(
            router: buildRouter(configuration: configuration, pool: pool, logger: TestDatabase.logger), logger: TestDatabase.logger)
        try await application.test(.router) { client in
            let response = try await client.executeRequest(
                uri: "/api/v1/schedule/", method: .get, headers: [.authorization: "Token whatever"], body: nil)
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.retryAfter] == "5")
            #expect(String(buffer: response.body).contains("database"))
        }
    }
}
