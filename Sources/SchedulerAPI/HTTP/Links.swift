import Foundation
import Hummingbird
import SchedulerCore
import SchedulerStore

/// Absolute URLs for the API's `url`, `next`, `previous` and `Location`: from `PUBLIC_URL`,
/// or the request's Host header when `ALLOWED_HOSTS` allows it (as Django does), with `USE_SSL`.
struct Links: Sendable {
    let base: String

    init(request: Request, settings: APISettings) {
        base = settings.hosts.base(authority: request.head.authority, useSSL: settings.useSSL)
    }

    func url(_ path: String) -> String { base + path }
    func schedule(_ id: UUID) -> String { url("/api/v1/schedule/\(id.lowercasedText)/") }
    func user(_ id: Int64) -> String { url("/api/v1/user/\(id)/") }
    func delivery(_ id: UUID, of schedule: UUID) -> String {
        url("/api/v1/schedule/\(schedule.lowercasedText)/deliveries/\(id.lowercasedText)/")
    }
    func group(_ id: Int) -> String { url("/api/v1/group/\(id)/") }
}

/// `limit` and `offset` paging (`PageRequest` bounds them) and the page's links.
struct Pagination: Sendable {
    let request: PageRequest
    var limit: Int { request.limit }
    var offset: Int { request.offset }

    init(request: Request, defaultLimit: Int, maximumLimit: Int) {
        let query = request.uri.queryParameters
        self.request = PageRequest(
            limit: query["limit"].map(String.init), offset: query["offset"].map(String.init), defaultLimit: defaultLimit,
            maximumLimit: maximumLimit)
    }

    /// `{"count", "next", "previous", "results"}`.
    func page(_ results: [JSONValue], count: Int, request: Request, links: Links) -> JSONValue {
        var next: JSONValue = .null
        if let offset = self.request.nextOffset(count: count) {
            next = .string(pageURL(request: request, links: links, offset: offset))
        }
        var previous: JSONValue = .null
        let before = self.request.previous
        if before.exists {
            previous = .string(pageURL(request: request, links: links, offset: before.offset))
        }
        return .object(["count": .int(count), "next": next, "previous": previous, "results": .array(results)])
    }

    private func pageURL(request: Request, links: Links, offset: Int?) -> String {
        var items: [(String, String)] = []
        for (key, value) in request.uri.queryParameters where key != "limit" && key != "offset" {
            items.append((String(key), String(value)))
        }
        items.append(("limit", String(limit)))
        if let offset { items.append(("offset", String(offset))) }
        let query = items.map { "\(Self.encode($0))=\(Self.encode($1))" }.joined(separator: "&")
        return links.url(request.uri.path) + "?" + query
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

extension Pagination {
    /// A list endpoint's answer: fetches the page the request asks for and renders it.
    static func response<Item: Sendable>(
        to request: Request, settings: APISettings, fetch: (_ limit: Int, _ offset: Int) async throws -> Page<Item>,
        render: (Item, Links) -> JSONValue
    ) async throws -> Response {
        let pagination = Pagination(request: request, defaultLimit: settings.pageSize, maximumLimit: settings.maxPageSize)
        let page = try await fetch(pagination.limit, pagination.offset)
        let links = Links(request: request, settings: settings)
        return JSONResponse.make(
            body: pagination.page(page.items.map { render($0, links) }, count: page.count, request: request, links: links))
    }
}
