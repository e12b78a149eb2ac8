import AMQP
import SchedulerCore

/// The depth of every queue of the topology, read over AMQP with passive declares (no
/// management plugin). A queue not declared yet has no counts.
public enum QueueDepths {
    public static func read(brokerURL: String, policy: RetryPolicy, timeout: Double = 5) async throws -> [(
        queue: String, counts: AMQPQueueCounts?
    )] {
        let session = try await AMQPSession.open(url: brokerURL, timeout: timeout)
        do {
            var result: [(queue: String, counts: AMQPQueueCounts?)] = []
            var channel: UInt16 = 1
            try await session.openChannel(channel)
            for name in DeliveryTopology.queueNames(policy) {
                do {
                    result.append((name, try await session.declareQueue(name, passive: true, channel: channel)))
                } catch let error as AMQPError where error.code == 404 {
                    // A failed passive declare closes the channel: go on with another.
                    result.append((name, nil))
                    channel += 1
                    try await session.openChannel(channel)
                }
            }
            await session.close()
            return result
        } catch {
            await session.close()
            throw error
        }
    }
}
