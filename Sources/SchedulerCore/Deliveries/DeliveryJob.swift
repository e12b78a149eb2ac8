import Foundation

/// The message on `scheduler.deliveries`: which occurrence to deliver. The receiver,
/// payload and token are read from PostgreSQL when the job is delivered, so a change to
/// the schedule (or its deletion) reaches jobs already queued.
public struct DeliveryJob: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A schedule's occurrence: POST the schedule's payload to its endpoint.
        case schedule
        /// A webhook call: POST the stored body to the hook's target.
        case webhook
    }

    /// How a delivery came about.
    public enum Origin: String, Sendable {
        /// An occurrence beat found due.
        case scheduled
        /// Asked for at once (`POST .../trigger/`).
        case manual
        /// A past occurrence asked for again (`POST .../backfill/`): not late, however old.
        case backfill
    }

    public let deliveryID: UUID
    public let scheduleID: UUID?
    public let scheduledFor: Date
    public let kind: Kind
    public let origin: Origin

    public init(deliveryID: UUID, scheduleID: UUID?, scheduledFor: Date, kind: Kind, origin: Origin = .scheduled) {
        self.deliveryID = deliveryID
        self.scheduleID = scheduleID
        self.scheduledFor = scheduledFor
        self.kind = kind
        self.origin = origin
    }

    /// Whether its lateness (from its due time to its first POST) means anything: not for a
    /// backfilled occurrence, due long ago on purpose.
    public var measuresLateness: Bool { origin != .backfill }

    /// `schedule.<schedule-uuid>` (webhook calls about a schedule use the schedule's key too).
    public var routingKey: String {
        "schedule.\(scheduleID.map { $0.lowercasedText } ?? "none")"
    }

    public var json: JSONValue {
        var object: JSONObject = [
            "delivery_id": .string(deliveryID.lowercasedText),
            "schedule_id": scheduleID.map { .string($0.lowercasedText) } ?? .null,
            "scheduled_for": .string(Timestamp.format(scheduledFor)),
            "kind": .string(kind.rawValue),
        ]
        // Only when it is not the usual: the message of an occurrence stays as it was.
        if origin != .scheduled { object["origin"] = .string(origin.rawValue) }
        return .object(object)
    }

    /// `json` as a message's bytes, written directly (every value is an id, a time or a name:
    /// nothing to escape), the same bytes as `json.serializedBytes` at a fraction of the cost:
    /// beat writes one per occurrence.
    public var serializedBytes: [UInt8] {
        let schedule = scheduleID.map { "\"\($0.lowercasedText)\"" } ?? "null"
        let origin = origin == .scheduled ? "" : #","origin":""# + origin.rawValue + "\""
        let text =
            #"{"delivery_id":""# + deliveryID.lowercasedText + #"","schedule_id":"# + schedule + #","scheduled_for":""#
            + Timestamp.format(scheduledFor) + #"","kind":""# + kind.rawValue + "\"" + origin + "}"
        return Array(text.utf8)
    }

    /// Reads a message body; the error says what is wrong with it, for the dead letter.
    public init(body: [UInt8]) throws(FieldErrorMessage) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw FieldErrorMessage("malformed job: not JSON (\(error.description))")
        }
        try self.init(json: value)
    }

    /// Reads one job of a message (a message's body, or one element of a batch).
    public init(json value: JSONValue) throws(FieldErrorMessage) {
        guard let object = value.objectValue else { throw FieldErrorMessage("malformed job: not a JSON object") }
        guard let text = object["delivery_id"]?.stringValue, let deliveryID = UUID(text: text) else {
            throw FieldErrorMessage("malformed job: delivery_id is missing or not a UUID")
        }
        guard let when = object["scheduled_for"]?.stringValue.flatMap(Timestamp.parse) else {
            throw FieldErrorMessage("malformed job: scheduled_for is missing or not a time")
        }
        let kind = object["kind"]?.stringValue.flatMap(Kind.init(rawValue:)) ?? .schedule
        var scheduleID: UUID?
        if let text = object["schedule_id"]?.stringValue {
            guard let id = UUID(text: text) else { throw FieldErrorMessage("malformed job: schedule_id is not a UUID") }
            scheduleID = id
        }
        let origin = object["origin"]?.stringValue.flatMap(Origin.init(rawValue:)) ?? .scheduled
        self.init(deliveryID: deliveryID, scheduleID: scheduleID, scheduledFor: when, kind: kind, origin: origin)
    }
}
