import Foundation
import Hummingbird
import Logging
import Postgres
import SchedulerAPI
import SchedulerCore
import TestSupport
import Testing

/// The OpenAPI document describes the API the router serves: every route is a documented
/// path (so the fuzzer reaches it), and every documented path is served.
@Suite("OpenAPI document and router")
struct OpenAPIRoutesTests {
    @Test("the document the server serves has exactly the router's routes as paths")
    func pathsMatchRoutes() async throws {
        let configuration = try Configuration(
            environment: ["SECRET_KEY": "openapi-tests-secret-0123456789", "BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2f"])
        let pool = PostgresPool(url: "postgres://postgres@127.0.0.1:1/none", size: 1, logger: Logger(label: "openapi"))
        defer { pool.close() }
        let router = buildRouter(configuration: configuration, pool: pool, logger: Logger(label: "openapi"))
        // `:id` in the router is `{id}` in the document; paths keep their trailing slash, but
        // for the scrape and probe paths (`/metrics`, `/livez`, `/readyz`) and files.
        let routed = Set(
            router.routes.map { route -> String in
                let path = "\(route.path)".split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                    .joined(separator: "/")
                let file =
                    ["metrics", "livez", "readyz"].contains(path) || path.split(separator: "/").last?.contains(".") == true
                return "/" + path + (file ? "" : "/")
            })
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/v1/schema/", token: .some(nil))
            #expect(reply.status == .ok)
            let document = OpenAPIDocumentText.paths(reply.text)
            #expect(!document.isEmpty, "the document ships with the program")
            #expect(routed.subtracting(document).isEmpty, "routes missing from the document: \(routed.subtracting(document).sorted())")
            #expect(document.subtracting(routed).isEmpty, "documented paths not served: \(document.subtracting(routed).sorted())")
        }
    }
}

/// The paths of an OpenAPI document (the keys under `paths:`), read from its YAML text.
enum OpenAPIDocumentText {
    static func paths(_ text: String) -> Set<String> {
        var inPaths = false
        var paths = Set<String>()
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" {
                inPaths = true
                continue
            }
            if inPaths, let first = line.first, first != " " { inPaths = false }
            if inPaths, line.hasPrefix("  /"), line.hasSuffix(":") {
                paths.insert(String(line.dropFirst(2).dropLast()))
            }
        }
        return paths
    }
}
