import SchedulerCore
import Testing

@Suite("Interval definitions")
struct IntervalDefinitionTests {
    @Test(
        "integer and period, plural or singular",
        arguments: [
            ("1 minutes", 60_000_000), ("1 minute", 60_000_000), ("5 minutes", 300_000_000), ("2 hours", 7_200_000_000),
            ("1 day", 86_400_000_000), ("3 days", 259_200_000_000), ("30 seconds", 30_000_000), ("1 second", 1_000_000),
            ("250 microseconds", 250), ("1 Minute", 60_000_000), ("  7   seconds ", 7_000_000),
        ] as [(String, Int64)])
    func valid(text: String, microseconds: Int64) throws {
        let interval = try #require(IntervalDefinition(parsing: text))
        #expect(interval.microseconds == microseconds)
    }

    @Test(
        "anything else is refused",
        arguments: [
            "", "5", "minutes", "0 minutes", "-1 minutes", "1.5 minutes", "5 weeks", "5 minutes extra", "five minutes",
            "99999999999999999999 days", "200000000 days", "+5 minutes", "٣ minutes",
        ])
    func invalid(text: String) {
        #expect(IntervalDefinition(parsing: text) == nil)
    }

    @Test("the interval's next run is one interval later")
    func nextRun() throws {
        let timing = ScheduleTiming(cronDefinition: nil, intervalDefinition: "90 seconds", timezone: "UTC")
        #expect(timing.nextRun(after: date("2026-01-01T00:00:00.5Z")).map(Timestamp.format) == "2026-01-01T00:01:30.500000Z")
    }
}
