import Foundation
import HTTPTypes
import SchedulerCore
import SchedulerStore
import Testing

/// Quotas per tenant: each one tried past its bound, through the API.
@Suite("Quotas, API")
struct QuotaAPITests {
    static let endpoint = #""endpoint":"http://example.org/hook""#

    static func create(_ api: APIHarness, _ extra: String = "", token: String? = nil) async throws -> Reply {
        try await api.send(.post, "/api/v1/schedule/", json: "{\(endpoint)\(extra)}", token: token.map { .some($0) } ?? .none)
    }

    @Test("schedules: past QUOTA_SCHEDULES a 403 naming the quota, its limit and the use; admins have their own")
    func schedules() async throws {
        try await APIHarness.run(environment: ["QUOTA_SCHEDULES": "3"]) { api in
            for _ in 0..<3 { #expect(try await Self.create(api).status == .created) }
            let refused = try await Self.create(api)
            #expect(refused.status == .forbidden, "\(refused.text)")
            #expect(refused.object?["quota"] == .string("schedules"))
            #expect(refused.object?["limit"] == .int(3) && refused.object?["used"] == .int(3))
            #expect(refused.detail == "Quota exceeded: at most 3 schedules (you have 3).")
            #expect(try await api.send(.get, "/api/v1/schedule/").object?["count"] == .int(3), "nothing half-written")
            // An admin's quota is another.
            for _ in 0..<4 { #expect(try await Self.create(api, token: api.adminToken).status == .created) }
            // Deleting one makes room.
            let page = try await api.send(.get, "/api/v1/schedule/")
            guard case .array(let items)? = page.object?["results"], let id = items.first?.objectValue?["id"]?.stringValue else {
                Issue.record("no schedule listed")
                return
            }
            #expect(try await api.send(.delete, "/api/v1/schedule/\(id)/").status == .noContent)
            #expect(try await Self.create(api).status == .created)
        }
    }

    @Test("ten creates at once against a quota of five: exactly five are made")
    func concurrentCreates() async throws {
        try await APIHarness.run(environment: ["QUOTA_SCHEDULES": "5"]) { api in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<10 { group.addTask { try await Self.create(api).status } }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .created }.count == 5)
            #expect(statuses.filter { $0 == .forbidden }.count == 5)
            let count = try await api.pool.query("SELECT count(*) AS n FROM schedules").first?["n"]
            #expect(count == "5")
        }
    }

    @Test("hooks: past QUOTA_HOOKS a 403")
    func hooks() async throws {
        try await APIHarness.run(environment: ["QUOTA_HOOKS": "2"]) { api in
            let body = #"{"event":"schedule.added","target":"http://hooks.example.org/in"}"#
            for _ in 0..<2 { #expect(try await api.send(.post, "/api/v1/webhook/", json: body).status == .created) }
            let refused = try await api.send(.post, "/api/v1/webhook/", json: body)
            #expect(refused.status == .forbidden)
            #expect(refused.object?["quota"] == .string("hooks") && refused.object?["limit"] == .int(2))
        }
    }

    @Test("creates a minute: past QUOTA_CREATES_PER_MINUTE a 429 with Retry-After; deleting does not give one back")
    func createsPerMinute() async throws {
        try await APIHarness.run(environment: ["QUOTA_CREATES_PER_MINUTE": "2"]) { api in
            let first = try await Self.create(api)
            #expect(try await Self.create(api).status == .created)
            let id = try #require(first.object?["id"]?.stringValue)
            #expect(try await api.send(.delete, "/api/v1/schedule/\(id)/").status == .noContent)
            let refused = try await Self.create(api)
            #expect(refused.status == .tooManyRequests, "\(refused.text)")
            let wait = try #require(refused.headers[.retryAfter].flatMap { Int($0) })
            #expect((1...60).contains(wait))
            #expect(refused.object?["quota"] == .string("creates_per_minute"))
            // The window ends: creates are counted afresh.
            try await api.pool.query("UPDATE auth_user SET creates_window_start = now() - interval '61 seconds'")
            #expect(try await Self.create(api).status == .created)
        }
    }

    @Test("deliveries a second: the enabled schedules' rates are bounded at create, enable and change; a change that lowers it passes")
    func deliveriesPerSecond() async throws {
        try await APIHarness.run(environment: ["QUOTA_DELIVERIES_PER_SECOND": "1", "QUOTA_MIN_INTERVAL": "1s"]) { api in
            let a = try await Self.create(api, #","interval_definition":"2 seconds""#)
            #expect(a.status == .created)
            #expect(try await Self.create(api, #","interval_definition":"2 seconds""#).status == .created)
            let refused = try await Self.create(api, #","interval_definition":"10 seconds""#)
            #expect(refused.status == .forbidden, "\(refused.text)")
            #expect(refused.object?["quota"] == .string("deliveries_per_second"))
            // Disabled schedules count nothing; a one-off counts nothing.
            #expect(try await Self.create(api, #","interval_definition":"1 seconds","enabled":false"#).status == .created)
            #expect(try await Self.create(api, #","next_send_at":"2099-01-01T00:00:00Z""#).status == .created)
            let id = try #require(a.object?["id"]?.stringValue)
            #expect(
                try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"interval_definition":"1 seconds"}"#).status == .forbidden)
            #expect(try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"interval_definition":"4 seconds"}"#).status == .ok)
            #expect(try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"enabled":false}"#).status == .ok)
            // A crontab counts once a minute.
            for _ in 0..<20 { #expect(try await Self.create(api, #","cron_definition":"* * * * *""#).status == .created) }
            let quota = try await api.send(.get, "/api/v1/quota/")
            #expect(quota.object?["deliveries_per_second"]?.objectValue?["used"] == .number("0.833"), "0.5 + 20/60: \(quota.text)")
            // Re-enabling what no longer fits is refused.
            #expect(try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"enabled":true}"#).status == .forbidden)
        }
    }

    @Test("the shortest interval: a normal user's QUOTA_MIN_INTERVAL (10 s by default), an admin's SCHEDULE_MIN_INTERVAL")
    func minimumInterval() async throws {
        try await APIHarness.run { api in
            let refused = try await Self.create(api, #","interval_definition":"9 seconds""#)
            #expect(refused.status == .badRequest)
            #expect(refused.errors("interval_definition").first?.contains("your quota min_interval") == true, "\(refused.text)")
            #expect(try await Self.create(api, #","interval_definition":"10 seconds""#).status == .created)
            #expect(try await Self.create(api, #","interval_definition":"1 seconds""#, token: api.adminToken).status == .created)
        }
    }

    @Test("a user's own values override the defaults, and GET /api/v1/quota/ shows each quota and its use")
    func overrideAndShow() async throws {
        try await APIHarness.run(environment: ["QUOTA_SCHEDULES": "1"]) { api in
            #expect(try await Self.create(api).status == .created)
            #expect(try await Self.create(api).status == .forbidden)
            let users = UserStore(pool: api.pool, minter: TokenMinter(secretKey: APIHarness.secretKey))
            let user = try #require(try await users.user(email: "user@example.org"))
            let quotas = QuotaStore(pool: api.pool, defaults: QuotaDefaults(user: .user, admin: .admin))
            try await quotas.set(userID: user.id, override: QuotaOverride(schedules: 2, minimumInterval: 60_000_000))
            #expect(try await Self.create(api).status == .created)
            #expect(try await Self.create(api).status == .forbidden)
            #expect(try await Self.create(api, #","interval_definition":"30 seconds""#).status == .badRequest)
            let shown = try await api.send(.get, "/api/v1/quota/")
            #expect(shown.status == .ok)
            let object = try #require(shown.object)
            #expect(object["schedules"]?.objectValue?["limit"] == .int(2) && object["schedules"]?.objectValue?["used"] == .int(2))
            #expect(object["min_interval"]?.objectValue?["limit"] == .string("1m"))
            #expect(object["creates_per_minute"]?.objectValue?["used"] == .int(2))
            #expect(object["overridden"] == .array([.string("schedules"), .string("min_interval")]))
            #expect(object["dead_letters"] == .object(["limit": .int(10_000), "used": .int(0)]))
            // Back to the defaults.
            try await quotas.set(userID: user.id, override: QuotaOverride())
            #expect(try await Self.create(api).status == .forbidden)
        }
    }

    @Test("a user's count of schedules and their enabled rate, kept on their row, follow every change; deleting the user still works")
    func countersFollowEveryChange() async throws {
        try await APIHarness.run(environment: ["QUOTA_MIN_INTERVAL": "1s"]) { api in
            func counters() async throws -> (kept: String, counted: String) {
                // The user's row and the changes appended since, as the quota check sees them.
                let kept =
                    try await api.pool.query(
                        """
                        SELECT (u.schedules_owned + coalesce(sum(d.schedules), 0)) || '/'
                               || round((u.delivery_rate_enabled + coalesce(sum(d.rate), 0))::numeric, 6) AS v
                        FROM auth_user u LEFT JOIN schedule_owner_deltas d ON d.user_id = u.id
                        WHERE u.email = 'user@example.org' GROUP BY u.id
                        """
                    ).first?["v"] ?? ""
                let counted =
                    try await api.pool.query(
                        """
                        SELECT count(*) || '/' || round(coalesce(sum(delivery_rate) FILTER (WHERE enabled), 0)::numeric, 6) AS v
                        FROM schedules WHERE created_by = (SELECT id FROM auth_user WHERE email = 'user@example.org')
                        """
                    ).first?["v"] ?? ""
                return (kept, counted)
            }
            var ids: [String] = []
            for extra in [
                #","interval_definition":"2 seconds""#, #","interval_definition":"4 seconds""#, #","cron_definition":"* * * * *""#, "",
            ] {
                ids.append(try #require(try await Self.create(api, extra).object?["id"]?.stringValue))
            }
            var now = try await counters()
            #expect(now.kept == now.counted && now.kept == "4/0.766667", "\(now)")
            #expect(try await api.send(.patch, "/api/v1/schedule/\(ids[0])/", json: #"{"enabled":false}"#).status == .ok)
            #expect(try await api.send(.patch, "/api/v1/schedule/\(ids[1])/", json: #"{"interval_definition":"1 seconds"}"#).status == .ok)
            #expect(try await api.send(.delete, "/api/v1/schedule/\(ids[2])/").status == .noContent)
            // As beat disables one whose frequency ran out, or a worker pauses one.
            try await api.pool.query("UPDATE schedules SET enabled = false WHERE id = $1", [ids[1]])
            now = try await counters()
            #expect(now.kept == now.counted && now.kept == "3/0.000000", "\(now)")
            // Folded into the row (beat does it hourly; a quota check does it for its user).
            try await QuotaStore.foldAll(pool: api.pool)
            #expect(try await api.pool.query("SELECT count(*) AS n FROM schedule_owner_deltas").first?["n"] == "0")
            now = try await counters()
            #expect(now.kept == now.counted && now.kept == "3/0.000000", "\(now)")
            try await api.pool.query("DELETE FROM auth_user WHERE email = 'user@example.org'")
            #expect(try await api.pool.query("SELECT count(*) AS n FROM schedules WHERE created_by IS NULL").first?["n"] == "3")
        }
    }
}
