import Hummingbird
import SchedulerCore

extension Request {
    /// The body as JSON. An empty body reads as `{}`; anything unreadable is a 400 with
    /// the parser's reason; a body past the context's limit (or `limit`, when smaller) is a 413.
    mutating func jsonBody(context: SchedulerRequestContext, limit: Int? = nil) async throws -> JSONValue {
        let bound = min(limit ?? .max, context.maxUploadSize)
        let buffer: ByteBuffer
        do {
            buffer = try await collectBody(upTo: bound)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, detail: "Request body is larger than \(bound) bytes.")
        }
        if buffer.readableBytes == 0 { return .object([:]) }
        do {
            return try JSONParser.parse(buffer.readableBytesView)
        } catch {
            throw APIError(.badRequest, detail: "JSON parse error - \(error.description)")
        }
    }
}

extension Parameters {
    /// The path's id as an integer, or a 404 (as Django's URL patterns answer).
    func int64ID(_ name: String = "id") throws -> Int64 {
        guard let text = self.get(name), let id = Int64(text), id > 0 else { throw APIError.notFound }
        return id
    }
}
