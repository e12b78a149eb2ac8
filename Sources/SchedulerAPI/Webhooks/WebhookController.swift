import Hummingbird
import SchedulerCore
import SchedulerStore

/// `/api/v1/webhook/`: a user's subscriptions to events (`HookEvent`: the original's
/// `schedule.added`, and `schedule.paused`, `delivery.failed`, `receiver.opened` and
/// `receiver.closed`, the last two for admins only).
struct WebhookController: Sendable {
    let store: WebhookStore
    let quotas: QuotaStore
    let settings: APISettings

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("v1/webhook/", [.get: list, .post: create])
        group.resource("v1/webhook/:id/", [.get: retrieve, .put: replace, .patch: update, .delete: delete])
    }

    @Sendable func list(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let user = try context.caller()
        return try await Pagination.response(to: request, settings: settings) {
            try await store.webhooks(userID: user.id, limit: $0, offset: $1)
        } render: { hook, _ in
            Self.json(hook)
        }
    }

    @Sendable func create(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        var request = request
        let user = try context.caller()
        let (event, target) = try Self.validate(
            try await request.jsonBody(context: context), existing: nil, isAdmin: user.isAdmin, egress: settings.scheduleLimits.egress)
        let hook = try await store.create(event: event, target: target, userID: user.id, quota: try await quotas.quota(for: user))
        return JSONResponse.make(status: .created, body: Self.json(hook))
    }

    @Sendable func retrieve(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard let hook = try await store.webhook(id: try context.parameters.int64ID(), userID: try context.caller().id) else {
            throw APIError.notFound
        }
        return JSONResponse.make(body: Self.json(hook))
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
        let id = try context.parameters.int64ID()
        guard let existing = try await store.webhook(id: id, userID: user.id) else { throw APIError.notFound }
        let body = try await request.jsonBody(context: context)
        let (event, target) = try Self.validate(
            body, existing: partial ? existing : nil, isAdmin: user.isAdmin, egress: settings.scheduleLimits.egress)
        guard let hook = try await store.update(id: id, userID: user.id, event: event, target: target) else {
            throw APIError.notFound
        }
        return JSONResponse.make(body: Self.json(hook))
    }

    @Sendable func delete(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard try await store.delete(id: try context.parameters.int64ID(), userID: try context.caller().id) else {
            throw APIError.notFound
        }
        return Response(status: .noContent)
    }

    /// The hook's event and target; `existing` supplies what a PATCH leaves out.
    static func validate(
        _ body: JSONValue, existing: Webhook?, isAdmin: Bool, egress: EgressPolicy
    ) throws -> (event: String, target: String) {
        guard let object = body.objectValue else {
            throw APIError.validation(FieldErrors("non_field_errors", "Invalid data. Expected a dictionary, but got \(body.kindName)."))
        }
        var errors = FieldErrors()
        var event = existing?.event
        var target = existing?.target
        switch object["event"] {
        case nil where existing == nil: errors.add("event", FieldErrors.required)
        case nil: break
        case .string(let text)? where HookEvent(rawValue: text)?.forAdminsOnly == true && !isAdmin:
            errors.add("event", "\"\(text)\" is for admins only: receivers are shared by every tenant.")
        case .string(let text)? where Webhook.events.contains(text): event = text
        case .string(let text)?: errors.add("event", "\"\(text)\" is not a valid choice.")
        case .null?: errors.add("event", FieldErrors.notNull)
        case let other?: errors.add("event", "\"\(other.serialized)\" is not a valid choice.")
        }
        switch object["target"] {
        case nil where existing == nil: errors.add("target", FieldErrors.required)
        case nil: break
        case .string(let text)? where text.unicodeScalars.contains(where: ScheduleValidation.isControl):
            errors.add("target", FieldErrors.controlCharacters)
        case .string(let text)? where ScheduleValidation.isHTTPURL(text):
            // A hook call goes through the worker like a delivery: the same egress guard.
            if let refusal = egress.refusal(forURL: text) {
                errors.add("target", "Hook calls may not go to this address: \(refusal).")
            } else {
                target = text
            }
        case .string?: errors.add("target", FieldErrors.invalidURL)
        case .null?: errors.add("target", FieldErrors.notNull)
        default: errors.add("target", FieldErrors.notString)
        }
        guard errors.isEmpty, let event, let target else { throw APIError.validation(errors) }
        return (event, target)
    }

    static func json(_ hook: Webhook) -> JSONValue { hook.json }
}
