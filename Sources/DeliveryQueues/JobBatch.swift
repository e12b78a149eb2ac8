import AMQP
import Foundation
import SchedulerCore

/// Jobs published ahead of their due time travel in batches: beat publishes up to
/// `DeliveryLimits.jobsPerMessage` consecutive held jobs as one message on `scheduler.held`,
/// its body a JSON array of the jobs (each what a single job's message holds). The broker then
/// writes, confirms, hands out and acks one message for a hundred jobs, where it took most of
/// RabbitMQ's CPU per delivery one job at a time. A worker takes the jobs apart, holds each
/// until its own due time, and acks the message once every job of it has its outcome; a retry,
/// a park or a dead letter is a message of one job, as always.
public enum JobBatch {
    /// The routing key of a batch (the bindings take `schedule.#`); its jobs' own keys,
    /// `schedule.<uuid>`, go on the messages of one job made of them.
    public static let routingKey = "schedule.batch"

    /// One message for these jobs, due in order, for the held queue: a single job's message
    /// for one job (none makes an empty batch, which a worker dead-letters).
    public static func message(_ jobs: [DeliveryJob]) -> AMQPOutgoingMessage {
        if jobs.count == 1 { return jobs[0].message(held: true) }
        var body: [UInt8] = [UInt8(ascii: "[")]
        body.reserveCapacity(jobs.count * 176)
        for (index, job) in jobs.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += job.serializedBytes
        }
        body.append(UInt8(ascii: "]"))
        return AMQPOutgoingMessage(
            exchange: DeliveryTopology.heldExchange, routingKey: routingKey, body: body,
            headers: [DeliveryHeaders.attempt: .int(1), DeliveryHeaders.jobs: .int(Int64(jobs.count))])
    }

    /// The messages of these jobs (in due order): each run of consecutive jobs for the held
    /// queue in batches of up to `DeliveryLimits.jobsPerMessage`, a job due now alone on the
    /// main queue.
    public static func messages(_ jobs: [DeliveryJob], now: Date, routing: inout HeldRouting) -> [AMQPOutgoingMessage] {
        var messages: [AMQPOutgoingMessage] = []
        var batch: [DeliveryJob] = []
        for job in jobs {
            if routing.held(job.scheduledFor, now: now) {
                batch.append(job)
                if batch.count == DeliveryLimits.jobsPerMessage {
                    messages.append(message(batch))
                    batch.removeAll(keepingCapacity: true)
                }
            } else {
                if !batch.isEmpty { messages.append(message(batch)) }
                batch.removeAll(keepingCapacity: true)
                messages.append(job.message())
            }
        }
        if !batch.isEmpty { messages.append(message(batch)) }
        return messages
    }

    /// Whether a message's body is a batch (a JSON array), not one job.
    public static func isBatch(_ body: [UInt8]) -> Bool {
        for byte in body {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
            default: return byte == UInt8(ascii: "[")
            }
        }
        return false
    }

    /// One element of a batch: its job, or why it is not one with its text (for the dead
    /// letter it becomes; a job's message of one job is its `json`, made only when needed).
    public struct Element: Sendable {
        /// Empty for a job.
        public let body: [UInt8]
        public let job: Result<DeliveryJob, FieldErrorMessage>
    }

    /// A batch's elements, in order; the error says why the whole message is not a batch a
    /// worker takes (not JSON, empty, too large, too many jobs).
    public static func elements(of body: [UInt8]) throws(FieldErrorMessage) -> [Element] {
        guard body.count <= DeliveryLimits.maximumBatchBytes else {
            throw FieldErrorMessage(
                "malformed batch: \(body.count) bytes, more than a batch may hold (\(DeliveryLimits.maximumBatchBytes))")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw FieldErrorMessage("malformed batch: not JSON (\(error.description))")
        }
        guard case .array(let items) = value, !items.isEmpty else { throw FieldErrorMessage("malformed batch: not a list of jobs") }
        guard items.count <= DeliveryLimits.jobsPerMessage else {
            throw FieldErrorMessage("malformed batch: \(items.count) jobs, more than \(DeliveryLimits.jobsPerMessage)")
        }
        return items.map { item in
            let job = Result { () throws(FieldErrorMessage) in try DeliveryJob(json: item) }
            if case .success = job { return Element(body: [], job: job) }
            return Element(body: item.serializedBytes, job: job)
        }
    }
}
