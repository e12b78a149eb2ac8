import SchedulerAPI
import Telemetry

let (configuration, logger) = Program.prepare("scheduler-web")
try await buildApplication(configuration: configuration, logger: logger).runService()
