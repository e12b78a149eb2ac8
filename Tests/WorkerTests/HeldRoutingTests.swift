import DeliveryQueues
import Foundation
import SchedulerCore
import Testing

@Suite("Beat's choice between the held queue and the main queue")
struct HeldRoutingTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("a job due later goes to the held queue; one due now or overdue to the main queue")
    func dueNowGoesToTheMainQueue() {
        var routing = HeldRouting()
        let routes = [
            routing.held(now.addingTimeInterval(1.5), now: now), routing.held(now, now: now),
            routing.held(now.addingTimeInterval(-30), now: now),
        ]
        #expect(routes == [true, false, false])
        let job = DeliveryJob(deliveryID: UUID(), scheduleID: UUID(), scheduledFor: now, kind: .schedule)
        #expect(job.message(held: true).exchange == DeliveryTopology.heldExchange)
        #expect(job.message().exchange == DeliveryTopology.exchange)
    }

    @Test("a job due before one already sent to the held queue goes to the main queue, not behind it")
    func noJobWaitsBehindALaterOne() {
        var routing = HeldRouting()
        // A burst claimed ahead for one instant, in due order.
        let burst = now.addingTimeInterval(2)
        let bursts = (0..<3).map { _ in routing.held(burst, now: now) }
        #expect(bursts == [true, true, true])
        // A one-off created inside the lookahead, due before the burst: the held queue would
        // keep it behind the burst until the burst's instant.
        let oneOff = routing.held(now.addingTimeInterval(1), now: now.addingTimeInterval(0.2))
        #expect(!oneOff)
        // Later occurrences go to the held queue again, in order.
        let later = routing.held(burst.addingTimeInterval(1), now: now.addingTimeInterval(1))
        #expect(later)
        #expect(routing.latest == burst.addingTimeInterval(1))
    }
}
