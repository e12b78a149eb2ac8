import AMQP
import SchedulerCore

/// The depth of every queue of the topology, read over AMQP with passive declares (no
/// management plugin). A queue not declared yet has no counts.
public enum QueueDepths {
    public typealias Counts = [(queue: String, counts: AMQPQueueCounts?)]

    /// Reads on a session of its own.
    public static func read(brokerURL: String, policy: RetryPolicy, timeout: Double = 5) async throws -> Counts {
        let session = try await AMQPSession.open(url: brokerURL, timeout: timeout)
        do {
            try await session.openChannel(1)
            let counts = try await read(on: session, policy: policy, channel: 1).counts
            await session.close()
            return counts
        } catch {
            await session.close()
            throw error
        }
    }

    /// Reads on `session`, starting on `channel` (open). A failed passive declare closes
    /// its channel, so the reader goes on with the next number: it returns the channel that
    /// is open at the end, for the next read on the same session.
    public static func read(on session: AMQPSession, policy: RetryPolicy, channel: UInt16) async throws -> (
        counts: Counts, channel: UInt16
    ) {
        var result: Counts = []
        var channel = channel
        for name in DeliveryTopology.queueNames(policy) {
            do {
                result.append((name, try await session.declareQueue(name, passive: true, channel: channel)))
            } catch let error as AMQPError where error.code == 404 {
                result.append((name, nil))
                channel += 1
                try await session.openChannel(channel)
            }
        }
        return (result, channel)
    }
}
