import Foundation
import SchedulerCore
import SchedulerStore
import Testing

/// Run now, a window to run in and a catch-up window, with the real programs and a real receiver.
@Suite("Schedule controls, end to end", .timeLimit(.minutes(5)))
struct ScheduleControlsEndToEndTests {
    @Test("run now: a paused schedule's receiver gets one POST at once, with the delivery's id as its key, recorded as manual")
    func runNow() async throws {
        try await Pipeline.run { pipeline in
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("now"))","interval_definition":"1 hours","enabled":false,"payload":{"run":"now"}}"#
            )
            let asked = Date()
            let (status, body) = try await pipeline.send(.post, "/api/v1/schedule/\(id)/trigger/")
            #expect(status == .accepted)
            let deliveryID = try #require(body?.objectValue?["id"]?.stringValue)
            let requests = try await pipeline.receiver.waitFor("now", count: 1, timeout: 10)
            let first = try #require(requests.first)
            #expect(first.body == #"{"run":"now"}"#)
            #expect(first.header("Idempotency-Key") == deliveryID)
            #expect(first.arrived.timeIntervalSince(asked) < 2, "sent at once: \(first.arrived.timeIntervalSince(asked)) s")
            let recorded = try await pipeline.eventually(timeout: 5) {
                try await pipeline.deliveries(id).contains {
                    $0.id.lowercasedText == deliveryID && $0.state == .delivered && $0.origin == .manual
                }
            }
            #expect(recorded)
            // A second run-now is a delivery of its own; the schedule stays paused.
            let (_, again) = try await pipeline.send(.post, "/api/v1/schedule/\(id)/trigger/")
            let secondID = try #require(again?.objectValue?["id"]?.stringValue)
            let both = try await pipeline.receiver.waitFor("now", count: 2, timeout: 10)
            #expect(both.map { $0.header("Idempotency-Key") } == [deliveryID, secondID])
            try await Task.sleep(for: .seconds(2))
            #expect(pipeline.receiver.received("now").count == 2, "nothing else: the schedule is still paused")
        }
    }

    @Test(
        "after beat was down: past the catch-up window one occurrence is recorded missed and one inside it sent; without one, the late one is sent"
    )
    func catchUpAfterDowntime() async throws {
        try await Pipeline.run(beat: false) { pipeline in
            // Both due ten minutes ago (as if beat had been down since), every minute.
            let due = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 - 600)
            let bounded = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("bounded"))","interval_definition":"1 minutes","next_send_at":"\#(Timestamp.format(due))","catchup_window":150}"#
            )
            let unbounded = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("unbounded"))","interval_definition":"1 minutes","next_send_at":"\#(Timestamp.format(due))"}"#
            )
            let started = Date()
            await pipeline.startBeat()
            let late = try #require(try await pipeline.receiver.waitFor("unbounded", count: 1, timeout: 10).first)
            #expect(late.header("X-Scheduler-Scheduled-For") == Timestamp.format(due), "today's behaviour: the one found due, late")
            let caughtUp = try #require(try await pipeline.receiver.waitFor("bounded", count: 1, timeout: 10).first)
            let scheduled = try #require(caughtUp.header("X-Scheduler-Scheduled-For").flatMap(Timestamp.parse))
            #expect(
                scheduled >= started.addingTimeInterval(-151) && scheduled <= Date(), "inside the window: \(Timestamp.format(scheduled))")
            #expect(scheduled.timeIntervalSince(due).truncatingRemainder(dividingBy: 60) == 0, "on the schedule's cadence")
            let missed = try await pipeline.deliveries(bounded).filter { $0.state == .missed }
            #expect(missed.map(\.scheduledFor) == [due])
            #expect(missed.first?.lastError?.hasPrefix("missed: due \(Timestamp.format(due))") == true)
            #expect(try await pipeline.deliveries(unbounded).allSatisfy { $0.state != .missed })
            // Nothing else of the ten minutes is sent, for either.
            try await Task.sleep(for: .seconds(2))
            #expect(pipeline.receiver.received("bounded").count == 1 && pipeline.receiver.received("unbounded").count == 1)
        }
    }

    @Test("start_at and end_at: the first POST at start_at, none after end_at")
    func window() async throws {
        try await Pipeline.run { pipeline in
            let start = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.up) + 3)
            let end = start.addingTimeInterval(3)
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("window"))","interval_definition":"1 seconds","start_at":"\#(Timestamp.format(start))","end_at":"\#(Timestamp.format(end))"}"#
            )
            let requests = try await pipeline.receiver.waitFor("window", count: 4, timeout: 15)
            #expect(
                requests.map { $0.header("X-Scheduler-Scheduled-For") }
                    == (0...3).map { Timestamp.format(start.addingTimeInterval(Double($0))) })
            #expect(try #require(requests.first).arrived >= start)
            try await Task.sleep(for: .seconds(3))
            #expect(pipeline.receiver.received("window").count == 4, "none after end_at")
            let (_, body) = try await pipeline.send(.get, "/api/v1/schedule/\(id)/")
            #expect(body?.objectValue?["next_send_at"] == .null && body?.objectValue?["triggered"] == .int(4))
        }
    }
}
