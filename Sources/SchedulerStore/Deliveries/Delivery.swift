import Crypto
import Foundation
import SchedulerCore

/// One occurrence's (or webhook call's) record.
public struct Delivery: Sendable, Equatable {
    public enum State: String, Sendable, CaseIterable {
        case queued, delivered, retrying, dead, cancelled, purged
    }

    public let id: UUID
    public let scheduleID: UUID?
    public let kind: DeliveryJob.Kind
    public let scheduledFor: Date
    public let state: State
    public let attempts: Int
    public let lastStatus: Int?
    public let lastError: String?
    public let latencyMilliseconds: Double?
    public let createdAt: Date
    public let publishedAt: Date?
    public let finishedAt: Date?

    public var job: DeliveryJob {
        DeliveryJob(deliveryID: id, scheduleID: scheduleID, scheduledFor: scheduledFor, kind: kind)
    }
}

/// Delivery ids are derived from (schedule id, scheduled time), so the same occurrence
/// always has the same id: a repeat after a crash carries the same `Idempotency-Key`.
public enum DeliveryID {
    public static func derive(scheduleID: UUID, scheduledFor: Date) -> UUID {
        let text = "seed-scheduler/delivery/\(scheduleID.uuidString.lowercased())/\(Timestamp.microseconds(scheduledFor))"
        var bytes = Array(SHA256.hash(data: Data(text.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8: custom
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}

/// PostgreSQL array literals for `unnest($1::uuid[], ...)` parameters.
enum PostgresArray {
    static func literal(_ values: [String?]) -> String {
        "{"
            + values.map { value in
                guard let value else { return "NULL" }
                return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
            }.joined(separator: ",") + "}"
    }
}
