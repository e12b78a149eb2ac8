import Foundation
import Logging
import SchedulerAPI
import SchedulerCore

let configuration: Configuration
do {
    configuration = try Configuration()
} catch {
    FileHandle.standardError.write(Data("scheduler-web: configuration error: \(error)\n".utf8))
    exit(78)
}
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
var logger = Logger(label: "scheduler-web")
logger.logLevel = configuration.debug ? .debug : .info
let application = buildApplication(configuration: configuration, logger: logger)
try await application.runService()
