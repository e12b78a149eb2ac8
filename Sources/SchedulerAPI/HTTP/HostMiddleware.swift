import Hummingbird
import SchedulerCore

/// Refuses a request whose `Host` is not one of `ALLOWED_HOSTS` (or `PUBLIC_URL`'s), as
/// Django does, before anything else is done for it: the API's absolute URLs, and the
/// bodies sent to admins' hooks, never carry a host a client made up. Scrapers and probes
/// (`/metrics`, `/api/health/`) come by address and build no URL: they pass.
struct HostMiddleware: RouterMiddleware {
    typealias Context = SchedulerRequestContext
    let hosts: HostPolicy

    static let exempt: Set<String> = ["/metrics", "/api/health/", "/livez", "/readyz"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let authority = request.head.authority, !hosts.allows(authority: authority), !Self.exempt.contains(request.uri.path) {
            throw APIError(.badRequest, detail: "Invalid Host header: add the host to ALLOWED_HOSTS (or set PUBLIC_URL).")
        }
        return try await next(request, context)
    }
}
