import Foundation
import SchedulerCore
import SchedulerStore
import Testing

/// Each user sees only their own: two normal users and an admin. Someone else's id is a
/// 404, as if it did not exist; admins see and act on everything.
@Suite("Tenancy, API", .serialized)
struct TenancyAPITests {
    /// A second normal user's token.
    static func otherUser(_ api: APIHarness) async throws -> String {
        try await UserStore(pool: api.pool, minter: TokenMinter(secretKey: APIHarness.secretKey))
            .issueToken(email: "other@example.org", admin: false).token
    }

    /// A dead delivery of `schedule`, as the worker would leave it.
    static func deadDelivery(_ api: APIHarness, schedule: String) async throws -> String {
        let id = UUID().uuidString.lowercased()
        try await api.pool.query(
            """
            INSERT INTO deliveries (id, schedule_id, scheduled_for, routing_key, state, attempts, last_error, finished_at)
            VALUES ($1::uuid, $2::uuid, now(), 'schedule.' || $2::text, 'dead', 1, 'HTTP 404', now())
            """, [id, schedule])
        return id
    }

    @Test("a normal user lists, reads, changes and deletes only their own schedules and deliveries")
    func schedulesAreTheirOwners() async throws {
        try await APIHarness.run { api in
            let other = try await Self.otherUser(api)
            let mine = try await api.createSchedule(#"{"endpoint":"http://example.com/mine","interval_definition":"1 hours"}"#)
            let id = try #require(mine["id"]?.stringValue)
            let path = "/api/v1/schedule/\(id)/"

            // The owner, with the one token they always used: unchanged.
            #expect(try await api.send(.get, path).status == .ok)
            #expect(try await api.send(.get, "/api/v1/schedule/").object?["count"] == .int(1))

            // Another normal user: as if it did not exist.
            let theirs = try await api.send(.get, "/api/v1/schedule/", token: other)
            #expect(theirs.object?["count"] == .int(0))
            #expect(try await api.send(.get, path, token: other).status == .notFound)
            #expect(try await api.send(.patch, path, json: #"{"enabled":false}"#, token: other).status == .notFound)
            #expect(
                try await api.send(
                    .put, path, json: #"{"endpoint":"http://example.com/stolen","interval_definition":"1 hours"}"#, token: other
                )
                .status == .notFound)
            #expect(try await api.send(.get, "\(path)deliveries/", token: other).status == .notFound)
            #expect(try await api.send(.delete, path, token: other).status == .notFound)
            let still = try await api.send(.get, path)
            #expect(still.status == .ok)
            #expect(still.object?["enabled"] == .bool(true))
            #expect(still.object?["endpoint"] == .string("http://example.com/mine"))

            // An admin sees and acts on everything.
            #expect(try await api.send(.get, path, token: api.adminToken).status == .ok)
            #expect(try await api.send(.get, "/api/v1/schedule/", token: api.adminToken).object?["count"] == .int(1))
            #expect(try await api.send(.patch, path, json: #"{"enabled":false}"#, token: api.adminToken).status == .ok)
            #expect(try await api.send(.delete, path, token: api.adminToken).status == .noContent)
            #expect(try await api.send(.get, path).status == .notFound)
        }
    }

    @Test("failed tasks: a normal user sees only the dead letters of their own schedules; an admin sees all")
    func failedTasksAreTheirOwners() async throws {
        try await APIHarness.run { api in
            let other = try await Self.otherUser(api)
            let mine = try #require(
                try await api.createSchedule(#"{"endpoint":"http://example.com/a","interval_definition":"1 hours"}"#)["id"]?.stringValue)
            let theirsReply = try await api.send(
                .post, "/api/v1/schedule/", json: #"{"endpoint":"http://example.com/b","interval_definition":"1 hours"}"#, token: other)
            let theirs = try #require(theirsReply.object?["id"]?.stringValue)
            let myDead = try await Self.deadDelivery(api, schedule: mine)
            let theirDead = try await Self.deadDelivery(api, schedule: theirs)

            let listed = try await api.send(.get, "/api/v1/failed-tasks/")
            #expect(listed.object?["count"] == .int(1))
            #expect(listed.text.contains(myDead) && !listed.text.contains(theirDead))
            #expect(try await api.send(.get, "/api/v1/failed-tasks/\(myDead)/").status == .ok)
            #expect(try await api.send(.get, "/api/v1/failed-tasks/\(theirDead)/").status == .notFound)
            #expect(try await api.send(.get, "/api/v1/failed-tasks/\(theirDead)/", token: other).status == .ok)

            let all = try await api.send(.get, "/api/v1/failed-tasks/", token: api.adminToken)
            #expect(all.object?["count"] == .int(2))
        }
    }

    @Test("re-driving with no dead letters of one's own touches no broker; with some, an unreachable broker is a 503")
    func redriveWithNothingOfOnesOwn() async throws {
        // The harness's broker (port 1) cannot be reached.
        try await APIHarness.run { api in
            let other = try await Self.otherUser(api)
            let theirs = try #require(
                try await api.send(
                    .post, "/api/v1/schedule/", json: #"{"endpoint":"http://example.com/b","interval_definition":"1 hours"}"#, token: other
                ).object?["id"]?.stringValue)
            _ = try await Self.deadDelivery(api, schedule: theirs)
            let nothing = try await api.send(.post, "/api/v1/failed-tasks/")
            #expect(nothing.status == .created, "\(nothing.text)")
            let theirsRedriven = try await api.send(.post, "/api/v1/failed-tasks/", token: other)
            #expect(theirsRedriven.status == .serviceUnavailable)
            #expect(theirsRedriven.headers[.retryAfter] == "5")
            #expect(!theirsRedriven.text.contains("127.0.0.1"), "\(theirsRedriven.text)")
        }
    }

    @Test("the user list shows a normal user only themselves; an admin sees everyone")
    func usersSeeThemselves() async throws {
        try await APIHarness.run { api in
            _ = try await Self.otherUser(api)
            let mine = try await api.send(.get, "/api/v1/user/")
            #expect(mine.object?["count"] == .int(1))
            #expect(mine.text.contains("user@example.org") && !mine.text.contains("other@example.org"))
            let ids = try await api.pool.query("SELECT id, email FROM auth_user ORDER BY id").reduce(into: [String: String]()) {
                $0[$1["email"] ?? ""] = $1["id"]
            }
            let otherID = try #require(ids["other@example.org"])
            let ownID = try #require(ids["user@example.org"])
            #expect(try await api.send(.get, "/api/v1/user/\(otherID)/").status == .notFound)
            #expect(try await api.send(.get, "/api/v1/user/\(ownID)/").status == .ok)
            #expect(try await api.send(.get, "/api/v1/user/", token: api.adminToken).object?["count"] == .int(3))
            #expect(try await api.send(.get, "/api/v1/user/\(otherID)/", token: api.adminToken).status == .ok)
        }
    }

    @Test(
        "schedule.added hooks hear of their owner's schedules (admins' of all), without auth_token; HOOK_AUTH_TOKEN only for admins' hooks")
    func hooksPerOwner() async throws {
        try await APIHarness.run(environment: ["HOOK_AUTH_TOKEN": "operator-secret"]) { api in
            let other = try await Self.otherUser(api)
            for (token, target) in [
                (api.userToken, "http://hooks.example.org/user"), (other, "http://hooks.example.org/other"),
                (api.adminToken, "http://hooks.example.org/admin"),
            ] {
                let reply = try await api.send(
                    .post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"\#(target)"}"#, token: token)
                #expect(reply.status == .created, "\(reply.text)")
            }
            _ = try await api.createSchedule(
                #"{"endpoint":"http://example.com/a","interval_definition":"1 hours","auth_token":"tenant-secret"}"#)
            let calls = try await api.pool.query(
                "SELECT target, auth_token, body::text AS body FROM deliveries WHERE kind = 'webhook' ORDER BY target")
            let byTarget = Dictionary(uniqueKeysWithValues: calls.map { ($0["target"] ?? "", $0) })
            #expect(Set(byTarget.keys) == ["http://hooks.example.org/admin", "http://hooks.example.org/user"], "not the other user's hook")
            #expect(byTarget["http://hooks.example.org/admin"]?["auth_token"] == "operator-secret")
            #expect(byTarget["http://hooks.example.org/user"]?["auth_token"] == nil, "the operator's token stays home")
            for call in calls {
                let body = call["body"] ?? ""
                #expect(!body.contains("tenant-secret") && !body.contains("auth_token"), "\(body)")
                #expect(body.contains("http://example.com/a"))
            }
        }
    }

    @Test("a hook call, its record and its dead letter belong to the hook's owner, not to the schedule's")
    func hookCallsAreTheirHooksOwners() async throws {
        try await APIHarness.run { api in
            for (token, target) in [(api.adminToken, "http://hooks.example.org/admin"), (api.userToken, "http://hooks.example.org/user")] {
                let reply = try await api.send(
                    .post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"\#(target)"}"#, token: token)
                #expect(reply.status == .created, "\(reply.text)")
            }
            let schedule = try await api.createSchedule(#"{"endpoint":"http://example.com/a","interval_definition":"1 hours"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            // Both calls fail for good, as a worker would record them.
            try await api.pool.query(
                "UPDATE deliveries SET state = 'dead', attempts = 1, last_error = 'HTTP 404', finished_at = now() WHERE kind = 'webhook'")
            let calls = try await api.pool.query("SELECT id::text AS id, target FROM deliveries WHERE kind = 'webhook'")
            let byTarget = Dictionary(uniqueKeysWithValues: calls.map { ($0["target"] ?? "", $0["id"] ?? "") })
            let adminCall = try #require(byTarget["http://hooks.example.org/admin"])
            let userCall = try #require(byTarget["http://hooks.example.org/user"])

            func ids(_ reply: Reply, key: String = "id") -> Set<String> {
                guard case .array(let items)? = reply.object?["results"] ?? reply.object?["dead_letters"] else { return [] }
                return Set(items.compactMap { $0.objectValue?[key]?.stringValue })
            }
            // The tenant sees its own hook's call, not the admin's: not in failed tasks, the
            // console's dead letters or the schedule's deliveries, and not by id.
            #expect(ids(try await api.send(.get, "/api/v1/failed-tasks/?limit=100")) == [userCall])
            let console = try await api.send(.get, "/api/v1/console/dead-letters/")
            #expect(console.status == .ok)
            #expect(!console.text.contains("hooks.example.org/admin") && console.text.contains("hooks.example.org/user"), "\(console.text)")
            let deliveries = try await api.send(.get, "/api/v1/schedule/\(id)/deliveries/?limit=100")
            #expect(ids(deliveries) == [userCall], "\(deliveries.text)")
            #expect(try await api.send(.get, "/api/v1/failed-tasks/\(adminCall)/").status == .notFound)
            // The admin sees both.
            #expect(ids(try await api.send(.get, "/api/v1/failed-tasks/?limit=100", token: api.adminToken)) == [adminCall, userCall])
            let adminDeliveries = try await api.send(.get, "/api/v1/schedule/\(id)/deliveries/?limit=100", token: api.adminToken)
            #expect(ids(adminDeliveries) == [adminCall, userCall])
            // What the tenant may re-drive is its own.
            let mine = try await DeliveryStore(pool: api.pool).deadIDs(owner: try #require(schedule["created_by"]).userID(api))
            #expect(mine == [userCall])
        }
    }

    @Test(
        "hook targets pass the egress guard at create and update, as endpoints do",
        arguments: [
            "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:15672/api/", "http://[::ffff:10.0.0.1]/", "http://2852039166/",
        ])
    func hookTargetsPassTheEgressGuard(_ target: String) async throws {
        try await APIHarness.run { api in
            let refused = try await api.send(.post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"\#(target)"}"#)
            #expect(refused.status == .badRequest, "\(refused.text)")
            #expect(refused.errors("target").first?.contains("refused range") == true, "\(refused.text)")
            let hook = try await api.send(
                .post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"http://hooks.example.org/in"}"#)
            let id = try #require(hook.object?["id"]?.integerValue)
            let patched = try await api.send(.patch, "/api/v1/webhook/\(id)/", json: #"{"target":"\#(target)"}"#)
            #expect(patched.status == .badRequest, "\(patched.text)")
        }
    }

    @Test("with PUBLIC_URL, every absolute URL comes from it, hooks' bodies included, whatever the Host")
    func publicURL() async throws {
        try await APIHarness.run(environment: ["PUBLIC_URL": "https://scheduler.example.org"]) { api in
            let hook = try await api.send(
                .post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"http://hooks.example.org/in"}"#,
                token: api.adminToken)
            #expect(hook.status == .created)
            let created = try await api.send(
                .post, "/api/v1/schedule/", json: #"{"endpoint":"http://example.com/a","interval_definition":"1 hours"}"#)
            #expect(created.status == .created)
            #expect(created.headers[.location]?.hasPrefix("https://scheduler.example.org/api/v1/schedule/") == true)
            #expect(created.object?["created_by"]?.stringValue?.hasPrefix("https://scheduler.example.org/api/v1/user/") == true)
            let body = try #require(
                try await api.pool.query("SELECT body::text AS body FROM deliveries WHERE kind = 'webhook'").first?["body"])
            #expect(body.contains("https://scheduler.example.org/api/v1/user/") && !body.contains("localhost"), "\(body)")
        }
    }
}

extension JSONValue {
    /// The user id at the end of a user URL (`.../api/v1/user/7/`).
    fileprivate func userID(_ api: APIHarness) throws -> Int64 {
        let text = try #require(stringValue)
        return try #require(Int64(text.split(separator: "/").last ?? ""))
    }
}
