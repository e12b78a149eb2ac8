import Foundation
import Postgres

/// Users, groups and tokens.
public struct UserStore: Sendable {
    let pool: PostgresPool
    let minter: TokenMinter

    public init(pool: PostgresPool, minter: TokenMinter) {
        self.pool = pool
        self.minter = minter
    }

    /// The user whose token this is (the one this service derives, or the one imported from
    /// the original), if they are active; else nil.
    public func authenticate(token: String) async throws -> User? {
        guard token.utf8.count <= 128 else { return nil }
        let rows = try await pool.query(
            PreparedStatement(
                """
                SELECT id, username, email, is_admin FROM auth_user WHERE token_hash = $1 AND is_active
                UNION ALL
                SELECT id, username, email, is_admin FROM auth_user WHERE original_token_hash = $1 AND is_active
                LIMIT 1
                """), [TokenMinter.hash(token)])
        return try rows.first.map(Self.user)
    }

    // MARK: Console sessions

    /// Sessions a user may hold at once: signing in again past it ends their oldest.
    public static let sessionsPerUser = 20

    /// Starts a console session for `user`, lasting `seconds`; returns its id (64 hex
    /// digits from the system's random source), of which only the SHA-256 is stored. The
    /// user's expired sessions, and their oldest past `sessionsPerUser`, are ended.
    public func startSession(user: User, seconds: Int) async throws -> String {
        var generator = SystemRandomNumberGenerator()
        let id = TokenMinter.hex(Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        try await pool.withTransaction { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO console_sessions (id_hash, user_id, token_generation, expires_at)
                SELECT $1, id, token_generation, now() + make_interval(secs => $3::int) FROM auth_user
                WHERE id = $2 AND (token_hash IS NOT NULL OR original_token_hash IS NOT NULL)
                """, [TokenMinter.hash(id), SQL.text(user.id), String(seconds)])
            guard inserted.affectedRows == 1 else { throw StoreError.unexpectedNull("console_sessions") }
            try await connection.query(
                """
                DELETE FROM console_sessions WHERE user_id = $1 AND (expires_at <= now() OR id_hash IN (
                    SELECT id_hash FROM console_sessions WHERE user_id = $1 ORDER BY created_at DESC OFFSET $2))
                """, [SQL.text(user.id), String(Self.sessionsPerUser)])
        }
        return id
    }

    /// The user of a live session: not expired, not signed out, and made under the user's
    /// current token (a revoked or rotated token ends its sessions).
    public func session(_ id: String) async throws -> User? {
        guard id.utf8.count == 64, id.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return try await pool.query(
            """
            SELECT u.id, u.username, u.email, u.is_admin FROM console_sessions s JOIN auth_user u ON u.id = s.user_id
            WHERE s.id_hash = $1 AND s.expires_at > now() AND s.token_generation = u.token_generation AND u.is_active
                AND (u.token_hash IS NOT NULL OR u.original_token_hash IS NOT NULL)
            """, [TokenMinter.hash(id)]
        ).first.map(Self.user)
    }

    /// Ends a session (signing out); nothing happens for an unknown one.
    public func endSession(_ id: String) async throws {
        guard id.utf8.count == 64 else { return }
        try await pool.query("DELETE FROM console_sessions WHERE id_hash = $1", [TokenMinter.hash(id)])
    }

    /// The user with this email (created if new; made admin when `admin`) and its token.
    public func issueToken(email: String, admin: Bool) async throws -> (user: User, token: String, created: Bool) {
        try await pool.withTransaction { connection in
            let row = try await connection.query(
                """
                INSERT INTO auth_user (username, email, is_admin) VALUES ($1, $1, $2)
                ON CONFLICT ((lower(email))) DO UPDATE SET is_admin = auth_user.is_admin OR EXCLUDED.is_admin
                RETURNING id, username, email, is_admin, token_generation, token_hash, (xmax = 0) AS inserted
                """, [email, SQL.text(admin)]
            ).first
            guard let row else { throw StoreError.unexpectedNull("auth_user") }
            let user = try Self.user(row)
            let generation = Int(try row.requiredInt64("token_generation"))
            let token = minter.token(userID: user.id, generation: generation)
            let hash = TokenMinter.hash(token)
            if row["token_hash"] != hash {
                try await connection.query("UPDATE auth_user SET token_hash = $1 WHERE id = $2", [hash, SQL.text(user.id)])
            }
            return (user, token, try row.bool("inserted"))
        }
    }

    /// Revokes the token of the user with `email`: it stops working at once (the next request
    /// with it is a 401), and the next one issued is new (a later generation). Nil when there
    /// is no such user.
    public func revokeToken(email: String) async throws -> User? {
        try await pool.withTransaction { connection in
            try await Self.revoke(email: email, connection: connection)?.user
        }
    }

    /// Revokes the token of the user with `email` and issues the next one, in one transaction.
    /// Nil when there is no such user.
    public func rotateToken(email: String) async throws -> (user: User, token: String)? {
        try await pool.withTransaction { connection in
            guard let revoked = try await Self.revoke(email: email, connection: connection) else { return nil }
            let token = minter.token(userID: revoked.user.id, generation: revoked.generation)
            try await connection.query(
                "UPDATE auth_user SET token_hash = $1 WHERE id = $2", [TokenMinter.hash(token), SQL.text(revoked.user.id)])
            return (revoked.user, token)
        }
    }

    private static func revoke(email: String, connection: PostgresConnection) async throws -> (user: User, generation: Int)? {
        let row = try await connection.query(
            """
            UPDATE auth_user SET token_generation = token_generation + 1, token_hash = NULL, original_token_hash = NULL
            WHERE lower(email) = lower($1)
            RETURNING id, username, email, is_admin, token_generation
            """, [email]
        ).first
        guard let row else { return nil }
        return (try user(row), Int(try row.requiredInt64("token_generation")))
    }

    /// A page of users: all of them, or only `only` (a normal user sees only themselves).
    public func users(only: Int64? = nil, limit: Int, offset: Int) async throws -> Page<User> {
        try await pool.withConnection { connection in
            let count =
                try await connection.query(
                    "SELECT count(*) FROM auth_user WHERE ($1::bigint IS NULL OR id = $1)", [only.map { String($0) }]
                ).first?[0].flatMap { Int($0) } ?? 0
            let rows = try await connection.query(
                """
                SELECT u.id, u.username, u.email, u.is_admin,
                       coalesce(array_to_string(array(SELECT g.group_id FROM auth_user_groups g
                                                      WHERE g.user_id = u.id ORDER BY g.group_id), ','), '') AS groups
                FROM auth_user u WHERE ($3::bigint IS NULL OR u.id = $3) ORDER BY u.id DESC LIMIT $1 OFFSET $2
                """, [String(limit), String(offset), only.map { String($0) }])
            return Page(items: try rows.map(Self.user), count: count)
        }
    }

    /// The user with this email (any case), or nil.
    public func user(email: String) async throws -> User? {
        try await pool.query(
            "SELECT id, username, email, is_admin FROM auth_user WHERE lower(email) = lower($1)", [email]
        ).first.map(Self.user)
    }

    public func user(id: Int64) async throws -> User? {
        let rows = try await pool.query(
            """
            SELECT u.id, u.username, u.email, u.is_admin,
                   coalesce(array_to_string(array(SELECT g.group_id FROM auth_user_groups g
                                                  WHERE g.user_id = u.id ORDER BY g.group_id), ','), '') AS groups
            FROM auth_user u WHERE u.id = $1
            """, [String(id)])
        return try rows.first.map(Self.user)
    }

    public func groups(limit: Int, offset: Int) async throws -> Page<Group> {
        try await pool.withConnection { connection in
            let count = try await connection.query("SELECT count(*) FROM auth_group").first?[0].flatMap { Int($0) } ?? 0
            let rows = try await connection.query(
                "SELECT id, name FROM auth_group ORDER BY id DESC LIMIT $1 OFFSET $2", [String(limit), String(offset)])
            return Page(items: try rows.map(Self.group), count: count)
        }
    }

    public func group(id: Int64) async throws -> Group? {
        guard id <= Int64(Int32.max) else { return nil }
        return try await pool.query("SELECT id, name FROM auth_group WHERE id = $1", [String(id)]).first.map(Self.group)
    }

    static func user(_ row: PostgresRow) throws -> User {
        User(
            id: try row.requiredInt64("id"), username: try row.requiredString("username"),
            email: try row.requiredString("email"), isAdmin: try row.bool("is_admin"),
            groupIDs: (row["groups"] ?? "").split(separator: ",").compactMap { Int($0) })
    }

    static func group(_ row: PostgresRow) throws -> Group {
        Group(id: Int(try row.requiredInt64("id")), name: try row.requiredString("name"))
    }
}
