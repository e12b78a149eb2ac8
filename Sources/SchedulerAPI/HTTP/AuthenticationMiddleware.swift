import Foundation
import HTTPTypes
import Hummingbird
import SchedulerCore
import SchedulerStore

/// `Authorization: Token <key>` on every API endpoint, as Django REST Framework's
/// TokenAuthentication: no header is 401 "not provided", a wrong key 401 "Invalid token.".
/// Without the header, the console's session cookie (HttpOnly, SameSite=Strict: a random
/// session id, not the token) stands in for it; a request that changes something must then
/// also carry `X-Scheduler-Console: 1`, which no other site's page can send.
///
/// Failed authentications are counted per client address (`AuthThrottle`): past the limit,
/// the address's requests with credentials are a 429 with `Retry-After`, with no look-up.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = SchedulerRequestContext
    let users: UserStore
    let throttle: AuthThrottle
    let trustedProxies: [EgressPolicy.Range]

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        // Only a request that presents credentials can fail to authenticate; one without any
        // (a probe, a first look) is a plain 401 and costs no look-up.
        let presented = request.headers[.authorization] != nil || request.headers[.cookie] != nil
        let client = presented ? Self.clientAddress(request, peer: context.peerAddress, trusted: trustedProxies) : nil
        if let client, let wait = throttle.retryAfter(client, now: Self.now()) { throw Self.throttled(wait) }
        let user: User
        do {
            user = try await self.user(request)
        } catch let error as APIError where error.status == .unauthorized {
            if let client { throttle.failed(client, now: Self.now()) }
            throw error
        }
        return try await next(request, Self.signedIn(user, context: context))
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// The answer to an address past its failed authentications.
    static func throttled(_ wait: Int) -> APIError {
        APIError(
            .tooManyRequests, detail: "Too many failed authentications from this address; try again in \(wait) seconds.",
            headers: [.retryAfter: String(wait)])
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the last
    /// address in `X-Forwarded-For` that is not one (what a client puts first is its word only).
    static func clientAddress(_ request: Request, peer: String?, trusted: [EgressPolicy.Range]) -> String? {
        guard let peer else { return nil }
        func isTrusted(_ text: String) -> Bool {
            guard let address = IPAddress(text) else { return false }
            return trusted.contains { $0.contains(address) }
        }
        guard isTrusted(peer) else { return peer }
        let hops = request.headers[values: HTTPField.Name("X-Forwarded-For")!].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !isTrusted(hop) {
            return IPAddress(hop) != nil ? hop : peer
        }
        return peer
    }

    /// The caller the request's token (or the console's session cookie) names, or a 401.
    private func user(_ request: Request) async throws -> User {
        guard let header = request.headers[.authorization] else { return try await sessionUser(request) }
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
        return user
    }

    private func sessionUser(_ request: Request) async throws -> User {
        guard let session = Self.cookie(ConsoleController.cookie, in: request.headers[values: .cookie]), !session.isEmpty else {
            throw APIError.notAuthenticated
        }
        if ![.get, .head, .options].contains(request.method), request.headers[ConsoleController.csrfHeader] != "1" {
            throw ConsoleController.crossSite
        }
        guard let user = try await users.session(session) else { throw Self.sessionEnded }
        return user
    }

    static let sessionEnded = APIError(.unauthorized, detail: "The console session has ended: sign in again.")

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
