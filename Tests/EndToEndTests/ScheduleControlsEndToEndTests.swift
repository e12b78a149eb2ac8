import Foundation
import SchedulerCore
import SchedulerStore
import Testing

/// Run now, a window to run in and a catch-up window, with the real programs and a real receiver.
@Suite("Schedule controls, end to end", .timeLimit(.minutes(5)))
struct ScheduleControlsEndToEndTests {
    @Test(
        "run now: a paused schedule's receiver gets one POST at once (its jitter and overlap policy do not hold it), with the delivery's id as its key, recorded as manual"
    )
    func runNow() async throws {
        try await Pipeline.run { pipeline in
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("now"))","interval_definition":"1 hours","enabled":false,"payload":{"run":"now"},"jitter":30,"overlap":"skip"}"#
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
            // Both due 35 minutes ago (as if beat had been down since), every ten minutes: their
            // cadence falls 5 minutes ago, and next 5 minutes ahead, far from the test.
            let due = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down) - 2_100)
            let bounded = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("bounded"))","interval_definition":"10 minutes","next_send_at":"\#(Timestamp.format(due))","catchup_window":600}"#
            )
            let unbounded = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("unbounded"))","interval_definition":"10 minutes","next_send_at":"\#(Timestamp.format(due))"}"#
            )
            let started = Date()
            await pipeline.startBeat()
            let late = try #require(try await pipeline.receiver.waitFor("unbounded", count: 1, timeout: 10).first)
            #expect(late.header("X-Scheduler-Scheduled-For") == Timestamp.format(due), "today's behaviour: the one found due, late")
            let caughtUp = try #require(try await pipeline.receiver.waitFor("bounded", count: 1, timeout: 10).first)
            let scheduled = try #require(caughtUp.header("X-Scheduler-Scheduled-For").flatMap(Timestamp.parse))
            #expect(scheduled == due.addingTimeInterval(1_800), "the one inside the window, on the cadence: \(Timestamp.format(scheduled))")
            #expect(scheduled >= started.addingTimeInterval(-600))
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

    @Test("a backfill POSTs each past occurrence once, keyed as its occurrence, not counted as late; a second sends nothing")
    func backfill() async throws {
        try await Pipeline.run { pipeline in
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("backfill"))","cron_definition":"*/10 * * * *","enabled":false}"#)
            // Paused, so that only the backfill sends (it does, whatever the schedule's state).
            let to = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 600).rounded(.down) * 600)
            let from = to.addingTimeInterval(-3_000)
            let range = #"{"from":"\#(Timestamp.format(from))","to":"\#(Timestamp.format(to))"}"#
            let (status, body) = try await pipeline.send(.post, "/api/v1/schedule/\(id)/backfill/", json: range)
            #expect(status == .accepted && body?.objectValue?["queued"] == .int(6), "\(body?.serialized ?? "")")
            let requests = try await pipeline.receiver.waitFor("backfill", count: 6, timeout: 15)
            let times = (0...5).map { from.addingTimeInterval(Double($0) * 600) }
            #expect(Set(requests.compactMap { $0.header("X-Scheduler-Scheduled-For") }) == Set(times.map(Timestamp.format)))
            #expect(
                Set(requests.compactMap { $0.header("Idempotency-Key") })
                    == Set(times.map { DeliveryID.derive(scheduleID: id, scheduledFor: $0).lowercasedText }))
            let recorded = try await pipeline.eventually(timeout: 5) {
                try await pipeline.deliveries(id).filter { $0.origin == .backfill && $0.state == .delivered }.count == 6
            }
            #expect(recorded)
            let late = try await pipeline.pool.query(
                "SELECT count(*) AS n FROM deliveries WHERE schedule_id = $1 AND lateness_ms IS NOT NULL", [id.lowercasedText])
            #expect(late.first?["n"] == "0", "an occurrence asked for again is not late")
            let (_, again) = try await pipeline.send(.post, "/api/v1/schedule/\(id)/backfill/", json: range)
            #expect(again?.objectValue?["queued"] == .int(0))
            try await Task.sleep(for: .seconds(2))
            #expect(pipeline.receiver.received("backfill").count == 6)
        }
    }

    @Test("jitter: occurrences due at one instant leave spread over [due, due + jitter], each at the offset its id gives, on time from it")
    func jitter() async throws {
        try await Pipeline.run { pipeline in
            let due = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.up) + 3)
            // 6 s: most offsets lie past beat's lookahead (1.5 s), so those jobs wait as records.
            for n in 0..<12 {
                _ = try await pipeline.createSchedule(
                    #"{"endpoint":"\#(pipeline.receiver.url("jitter"))","next_send_at":"\#(Timestamp.format(due))","jitter":6,"payload":{"n":\#(n)}}"#
                )
            }
            let requests = try await pipeline.receiver.waitFor("jitter", count: 12, timeout: 20)
            var offsets: [Double] = []
            for request in requests {
                let schedule = try #require(request.header("X-Scheduler-Schedule-Id").flatMap(UUID.init(uuidString:)))
                let deliveryID = DeliveryID.derive(scheduleID: schedule, scheduledFor: due)
                #expect(request.header("Idempotency-Key") == deliveryID.lowercasedText, "the occurrence's id, as without jitter")
                let offset = ScheduleJitter.offset(deliveryID: deliveryID, jitterSeconds: 6)
                offsets.append(offset)
                let stated = try #require(request.header("X-Scheduler-Scheduled-For").flatMap(Timestamp.parse))
                #expect(abs(stated.timeIntervalSince(due.addingTimeInterval(offset))) < 0.002, "sent for its offset instant")
                let lateness = request.arrived.timeIntervalSince(due.addingTimeInterval(offset))
                #expect(lateness >= -0.001 && lateness < 1, "on time from its offset: \(lateness) s")
            }
            #expect((offsets.max() ?? 0) - (offsets.min() ?? 0) > 2, "spread: \(offsets.sorted())")
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.received("jitter").count == 12, "each once")
        }
    }

    @Test(
        "overlap, with a receiver slower than the interval: allow has two at once; skip never, and records the skipped; buffer_one never, and sends the one that waited"
    )
    func overlap() async throws {
        try await Pipeline.run { pipeline in
            var ids: [String: UUID] = [:]
            for policy in ["allow", "skip", "buffer_one"] {
                pipeline.receiver.delay(policy, seconds: 3)
                ids[policy] = try await pipeline.createSchedule(
                    #"{"endpoint":"\#(pipeline.receiver.url(policy))","interval_definition":"2 seconds","overlap":"\#(policy)"}"#)
            }
            try await Task.sleep(for: .seconds(11))
            for id in ids.values { _ = try await pipeline.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"enabled":false}"#) }
            try await Task.sleep(for: .seconds(3.5))
            // Occurrences at once: a worker that gave up on a POST (DELIVERY_TIMEOUT) retries the
            // same occurrence, which is not an overlap.
            #expect(pipeline.receiver.mostOccurrencesAtOnce("allow") >= 2)
            #expect(pipeline.receiver.mostOccurrencesAtOnce("skip") == 1)
            #expect(pipeline.receiver.mostOccurrencesAtOnce("buffer_one") == 1)
            let skip = try await pipeline.deliveries(ids["skip"]!)
            #expect(skip.filter { $0.state == .skipped }.count >= 2, "\(skip.map(\.state))")
            #expect(skip.first { $0.state == .skipped }?.lastError?.contains("still being delivered") == true)
            // buffer_one: one waited and was sent once the one before it was done, late by the wait.
            let buffered = pipeline.receiver.received("buffer_one")
            let waited = buffered.filter { request in
                guard let due = request.header("X-Scheduler-Scheduled-For").flatMap(Timestamp.parse) else { return false }
                return request.arrived.timeIntervalSince(due) > 0.5
            }
            #expect(!waited.isEmpty, "\(buffered.map { $0.header("X-Scheduler-Scheduled-For") ?? "" })")
            #expect(buffered.count > pipeline.receiver.received("skip").count)
            #expect(try await pipeline.deliveries(ids["buffer_one"]!).allSatisfy { $0.state != .buffered }, "none left waiting")
        }
    }

    /// Debian's libfaketime, which scripts/test installs.
    static let fakeClockLibrary = ["x86_64", "aarch64"].map { "/usr/lib/\($0)-linux-gnu/faketime/libfaketime.so.1" }
        .first { FileManager.default.fileExists(atPath: $0) }

    /// A pipeline without beat or worker; `schedules` makes the test's schedules (each due at
    /// `start`, crontab `cron` in New York, with `field` set to each of `choices`), then beat
    /// starts on a clock that reads `start` and a worker on the real clock; `check` gets the
    /// schedules by choice and when beat was launched.
    ///
    /// Beat's clock runs at the normal rate; beat publishes each occurrence at its due time
    /// (no lookahead), and the worker sends what it gets at once (a job due more than 15 s
    /// ahead by its clock is not held). Beat alone: libdispatch's timers, armed from a moved
    /// clock, do not fire, and the worker holds jobs with them.
    func withBeatOnClock(
        at start: String, cron: String, field: String, choices: [String],
        check: @Sendable (Pipeline, [String: UUID], Date) async throws -> Void
    ) async throws {
        let library = try #require(Self.fakeClockLibrary, "libfaketime (scripts/test installs it)")
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            var ids: [String: UUID] = [:]
            for choice in choices {
                ids[choice] = try await pipeline.createSchedule(
                    #"{"endpoint":"\#(pipeline.receiver.url(choice))","cron_definition":"\#(cron)","timezone":"America/New_York","\#(field)":"\#(choice)","next_send_at":"\#(start)"}"#
                )
            }
            let fake = "@" + start.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
            let launched = Date()
            _ = try pipeline.launch("beat", extra: ["LD_PRELOAD": library, "FAKETIME": fake, "TZ": "UTC", "BEAT_LOOKAHEAD": "0"])
            await pipeline.startWorker()
            try await check(pipeline, ids, launched)
        }
    }

    @Test(
        "daylight saving with a real receiver and worker, beat on a clock that reads New York's 2027 spring forward; shift POSTs the skipped 02:30 at 03:00 EDT, skip does not"
    )
    func daylightSavingGap() async throws {
        // 15 s before 02:00 EST, when the clock jumps to 03:00 EDT (07:00 UTC).
        let start = "2027-03-14T06:59:45Z"
        try await withBeatOnClock(at: start, cron: "30 2 * * *", field: "dst_gap", choices: ["shift", "skip"]) { pipeline, ids, launched in
            // Each is due at `start`: sent once (late, as the original sends a missed run), and
            // its next run computed by beat on its clock, with its choice.
            let shifted = try await pipeline.receiver.waitFor("shift", count: 2, timeout: 45)
            #expect(shifted.map { $0.header("X-Scheduler-Scheduled-For") } == [start, "2027-03-14T07:00:00Z"])
            #expect(
                shifted.count == 2 && shifted[1].arrived.timeIntervalSince(launched) >= 14.5, "at 03:00 EDT by their clock, not at once")
            #expect(pipeline.receiver.received("skip").map { $0.header("X-Scheduler-Scheduled-For") } == [start])
            let (_, skip) = try await pipeline.send(.get, "/api/v1/schedule/\(ids["skip"]!)/")
            #expect(skip?.objectValue?["next_send_at"] == .string("2027-03-15T06:30:00Z"), "02:30 EDT the next day")
            let (_, shift) = try await pipeline.send(.get, "/api/v1/schedule/\(ids["shift"]!)/")
            #expect(shift?.objectValue?["next_send_at"] == .string("2027-03-15T06:30:00Z"))
        }
    }

    @Test(
        "daylight saving with a real receiver and worker, beat on a clock that reads New York's 2027 fall back; first POSTs 01:30 at its first showing, second at its second, both at each"
    )
    func daylightSavingOverlap() async throws {
        // 15 s before 01:30 EDT (05:30 UTC); the clock shows 01:30 again at 06:30 UTC (EST).
        let start = "2027-11-07T05:29:45Z"
        let choices = ["first", "second", "both"]
        try await withBeatOnClock(at: start, cron: "30 1 * * *", field: "dst_overlap", choices: choices) { pipeline, ids, launched in
            // Each is due at `start` and sent once; its next run is then the choice's 01:30.
            for choice in ["first", "both"] {
                let got = try await pipeline.receiver.waitFor(choice, count: 2, timeout: 45)
                #expect(got.map { $0.header("X-Scheduler-Scheduled-For") } == [start, "2027-11-07T05:30:00Z"], "\(choice)")
                #expect(got.count == 2 && got[1].arrived.timeIntervalSince(launched) >= 14.5, "at 01:30 EDT by their clock, not at once")
            }
            // `second` waits for 01:30 EST, an hour later.
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.received("second").map { $0.header("X-Scheduler-Scheduled-For") } == [start])
            let expected = ["first": "2027-11-08T06:30:00Z", "second": "2027-11-07T06:30:00Z", "both": "2027-11-07T06:30:00Z"]
            for (choice, next) in expected {
                let (_, schedule) = try await pipeline.send(.get, "/api/v1/schedule/\(ids[choice]!)/")
                #expect(
                    schedule?.objectValue?["next_send_at"] == .string(next),
                    "\(choice): 01:30 EST \(choice == "first" ? "the next day" : "today")")
            }
        }
    }

    @Test("scheduler-ctl schedules: list, show, pause with a note, resume, run now (delivered) and the history, as an operator")
    func operatorCommands() async throws {
        try await Pipeline.run { pipeline in
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("ctl"))","interval_definition":"1 hours","auth_token":"never-shown"}"#)
            let text = id.lowercasedText
            let list = try ctl(pipeline, ["schedules", "list"])
            #expect(list.status == 0 && list.output.contains(text) && list.output.contains("every 1 hours"), "\(list.output)")
            let show = try ctl(pipeline, ["schedules", "show", text])
            #expect(show.status == 0 && show.output.contains("auth_token: (set)") && !show.output.contains("never-shown"))

            let pause = try ctl(pipeline, ["schedules", "pause", text, "--note", "receiver moving", "--by", "e2e@example.org"])
            #expect(pause.status == 0, "\(pause.output)")
            let (_, paused) = try await pipeline.send(.get, "/api/v1/schedule/\(text)/")
            #expect(paused?.objectValue?["enabled"] == .bool(false))
            #expect(paused?.objectValue?["paused_note"] == .string("receiver moving") && paused?.objectValue?["paused_by"] != .null)
            let tooLong = try ctl(pipeline, ["schedules", "pause", text, "--note", String(repeating: "n", count: 501)])
            #expect(tooLong.status != 0 && tooLong.output.contains("paused_note"), "\(tooLong.output)")

            let trigger = try ctl(pipeline, ["schedules", "trigger", text])
            #expect(trigger.status == 0 && trigger.output.contains("queued"), "\(trigger.output)")
            let delivered = try await pipeline.receiver.waitFor("ctl", count: 1, timeout: 10)
            #expect(delivered.count == 1, "run now, although it is paused")

            let resume = try ctl(pipeline, ["schedules", "resume", text])
            #expect(resume.status == 0 && resume.output.contains("resumed"), "\(resume.output)")
            let history = try ctl(pipeline, ["schedules", "history", text, "--json"])
            let actions = history.output.split(separator: "\n").compactMap {
                (try? JSONParser.parse(String($0)))?.objectValue?["action"]?.stringValue
            }
            #expect(actions == ["resumed", "triggered", "paused", "created"], "\(history.output)")
            #expect(history.output.contains("e2e@example.org"), "the pause is recorded as by the user given")
            let unknown = try ctl(pipeline, ["schedules", "show", UUID().uuidString])
            #expect(unknown.status != 0 && unknown.output.contains("no schedule"))
        }
    }
}
