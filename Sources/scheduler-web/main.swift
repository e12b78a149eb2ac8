import Logging
import SchedulerAPI
import SchedulerCore
import Telemetry

let configuration = Configuration.loadOrExit(program: "scheduler-web")
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
Telemetry.bootstrap()
var logger = Logger(label: "scheduler-web")
logger.logLevel = configuration.debug ? .debug : .info
let application = buildApplication(configuration: configuration, logger: logger)
try await application.runService()
