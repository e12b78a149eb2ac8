import Crypto
import Foundation
import Postgres
import SchedulerCore

/// `scheduler-ctl import-original`: the original Seed Scheduler's users, groups, tokens,
/// schedules, hooks and failures, read from its database in one consistent snapshot and
/// written here in one transaction (rolled back for a dry run: it writes nothing).
///
/// Each original row is remembered in `original_imports` with a fingerprint of what was
/// read: a second import skips what did not change, updates what did, and never makes a row
/// twice, so it may run days before the switch and again at it. It adds and updates; it
/// never deletes. A row this service would refuse is imported disabled (a schedule) or left
/// out (a token, a hook), and listed with the reason; none is dropped silently.
public struct OriginalImport: Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case user, token, group, membership, schedule, hook, failure
    }

    public struct Counts: Sendable, Equatable {
        public var created = 0
        public var updated = 0
        public var unchanged = 0
        public var refused = 0

        public init() {}
    }

    /// A row left out or imported disabled, and why.
    public struct Refusal: Sendable, Equatable {
        public let kind: Kind
        public let originalID: String
        public let reason: String
    }

    /// A failure imported as a dead letter, to be published to the dead-letter queue.
    public struct DeadLetter: Sendable, Equatable {
        public let deliveryID: UUID
        public let scheduleID: UUID
        public let failedAt: Date
        public let reason: String
    }

    public struct Summary: Sendable {
        public var counts = Dictionary(uniqueKeysWithValues: Kind.allCases.map { ($0, Counts()) })
        public var refusals: [Refusal] = []
        /// What was imported otherwise than it was (an email made up from a username).
        public var notes: [String] = []
        /// The dead letters to publish: the failures imported now, and those an earlier
        /// import recorded but could not publish.
        public var deadLetters: [DeadLetter] = []
    }

    let source: PostgresPool
    let target: PostgresPool
    let limits: ScheduleLimits

    public init(source: PostgresPool, target: PostgresPool, limits: ScheduleLimits) {
        self.source = source
        self.target = target
        self.limits = limits
    }

    /// Reads the original and writes what is new or changed; with `dryRun`, the same work
    /// in a transaction that is rolled back.
    public func run(dryRun: Bool, now: Date = Date()) async throws -> Summary {
        let original = try await read()
        struct DryRun: Error { let summary: Summary }
        do {
            return try await target.withTransaction { connection in
                var writer = Writer(connection: connection, limits: limits, now: now)
                try await writer.load()
                try await writer.users(original.users)
                try await writer.tokens(original.tokens)
                try await writer.groups(original.groups)
                try await writer.memberships(original.memberships)
                try await writer.schedules(original.schedules)
                try await writer.hooks(original.hooks)
                try await writer.failures(original.failures)
                if dryRun { throw DryRun(summary: writer.summary) }
                return writer.summary
            }
        } catch let dry as DryRun {
            return dry.summary
        }
    }

    /// Notes the dead letters as published: a later import does not publish them again.
    public func published(_ letters: [DeadLetter]) async throws {
        guard !letters.isEmpty else { return }
        try await target.query(
            "UPDATE original_imports SET done = true WHERE kind = 'failure' AND local_id = ANY($1::text[])",
            [PostgresArray.literal(letters.map { SQL.text($0.deliveryID) })])
    }

    // MARK: Reading the original

    struct Original {
        var users: [PostgresRow] = []
        var tokens: [PostgresRow] = []
        var groups: [PostgresRow] = []
        var memberships: [PostgresRow] = []
        var schedules: [PostgresRow] = []
        var hooks: [PostgresRow] = []
        var failures: [PostgresRow] = []
    }

    /// Every table in one snapshot, read only: the original may keep running meanwhile.
    func read() async throws -> Original {
        try await source.withTransaction { connection in
            try await connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            var original = Original()
            original.users = try await connection.query(
                """
                SELECT id::text AS id, username, first_name, last_name, email, (is_staff OR is_superuser) AS admin, is_active,
                    date_joined, md5(row(username, first_name, last_name, email, is_staff OR is_superuser, is_active)::text) AS fingerprint
                FROM auth_user ORDER BY id
                """
            ).map { $0 }
            original.tokens = try await connection.query(
                "SELECT user_id::text AS id, key FROM authtoken_token ORDER BY user_id"
            ).map { $0 }
            original.groups = try await connection.query(
                "SELECT id::text AS id, name, md5(name) AS fingerprint FROM auth_group ORDER BY id"
            ).map { $0 }
            original.memberships = try await connection.query(
                """
                SELECT id::text AS id, user_id::text AS user_id, group_id::text AS group_id,
                    md5(row(user_id, group_id)::text) AS fingerprint
                FROM auth_user_groups ORDER BY id
                """
            ).map { $0 }
            original.schedules = try await connection.query(
                """
                SELECT s.id::text AS id, s.frequency::text AS frequency, s.triggered, s.cron_definition, s.interval_definition,
                    CASE WHEN c.id IS NOT NULL THEN concat_ws(' ', c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week) END
                        AS celery_cron,
                    CASE WHEN i.id IS NOT NULL THEN i.every || ' ' || i.period END AS celery_interval,
                    s.endpoint, s.auth_token, s.payload::text AS payload, s.enabled, s.created_at, s.updated_at,
                    s.created_by_id::text AS created_by, s.updated_by_id::text AS updated_by, s.last_run,
                    md5(row(s.frequency, s.cron_definition, s.interval_definition, c.minute, c.hour, c.day_of_month,
                        c.month_of_year, c.day_of_week, i.every, i.period, s.endpoint, s.auth_token, s.payload, s.enabled,
                        s.created_by_id, s.updated_by_id, s.last_run)::text) AS fingerprint
                FROM scheduler_schedule s
                LEFT JOIN djcelery_crontabschedule c ON c.id = s.celery_cron_definition_id
                LEFT JOIN djcelery_intervalschedule i ON i.id = s.celery_interval_definition_id
                ORDER BY s.created_at, s.id
                """
            ).map { $0 }
            original.hooks = try await connection.query(
                """
                SELECT id::text AS id, user_id::text AS user_id, event, target, created, updated,
                    md5(row(user_id, event, target)::text) AS fingerprint
                FROM rest_hooks_hook ORDER BY id
                """
            ).map { $0 }
            original.failures = try await connection.query(
                """
                SELECT id::text AS id, schedule_id::text AS schedule_id, task_id::text AS task_id, initiated_at, reason,
                    md5(row(schedule_id, task_id, initiated_at, reason)::text) AS fingerprint
                FROM scheduler_schedulefailure ORDER BY initiated_at, id
                """
            ).map { $0 }
            return original
        }
    }

    // MARK: Writing here

    struct Writer {
        let connection: PostgresConnection
        let limits: ScheduleLimits
        let now: Date
        var summary = Summary()
        /// What earlier imports took, by kind and original id.
        var imported: [Kind: [String: (local: String?, fingerprint: String, done: Bool)]] = [:]

        init(connection: PostgresConnection, limits: ScheduleLimits, now: Date) {
            self.connection = connection
            self.limits = limits
            self.now = now
        }

        mutating func load() async throws {
            for row in try await connection.query("SELECT kind, original_id, local_id, fingerprint, done FROM original_imports") {
                guard let kind = row["kind"].flatMap(Kind.init(rawValue:)), let id = row["original_id"] else { continue }
                imported[kind, default: [:]][id] = (row["local_id"], row["fingerprint"] ?? "", row["done"] == "t")
            }
        }

        /// The local id an original row of `kind` became.
        func local(_ kind: Kind, _ originalID: String?) -> String? {
            originalID.flatMap { imported[kind]?[$0]?.local }
        }

        /// Whether `id` was imported before with this fingerprint (counted as unchanged).
        mutating func unchanged(_ kind: Kind, _ id: String, _ fingerprint: String) -> Bool {
            guard let known = imported[kind]?[id], known.fingerprint == fingerprint else { return false }
            summary.counts[kind, default: Counts()].unchanged += 1
            return true
        }

        mutating func remember(
            _ kind: Kind, _ id: String, local: String?, fingerprint: String, refused: String? = nil
        ) async throws {
            let existed = imported[kind]?[id] != nil
            try await connection.query(
                """
                INSERT INTO original_imports (kind, original_id, local_id, fingerprint, refused)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (kind, original_id) DO UPDATE SET local_id = $3, fingerprint = $4, refused = $5, imported_at = now()
                """, [kind.rawValue, id, local, fingerprint, refused])
            imported[kind, default: [:]][id] = (local, fingerprint, imported[kind]?[id]?.done ?? false)
            if let refused {
                summary.counts[kind, default: Counts()].refused += 1
                summary.refusals.append(Refusal(kind: kind, originalID: id, reason: refused))
            } else if existed {
                summary.counts[kind, default: Counts()].updated += 1
            } else {
                summary.counts[kind, default: Counts()].created += 1
            }
        }

        // MARK: Users and groups

        mutating func users(_ rows: [PostgresRow]) async throws {
            for row in rows {
                guard let id = row["id"], let fingerprint = row["fingerprint"] else { continue }
                if unchanged(.user, id, fingerprint) { continue }
                let username = row["username"] ?? ""
                var email = (row["email"] ?? "").trimmingCharacters(in: .whitespaces)
                let existing = local(.user, id)
                // Emails are how this service names users (`POST /api/v1/user/token/`): a blank
                // one, or one another user here has, is stood in for by the username.
                if email.isEmpty {
                    summary.notes.append("user \(id) (\(username)): no email in the original; imported with its username as email")
                    email = username
                }
                let taken = try await connection.query(
                    "SELECT id::text AS id FROM auth_user WHERE lower(email) = lower($1)", [email]
                ).first?["id"]
                var localID = existing
                if localID == nil, let taken, !(imported[.user]?.values.contains { $0.local == taken } ?? false) {
                    // A user made here before the import (an operator's admin, say): the same person.
                    localID = taken
                } else if let taken, taken != localID {
                    let standIn = "\(username)@original-user-\(id).invalid"
                    summary.notes.append("user \(id) (\(username)): email \(email) is another user's here; imported as \(standIn)")
                    email = standIn
                }
                let values: [String?] = [
                    email, row["first_name"] ?? "", row["last_name"] ?? "", row["admin"] == "t" ? "true" : "false",
                    row["is_active"] == "t" ? "true" : "false",
                ]
                if let localID {
                    // Made admin when the original has them staff; never made less here.
                    try await connection.query(
                        """
                        UPDATE auth_user SET email = $2, first_name = $3, last_name = $4, is_admin = is_admin OR $5::boolean,
                            is_active = $6::boolean
                        WHERE id = $1::bigint
                        """, [localID] + values)
                    try await remember(.user, id, local: localID, fingerprint: fingerprint)
                } else {
                    // The original's username, unless a user here has it already.
                    let free = try await connection.query("SELECT 1 FROM auth_user WHERE username = $1", [username]).first == nil
                    let name = free ? username : "\(username)-original-\(id)"
                    let inserted = try await connection.query(
                        """
                        INSERT INTO auth_user (username, email, first_name, last_name, is_admin, is_active, date_joined)
                        VALUES ($1, $2, $3, $4, $5::boolean, $6::boolean, $7::timestamptz) RETURNING id::text AS id
                        """, [name] + values + [row["date_joined"]])
                    try await remember(.user, id, local: inserted.first?["id"], fingerprint: fingerprint)
                }
            }
        }

        /// Each token kept as it is (its SHA-256 stored, as this service stores its own), so
        /// that a client's `Authorization: Token <key>` works unchanged. Skipped when it did
        /// not change since the last import: a token revoked here stays revoked.
        mutating func tokens(_ rows: [PostgresRow]) async throws {
            for row in rows {
                guard let id = row["id"], let key = row["key"], let user = local(.user, id) else { continue }
                let active =
                    try await connection.query("SELECT is_active FROM auth_user WHERE id = $1::bigint", [user]).first?["is_active"] == "t"
                // What decides the import: the key, and whether its user may use it.
                let hash = TokenMinter.hash(key)
                let fingerprint = active ? hash : hash + " inactive"
                if unchanged(.token, id, fingerprint) { continue }
                if let problem = OriginalImport.tokenProblem(key) {
                    try await remember(.token, id, local: user, fingerprint: fingerprint, refused: problem)
                    continue
                }
                guard active else {
                    try await remember(
                        .token, id, local: user, fingerprint: fingerprint,
                        refused: "the user is inactive in the original: its token did not authenticate there, and is not imported")
                    continue
                }
                try await connection.query("UPDATE auth_user SET original_token_hash = $2 WHERE id = $1::bigint", [user, hash])
                try await remember(.token, id, local: user, fingerprint: fingerprint)
            }
        }

        mutating func groups(_ rows: [PostgresRow]) async throws {
            for row in rows {
                guard let id = row["id"], let name = row["name"], let fingerprint = row["fingerprint"] else { continue }
                if unchanged(.group, id, fingerprint) { continue }
                let group = try await connection.query(
                    """
                    INSERT INTO auth_group (name) VALUES ($1)
                    ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id::text AS id
                    """, [name]
                ).first?["id"]
                try await remember(.group, id, local: group, fingerprint: fingerprint)
            }
        }

        mutating func memberships(_ rows: [PostgresRow]) async throws {
            for row in rows {
                guard let id = row["id"], let fingerprint = row["fingerprint"] else { continue }
                if unchanged(.membership, id, fingerprint) { continue }
                guard let user = local(.user, row["user_id"]), let group = local(.group, row["group_id"]) else { continue }
                try await connection.query(
                    "INSERT INTO auth_user_groups (user_id, group_id) VALUES ($1::bigint, $2::int) ON CONFLICT DO NOTHING", [user, group])
                try await remember(.membership, id, local: "\(user)/\(group)", fingerprint: fingerprint)
            }
        }

        // MARK: Schedules

        mutating func schedules(_ rows: [PostgresRow]) async throws {
            for row in rows {
                guard let id = row["id"], let scheduleID = UUID(text: id), let fingerprint = row["fingerprint"] else { continue }
                if unchanged(.schedule, id, fingerprint) { continue }
                let owner = local(.user, row["created_by"])
                let editor = local(.user, row["updated_by"])
                let existing = try await connection.query(
                    "SELECT \(ScheduleStore.columns) FROM schedules WHERE id = $1 FOR UPDATE", [id]
                ).first.map(ScheduleStore.schedule)
                let parsed = OriginalImport.schedule(row, limits: limits, now: now)
                var fields = parsed.fields
                // Moving forward only: an import after beat here took over never sends again
                // what was sent.
                if parsed.refusal == nil, let existing, existing.fields.timing == fields.timing,
                    let before = existing.fields.nextSendAt, let after = fields.nextSendAt, before > after
                {
                    fields.nextSendAt = before
                }
                let reason = parsed.refusal.map { "imported disabled: \($0)" }
                let values: [String?] =
                    [
                        id, SQL.text(fields.frequency), fields.cronDefinition, fields.intervalDefinition, fields.timezone,
                        fields.endpoint, parsed.payloadText, fields.authToken, SQL.text(fields.nextSendAt),
                        SQL.text(fields.enabled), row["triggered"] ?? "0", row["created_at"], owner, row["updated_at"], editor,
                        String(parsed.refusal == nil && fields.enabled ? fields.timing.deliveryRate : 0), reason,
                    ]
                try await connection.query(
                    """
                    INSERT INTO schedules (id, frequency, cron_definition, interval_definition, timezone, endpoint, payload, auth_token,
                        next_send_at, enabled, triggered, created_at, created_by, updated_at, updated_by, delivery_rate,
                        disabled_reason, fair_slot, paused_at)
                    VALUES ($1, $2::int, $3, $4, $5, $6, $7::json, $8, $9::timestamptz, $10::boolean, $11::int, $12::timestamptz,
                        $13::bigint, $14::timestamptz, $15::bigint, $16::float8, $17,
                        random() * (coalesce((SELECT schedules_owned FROM auth_user WHERE id = $13::bigint), 0) + 1),
                        CASE WHEN $10::boolean THEN NULL ELSE now() END)
                    ON CONFLICT (id) DO UPDATE SET frequency = $2::int, cron_definition = $3, interval_definition = $4,
                        timezone = $5, endpoint = $6, payload = $7::json, auth_token = $8, next_send_at = $9::timestamptz,
                        enabled = $10::boolean, triggered = greatest(schedules.triggered, $11::int), created_by = $13::bigint,
                        updated_at = $14::timestamptz, updated_by = $15::bigint, delivery_rate = $16::float8, disabled_reason = $17,
                        paused_at = CASE WHEN $10::boolean THEN NULL ELSE coalesce(schedules.paused_at, now()) END
                    """, values)
                if let existing, existing.fields.enabled, !fields.enabled {
                    try await DeliveryStore.cancelPending(scheduleID: scheduleID, connection: connection)
                }
                try await ScheduleHistory.record(
                    scheduleID: scheduleID, ownerID: owner.flatMap { Int64($0) }, actorID: nil, action: "imported",
                    changes: ScheduleChanges.diff(from: existing?.fields, to: fields), connection: connection)
                try await remember(.schedule, id, local: id, fingerprint: fingerprint, refused: parsed.refusal)
            }
        }

        // MARK: Hooks and failures

        mutating func hooks(_ rows: [PostgresRow]) async throws {
            for row in rows {
                guard let id = row["id"], let fingerprint = row["fingerprint"] else { continue }
                if unchanged(.hook, id, fingerprint) { continue }
                guard let user = local(.user, row["user_id"]) else { continue }
                let event = row["event"] ?? ""
                let target = row["target"] ?? ""
                if let problem = OriginalImport.hookProblem(event: event, target: target, egress: limits.egress) {
                    try await remember(.hook, id, local: local(.hook, id), fingerprint: fingerprint, refused: problem)
                    continue
                }
                if let hook = local(.hook, id) {
                    try await connection.query(
                        "UPDATE webhooks SET user_id = $2::bigint, event = $3, target = $4, updated = $5::timestamptz WHERE id = $1::bigint",
                        [hook, user, event, target, row["updated"]])
                    try await remember(.hook, id, local: hook, fingerprint: fingerprint)
                } else {
                    let hook = try await connection.query(
                        """
                        INSERT INTO webhooks (user_id, event, target, created, updated)
                        VALUES ($1::bigint, $2, $3, $4::timestamptz, $5::timestamptz) RETURNING id::text AS id
                        """, [user, event, target, row["created"], row["updated"]]
                    ).first?["id"]
                    try await remember(.hook, id, local: hook, fingerprint: fingerprint)
                }
            }
        }

        /// Each failure becomes a dead letter: a record (state dead, with its reason) whose id
        /// comes from the original's task id, and a message in the dead-letter queue (published
        /// by the caller), so that operators list, re-drive and purge it like any other.
        mutating func failures(_ rows: [PostgresRow]) async throws {
            for row in rows {
                guard let id = row["id"], let fingerprint = row["fingerprint"] else { continue }
                let known = imported[.failure]?[id]
                if let known, known.fingerprint == fingerprint {
                    summary.counts[.failure, default: Counts()].unchanged += 1
                    if !known.done, let letter = try await deadLetter(known.local) { summary.deadLetters.append(letter) }
                    continue
                }
                guard let schedule = row["schedule_id"].flatMap(UUID.init(text:)), local(.schedule, row["schedule_id"]) != nil,
                    let task = row["task_id"].flatMap(UUID.init(text:)), let failedAt = try row.date("initiated_at")
                else { continue }
                let reason = row["reason"] ?? ""
                let deliveryID = DeliveryID.derive(scheduleID: task, scheduledFor: failedAt)
                try await connection.query(
                    """
                    INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, state, attempts, last_error,
                        created_at, published_at, finished_at, updated_at)
                    VALUES ($1, $2, 'schedule', $3::timestamptz, $4, 'dead', 0, $5, $3::timestamptz, $3::timestamptz,
                        $3::timestamptz, now())
                    ON CONFLICT (id) DO UPDATE SET last_error = $5
                    """,
                    [
                        SQL.text(deliveryID), SQL.text(schedule), SQL.text(failedAt), "schedule.\(SQL.text(schedule))",
                        "imported from the original: \(reason)",
                    ])
                try await remember(.failure, id, local: SQL.text(deliveryID), fingerprint: fingerprint)
                if known?.done != true {
                    summary.deadLetters.append(
                        DeadLetter(
                            deliveryID: deliveryID, scheduleID: schedule, failedAt: failedAt,
                            reason: "imported from the original: \(reason)"))
                }
            }
        }

        /// The dead letter of a failure imported before, still to be published.
        func deadLetter(_ local: String?) async throws -> DeadLetter? {
            guard let local,
                let row = try await connection.query(
                    "SELECT id, schedule_id, scheduled_for, last_error FROM deliveries WHERE id = $1::uuid AND state = 'dead'", [local]
                ).first, let id = row["id"].flatMap(UUID.init(text:)), let schedule = row["schedule_id"].flatMap(UUID.init(text:)),
                let at = try row.date("scheduled_for")
            else { return nil }
            return DeadLetter(deliveryID: id, scheduleID: schedule, failedAt: at, reason: row["last_error"] ?? "")
        }
    }
}

// MARK: Rules (pure)

extension OriginalImport {
    /// A schedule as this service would take it: the original's definition (its text, or
    /// djcelery's crontab or interval it points at), in UTC (the original's TIME_ZONE), its
    /// next run the first after its last successful run (or its creation): an occurrence due
    /// while the service moves over is sent once when beat here starts. What the API would
    /// refuse is kept as it was, disabled, with the reason.
    public struct ParsedSchedule: Sendable {
        public var fields: ScheduleFields
        /// The payload as the original sent it: PostgreSQL's text of its jsonb (keys in the
        /// order the original stored them) with non-ASCII characters escaped, as Python's
        /// `json.dumps` writes it.
        public var payloadText: String?
        public var refusal: String?
    }

    public static func schedule(_ row: PostgresRow, limits: ScheduleLimits, now: Date) -> ParsedSchedule {
        func text(_ column: String) -> String? {
            row[column].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        }
        let cron = text("cron_definition") ?? text("celery_cron")
        let interval = text("interval_definition") ?? text("celery_interval")
        let payloadText = row["payload"].map(pythonJSON)
        var body: JSONObject = [
            "endpoint": .string(row["endpoint"] ?? ""), "enabled": .bool(row["enabled"] == "t"),
            "cron_definition": cron.map(JSONValue.string) ?? .null, "interval_definition": interval.map(JSONValue.string) ?? .null,
            "auth_token": row["auth_token"].map(JSONValue.string) ?? .null, "timezone": .string("UTC"),
        ]
        if let frequency = row["frequency"] { body["frequency"] = .number(frequency) }
        var payloadProblem: String?
        if let payloadText {
            do {
                body["payload"] = try JSONParser.parse(payloadText)
            } catch {
                payloadProblem = "payload: \(error)"
            }
        }
        let reference = (try? row.date("last_run")) ?? (try? row.date("created_at")) ?? now
        var raw = ScheduleFields(endpoint: row["endpoint"] ?? "")
        raw.cronDefinition = cron
        raw.intervalDefinition = cron == nil ? interval : nil
        raw.authToken = row["auth_token"]
        raw.frequency = row["frequency"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
        raw.enabled = false
        raw.nextSendAt = nil
        if cron != nil && interval != nil {
            return ParsedSchedule(fields: raw, payloadText: payloadText, refusal: "both a crontab and an interval; kept the crontab")
        }
        if let payloadProblem { return ParsedSchedule(fields: raw, payloadText: nil, refusal: payloadProblem) }
        switch ScheduleValidation.fields(from: .object(body), existing: nil, partial: false, now: reference, limits: limits) {
        case .success(let fields):
            return ParsedSchedule(fields: fields, payloadText: payloadText, refusal: nil)
        case .failure(let errors):
            let reason = errors.fields.map { "\($0.field): \($0.messages.joined(separator: " "))" }.joined(separator: "; ")
            return ParsedSchedule(fields: raw, payloadText: payloadText, refusal: reason)
        }
    }

    /// What the original POSTed for a payload: Python's `json.dumps` of the value psycopg2
    /// read from PostgreSQL's jsonb text. The separators are the same (", " and ": "); Python
    /// escapes every character from DEL up (`\u00e9`, surrogate pairs above the BMP), and
    /// writes a number with a fraction or an exponent as the shortest text of its double
    /// (`2.50` as `2.5`, `1E+3` as `1000.0`), as Swift does; whole numbers stay as written.
    public static func pythonJSON(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        var inString = false
        var escaped = false
        var number = ""
        func flushNumber() {
            guard !number.isEmpty else { return }
            defer { number = "" }
            guard number.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let value = Double(number) else {
                out += number
                return
            }
            out += value.isFinite ? "\(value)" : (value < 0 ? "-Infinity" : "Infinity")
        }
        for scalar in text.unicodeScalars {
            if inString {
                if escaped {
                    escaped = false
                } else if scalar == "\\" {
                    escaped = true
                } else if scalar == "\"" {
                    inString = false
                }
                if scalar.value >= 0x7F {
                    for unit in String(scalar).utf16 {
                        let hex = String(unit, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
                continue
            }
            if scalar == "-" || scalar == "+" || scalar == "." || scalar == "e" || scalar == "E" || ("0"..."9").contains(scalar) {
                number.unicodeScalars.append(scalar)
                continue
            }
            flushNumber()
            if scalar == "\"" { inString = true }
            out.unicodeScalars.append(scalar)
        }
        flushNumber()
        return out
    }

    /// Why a token cannot be kept as it is, if it cannot: this service reads tokens of at
    /// most 128 bytes, printable ASCII (Django REST Framework's are 40 hex digits).
    public static func tokenProblem(_ key: String) -> String? {
        if key.isEmpty { return "the token is empty" }
        if key.utf8.count > 128 { return "the token is longer than 128 bytes" }
        if !key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) { return "the token has characters other than printable ASCII" }
        return nil
    }

    /// Why a hook cannot be imported, if it cannot: an event this service does not have, or
    /// a target the API would refuse.
    public static func hookProblem(event: String, target: String, egress: EgressPolicy) -> String? {
        guard HookEvent(rawValue: event) != nil else { return "event \"\(event)\" is not one this service has" }
        if target.unicodeScalars.contains(where: ScheduleValidation.isControl) { return "target: \(FieldErrors.controlCharacters)" }
        guard ScheduleValidation.isHTTPURL(target) else { return "target: \(FieldErrors.invalidURL)" }
        if let refusal = egress.refusal(forURL: target) { return "target: hook calls may not go to this address: \(refusal)" }
        return nil
    }
}
