import Foundation
import Logging
import SchedulerStore
import ServiceLifecycle

/// Samples the depth of every queue into PostgreSQL every `interval` seconds, for the
/// console's chart of the last hour (the history survives a restart of web; a day is kept).
/// Samples fall on whole multiples of the interval, so several web processes write each
/// slot once.
struct QueueSampler: Service {
    let status: OperationsStatus
    let store: ConsoleStore
    let interval: Double
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                let now = Date().timeIntervalSince1970
                let slot = (now / interval).rounded(.up) * interval
                try? await Task.sleep(for: .seconds(max(0, slot - now)))
                if Task.isCancelled { break }
                let reading = await status.current()
                let at = Date(timeIntervalSince1970: slot)
                let samples = reading.queues.compactMap { queue, counts in
                    counts.map { ConsoleStore.QueueSample(takenAt: at, queue: queue, ready: $0.messages, consumers: $0.consumers) }
                }
                do {
                    try await store.record(samples)
                    if failing { logger.notice("queue samples recorded again") }
                    failing = false
                } catch {
                    if !failing { logger.warning("queue samples not recorded", metadata: ["error": "\(error)"]) }
                    failing = true
                }
            }
        }
    }
}
