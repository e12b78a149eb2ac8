import Foundation
import SchedulerCore

func date(_ text: String) -> Date {
    guard let date = Timestamp.parse(text) else { fatalError("bad test date \(text)") }
    return date
}

func zone(_ name: String) -> TimeZone {
    guard let zone = TimeZone(identifier: name) else { fatalError("unknown zone \(name)") }
    return zone
}

/// The next `count` runs of a crontab after `start`, as UTC text.
func runs(_ cron: String, in zoneName: String = "UTC", after start: String, count: Int) throws -> [String] {
    let expression = try CronExpression(parsing: cron)
    var current = date(start)
    var result: [String] = []
    for _ in 0..<count {
        guard let next = expression.nextDate(after: current, in: zone(zoneName)) else { break }
        result.append(Timestamp.format(next))
        current = next
    }
    return result
}
