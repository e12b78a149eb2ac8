import Foundation
import Hummingbird
import Postgres
import SchedulerAPI
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

/// The whole API on a fresh database, with an admin and a normal user.
struct APIHarness: Sendable {
    let client: any TestClientProtocol
    let pool: PostgresPool
    let adminToken: String
    let userToken: String

    static let secretKey = "api-tests-secret-key-0123456789"

    static func run(
        environment: [String: String] = [:], _ test: @escaping @Sendable (APIHarness) async throws -> Void
    ) async throws {
        try await TestDatabase.withFreshPool { pool in try await run(pool: pool, environment: environment, test) }
    }

    private static func run(
        pool: PostgresPool, environment: [String: String], _ test: @escaping @Sendable (APIHarness) async throws -> Void
    ) async throws {
        let users = UserStore(pool: pool, minter: TokenMinter(secretKey: secretKey))
        let admin = try await users.issueToken(email: "admin@example.org", admin: true).token
        let user = try await users.issueToken(email: "user@example.org", admin: false).token
        let configuration = try Configuration(
            environment: ["SECRET_KEY": secretKey, "BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2f", "PAGE_SIZE": "3"]
                .merging(environment) { $1 })
        let router = buildRouter(configuration: configuration, pool: pool, logger: TestDatabase.logger)
        let application = Application(router: router, logger: TestDatabase.logger)
        try await application.test(.router) { client in
            try await test(APIHarness(client: client, pool: pool, adminToken: admin, userToken: user))
        }
    }

    /// Sends a request as `token` (the normal user by default; nil for none).
    func send(
        _ method: HTTPRequest.Method, _ uri: String, json: String? = nil, token: String?? = .none,
        headers: HTTPFields = [:]
    ) async throws -> Reply {
        var fields = headers
        switch token {
        case .none: fields[.authorization] = "Token \(userToken)"
        case .some(.some(let token)): fields[.authorization] = "Token \(token)"
        case .some(.none): break
        }
        if json != nil { fields[.contentType] = "application/json" }
        let response = try await client.executeRequest(
            uri: uri, method: method, headers: fields, body: json.map { ByteBuffer(string: $0) })
        return Reply(response: response)
    }

    /// Creates a schedule and returns its JSON.
    func createSchedule(_ json: String) async throws -> JSONObject {
        let reply = try await send(.post, "/api/v1/schedule/", json: json)
        try #require(reply.status == .created, "\(reply.text)")
        return try #require(reply.object)
    }
}

struct Reply: Sendable {
    let response: TestResponse
    var status: HTTPResponse.Status { response.status }
    var headers: HTTPFields { response.headers }
    var text: String { String(buffer: response.body) }
    var json: JSONValue? { try? JSONParser.parse(text) }
    var object: JSONObject? { json?.objectValue }

    /// `{"detail": ...}`
    var detail: String? { object?["detail"]?.stringValue }

    /// The messages of a 400 for `field`.
    func errors(_ field: String) -> [String] {
        guard case .array(let items)? = object?[field] else { return [] }
        return items.compactMap(\.stringValue)
    }
}
