import Foundation
import Hummingbird
import SchedulerStore

/// `Authorization: Token <key>` on every API endpoint, as Django REST Framework's
/// TokenAuthentication: no header is 401 "not provided", a wrong key 401 "Invalid token.".
/// Without the header, the console's session cookie (HttpOnly, SameSite=Strict) stands in
/// for it; a request that changes something must then also carry `X-Scheduler-Console: 1`,
/// which no other site's page can send.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = SchedulerRequestContext
    let users: UserStore

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            return try await sessionCookie(request, context: context, next: next)
        }
        let parts = header.split(separator: " ", omittingEmptySubsequences: true)
        guard let scheme = parts.first, scheme.lowercased() == "token" else { throw APIError.notAuthenticated }
        guard parts.count == 2 else {
            throw APIError(
                .unauthorized,
                detail: parts.count == 1
                    ? "Invalid token header. No credentials provided."
                    : "Invalid token header. Token string should not contain spaces.",
                headers: [.wwwAuthenticate: "Token"])
        }
        guard let user = try await users.authenticate(token: String(parts[1])) else { throw APIError.invalidToken }
        return try await next(request, Self.signedIn(user, context: context))
    }

    private func sessionCookie(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let token = Self.cookie(ConsoleController.cookie, in: request.headers[values: .cookie]), !token.isEmpty else {
            throw APIError.notAuthenticated
        }
        if ![.get, .head, .options].contains(request.method), request.headers[ConsoleController.csrfHeader] != "1" {
            throw ConsoleController.crossSite
        }
        guard let user = try await users.authenticate(token: token) else { throw APIError.invalidToken }
        return try await next(request, Self.signedIn(user, context: context))
    }

    /// The value of cookie `name` in `Cookie` headers (`a=1; b=2`).
    static func cookie(_ name: String, in headers: [String]) -> String? {
        for header in headers {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }

    private static func signedIn(_ user: User, context: Context) -> Context {
        var context = context
        context.user = user
        context.logger[metadataKey: "user.id"] = "\(user.id)"
        return context
    }
}
