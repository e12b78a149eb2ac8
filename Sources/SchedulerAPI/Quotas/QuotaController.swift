import Hummingbird
import SchedulerCore
import SchedulerStore

/// `GET /api/v1/quota/`: the caller's quotas and how much of each they use.
struct QuotaController: Sendable {
    let store: QuotaStore
    let deliveries: DeliveryStore
    /// `DEAD_LETTERS_PER_TENANT` (0: no bound).
    let deadLetterBound: Int

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("v1/quota/", [.get: show])
    }

    @Sendable func show(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let user = try context.caller()
        guard let usage = try await store.usage(userID: user.id) else { throw APIError.notFound }
        var body = Self.json(usage)
        if case .object(var object) = body {
            // Counted up to the bound: the work is bounded too.
            let bound = deadLetterBound
            let used = try await deliveries.deadLetterCount(owner: user.id, limit: bound > 0 ? bound : 100_000)
            object["dead_letters"] = .object(["limit": bound > 0 ? .int(bound) : .null, "used": .int(used)])
            body = .object(object)
        }
        return JSONResponse.make(body: body)
    }

    static func json(_ usage: QuotaStore.Usage) -> JSONValue {
        let quota = usage.quota
        func number(_ value: Double) -> JSONValue { .number(QuotaExceeded.number(value)) }
        return .object([
            "schedules": .object(["limit": .int(quota.schedules), "used": .int(usage.schedules)]),
            "hooks": .object(["limit": .int(quota.hooks), "used": .int(usage.hooks)]),
            "creates_per_minute": .object([
                "limit": .int(quota.createsPerMinute), "used": .int(usage.createsThisMinute),
                "resets_in_seconds": usage.windowEndsIn.map(JSONValue.int) ?? .null,
            ]),
            "deliveries_per_second": .object(["limit": number(quota.deliveriesPerSecond), "used": number(usage.deliveriesPerSecond)]),
            "min_interval": .object([
                "limit": quota.minimumInterval > 0 ? .string(ScheduleLimits.describe(microseconds: quota.minimumInterval)) : .null
            ]),
            "overridden": .array(
                [
                    usage.override.schedules.map { _ in "schedules" }, usage.override.hooks.map { _ in "hooks" },
                    usage.override.createsPerMinute.map { _ in "creates_per_minute" },
                    usage.override.deliveriesPerSecond.map { _ in "deliveries_per_second" },
                    usage.override.minimumInterval.map { _ in "min_interval" },
                ].compactMap { $0 }.map(JSONValue.string)),
        ])
    }
}
