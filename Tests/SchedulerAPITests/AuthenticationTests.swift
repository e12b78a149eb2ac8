import Hummingbird
import SchedulerCore
import Testing

@Suite("Authentication")
struct AuthenticationTests {
    @Test("no token, a wrong token and a malformed header are 401 with the contract's words")
    func unauthorized() async throws {
        try await APIHarness.run { api in
            for path in ["/api/v1/schedule/", "/api/v1/user/", "/api/health/", "/api/metrics/", "/api/v1/webhook/"] {
                let missing = try await api.send(.get, path, token: .some(nil))
                #expect(missing.status == .unauthorized, "\(path)")
                #expect(missing.detail == "Authentication credentials were not provided.")
                #expect(missing.headers[.wwwAuthenticate] == "Token")
            }
            let wrong = try await api.send(.get, "/api/v1/schedule/", token: "0123456789abcdef0123456789abcdef01234567")
            #expect(wrong.status == .unauthorized)
            #expect(wrong.detail == "Invalid token.")
            let bare = try await api.send(.get, "/api/v1/schedule/", token: .some(nil), headers: [.authorization: "Token"])
            #expect(bare.status == .unauthorized)
            let basic = try await api.send(.get, "/api/v1/schedule/", token: .some(nil), headers: [.authorization: "Basic Ym9iOnB3"])
            #expect(basic.detail == "Authentication credentials were not provided.")
        }
    }

    @Test("the OpenAPI document needs no token")
    func schema() async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/v1/schema/", token: .some(nil))
            #expect(reply.status == .ok)
            #expect(reply.text.hasPrefix("openapi: 3"))
        }
    }

    @Test("unknown paths are 404 in JSON")
    func notFound() async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/v2/nothing/")
            #expect(reply.status == .notFound)
            #expect(reply.detail == "Not found.")
        }
    }
}

@Suite("Tokens, users and groups")
struct UserAPITests {
    @Test("only an admin may issue tokens; the same email gets the same token")
    func tokens() async throws {
        try await APIHarness.run { api in
            let refused = try await api.send(.post, "/api/v1/user/token/", json: #"{"email":"new@example.org"}"#)
            #expect(refused.status == .forbidden)
            #expect(refused.detail == "You do not have permission to perform this action.")

            let first = try await api.send(.post, "/api/v1/user/token/", json: #"{"email":"new@example.org"}"#, token: api.adminToken)
            #expect(first.status == .created)
            let token = try #require(first.object?["token"]?.stringValue)
            #expect(token.count == 40)
            let again = try await api.send(.post, "/api/v1/user/token/", json: #"{"email":"new@example.org"}"#, token: api.adminToken)
            #expect(again.object?["token"]?.stringValue == token)

            // The new token works.
            #expect(try await api.send(.get, "/api/v1/schedule/", token: token).status == .ok)
        }
    }

    @Test("a missing or bad email is a 400 on the email field")
    func badEmail() async throws {
        try await APIHarness.run { api in
            let cases = [
                ("{}", "This field is required."), (#"{"email":"nope"}"#, "Enter a valid email address."),
                (#"{"email":null}"#, "This field may not be null."), (#"{"email":7}"#, "Not a valid string."),
            ]
            for (body, message) in cases {
                let reply = try await api.send(.post, "/api/v1/user/token/", json: body, token: api.adminToken)
                #expect(reply.status == .badRequest, "\(body)")
                #expect(reply.errors("email") == [message], "\(body)")
            }
        }
    }

    @Test("users and groups are listed and retrieved with absolute URLs")
    func usersAndGroups() async throws {
        try await APIHarness.run { api in
            try await api.pool.query("INSERT INTO auth_group (name) VALUES ('Admins')")
            try await api.pool.query(
                "INSERT INTO auth_user_groups (user_id, group_id) SELECT u.id, g.id FROM auth_user u, auth_group g WHERE u.email = 'admin@example.org'"
            )
            // An admin lists every user (a normal user only themselves: TenancyAPITests).
            let users = try await api.send(.get, "/api/v1/user/", token: api.adminToken)
            #expect(users.status == .ok)
            #expect(users.object?["count"] == .int(2))
            guard case .array(let results)? = users.object?["results"] else { throw TestFailure("no results") }
            let admin = try #require(results.compactMap(\.objectValue).first { $0["email"] == .string("admin@example.org") })
            #expect(admin.keys == ["url", "username", "email", "groups"])
            #expect(admin["username"] == .string("admin@example.org"))
            guard case .array(let groups)? = admin["groups"], let groupURL = groups.first?.stringValue else {
                throw TestFailure("no group")
            }
            #expect(groupURL.hasPrefix("http") && groupURL.hasSuffix("/api/v1/group/1/"))

            let userURL = try #require(admin["url"]?.stringValue)
            let path = String(userURL[try #require(userURL.range(of: "/api/")).lowerBound...])
            let one = try await api.send(.get, path, token: api.adminToken)
            #expect(one.object?["email"] == .string("admin@example.org"))

            let group = try await api.send(.get, "/api/v1/group/1/")
            #expect(group.object?.keys == ["url", "name"])
            #expect(group.object?["name"] == .string("Admins"))
            #expect(try await api.send(.get, "/api/v1/group/").object?["count"] == .int(1))

            for missing in ["/api/v1/user/999/", "/api/v1/user/abc/", "/api/v1/group/0/", "/api/v1/group/x/"] {
                let reply = try await api.send(.get, missing)
                #expect(reply.status == .notFound, "\(missing)")
                #expect(reply.detail == "Not found.")
            }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite("Ids out of range")
struct IDRangeTests {
    @Test("ids past the column's range are 404, not a server error (found by the fuzzer)")
    func hugeIDs() async throws {
        try await APIHarness.run { api in
            for path in ["/api/v1/group/282112615705/", "/api/v1/user/99999999999999999999/", "/api/v1/webhook/9223372036854775807/"] {
                let reply = try await api.send(.get, path)
                #expect(reply.status == .notFound, "\(path)")
            }
        }
    }
}
