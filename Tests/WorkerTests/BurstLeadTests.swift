import DeliveryQueues
import Foundation
import Testing

@Suite("How far ahead beat starts on a burst")
struct BurstLeadTests {
    let next = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("the lookahead plus the burst's count at the pace, for a burst; the lookahead alone for a few")
    func leadGrowsWithTheBurst() throws {
        let lead = BurstLead(lookahead: 1.5, pace: 5000)
        #expect(lead.seconds(occurrences: 0) == 1.5)
        #expect(lead.seconds(occurrences: 1) == 1.5)
        // A steady thousand a second: a fifth of a second's work, not a burst.
        #expect(lead.seconds(occurrences: 1000) == 1.5)
        #expect(lead.start(next: next, occurrences: 1000) == nil)
        #expect(lead.seconds(occurrences: 10_000) == 3.5)
        let start = try #require(lead.start(next: next, occurrences: 10_000))
        #expect(start.from == next.addingTimeInterval(-3.5))
        #expect(start.until == next.addingTimeInterval(BurstLead.width), "the burst's second, not the next one's")
    }

    @Test("never more than 10 s ahead, whatever the count or the pace; nothing early with the lookahead off")
    func leadIsBounded() {
        let lead = BurstLead(lookahead: 1.5, pace: 5000)
        #expect(lead.seconds(occurrences: 50_000) == 10)
        #expect(lead.seconds(occurrences: Int.max) == 10)
        #expect(lead.seconds(occurrences: -1) == 1.5)
        #expect(BurstLead(lookahead: 1.5, pace: 1).seconds(occurrences: Int.max) == 10)
        #expect(BurstLead(lookahead: 1.5, pace: 0).seconds(occurrences: 1) == 2.5, "a pace of 0 reads as 1")
        #expect(BurstLead(lookahead: 10, pace: 1).seconds(occurrences: 1000) == 10)
        #expect(BurstLead(lookahead: 10, pace: 1).start(next: next, occurrences: 1000) == nil)
        let off = BurstLead(lookahead: 0, pace: 5000)
        #expect(off.seconds(occurrences: 50_000) == 0)
        #expect(off.start(next: next, occurrences: 50_000) == nil)
        #expect(off.countLimit == 0)
    }

    @Test("counting stops where the lead stops growing")
    func countLimit() {
        let lead = BurstLead(lookahead: 1.5, pace: 5000)
        #expect(lead.countLimit == 42_501)
        #expect(lead.seconds(occurrences: lead.countLimit) == 10)
        #expect(lead.seconds(occurrences: lead.countLimit - 2) < 10)
        #expect(BurstLead(lookahead: 0.001, pace: 1_000_000).countLimit == 1_000_000, "a bounded scan")
    }
}
