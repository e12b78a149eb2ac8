import Hummingbird
import SchedulerStore

/// `Authorization: Token <key>` on every API endpoint, as Django REST Framework's
/// TokenAuthentication: no header is 401 "not provided", a wrong key 401 "Invalid token.".
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = SchedulerRequestContext
    let users: UserStore

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else { throw APIError.notAuthenticated }
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
        var context = context
        context.user = user
        context.logger[metadataKey: "user.id"] = "\(user.id)"
        return try await next(request, context)
    }
}
