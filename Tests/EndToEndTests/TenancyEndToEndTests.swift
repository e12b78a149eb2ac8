import DeliveryQueues
import Foundation
import Hummingbird
import NIOCore
import SchedulerCore
import SchedulerStore
import Testing

/// Tenancy through the pipeline: `POST /api/v1/failed-tasks/` re-drives the caller's own
/// dead letters, and leaves another user's in the dead-letter queue.
@Suite("Tenancy, end to end", .timeLimit(.minutes(2)))
struct TenancyEndToEndTests {
    @Test("a normal user's re-drive moves only their own dead letters")
    func redriveIsScoped() async throws {
        try await Pipeline.run { pipeline in
            let users = UserStore(pool: pipeline.pool, minter: TokenMinter(secretKey: Pipeline.secretKey))
            let alice = try await users.issueToken(email: "alice@example.org", admin: false).token
            let bob = try await users.issueToken(email: "bob@example.org", admin: false).token
            // Each receiver path refuses the first POST (404: dead at once), then accepts.
            pipeline.receiver.script("alice", [404])
            pipeline.receiver.script("bob", [404])
            for (token, name) in [(alice, "alice"), (bob, "bob")] {
                let (status, _) = try await pipeline.send(
                    .post, "/api/v1/schedule/",
                    json: #"{"endpoint":"\#(pipeline.receiver.url(name))","next_send_at":"\#(Timestamp.format(Date()))"}"#,
                    as: token)
                #expect(status == .created)
            }
            let bothDead = try await pipeline.eventually(timeout: 20) { try await pipeline.states()["dead", default: 0] == 2 }
            try #require(bothDead, "both deliveries are dead letters")
            let deadLetters = try await pipeline.eventually(timeout: 10) { try pipeline.depth(DeliveryTopology.deadQueue) == 2 }
            try #require(deadLetters)

            let (status, _) = try await pipeline.send(.post, "/api/v1/failed-tasks/", as: alice)
            #expect(status == .created)
            let again = try await pipeline.receiver.waitFor("alice", count: 2, timeout: 15)
            #expect(again.count == 2, "alice's dead letter was re-driven and delivered")
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.received("bob").count == 1, "bob's was not")
            #expect(try pipeline.depth(DeliveryTopology.deadQueue) == 1, "bob's dead letter is still in the queue")
            let (_, bobs) = try await pipeline.send(.get, "/api/v1/failed-tasks/", as: bob)
            #expect(bobs?.objectValue?["count"] == .int(1))
        }
    }

    @Test("scheduler-ctl sees every user's dead letters, and --owner narrows listing and re-driving to one user's")
    func operatorSeesAllAndNarrowsByOwner() async throws {
        try await Pipeline.run { pipeline in
            let users = UserStore(pool: pipeline.pool, minter: TokenMinter(secretKey: Pipeline.secretKey))
            let alice = try await users.issueToken(email: "alice@example.org", admin: false).token
            let bob = try await users.issueToken(email: "bob@example.org", admin: false).token
            pipeline.receiver.script("alice", [404])
            pipeline.receiver.script("bob", [404])
            for (token, name) in [(alice, "alice"), (bob, "bob")] {
                let (status, _) = try await pipeline.send(
                    .post, "/api/v1/schedule/",
                    json: #"{"endpoint":"\#(pipeline.receiver.url(name))","next_send_at":"\#(Timestamp.format(Date()))"}"#,
                    as: token)
                #expect(status == .created)
            }
            let dead = try await pipeline.eventually(timeout: 20) {
                let recorded = try await pipeline.states()["dead", default: 0] == 2
                return try pipeline.depth(DeliveryTopology.deadQueue) == 2 && recorded
            }
            try #require(dead)

            // The operator sees both, with whose they are.
            let all = try ctl(pipeline, ["dlq", "list", "--json"])
            guard case .array(let items) = try JSONParser.parse(all.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw ReceiverError("not a JSON array: \(all.output)")
            }
            #expect(Set(items.compactMap { $0.objectValue?["owner"]?.stringValue }) == ["alice@example.org", "bob@example.org"])
            // --owner narrows to one user's (the email in any case).
            let alices = try ctl(pipeline, ["dlq", "list", "--owner", "ALICE@example.org"])
            #expect(alices.output.contains("1 dead letter.") && alices.output.contains("/alice"), "\(alices.output)")
            #expect(!alices.output.contains("/bob"), "\(alices.output)")
            #expect(try ctl(pipeline, ["dlq", "list", "--owner", "carol@example.org"]).output.contains("No dead letters match."))
            #expect(try ctl(pipeline, ["dlq", "list", "--owner", "not an email"]).status != 0)

            let moved = try ctl(pipeline, ["dlq", "retry", "--owner", "alice@example.org"])
            #expect(moved.output.contains("Re-drove 1 dead letter."), "\(moved.output)")
            #expect(try await pipeline.receiver.waitFor("alice", count: 2, timeout: 15).count == 2)
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.received("bob").count == 1, "bob's was not re-driven")
            #expect(try pipeline.depth(DeliveryTopology.deadQueue) == 1)
        }
    }

    @Test("revoke-token stops a token at once; the next one issued works; rotate-token does both")
    func tokensAreRevokedAndRotated() async throws {
        try await Pipeline.run(worker: false) { pipeline in
            let email = "rotating@example.org"
            let first = try ctl(pipeline, ["create-token", "--email", email], withSecret: true)
            let token = first.output.trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(first.status == 0 && token.count == 40, "\(first.output)")
            let (created, schedule) = try await pipeline.send(
                .post, "/api/v1/schedule/", json: #"{"endpoint":"https://example.org/x","cron_definition":"0 9 * * 1"}"#, as: token)
            #expect(created == .created)
            #expect(try await pipeline.send(.get, "/api/v1/schedule/", as: token).0 == .ok)

            let revoked = try ctl(pipeline, ["revoke-token", "--email", email], withSecret: true)
            #expect(revoked.status == 0 && revoked.output.contains("Revoked the token of \(email)"), "\(revoked.output)")
            #expect(try await pipeline.send(.get, "/api/v1/schedule/", as: token).0 == .unauthorized, "the old token stops at once")

            // The next token is a new one; the user keeps their schedules.
            let next = try ctl(pipeline, ["create-token", "--email", email], withSecret: true).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(next.count == 40 && next != token)
            let (listed, list) = try await pipeline.send(.get, "/api/v1/schedule/", as: next)
            #expect(listed == .ok)
            #expect(list?.objectValue?["count"] == .int(1))
            if case .array(let results)? = list?.objectValue?["results"] {
                #expect(results.first?.objectValue?["id"] == schedule?.objectValue?["id"])
            } else {
                Issue.record("no results: \(String(describing: list))")
            }
            #expect(try await pipeline.send(.get, "/api/v1/schedule/", as: token).0 == .unauthorized, "the old one stays dead")

            let rotated = try ctl(pipeline, ["rotate-token", "--email", email], withSecret: true).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(rotated.count == 40 && rotated != next && rotated != token)
            #expect(try await pipeline.send(.get, "/api/v1/schedule/", as: next).0 == .unauthorized)
            #expect(try await pipeline.send(.get, "/api/v1/schedule/", as: rotated).0 == .ok)
            // Asking again gives the same (current) token.
            #expect(try ctl(pipeline, ["create-token", "--email", email], withSecret: true).output.contains(rotated))

            let unknown = try ctl(pipeline, ["revoke-token", "--email", "nobody@example.org"], withSecret: true)
            #expect(unknown.status != 0 && unknown.output.contains("no user with email nobody@example.org"))
        }
    }

    @Test("fair shares at one instant: a tenant's 10 due beside another's 2,000 are POSTed among the first, not at random behind them")
    func fairSharesAtAnInstant() async throws {
        // A window of 100 (200 held): most of the burst waits in the queue, as a burst larger than
        // the workers' windows does.
        try await Pipeline.run(environment: ["QUOTA_CREATES_PER_MINUTE": "100000", "WORKER_PREFETCH": "100"]) { pipeline in
            let users = UserStore(pool: pipeline.pool, minter: TokenMinter(secretKey: Pipeline.secretKey))
            let big = try await users.issueToken(email: "big@example.org", admin: false).token
            let small = try await users.issueToken(email: "small@example.org", admin: false).token
            // Written for a far instant, then all moved to one near instant: the creates take
            // a while on a slow machine, and the fair slots are drawn when they are written.
            let far = Date().addingTimeInterval(3600)
            // The small tenant's receiver is another host (localhost), as a tenant's own would be.
            let smallURL = "http://localhost:\(pipeline.receiver.port)/hook/small"
            try await pipeline.api { client in
                func create(_ token: String, _ endpoint: String) async throws {
                    let response = try await client.executeRequest(
                        uri: "/api/v1/schedule/", method: .post,
                        headers: [.authorization: "Token \(token)", .contentType: "application/json"],
                        body: ByteBuffer(string: #"{"endpoint":"\#(endpoint)","next_send_at":"\#(Timestamp.format(far))"}"#))
                    try #require(response.status == .created, "\(String(buffer: response.body))")
                }
                // Interleaved in time as real tenants' writes would be: the small tenant's are
                // created after the large tenant has most of its schedules.
                for index in 0..<2000 {
                    try await create(big, pipeline.receiver.url("big"))
                    if index >= 1500 && index % 50 == 0 && index < 2000 { try await create(small, smallURL) }
                }
            }
            let due = Date().addingTimeInterval(4)
            try await pipeline.pool.query("UPDATE schedules SET next_send_at = $1", [Timestamp.format(due)])
            let arrived = try await pipeline.eventually(timeout: 90) {
                pipeline.receiver.received("small").count == 10 && pipeline.receiver.received("big").count == 2000
            }
            try #require(arrived, "all 2,010 POSTed")
            let order = pipeline.receiver.state.requests.withLock { $0 }.filter { $0.path.hasSuffix("/big") || $0.path.hasSuffix("/small") }
            let positions = order.enumerated().filter { $0.element.path.hasSuffix("/small") }.map(\.offset)
            #expect(positions.count == 10)
            // At random places among 2,010 the last would be near the end; fair slots put all ten first.
            #expect((positions.max() ?? .max) < 200, "the small tenant's POSTs were at \(positions) of 2,010")
            let lateness = pipeline.receiver.received("small").map { $0.arrived.timeIntervalSince(due) }
            #expect(lateness.allSatisfy { $0 >= 0 } && (lateness.max() ?? 99) < 1, "lateness \(lateness)")
        }
    }
}
