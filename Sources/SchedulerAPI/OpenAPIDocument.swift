import Foundation

/// The API's OpenAPI 3 document, `Resources/openapi.yaml`, shipped with the program as a
/// SwiftPM resource; served without a token at `GET /api/v1/schema/`, checked against the
/// router's routes by the tests and against the live server by `scripts/fuzz-api`.
enum OpenAPIDocument {
    static let yaml: String = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else {
            return
                "openapi: 3.0.3\ninfo: {title: Seed Scheduler, version: unknown, description: the document is missing from this build}\npaths: {}\n"
        }
        return text
    }()
}
