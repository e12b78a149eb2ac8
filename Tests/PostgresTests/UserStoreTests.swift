import Foundation
import Postgres
import SchedulerStore
import TestSupport
import Testing

@Suite("Users and tokens", .scratch)
struct UserStoreTests {
    @Test("the same email gets the same token, stored only as a hash")
    func sameToken() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let store = UserStore(pool: pool, minter: TokenMinter(secretKey: "a-test-secret-key-0123"))
        let first = try await store.issueToken(email: "bob@example.org", admin: false)
        let second = try await store.issueToken(email: "Bob@Example.org", admin: false)
        #expect(first.created && !second.created)
        #expect(first.token == second.token)
        #expect(first.token.count == 40)
        let stored = try await pool.query("SELECT token_hash FROM auth_user").map { $0[0] }
        #expect(stored == [TokenMinter.hash(first.token)])
        #expect(!stored.contains(first.token))
        #expect(try await store.authenticate(token: first.token)?.email == "bob@example.org")
        #expect(try await store.authenticate(token: String(first.token.reversed())) == nil)
    }

    @Test("tokens differ by user and by secret key")
    func derivation() {
        let minter = TokenMinter(secretKey: "key-one-0123456789")
        #expect(minter.token(userID: 1, generation: 1) != minter.token(userID: 2, generation: 1))
        #expect(minter.token(userID: 1, generation: 1) != TokenMinter(secretKey: "key-two-0123456789").token(userID: 1, generation: 1))
        #expect(minter.token(userID: 1, generation: 1) == minter.token(userID: 1, generation: 1))
    }

    @Test("a token imported from the original works beside the derived one; a revoke ends both; an inactive user has none")
    func importedToken() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let store = UserStore(pool: pool, minter: TokenMinter(secretKey: "a-test-secret-key-0123"))
        let key = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
        try await pool.query(
            "INSERT INTO auth_user (username, email, original_token_hash) VALUES ('app', 'app@example.org', $1)", [TokenMinter.hash(key)])
        #expect(try await store.authenticate(token: key)?.email == "app@example.org")
        let derived = try await store.issueToken(email: "app@example.org", admin: false).token
        #expect(derived != key)
        #expect(try await store.authenticate(token: key) != nil, "both work")
        #expect(try await store.authenticate(token: derived) != nil)
        _ = try await store.revokeToken(email: "app@example.org")
        #expect(try await store.authenticate(token: key) == nil, "a revoke ends both")
        #expect(try await store.authenticate(token: derived) == nil)
        let again = try await store.issueToken(email: "app@example.org", admin: false).token
        try await pool.query("UPDATE auth_user SET is_active = false")
        #expect(try await store.authenticate(token: again) == nil, "an inactive user does not authenticate")
    }
}
