import DeliveryQueues
import Foundation
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
}
