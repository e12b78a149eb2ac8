import Hummingbird
import Logging
import Metrics
import Postgres
import SchedulerCore
import SchedulerStore

/// Turns every error into a JSON answer: the API's own errors as they are, Hummingbird's
/// (unknown route, body too large) in Django REST Framework's words, an unreachable
/// database as 503, and anything else as a logged 500 that tells the client nothing more.
/// It also sets the request body limit, so the 413 it writes names the limit in force.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = SchedulerRequestContext
    let maxBodyBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.maxUploadSize = maxBodyBytes
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as QuotaExceeded {
            return Self.response(error)
        } catch let error as HTTPError {
            return Self.response(status: error.status, detail: error.body, headers: error.headers, context: context)
        } catch let error as PostgresError where error.code == "22021" {
            // A NUL character from the client that no validation caught: its fault, not ours.
            context.logger.warning("a value with a NUL character reached the database", metadata: ["path": "\(request.uri.path)"])
            return JSONResponse.make(status: .badRequest, body: .object(["detail": .string("Null characters are not allowed.")]))
        } catch let error as PostgresError where error.kind != .query || error.code == "57014" {
            context.logger.error("database unavailable", metadata: ["error": "\(error)"])
            return JSONResponse.make(
                status: .serviceUnavailable, body: .object(["detail": .string("The database is unavailable; try again shortly.")]),
                headers: [.retryAfter: "5"])
        } catch let error as any HTTPResponseError {
            // NIO's and Hummingbird's own errors (a body past the limit, for one).
            return Self.response(status: error.status, detail: nil, headers: [:], context: context)
        } catch {
            context.logger.error(
                "unhandled error", metadata: ["error": "\(error)", "method": "\(request.method)", "path": "\(request.uri.path)"])
            return JSONResponse.make(status: .internalServerError, body: .object(["detail": .string("A server error occurred.")]))
        }
    }

    /// A quota's refusal: 429 with `Retry-After` for a rate, 403 for a count, the body naming
    /// the quota, its limit and the use.
    static func response(_ error: QuotaExceeded) -> Response {
        Self.refusals[error.quota]?.increment()
        var headers: HTTPFields = [:]
        if let wait = error.retryAfter { headers[.retryAfter] = String(wait) }
        return JSONResponse.make(
            status: error.retryAfter == nil ? .forbidden : .tooManyRequests,
            body: .object([
                "detail": .string(error.description), "quota": .string(error.quota.rawValue),
                "limit": .number(QuotaExceeded.number(error.limit)), "used": .number(QuotaExceeded.number(error.used)),
            ]), headers: headers)
    }

    /// `scheduler_quota_refusals_total{quota}`: writes refused by a quota (no user label).
    static let refusals: [Quota.Name: Counter] = Dictionary(
        uniqueKeysWithValues: Quota.Name.allCases.map {
            ($0, Counter(label: "scheduler_quota_refusals_total", dimensions: [("quota", $0.rawValue)]))
        })

    static func response(status: HTTPResponse.Status, detail: String?, headers: HTTPFields, context: Context) -> Response {
        switch status {
        case .notFound:
            return JSONResponse.make(status: .notFound, body: .object(["detail": .string("Not found.")]))
        case .contentTooLarge:
            return JSONResponse.make(
                status: .contentTooLarge,
                body: .object(["detail": .string("Request body is larger than \(context.maxUploadSize) bytes.")]))
        default:
            return JSONResponse.make(status: status, body: .object(["detail": .string(detail ?? status.reasonPhrase)]), headers: headers)
        }
    }
}
