import AMQP
import Dispatch
import SchedulerCore

/// The depth of every queue of the topology, read over AMQP with passive declares (no
/// management plugin). A queue not declared yet has no counts.
public enum QueueDepths {
    public static func read(brokerURL: String, policy: RetryPolicy, timeout: Double = 5) async throws -> [(
        queue: String, counts: AMQPQueueCounts?
    )] {
        let names = DeliveryTopology.queueNames(policy)
        return try await withCheckedThrowingContinuation { continuation in
            // librabbitmq blocks: on a dispatch thread, never the cooperative pool.
            DispatchQueue(label: "queue-depths").async {
                continuation.resume(
                    with: Result {
                        let connection = try AMQPConnection(url: brokerURL, heartbeat: 0, timeout: timeout)
                        defer { connection.close() }
                        var result: [(queue: String, counts: AMQPQueueCounts?)] = []
                        var channel: UInt16 = 1
                        try connection.openChannel(channel)
                        for name in names {
                            do {
                                result.append((name, try connection.declareQueue(name, passive: true, channel: channel)))
                            } catch let error as AMQPError where error.code == 404 {
                                // A failed passive declare closes the channel: go on with another.
                                result.append((name, nil))
                                channel += 1
                                try connection.openChannel(channel)
                            }
                        }
                        return result
                    })
            }
        }
    }
}
