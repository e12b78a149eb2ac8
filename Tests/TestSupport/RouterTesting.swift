import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import Synchronization

/// Requests sent straight to an application's responder, with no server and no socket: what
/// HummingbirdTesting's `.router` does, without that module's HTTP client (AsyncHTTPClient,
/// HTTP/2 and a second BoringSSL), which was a third of a clean build.
public enum TestSetup: Sendable {
    case router
}

/// The status, headers and whole body of an answer.
public struct TestResponse: Sendable {
    public let status: HTTPResponse.Status
    public let headers: HTTPFields
    public let body: ByteBuffer
}

public protocol TestClientProtocol: Sendable {
    func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws
        -> TestResponse
}

extension ApplicationProtocol where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    /// Runs `test` with a client whose requests go to this application's responder. The
    /// application's processes that run before its server starts run first; an application
    /// with services is refused (none of the tests' has any).
    public func test<Value>(
        _ setup: TestSetup, _ test: @Sendable (any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        guard services.isEmpty else { throw RouterTestingError("an application with services is not supported") }
        for process in processesRunBeforeServerStart { try await process() }
        let client = RouterClient(responder: try await responder, logger: logger)
        return try await test(client)
    }
}

struct RouterClient<Responder: HTTPResponder>: TestClientProtocol
where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    let responder: Responder
    let logger: Logger

    func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws
        -> TestResponse
    {
        var headers = headers
        if let body { headers[.contentLength] = String(body.readableBytes) }
        let request = Request(
            head: .init(method: method, scheme: "http", authority: "localhost", path: uri, headerFields: headers),
            body: RequestBody(buffer: body ?? ByteBuffer()))
        let context = Responder.Context(source: .init(channel: NIOAsyncTestingChannel(), logger: logger))
        let response: Response
        do {
            response = try await responder.respond(to: request, context: context)
        } catch {
            // As a server answers an error the router did not turn into a response.
            response = Response(status: .internalServerError)
        }
        let collected = CollectedBody()
        try await response.body.write(CollectingWriter(collected: collected))
        return TestResponse(status: response.status, headers: response.headers, body: collected.buffer.withLock { $0 })
    }
}

final class CollectedBody: Sendable {
    let buffer = Mutex(ByteBuffer())
}

struct CollectingWriter: ResponseBodyWriter {
    let collected: CollectedBody

    func write(_ buffer: ByteBuffer) async throws {
        collected.buffer.withLock { body in
            var buffer = buffer
            body.writeBuffer(&buffer)
        }
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

struct RouterTestingError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
