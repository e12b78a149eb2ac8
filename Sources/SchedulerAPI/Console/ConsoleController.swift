import AMQP
import DeliveryQueues
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SchedulerCore
import SchedulerStore
import Synchronization

/// The operations console: its page and scripts at `/console/` (no token needed to load
/// them; every figure comes from the API), the sign-in that turns an API token into a
/// session cookie, and the API endpoints only the console needed (`/api/v1/console/...`),
/// which take a token like every other.
struct ConsoleController: Sendable {
    static let cookie = "scheduler_session"
    /// Requests authenticated by the cookie that change something must carry this header:
    /// a page of another site cannot send it without a CORS preflight, which is never granted.
    static let csrfHeader = HTTPField.Name("X-Scheduler-Console")!

    let users: UserStore
    let store: ConsoleStore
    let deliveries: DeliveryStore
    let receivers: ReceiverStore
    let redriver: DeadLetterRedriver
    let status: OperationsStatus
    let useSSL: Bool
    /// The API's authentication: its throttle counts failed sign-ins too.
    let authentication: AuthenticationMiddleware
    let endpointCache: EndpointCache
    let walks = WalkProgress()

    func addPages(to router: Router<SchedulerRequestContext>) {
        router.get("console/") { _, _ in Self.asset(ConsoleAssets.page, type: "text/html; charset=utf-8") }
        router.get("console/console.js") { _, _ in Self.asset(ConsoleAssets.script, type: "text/javascript; charset=utf-8") }
        router.get("console/chart.js") { _, _ in
            guard let chart = ConsoleAssets.chart else {
                throw APIError(.notFound, detail: "Chart.js is not installed (Debian: libjs-chart.js).")
            }
            return Self.asset(chart, type: "text/javascript; charset=utf-8")
        }
        router.group("console").resource("session/", [.post: signIn, .delete: signOut])
    }

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("v1/console/whoami/", [.get: whoami])
        group.resource("v1/console/overview/", [.get: overview])
        group.resource("v1/console/endpoints/", [.get: endpoints])
        group.resource("v1/console/receivers/", [.get: receiverList, .post: receiverAction])
        group.resource("v1/console/dead-letters/", [.get: deadLetters])
        group.resource("v1/console/dead-letters/redrive/", [.post: redrive])
        group.resource("v1/console/dead-letters/purge/", [.post: purge])
        group.resource("v1/console/dead-letters/progress/", [.get: progress])
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: type, .cacheControl: "no-cache", HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                HTTPField.Name("Content-Security-Policy")!:
                    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    // MARK: Session

    @Sendable func signIn(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard request.headers[Self.csrfHeader] == "1" else { throw Self.crossSite }
        let client = AuthenticationMiddleware.clientAddress(request, peer: context.peerAddress, trusted: authentication.trustedProxies)
        if let client, let wait = authentication.throttle.retryAfter(client, now: AuthenticationMiddleware.now()) {
            throw AuthenticationMiddleware.throttled(wait)
        }
        var request = request
        let body = try await request.jsonBody(context: context, limit: Self.signInBodyLimit)
        guard let token = body.objectValue?["token"]?.stringValue, !token.isEmpty, token.utf8.count <= 128,
            !token.utf8.contains(where: { $0 < 0x21 || $0 > 0x7E })
        else { throw APIError(.badRequest, detail: "Give the API token as {\"token\": \"...\"}.") }
        guard let user = try await users.authenticate(token: token) else {
            if let client { authentication.throttle.failed(client, now: AuthenticationMiddleware.now()) }
            throw APIError.invalidToken
        }
        let session = try await users.startSession(user: user, seconds: Self.sessionSeconds)
        return JSONResponse.make(
            body: Self.userJSON(user),
            headers: [.setCookie: "\(Self.cookie)=\(session); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Self.sessionSeconds)\(secure)"])
    }

    /// Ends the session in the cookie (it no longer works, even if kept) and clears the cookie.
    @Sendable func signOut(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard request.headers[Self.csrfHeader] == "1" else { throw Self.crossSite }
        if let session = AuthenticationMiddleware.cookie(Self.cookie, in: request.headers[values: .cookie]) {
            try await users.endSession(session)
        }
        return Response(
            status: .noContent, headers: [.setCookie: "\(Self.cookie)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\(secure)"])
    }

    /// Twelve hours.
    static let sessionSeconds = 43_200

    /// `Secure` on the cookie when the console is served over https (`USE_SSL`, or an https `PUBLIC_URL`).
    var secure: String { useSSL ? "; Secure" : "" }

    /// The sign-in is read before anyone is known: its body holds one token, so anything
    /// past a few kilobytes is refused (413) before it is parsed.
    static let signInBodyLimit = 4096

    static let crossSite = APIError(.forbidden, detail: "Cross-site request refused: the console's requests carry X-Scheduler-Console: 1.")

    static func userJSON(_ user: User) -> JSONValue {
        .object(["id": .int(Int(user.id)), "email": .string(user.email), "is_admin": .bool(user.isAdmin)])
    }

    @Sendable func whoami(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        JSONResponse.make(body: Self.userJSON(try context.caller()))
    }

    // MARK: Overview

    /// Queue depths now and over the last `minutes` (admins only: queues are everyone's),
    /// deliveries by minute and outcome (the caller's), and the health of the database and broker.
    @Sendable func overview(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let user = try context.caller()
        let minutes = try Self.minutes(request)
        var body: JSONObject = [:]
        let reading = await status.current()
        body["health"] = .object([
            "database": .string(HealthController.words(reading.database)),
            "broker": .string(HealthController.words(reading.broker)),
            "checked_at": .string(Timestamp.format(reading.takenAt)),
        ])
        if user.isAdmin {
            // AMQP does not report unacknowledged messages: the main and held queues' are
            // estimated from the records (together, shown on the main queue), as
            // `scheduler-ctl queues` does. A queue with no consumer
            // (the delay queues, the dead letters) has none.
            var estimate: Int?
            if let inProgress = try? await deliveries.inProgressCount() {
                let ready = reading.queues.filter {
                    [DeliveryTopology.queue, DeliveryTopology.heldQueue].contains($0.queue) || $0.queue.hasPrefix("scheduler.retry.")
                }
                .reduce(0) { $0 + ($1.counts?.messages ?? 0) }
                estimate = max(0, inProgress - ready)
                body["unacked_estimate"] = estimate.map(JSONValue.int)
            }
            body["queues"] = .array(
                reading.queues.map { queue, counts in
                    let unacked: Int? =
                        switch counts?.consumers {
                        case nil: nil
                        case 0: 0
                        default: queue == DeliveryTopology.queue ? estimate : nil
                        }
                    return .object([
                        "queue": .string(queue), "ready": counts.map { .int($0.messages) } ?? .null,
                        "unacked": unacked.map(JSONValue.int) ?? .null, "consumers": counts.map { .int($0.consumers) } ?? .null,
                    ])
                })
            body["beats"] = .array(
                try await store.beats(seconds: 600).map {
                    .object([
                        "beat": .string($0.beat), "last_round_at": .string(Timestamp.format($0.lastRoundAt)),
                        "round_ms": .number(String(format: "%.1f", $0.roundMilliseconds)),
                        "lag_ms": .number(String(format: "%.1f", $0.lagMilliseconds)),
                    ])
                })
            let samples = try await store.samples(seconds: Double(minutes) * 60)
            body["samples"] = .array(
                samples.map {
                    .object([
                        "at": .string(Timestamp.format($0.takenAt)), "queue": .string($0.queue), "ready": .int($0.ready),
                        "consumers": .int($0.consumers),
                    ])
                })
        } else {
            body["queues"] = .null
            body["samples"] = .null
        }
        let counts = try await store.deliveriesByMinute(seconds: Double(minutes) * 60, owner: user.isAdmin ? nil : user.id)
        body["deliveries_by_minute"] = .array(
            counts.map { .object(["minute": .string(Timestamp.format($0.minute)), "state": .string($0.state), "count": .int($0.count)]) })
        let lateness = try await store.lateness(seconds: Double(minutes) * 60, owner: user.isAdmin ? nil : user.id)
        body["lateness"] = .object([
            "deliveries": .int(lateness.deliveries),
            "p50_ms": lateness.p50Milliseconds.map { .number(String(format: "%.1f", $0)) } ?? .null,
            "p99_ms": lateness.p99Milliseconds.map { .number(String(format: "%.1f", $0)) } ?? .null,
        ])
        body["minutes"] = .int(minutes)
        return JSONResponse.make(body: .object(body))
    }

    static func minutes(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters["minutes"].map(String.init) else { return 60 }
        guard let value = Int(text), (1...1440).contains(value) else {
            throw APIError.validation(FieldErrors("minutes", "A whole number of minutes from 1 to 1440."))
        }
        return value
    }

    // MARK: Endpoints

    /// Receivers grouped by host over the last hour and the last day. Aggregating a busy day
    /// takes PostgreSQL a while (0.4 s for 200,000 records here), so the answer is kept for
    /// `EndpointCache.freshFor` seconds per caller's scope; an older one is returned at once
    /// while one refresh runs behind it (`computed_at` says how old it is).
    @Sendable func endpoints(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let owner = try context.owner()
        let store = store
        let body = try await endpointCache.value(for: owner) { try await Self.endpointHealth(store: store, owner: owner) }
        return JSONResponse.make(body: body)
    }

    static func endpointHealth(store: ConsoleStore, owner: Int64?) async throws -> JSONValue {
        func rows(_ seconds: Double) async throws -> JSONValue {
            .array(
                try await store.endpoints(seconds: seconds, owner: owner).map {
                    .object([
                        "host": .string($0.host), "deliveries": .int($0.deliveries), "delivered": .int($0.delivered), "dead": .int($0.dead),
                        "success_rate": $0.deliveries > 0 ? .number(String(Double($0.delivered) / Double($0.deliveries))) : .null,
                        "latency_p50_ms": $0.latencyP50.map { .number(String($0)) } ?? .null,
                        "last_error": $0.lastError.map(JSONValue.string) ?? .null,
                        "last_error_at": $0.lastErrorAt.map { .string(Timestamp.format($0)) } ?? .null,
                    ])
                })
        }
        return .object([
            "hour": try await rows(3600), "day": try await rows(86_400), "computed_at": .string(Timestamp.format(Date())),
        ])
    }

    // MARK: Receivers

    /// Receivers shown at most: the table is every host tenants point schedules at.
    static let receiverRows = 500

    /// Every receiver as the workers see it (circuit, limit, in flight, waiting, success,
    /// latency) with the limits set by hand: admins only, receivers are every tenant's.
    @Sendable func receiverList(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard try context.caller().isAdmin else { throw APIError.forbidden }
        func number(_ value: Double?) -> JSONValue { value.flatMap { $0.isFinite ? .number(String($0)) : nil } ?? .null }
        let rows = try await receivers.all(limit: Self.receiverRows)
        return JSONResponse.make(
            body: .object([
                "results": .array(
                    rows.map { report in
                        .object([
                            "receiver": .string(report.receiver), "state": .string(report.state), "held_open": .bool(report.heldOpen),
                            "concurrency": number(report.concurrency), "in_flight": .int(report.inFlight), "waiting": .int(report.waiting),
                            "success_rate": number(report.successRate), "latency_ms": number(report.latencyMilliseconds),
                            "paused_until": report.pausedUntil.map { .string(Timestamp.format($0)) } ?? .null,
                            "limits": .object([
                                "concurrency": report.limits.concurrency.map { .int($0) } ?? .null,
                                "rate": number(report.limits.rate), "burst": report.limits.burst.map { .int($0) } ?? .null,
                            ]),
                            "updated_at": report.updatedAt.map { .string(Timestamp.format($0)) } ?? .null,
                        ])
                    }),
                "truncated": .bool(rows.count >= Self.receiverRows),
            ]))
    }

    /// An admin's action on one receiver, as `scheduler-ctl receivers` takes it: `open`,
    /// `close`, `reset`, or `set` with `concurrency`, `rate` and `burst` (each null or left
    /// out: not set).
    @Sendable func receiverAction(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard try context.caller().isAdmin else { throw APIError.forbidden }
        var request = request
        let body = try await request.jsonBody(context: context, limit: 4096)
        guard let object = body.objectValue else {
            throw APIError.validation(FieldErrors("non_field_errors", "Invalid data. Expected a dictionary, but got \(body.kindName)."))
        }
        var errors = FieldErrors()
        let key = object["receiver"]?.stringValue.flatMap(ReceiverKey.normalize)
        if key == nil { errors.add("receiver", "An http(s) receiver (scheme://host:port) or a URL on it.") }
        let action = object["action"]?.stringValue ?? ""
        if !["open", "close", "reset", "set"].contains(action) { errors.add("action", "One of open, close, reset, set.") }
        func integer(_ name: String) -> Int? {
            switch object[name] {
            case nil, .null?: return nil
            case let value?:
                guard let number = value.integerValue else {
                    errors.add(name, "A whole number.")
                    return nil
                }
                return number
            }
        }
        var rate: Double?
        switch object["rate"] {
        case nil, .null?: break
        case .number(let text)?: rate = Double(text)
        default: errors.add("rate", "A number of requests a second.")
        }
        var limits = ReceiverLimits()
        if action == "set" {
            do {
                limits = try ReceiverLimits.validated(concurrency: integer("concurrency"), rate: rate, burst: integer("burst"))
            } catch {
                errors.add("limits", error.message)
            }
        }
        guard errors.isEmpty, let key else { throw APIError.validation(errors) }
        if action == "set" {
            try await receivers.setLimits(limits, receiver: key)
        } else {
            try await receivers.command(action, receiver: key)
        }
        context.logger.info(
            "receiver changed from the console", metadata: ["receiver": "\(key)", "action": "\(action)", "limits": "\(limits.description)"])
        return JSONResponse.make(
            status: .accepted,
            body: .object(["receiver": .string(key), "action": .string(action), "limits": .string(limits.description)]))
    }

    // MARK: Dead letters

    /// The filter of `scheduler-ctl dead-letters list`, from the query (GET) or the body (POST);
    /// a normal user's is always narrowed to their own schedules.
    static func filter(_ fields: [String: String], user: User, now: Date = Date()) throws -> DeliveryStore.DeadFilter {
        var filter = DeliveryStore.DeadFilter()
        var errors = FieldErrors()
        if let text = fields["schedule"], !text.isEmpty {
            if let id = UUID(uuidString: text) { filter.scheduleID = id } else { errors.add("schedule", "A schedule id (a UUID).") }
        }
        if let text = fields["endpoint"], !text.isEmpty {
            if text.utf8.count <= 2000 { filter.endpoint = text } else { errors.add("endpoint", "At most 2000 bytes.") }
        }
        if let text = fields["status"], !text.isEmpty {
            if let status = Int(text), (100...599).contains(status) {
                filter.status = status
            } else {
                errors.add("status", "An HTTP status, 100 to 599.")
            }
        }
        if let text = fields["error_kind"], !text.isEmpty {
            if let kind = DeliveryStore.DeadFilter.ErrorKind(rawValue: text) {
                filter.errorKind = kind
            } else {
                errors.add("error_kind", "One of http, timeout, connection.")
            }
        }
        for (key, path) in [("since", \DeliveryStore.DeadFilter.since), ("until", \DeliveryStore.DeadFilter.until)] {
            guard let text = fields[key], !text.isEmpty else { continue }
            if let date = Timestamp.parse(text) { filter[keyPath: path] = date } else { errors.add(key, "An ISO 8601 time.") }
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        if !user.isAdmin { filter.owner = user.email }
        return filter
    }

    static let filterKeys = ["schedule", "endpoint", "status", "error_kind", "since", "until"]

    static func deadLetterJSON(_ letter: DeliveryStore.DeadLetter) -> JSONValue {
        let delivery = letter.delivery
        return .object([
            "id": .string(delivery.id.lowercasedText),
            "schedule": delivery.scheduleID.map { .string($0.lowercasedText) } ?? .null,
            "kind": .string(delivery.kind.rawValue),
            "endpoint": letter.endpoint.map(JSONValue.string) ?? .null,
            "owner": letter.owner.map(JSONValue.string) ?? .null,
            "scheduled_for": .string(Timestamp.format(delivery.scheduledFor)),
            "failed_at": delivery.finishedAt.map { .string(Timestamp.format($0)) } ?? .null,
            "attempts": .int(delivery.attempts),
            "last_status": delivery.lastStatus.map { .int($0) } ?? .null,
            "last_error": delivery.lastError.map(JSONValue.string) ?? .null,
            "latency_ms": delivery.latencyMilliseconds.map { .number(String($0)) } ?? .null,
        ])
    }

    @Sendable func deadLetters(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let user = try context.caller()
        var fields: [String: String] = [:]
        for key in Self.filterKeys + ["limit"] { fields[key] = request.uri.queryParameters[Substring(key)].map(String.init) }
        let filter = try Self.filter(fields, user: user)
        var limit = 200
        if let text = fields["limit"], !text.isEmpty {
            guard let value = Int(text), (1...1000).contains(value) else { throw APIError.validation(FieldErrors("limit", "1 to 1000.")) }
            limit = value
        }
        let letters = try await deliveries.deadLetters(filter, limit: limit)
        let count = letters.count < limit ? letters.count : try await deliveries.countDeadLetters(filter)
        return JSONResponse.make(body: .object(["count": .int(count), "results": .array(letters.map(Self.deadLetterJSON))]))
    }

    /// What a re-drive or purge applies to: `{"filter": {...}, "ids": [...], "dry_run": bool,
    /// "confirm": bool}`; `ids` (delivery ids, optional) narrows the filter's matches.
    struct Selection {
        var filter: DeliveryStore.DeadFilter
        var ids: Set<String>?
        var dryRun: Bool
        var confirmed: Bool
    }

    private func action(_ request: Request, context: SchedulerRequestContext) async throws -> Selection {
        guard context.user != nil else { throw APIError.notAuthenticated }
        var request = request
        let body = try await request.jsonBody(context: context)
        guard let object = body.objectValue else { throw APIError(.badRequest, detail: "Expected a JSON object.") }
        var fields: [String: String] = [:]
        if let filter = object["filter"] {
            guard let given = filter.objectValue else { throw APIError.validation(FieldErrors("filter", "An object of filters.")) }
            for key in Self.filterKeys {
                switch given[key] {
                case .string(let text)?: fields[key] = text
                case .number(let text)?: fields[key] = text
                case .null?, nil: break
                default: throw APIError.validation(FieldErrors(key, "A string."))
                }
            }
        }
        func flag(_ key: String) throws -> Bool {
            switch object[key] {
            case .bool(let value)?: return value
            case nil, .null?: return false
            default: throw APIError.validation(FieldErrors(key, "true or false."))
            }
        }
        var ids: Set<String>?
        switch object["ids"] {
        case nil, .null?: break
        case .array(let values)? where values.count <= 10_000:
            ids = Set(
                try values.map { value in
                    guard let text = value.stringValue, let id = UUID(uuidString: text) else {
                        throw APIError.validation(FieldErrors("ids", "Delivery ids (UUIDs)."))
                    }
                    return id.lowercasedText
                })
        default: throw APIError.validation(FieldErrors("ids", "A list of at most 10000 delivery ids."))
        }
        return Selection(
            filter: try Self.filter(fields, user: try context.caller()), ids: ids, dryRun: try flag("dry_run"),
            confirmed: try flag("confirm"))
    }

    /// The delivery ids of the dead letters a selection means.
    private func matches(_ selection: Selection) async throws -> Set<String> {
        let found = Set(try await deliveries.deadLetters(selection.filter).map { $0.delivery.id.lowercasedText })
        return selection.ids.map { found.intersection($0) } ?? found
    }

    /// Re-drives the dead letters a filter matches (a dry run says how many would move). A
    /// job leaves the dead-letter queue only after its republish is confirmed.
    @Sendable func redrive(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let selection = try await action(request, context: context)
        let ids = try await matches(selection)
        if selection.dryRun || ids.isEmpty { return JSONResponse.make(body: .object(["matched": .int(ids.count), "moved": .int(0)])) }
        let moved = try await walk(.redrive, matched: ids.count, user: try context.caller(), logger: context.logger) { progress in
            try await redriver.redrive(progress: progress, where: { $0.messageID.map { ids.contains($0.lowercased()) } ?? false })
        }
        context.logger.info("dead letters re-driven from the console", metadata: ["count": "\(moved.count)"])
        return JSONResponse.make(body: .object(["matched": .int(ids.count), "moved": .int(moved.count)]))
    }

    /// Drops the dead letters a filter matches, for good (their records stay, marked purged).
    /// Needs `"confirm": true`.
    @Sendable func purge(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let selection = try await action(request, context: context)
        let ids = try await matches(selection)
        if selection.dryRun || ids.isEmpty { return JSONResponse.make(body: .object(["matched": .int(ids.count), "purged": .int(0)])) }
        guard selection.confirmed else {
            throw APIError.validation(FieldErrors("confirm", "Purging cannot be undone: send \"confirm\": true."))
        }
        let purged = try await walk(.purge, matched: ids.count, user: try context.caller(), logger: context.logger) { progress in
            try await redriver.purge(progress: progress, where: { $0.messageID.map { ids.contains($0.lowercased()) } ?? false })
        }
        context.logger.info("dead letters purged from the console", metadata: ["count": "\(purged.count)"])
        return JSONResponse.make(body: .object(["matched": .int(ids.count), "purged": .int(purged.count)]))
    }

    /// One walk of the dead-letter queue at a time per process; its progress is readable at
    /// `dead-letters/progress/` while it runs and after it ends.
    private func walk(
        _ action: WalkProgress.Action, matched: Int, user: User, logger: Logger,
        _ body: (@escaping @Sendable (Int) -> Void) async throws -> [String]
    ) async throws -> [String] {
        guard walks.begin(action, matched: matched, owner: user.isAdmin ? nil : user.id) else {
            throw APIError(
                .tooManyRequests, detail: "A re-drive or purge is already running; try again shortly.", headers: [.retryAfter: "5"])
        }
        let walks = walks
        do {
            let done = try await body { walks.advance(to: $0) }
            walks.end(done: done.count, error: nil)
            return done
        } catch is AMQPError {
            walks.end(done: nil, error: "The broker is unavailable.")
            throw APIError(.serviceUnavailable, detail: "The broker is unavailable; try again shortly.", headers: [.retryAfter: "5"])
        } catch {
            logger.error("dead-letter walk stopped", metadata: ["action": "\(action.rawValue)", "error": "\(error)"])
            walks.end(done: nil, error: "Stopped by an error (in web's log).")
            throw error
        }
    }

    /// The last re-drive or purge started from the console on this process: running or not,
    /// how many it matched and how many it has moved. A normal user sees only their own.
    @Sendable func progress(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let user = try context.caller()
        guard let walk = walks.current, user.isAdmin || walk.owner == user.id else {
            return JSONResponse.make(body: .object(["running": .bool(false)]))
        }
        return JSONResponse.make(
            body: .object([
                "running": .bool(walk.finishedAt == nil), "action": .string(walk.action.rawValue), "matched": .int(walk.matched),
                "done": .int(walk.done), "started_at": .string(Timestamp.format(walk.startedAt)),
                "finished_at": walk.finishedAt.map { .string(Timestamp.format($0)) } ?? .null,
                "error": walk.error.map(JSONValue.string) ?? .null,
            ]))
    }
}

/// The console's walk of the dead-letter queue (one at a time per process) and how far it got.
final class WalkProgress: Sendable {
    enum Action: String, Sendable {
        case redrive, purge
    }

    struct Walk: Sendable {
        let action: Action
        let matched: Int
        /// The normal user who started it; nil for an admin.
        let owner: Int64?
        let startedAt: Date
        var done = 0
        var finishedAt: Date?
        var error: String?
    }

    private let state = Mutex<Walk?>(nil)

    var current: Walk? { state.withLock { $0 } }

    /// Starts a walk unless one is running.
    func begin(_ action: Action, matched: Int, owner: Int64?, now: Date = Date()) -> Bool {
        state.withLock { walk in
            if let walk, walk.finishedAt == nil { return false }
            walk = Walk(action: action, matched: matched, owner: owner, startedAt: now)
            return true
        }
    }

    func advance(to done: Int) { state.withLock { $0?.done = done } }

    func end(done: Int?, error: String?, now: Date = Date()) {
        state.withLock { walk in
            if let done { walk?.done = done }
            walk?.error = error
            walk?.finishedAt = now
        }
    }
}

/// The endpoints view's answers by scope (an admin's: nil; a user's: their id), stale while
/// revalidating: a fresh one is returned as is, one up to 10 minutes old at once while one refresh
/// runs, an older one not at all.
final class EndpointCache: Sendable {
    static let freshFor = 30.0
    /// Older than this, an answer is not shown while a new one is computed: it is computed first.
    static let staleFor = 600.0
    static let maximumEntries = 1000
    /// How often each web process recomputes the admins' answer (well inside `staleFor`).
    static let warmEvery = 240.0

    private struct Entry {
        var value: JSONValue
        var at: Date
        var refreshing: Bool
    }

    private let entries = Mutex<[Int64?: Entry]>([:])

    func value(for scope: Int64?, now: Date = Date(), compute: @escaping @Sendable () async throws -> JSONValue) async throws -> JSONValue {
        enum Next {
            case cached(JSONValue)
            case stale(JSONValue)
            case none
        }
        let next: Next = entries.withLock { entries in
            guard var entry = entries[scope], now.timeIntervalSince(entry.at) < Self.staleFor else { return .none }
            if now.timeIntervalSince(entry.at) < Self.freshFor || entry.refreshing { return .cached(entry.value) }
            entry.refreshing = true
            entries[scope] = entry
            return .stale(entry.value)
        }
        switch next {
        case .cached(let value):
            return value
        case .stale(let value):
            Task {
                let fresh = try? await compute()
                self.store(fresh, for: scope)
            }
            return value
        case .none:
            let value = try await compute()
            store(value, for: scope)
            return value
        }
    }

    /// Computes the answer for `scope` now unless a fresh one is kept or one is being computed:
    /// `EndpointWarmer` keeps the admins' answer warm, so a first look after a quiet spell
    /// does not wait for the aggregation.
    func warm(_ scope: Int64?, now: Date = Date(), compute: @Sendable () async throws -> JSONValue) async throws {
        let due: Bool = entries.withLock { entries in
            if let entry = entries[scope], entry.refreshing || now.timeIntervalSince(entry.at) < Self.freshFor { return false }
            entries[scope]?.refreshing = true
            return true
        }
        guard due else { return }
        do {
            store(try await compute(), for: scope)
        } catch {
            store(nil, for: scope)
            throw error
        }
    }

    private func store(_ value: JSONValue?, for scope: Int64?) {
        entries.withLock { entries in
            guard let value else {
                entries[scope]?.refreshing = false
                return
            }
            if entries[scope] == nil, entries.count >= Self.maximumEntries { entries.removeAll() }
            entries[scope] = Entry(value: value, at: Date(), refreshing: false)
        }
    }
}

/// The console's page and script (SwiftPM resources) and Debian's Chart.js.
enum ConsoleAssets {
    static let page = resource("console", "html")
    static let script = resource("console", "js")
    /// Debian's `libjs-chart.js`, read once.
    static let chart: String? = {
        for path in ["/usr/share/javascript/chart.js/chart.min.js", "/usr/share/javascript/chart.js/chart.js"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8) { return text }
        }
        return nil
    }()

    static func resource(_ name: String, _ ext: String) -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext), let text = try? String(contentsOf: url, encoding: .utf8)
        else { return "<!-- \(name).\(ext) is missing from this build -->" }
        return text
    }
}
