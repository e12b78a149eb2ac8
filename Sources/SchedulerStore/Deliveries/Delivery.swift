import Crypto
import Foundation
import SchedulerCore

/// One occurrence's (or webhook call's) record.
public struct Delivery: Sendable, Equatable {
    public enum State: String, Sendable, CaseIterable {
        case queued, delivered, retrying, dead, cancelled, purged
        /// Found due after beat was down for longer than the schedule's catch-up window: not sent.
        case missed
        /// Due while the previous occurrence was still being delivered (`overlap: skip`): not sent.
        case skipped
        /// Waiting behind the previous occurrence (`overlap: buffer_one`): sent once it is done.
        case buffered
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
    public let origin: DeliveryJob.Origin

    public var job: DeliveryJob {
        DeliveryJob(deliveryID: id, scheduleID: scheduleID, scheduledFor: scheduledFor, kind: kind, origin: origin)
    }
}

/// Delivery ids are derived from (schedule id, scheduled time), so the same occurrence
/// always has the same id: a repeat after a crash carries the same `Idempotency-Key`.
///
/// An id starts with the occurrence's Unix time in milliseconds (48 bits, big-endian, as in
/// UUIDv7), and `deliveries` is partitioned by ranges of ids, one UTC week each (migration
/// 0006): a lookup by id reads one partition, and a week's records are dropped together.
/// The other 74 bits are a hash (derived ids) or random (webhook calls); the version is 8.
public enum DeliveryID {
    public static func derive(scheduleID: UUID, scheduledFor: Date) -> UUID {
        let text = "seed-scheduler/delivery/\(scheduleID.lowercasedText)/\(Timestamp.microseconds(scheduledFor))"
        return make(at: scheduledFor, rest: Array(SHA256.hash(data: Data(text.utf8)).prefix(16)))
    }

    /// A new id for something happening at `date` (a webhook call).
    public static func fresh(at date: Date = Date()) -> UUID {
        make(at: date, rest: withUnsafeBytes(of: UUID().uuid) { Array($0) })
    }

    /// The smallest id of anything at `date` or later: a lower bound on ids that lets
    /// PostgreSQL read only the partitions from `date` on.
    public static func floor(_ date: Date) -> UUID {
        make(at: date, rest: [UInt8](repeating: 0, count: 16))
    }

    /// The Unix time in milliseconds an id starts with.
    public static func milliseconds(of id: UUID) -> Int64 {
        withUnsafeBytes(of: id.uuid) { $0.prefix(6).reduce(Int64(0)) { $0 << 8 | Int64($1) } }
    }

    /// `date`'s milliseconds (clamped to 0...2^48 - 1: years 1970 to 10889) in bytes 0-5,
    /// `rest` in the others, with the version and variant bits set.
    static func make(at date: Date, rest: [UInt8]) -> UUID {
        let seconds = date.timeIntervalSince1970
        let limit = Int64(1) << 48 - 1
        let milliseconds = seconds.isFinite ? Int64(max(0, min(Double(limit), (seconds * 1000).rounded(.down)))) : 0
        var bytes = rest
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - index))) }
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8: custom
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}

/// PostgreSQL array literals for `unnest($1::uuid[], ...)` parameters: each element quoted,
/// with `\\` and `"` escaped, written byte by byte (this runs for every id of every batch).
enum PostgresArray {
    static func literal(_ values: [String?]) -> String {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(2 + values.reduce(0) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let value else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }
}
