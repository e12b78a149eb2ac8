import Foundation
import Logging
import Postgres
import Worker
import SchedulerCore
import ServiceLifecycle

let configuration: Configuration
do {
    configuration = try Configuration()
} catch {
    FileHandle.standardError.write(Data("scheduler-worker: configuration error: \(error)\n".utf8))
    exit(78)
}
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
var logger = Logger(label: "scheduler-worker")
logger.logLevel = configuration.debug ? .debug : .info
let pool = PostgresPool(url: configuration.databaseURL, size: 4, logger: logger)
let service = Worker(configuration: configuration, pool: pool, logger: logger)
let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
try await group.run()
pool.close()
