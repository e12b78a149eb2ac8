import Logging
import Postgres
import SchedulerCore
import ServiceLifecycle
import Telemetry
import Worker

let configuration = Configuration.loadOrExit(program: "scheduler-worker")
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
Telemetry.bootstrap()
var logger = Logger(label: "scheduler-worker")
logger.logLevel = configuration.debug ? .debug : .info
let pool = PostgresPool(
    url: configuration.databaseURL, size: 4, statementTimeout: configuration.databaseStatementTimeout, logger: logger)
let service = Worker(configuration: configuration, pool: pool, logger: logger)
let metrics = MetricsServer(host: configuration.host, port: configuration.workerMetricsPort, logger: logger)
let group = ServiceGroup(services: [service, metrics], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
try await group.run()
pool.close()
