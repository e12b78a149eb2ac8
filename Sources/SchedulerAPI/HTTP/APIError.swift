import Hummingbird
import SchedulerCore

/// An error the API answers with, as Django REST Framework words it: a status and a
/// JSON body, `{"detail": "..."}` or `{"field": ["..."]}`.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let body: JSONValue
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, body: JSONValue, headers: HTTPFields = [:]) {
        self.status = status
        self.body = body
        self.headers = headers
    }

    public init(_ status: HTTPResponse.Status, detail: String, headers: HTTPFields = [:]) {
        self.init(status, body: .object(["detail": .string(detail)]), headers: headers)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONResponse.make(status: status, body: body, headers: headers)
    }

    public static let notFound = APIError(.notFound, detail: "Not found.")
    public static let notAuthenticated = APIError(
        .unauthorized, detail: "Authentication credentials were not provided.", headers: [.wwwAuthenticate: "Token"])
    public static let invalidToken = APIError(.unauthorized, detail: "Invalid token.", headers: [.wwwAuthenticate: "Token"])
    public static let forbidden = APIError(.forbidden, detail: "You do not have permission to perform this action.")

    public static func validation(_ errors: FieldErrors) -> APIError { APIError(.badRequest, body: errors.json) }

    public static func methodNotAllowed(_ method: HTTPRequest.Method, allowed: [HTTPRequest.Method]) -> APIError {
        APIError(
            .methodNotAllowed, detail: "Method \"\(method.rawValue)\" not allowed.",
            headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")])
    }
}

enum JSONResponse {
    static func make(status: HTTPResponse.Status = .ok, body: JSONValue, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(string: body.serialized)))
    }
}
