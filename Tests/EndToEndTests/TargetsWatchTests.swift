import Foundation
import Postgres
import SchedulerStore
import Synchronization
import TestSupport
import Testing

@testable import Worker

/// The worker's watch of changed schedules against a real PostgreSQL: it says it hears only
/// once a probe of its own came back, and a LISTEN that hears nothing turns reading ahead off.
@Suite("Changes of schedules, heard by the worker", .timeLimit(.minutes(1)))
struct TargetsWatchTests {
    final class Heard: Sendable {
        let events = Mutex<[String]>([])
        func tell(_ event: DeliveryMachine.Event) {
            switch event {
            case .targetsWatched(let on): events.withLock { $0.append("watched \(on)") }
            case .targetsChanged(let ids): events.withLock { $0 += ids.map { "changed \($0.lowercasedText)" } }
            default: break
            }
        }
        var all: [String] { events.withLock { $0 } }
    }

    @Test("a probe that comes back turns reading ahead on; an edit and a delete of a schedule are told by id, beat's updates are not")
    func hears() async throws {
        try await TestDatabase.withFreshPool { pool in
            let store = DeliveryStore(pool: pool)
            let heard = Heard()
            let watch = Task {
                await DeliveryLoop.watchTargets(
                    url: pool.url, logger: TestDatabase.logger, probe: { try await store.notifyTargets($0) }, probeInterval: 0.5
                ) { heard.tell($0) }
            }
            defer { watch.cancel() }
            let on = try await eventually(timeout: 5) { heard.all.contains("watched true") }
            try #require(on, "\(heard.all)")
            let id = UUID()
            _ = try await pool.query(
                "INSERT INTO schedules (id, endpoint, next_send_at) VALUES ($1, 'http://127.0.0.1:9/h', now() + interval '1 day')",
                [id.lowercasedText])
            // Beat's own update (its claim sets scheduler.beat) is not a change of the target.
            try await pool.withTransaction { connection in
                try await connection.execute("SET LOCAL scheduler.beat = 'on'")
                _ = try await connection.query(
                    "UPDATE schedules SET next_send_at = next_send_at + interval '1 day' WHERE id = $1", [id.lowercasedText])
            }
            try await Task.sleep(for: .seconds(1.2))
            #expect(!heard.all.contains("changed \(id.lowercasedText)"), "an insert and beat's update tell nothing")
            _ = try await pool.query("UPDATE schedules SET payload = '{\"v\":2}' WHERE id = $1", [id.lowercasedText])
            let edited = try await eventually(timeout: 3) { heard.all.contains("changed \(id.lowercasedText)") }
            #expect(edited)
            _ = try await pool.query("DELETE FROM schedules WHERE id = $1", [id.lowercasedText])
            let deleted = try await eventually(timeout: 3) { heard.all.filter { $0 == "changed \(id.lowercasedText)" }.count == 2 }
            #expect(deleted)
            // The probes, sent every half second, are not told as changes, and it still hears.
            #expect(heard.all.filter { $0.hasPrefix("changed") }.count == 2, "\(heard.all)")
            #expect(!heard.all.contains("watched false"))
        }
    }

    @Test("a LISTEN whose probe never comes back (a pooler in transaction mode) never turns reading ahead on")
    func deaf() async throws {
        try await TestDatabase.withFreshPool { pool in
            let heard = Heard()
            let watch = Task {
                await DeliveryLoop.watchTargets(
                    url: pool.url, logger: TestDatabase.logger, probe: { _ in }, probeInterval: 0.5, probeTimeout: 1
                ) { heard.tell($0) }
            }
            defer { watch.cancel() }
            let off = try await eventually(timeout: 5) { heard.all.contains("watched false") }
            #expect(off, "\(heard.all)")
            #expect(!heard.all.contains("watched true"))
        }
    }
}
