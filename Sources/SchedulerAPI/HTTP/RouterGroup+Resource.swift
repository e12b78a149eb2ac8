import Hummingbird

typealias Handler = @Sendable (Request, SchedulerRequestContext) async throws -> Response

extension RouterGroup where Context == SchedulerRequestContext {
    /// Routes `path` for the given methods and answers any other with 405 and `Allow`.
    @discardableResult
    func resource(_ path: RouterPath, _ handlers: [HTTPRequest.Method: Handler]) -> Self {
        let allowed = [HTTPRequest.Method.get, .post, .put, .patch, .delete].filter { handlers[$0] != nil }
        for method in [HTTPRequest.Method.get, .head, .post, .put, .patch, .delete, .options, .trace] {
            if let handler = handlers[method] {
                on(path, method: method, use: handler)
            } else {
                on(path, method: method) { request, _ -> Response in
                    throw APIError.methodNotAllowed(request.method, allowed: allowed)
                }
            }
        }
        return self
    }
}
