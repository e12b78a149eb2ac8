import Foundation
import HTTPTypes
import Hummingbird
import SchedulerCore
import SchedulerStore
import Synchronization
import Testing

@testable import SchedulerAPI

/// The console's sign-in, its cookie and the API endpoints only it uses: hostile input gets
/// a 4xx, and the cookie changes nothing without the console's header. (The pages themselves
/// are driven in Chromium by Tests/browser.)
@Suite struct ConsoleAPITests {
    static let console = HTTPField.Name("X-Scheduler-Console")!

    @Test func aTokenBecomesAnHttpOnlyStrictCookieThatStandsInForItOnTheAPI() async throws {
        try await APIHarness.run { api in
            // Without the console's header a sign-in is refused (a form on another site cannot set it).
            let bare = try await api.send(.post, "/console/session/", json: #"{"token": "\#(api.adminToken)"}"#, token: .some(nil))
            #expect(bare.status == .forbidden)
            let signIn = try await api.send(
                .post, "/console/session/", json: #"{"token": "\#(api.adminToken)"}"#, token: .some(nil), headers: [Self.console: "1"])
            #expect(signIn.status == .ok, "\(signIn.text)")
            let cookie = try #require(signIn.headers[.setCookie])
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.hasPrefix("scheduler_session="))
            #expect(signIn.object?["is_admin"] == .bool(true))
            let session = String(cookie.prefix { $0 != ";" })
            let whoami = try await api.send(.get, "/api/v1/console/whoami/", token: .some(nil), headers: [.cookie: "other=1; \(session)"])
            #expect(whoami.status == .ok && whoami.object?["email"] == .string("admin@example.org"))
            // A change through the cookie needs the header; with a token it does not.
            let noHeader = try await api.send(
                .post, "/api/v1/console/dead-letters/redrive/", json: #"{"dry_run": true}"#, token: .some(nil), headers: [.cookie: session])
            #expect(noHeader.status == .forbidden)
            let withToken = try await api.send(
                .post, "/api/v1/console/dead-letters/redrive/", json: #"{"dry_run": true}"#, token: api.adminToken)
            #expect(withToken.status == .ok && withToken.object?["matched"] == .int(0))
            let wrong = try await api.send(.get, "/api/v1/console/whoami/", token: .some(nil), headers: [.cookie: "scheduler_session=nope"])
            #expect(wrong.status == .unauthorized)
        }
    }

    @Test func aSessionIsARandomIdNotTheTokenEndedBySignOutRotationRevocationAndExpiry() async throws {
        try await APIHarness.run { api in
            let users = UserStore(pool: api.pool, minter: TokenMinter(secretKey: APIHarness.secretKey))
            func signIn(_ token: String) async throws -> String {
                let reply = try await api.send(
                    .post, "/console/session/", json: #"{"token": "\#(token)"}"#, token: .some(nil), headers: [Self.console: "1"])
                try #require(reply.status == .ok, "\(reply.text)")
                return String(try #require(reply.headers[.setCookie]).prefix { $0 != ";" })
            }
            func whoami(_ cookie: String) async throws -> HTTPResponse.Status {
                try await api.send(.get, "/api/v1/console/whoami/", token: .some(nil), headers: [.cookie: cookie]).status
            }
            let first = try await signIn(api.userToken)
            let value = String(first.dropFirst("scheduler_session=".count))
            #expect(!value.contains(api.userToken) && value.count == 64, "the cookie is a session id, not the token")
            let stored = try await api.pool.query("SELECT id_hash FROM console_sessions")
            #expect(stored.count == 1 && stored.first?["id_hash"] != value, "only its hash is stored")
            #expect(try await whoami(first) == .ok)
            // Signing out ends it, even for a copy of the cookie kept elsewhere.
            let out = try await api.send(.delete, "/console/session/", token: .some(nil), headers: [.cookie: first, Self.console: "1"])
            #expect(out.status == .noContent)
            #expect(try await whoami(first) == .unauthorized)
            // Rotating the token ends the sessions made with the old one.
            let second = try await signIn(api.userToken)
            #expect(try await whoami(second) == .ok)
            let rotated = try #require(try await users.rotateToken(email: "user@example.org"))
            #expect(try await whoami(second) == .unauthorized)
            // Revoking ends them too.
            let third = try await signIn(rotated.token)
            #expect(try await whoami(third) == .ok)
            _ = try await users.revokeToken(email: "user@example.org")
            #expect(try await whoami(third) == .unauthorized)
            // An expired session is over.
            let admin = try await signIn(api.adminToken)
            try await api.pool.query("UPDATE console_sessions SET expires_at = now() - interval '1 second'")
            #expect(try await whoami(admin) == .unauthorized)
            // Sessions per user are bounded: the oldest go.
            for _ in 0..<(UserStore.sessionsPerUser + 5) { _ = try await signIn(api.adminToken) }
            let count = try await api.pool.query(
                "SELECT count(*) AS n FROM console_sessions WHERE user_id = (SELECT id FROM auth_user WHERE email = 'admin@example.org')")
            #expect(count.first?["n"] == String(UserStore.sessionsPerUser))
        }
    }

    @Test(arguments: [
        #"{"token": ""}"#, #"{"token": "a\u0000b"}"#, #"{"token": "a b"}"#, #"{"token": 7}"#, #"{}"#, "[1]",
        #"{"token": "\#(String(repeating: "x", count: 200))"}"#,
    ])
    func aMalformedSignInIsA400(_ body: String) async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.post, "/console/session/", json: body, token: .some(nil), headers: [Self.console: "1"])
            #expect(reply.status == .badRequest, "\(reply.text)")
        }
    }

    @Test(arguments: [
        "minutes=0", "minutes=-5", "minutes=1441", "minutes=99999999999999999999", "minutes=abc",
    ])
    func overviewBoundsItsWindow(_ query: String) async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/v1/console/overview/?\(query)")
            #expect(reply.status == .badRequest, "\(reply.text)")
        }
    }

    @Test(arguments: [
        "schedule=not-a-uuid", "status=99", "status=600", "status=-1", "error_kind=dns", "since=yesterday", "limit=0", "limit=1001",
        "endpoint=\(String(repeating: "a", count: 2001))",
    ])
    func deadLetterFiltersAreChecked(_ query: String) async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/v1/console/dead-letters/?\(query)")
            #expect(reply.status == .badRequest, "\(reply.text)")
        }
    }

    @Test(arguments: [
        #"{"ids": ["x"]}"#, #"{"ids": "all"}"#, #"{"filter": []}"#, #"{"filter": {"status": true}}"#, #"{"dry_run": "yes"}"#, "[]",
    ])
    func aMalformedRetryIsA400(_ body: String) async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.post, "/api/v1/console/dead-letters/redrive/", json: body)
            #expect(reply.status == .badRequest, "\(reply.text)")
        }
    }

    /// An answer that says how many times it was computed.
    static func count(_ computed: borrowing Mutex<Int>) -> JSONValue {
        .int(
            computed.withLock { count in
                count += 1
                return count
            })
    }

    @Test func endpointFiguresAreKeptThirtySecondsAndRefreshedBehindTheAnswerUpToTenMinutes() async throws {
        let cache = EndpointCache()
        let computed = Mutex(0)
        @Sendable func compute() async throws -> JSONValue { Self.count(computed) }
        let start = Date()
        #expect(try await cache.value(for: nil, now: start, compute: compute) == .int(1), "the first load computes")
        #expect(try await cache.value(for: nil, now: start.addingTimeInterval(29), compute: compute) == .int(1))
        #expect(try await cache.value(for: 7, now: start, compute: compute) == .int(2), "a user's scope is their own")
        // Past 30 s the old answer comes at once while one refresh runs behind it.
        #expect(try await cache.value(for: nil, now: start.addingTimeInterval(31), compute: compute) == .int(1))
        for _ in 0..<100 where computed.withLock({ $0 }) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try await cache.value(for: nil, now: Date().addingTimeInterval(1), compute: compute) == .int(3))
        // Ten minutes on, nothing that old is shown: it is computed first.
        #expect(try await cache.value(for: nil, now: Date().addingTimeInterval(700), compute: compute) == .int(4))
        #expect(computed.withLock { $0 } == 4)
    }

    @Test func theAdminsEndpointFiguresAreKeptWarmSoAFirstLookDoesNotWait() async throws {
        let cache = EndpointCache()
        let computed = Mutex(0)
        @Sendable func compute() async throws -> JSONValue { Self.count(computed) }
        @Sendable func unexpected() async throws -> JSONValue {
            Issue.record("the view computed on a look")
            return .null
        }
        let start = Date()
        try await cache.warm(nil, now: start, compute: compute)
        #expect(computed.withLock { $0 } == 1, "warming computes what is not kept")
        #expect(try await cache.value(for: nil, now: start.addingTimeInterval(1), compute: unexpected) == .int(1))
        try await cache.warm(nil, now: start.addingTimeInterval(20), compute: compute)
        #expect(computed.withLock { $0 } == 1, "a fresh answer is not computed again")
        try await cache.warm(nil, now: start.addingTimeInterval(EndpointCache.warmEvery), compute: compute)
        #expect(computed.withLock { $0 } == 2, "one older than 30 s is")
        #expect(EndpointCache.warmEvery < EndpointCache.staleFor, "a warmed answer is never too old to show")
        struct Failed: Error {}
        await #expect(throws: Failed.self) {
            try await cache.warm(5, now: start) { throw Failed() }
        }
        try await cache.warm(5, now: start, compute: compute)
        #expect(computed.withLock { $0 } == 3, "a failed warming leaves nothing marked as computing")
    }

    @Test func aWalkOfTheDeadLettersReportsHowFarItGotAndOnlyOneRunsAtATime() {
        let walks = WalkProgress()
        #expect(walks.current == nil)
        #expect(walks.begin(.redrive, matched: 10, owner: nil))
        #expect(!walks.begin(.purge, matched: 3, owner: 7), "a second walk waits for the first")
        walks.advance(to: 4)
        #expect(walks.current?.done == 4 && walks.current?.finishedAt == nil)
        walks.end(done: 10, error: nil)
        #expect(walks.current?.done == 10 && walks.current?.finishedAt != nil && walks.current?.action == .redrive)
        #expect(walks.begin(.purge, matched: 3, owner: 7), "the next may start once it ended")
        walks.end(done: nil, error: "The broker is unavailable.")
        #expect(walks.current?.done == 0 && walks.current?.error == "The broker is unavailable." && walks.current?.owner == 7)
    }

    @Test func progressWithNoWalkSaysNothingIsRunning() async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/v1/console/dead-letters/progress/")
            #expect(reply.status == .ok && reply.text == #"{"running":false}"#, "\(reply.text)")
        }
    }

    @Test func beatsReportTheirLastRoundToAdminsOverviews() async throws {
        try await APIHarness.run { api in
            let store = ConsoleStore(pool: api.pool)
            try await store.recordRound(.init(beat: "host-a:1", lastRoundAt: Date(), roundMilliseconds: 4.25, lagMilliseconds: 0))
            // A second report of the same beat replaces the first; nonsense numbers are stored as 0.
            try await store.recordRound(
                .init(beat: "host-a:1", lastRoundAt: Date(), roundMilliseconds: .infinity, lagMilliseconds: .nan))
            try await store.recordRound(.init(beat: "host-b:2", lastRoundAt: Date(), roundMilliseconds: 7, lagMilliseconds: 12))
            let admin = try await api.send(.get, "/api/v1/console/overview/", token: api.adminToken)
            guard case .array(let beats)? = admin.object?["beats"] else {
                Issue.record("no beats: \(admin.text)")
                return
            }
            #expect(beats.count == 2)
            let a = beats.first { $0.objectValue?["beat"] == .string("host-a:1") }?.objectValue
            #expect(a?["round_ms"] == .number("0.0") && a?["lag_ms"] == .number("0.0"))
            let user = try await api.send(.get, "/api/v1/console/overview/")
            #expect(user.object?["beats"] == nil, "beats are the admins'")
        }
    }

    @Test func aNormalUserSeesNoQueuesAndOnlyTheirOwnDeliveries() async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/v1/console/overview/?minutes=5")
            #expect(reply.status == .ok, "\(reply.text)")
            #expect(reply.object?["queues"] == .null && reply.object?["samples"] == .null)
            let admin = try await api.send(.get, "/api/v1/console/overview/?minutes=5", token: api.adminToken)
            #expect(admin.object?["queues"]?.kindName == "list")
            // A purge without confirmation moves nothing (there is nothing to purge here either).
            let purge = try await api.send(.post, "/api/v1/console/dead-letters/purge/", json: #"{"filter": {"endpoint": "x"}}"#)
            #expect(purge.status == .ok && purge.object?["purged"] == .int(0))
        }
    }
}
