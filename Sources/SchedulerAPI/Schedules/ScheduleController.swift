import Foundation
import Hummingbird
import SchedulerCore
import SchedulerStore

/// `/api/v1/schedule/`: list, create, retrieve, replace, update and delete schedules.
struct ScheduleController: Sendable {
    let store: ScheduleStore
    let history: ScheduleHistory
    let quotas: QuotaStore
    let deliveryStore: DeliveryStore
    let pusher: MetricsPusher
    let settings: APISettings

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("v1/schedule/", [.get: list, .post: create])
        group.resource("v1/schedule/:id/", [.get: retrieve, .put: replace, .patch: update, .delete: delete])
        group.resource("v1/schedule/:id/deliveries/", [.get: deliveries])
        group.resource("v1/schedule/:id/deliveries/:delivery/", [.get: delivery])
        group.resource("v1/schedule/:id/trigger/", [.post: trigger])
        group.resource("v1/schedule/:id/history/", [.get: history])
        group.resource("v1/schedule/:id/backfill/", [.post: backfill])
        group.resource("v1/schedule/:id/runs/", [.get: runs])
    }

    @Sendable func list(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = ScheduleStore.Filter()
        var errors = FieldErrors()
        if let text = query["enabled"], !text.isEmpty {
            switch text.lowercased() {
            case "true", "1", "yes", "on": filter.enabled = true
            case "false", "0", "no", "off": filter.enabled = false
            default: errors.add("enabled", "Select a valid choice. \(text) is not one of the available choices.")
            }
        }
        if let text = query["endpoint"], !text.isEmpty {
            if text.unicodeScalars.contains("\u{0}") {
                errors.add("endpoint", "Null characters are not allowed.")
            } else {
                filter.endpoint = String(text)
            }
        }
        if let text = query["endpoint_contains"], !text.isEmpty {
            if text.unicodeScalars.contains("\u{0}") || text.utf8.count > 2000 {
                errors.add("endpoint_contains", "At most 2000 bytes, and no null characters.")
            } else {
                filter.endpointContains = String(text)
            }
        }
        guard errors.isEmpty else { throw APIError.validation(errors) }
        let owner = try context.owner()
        return try await Pagination.response(to: request, settings: settings) {
            try await store.schedules(filter: filter, owner: owner, limit: $0, offset: $1)
        } render: {
            $0.json($1)
        }
    }

    @Sendable func create(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        var request = request
        let user = try context.caller()
        let body = try await request.jsonBody(context: context)
        let quota = try await quotas.quota(for: user)
        let fields = try ScheduleValidation.fields(
            from: body, existing: nil, partial: false, now: Date(), limits: settings.scheduleLimits.within(quota)
        ).orBadRequest()
        let links = Links(request: request, settings: settings)
        let hookToken = settings.hookAuthToken
        let schedule = try await store.create(fields, by: user.id, quota: quota) { schedule, connection in
            // The schedule's auth_token stays out of the hooks' body.
            var data = schedule.json(links)
            if case .object(var object) = data {
                object["auth_token"] = nil
                data = .object(object)
            }
            try await HookCalls.queue(
                .scheduleAdded, [.init(owner: user.id, scheduleID: schedule.id, data: data)], hookToken: hookToken,
                connection: connection)
        }
        context.logger.info("schedule created", metadata: ["schedule.id": "\(schedule.id.lowercasedText)"])
        pusher.push([("schedules.created.sum", 1)])
        return JSONResponse.make(status: .created, body: schedule.json(links), headers: [.location: links.schedule(schedule.id)])
    }

    @Sendable func retrieve(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard let schedule = try await store.schedule(id: try scheduleID(context), owner: try context.owner()) else {
            throw APIError.notFound
        }
        return JSONResponse.make(body: schedule.json(Links(request: request, settings: settings)))
    }

    @Sendable func replace(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        try await change(request, context: context, partial: false)
    }

    @Sendable func update(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        try await change(request, context: context, partial: true)
    }

    private func change(_ request: Request, context: SchedulerRequestContext, partial: Bool) async throws -> Response {
        var request = request
        let user = try context.caller()
        let id = try scheduleID(context)
        let body = try await request.jsonBody(context: context)
        let now = Date()
        // A normal user's changes stay within their quota; an admin acts as an operator.
        let quota = user.isAdmin ? nil : try await quotas.quota(for: user)
        let limits = quota.map { settings.scheduleLimits.within($0) } ?? settings.scheduleLimits
        let updated = try await store.update(id: id, owner: try context.owner(), by: user.id, quota: quota) { existing in
            try ScheduleValidation.fields(from: body, existing: existing, partial: partial, now: now, limits: limits)
                .mapError(APIError.validation).get()
        }
        guard let updated else { throw APIError.notFound }
        context.logger.info("schedule updated", metadata: ["schedule.id": "\(id.lowercasedText)"])
        return JSONResponse.make(body: updated.json(Links(request: request, settings: settings)))
    }

    @Sendable func delete(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let id = try scheduleID(context)
        guard try await store.delete(id: id, owner: try context.owner(), by: try context.caller().id) else { throw APIError.notFound }
        context.logger.info("schedule deleted", metadata: ["schedule.id": "\(id.lowercasedText)"])
        pusher.push([("schedules.deleted.sum", 1)])
        return Response(status: .noContent)
    }

    /// The schedule's recent deliveries, newest first.
    @Sendable func deliveries(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let id = try scheduleID(context)
        let owner = try context.owner()
        guard try await store.schedule(id: id, owner: owner) != nil else { throw APIError.notFound }
        return try await Pagination.response(to: request, settings: settings) {
            try await deliveryStore.deliveries(scheduleID: id, owner: owner, limit: $0, offset: $1)
        } render: {
            $0.json($1)
        }
    }

    /// Backfill: `{"from", "to"}`, every occurrence of the range not delivered before, queued
    /// at once; 202 `{occurrences, queued}`. The range lies in the past, within the delivery
    /// records kept (what was sent before that is not known), and holds at most
    /// `BACKFILL_MAX_OCCURRENCES`; the queued ones count with the caller's creates a minute.
    @Sendable func backfill(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        var request = request
        let user = try context.caller()
        let id = try scheduleID(context)
        let body = try await request.jsonBody(context: context)
        let now = Date()
        guard let object = body.objectValue else {
            throw APIError.validation(FieldErrors("non_field_errors", "Invalid data. Expected a dictionary, but got \(body.kindName)."))
        }
        var errors = FieldErrors()
        func time(_ key: String) -> Date? {
            guard let value = object[key] else {
                errors.add(key, FieldErrors.required)
                return nil
            }
            guard let date = value.stringValue.flatMap(Timestamp.parse) else {
                errors.add(key, FieldErrors.badDatetime)
                return nil
            }
            return date
        }
        let (from, to) = (time("from"), time("to"))
        if let from, let to {
            if to < from {
                errors.add("to", "Ensure to is not before from.")
            } else if to > now {
                errors.add("to", "Ensure this datetime is not in the future: occurrences to come are sent when they are due.")
            } else if settings.deliveryRetentionDays > 0, from < now.addingTimeInterval(-Double(settings.deliveryRetentionDays) * 86_400) {
                errors.add(
                    "from",
                    "Ensure this datetime is within the last \(settings.deliveryRetentionDays) days (DELIVERY_RETENTION_DAYS): what was sent before is not known."
                )
            }
        }
        guard errors.isEmpty, let from, let to else { throw APIError.validation(errors) }
        let quota = try await quotas.quota(for: user)
        guard
            let result = try await store.backfill(
                id: id, owner: try context.owner(), by: user.id, from: from, to: to, limit: settings.backfillLimit, quota: quota)
        else { throw APIError.notFound }
        switch result {
        case .failure(.noOccurrences):
            throw APIError.validation(
                FieldErrors("non_field_errors", "This schedule has no crontab or interval: it has no occurrences to backfill."))
        case .failure(.tooMany(let limit)):
            throw APIError.validation(
                FieldErrors(
                    "non_field_errors",
                    "The range holds more than \(limit) occurrences (BACKFILL_MAX_OCCURRENCES): backfill it in parts."))
        case .success(let done):
            context.logger.info(
                "schedule backfilled",
                metadata: ["schedule.id": "\(id.lowercasedText)", "occurrences": "\(done.occurrences)", "queued": "\(done.queued)"])
            return JSONResponse.make(
                status: .accepted,
                body: .object([
                    "from": .string(Timestamp.format(from)), "to": .string(Timestamp.format(to)),
                    "occurrences": .int(done.occurrences), "queued": .int(done.queued),
                ]))
        }
    }

    /// The schedule's history, newest first: also of one of the caller's since deleted.
    @Sendable func history(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let id = try scheduleID(context)
        let owner = try context.owner()
        return try await Pagination.response(to: request, settings: settings) {
            guard let page = try await history.entries(scheduleID: id, owner: owner, limit: $0, offset: $1) else {
                throw APIError.notFound
            }
            return page
        } render: {
            $0.json($1)
        }
    }

    /// One delivery of the schedule.
    @Sendable func delivery(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let id = try scheduleID(context)
        guard let text = context.parameters.get("delivery"), let deliveryID = UUID(uuidString: text),
            let delivery = try await deliveryStore.delivery(id: deliveryID, owner: try context.owner()), delivery.scheduleID == id
        else { throw APIError.notFound }
        return JSONResponse.make(body: delivery.json(Links(request: request, settings: settings)))
    }

    /// Run now: one delivery of the schedule at once, whatever its state; 202 with the
    /// delivery (its URL in `Location`). Counted with the caller's creates a minute.
    @Sendable func trigger(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let user = try context.caller()
        let id = try scheduleID(context)
        let quota = try await quotas.quota(for: user)
        guard let delivery = try await store.trigger(id: id, owner: try context.owner(), by: user.id, quota: quota) else {
            throw APIError.notFound
        }
        context.logger.info(
            "schedule triggered", metadata: ["schedule.id": "\(id.lowercasedText)", "delivery.id": "\(delivery.id.lowercasedText)"])
        let links = Links(request: request, settings: settings)
        return JSONResponse.make(
            status: .accepted, body: delivery.json(links), headers: [.location: links.delivery(delivery.id, of: id)])
    }

    /// The schedule in words and its next runs (`count`, default 10, at most 100) in its own
    /// time zone, each marked when the zone's UTC offset changed before it (daylight saving).
    @Sendable func runs(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard let schedule = try await store.schedule(id: try scheduleID(context), owner: try context.owner()) else {
            throw APIError.notFound
        }
        var count = 10
        if let text = request.uri.queryParameters["count"], !text.isEmpty {
            guard let value = Int(text), (1...100).contains(value) else {
                throw APIError.validation(FieldErrors("count", "A whole number from 1 to 100."))
            }
            count = value
        }
        let fields = schedule.fields
        let timing = fields.timing
        let zone = TimeZone(identifier: fields.timezone) ?? TimeZone(identifier: "UTC")!
        let now = Date()
        let runs = ScheduleDescription.upcoming(
            timing, first: fields.enabled ? fields.nextSendAt : nil, zone: zone, count: count, now: now, window: fields.window)
        return JSONResponse.make(
            body: .object([
                "description": .string(
                    ScheduleDescription.words(
                        timing, cronText: fields.cronDefinition, timezone: fields.timezone, nextSendAt: fields.nextSendAt)
                        + ScheduleDescription.words(fields.window, now: now)),
                "timezone": .string(fields.timezone),
                "enabled": .bool(fields.enabled),
                "runs": .array(
                    runs.map {
                        .object([
                            "at": .string(Timestamp.format($0.at)),
                            "local": .string(ScheduleDescription.local($0.at, offsetSeconds: $0.offsetSeconds)),
                            "offset_changed": .bool($0.offsetChanged),
                            "dst": $0.daylightSaving.map(JSONValue.string) ?? .null,
                        ])
                    }),
            ]))
    }

    private func scheduleID(_ context: SchedulerRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else { throw APIError.notFound }
        return id
    }
}

extension Result where Failure == FieldErrors {
    /// The value, or the errors as a 400.
    func orBadRequest() throws(APIError) -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let errors): throw APIError.validation(errors)
        }
    }
}
