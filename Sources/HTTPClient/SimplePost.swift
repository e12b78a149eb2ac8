internal import CCurl
import Dispatch
import Foundation

/// One POST, for rare calls (the Go Metrics push): the blocking libcurl work runs on a
/// queue this box owns, never on the caller's thread or the cooperative pool.
public enum SimplePost {
    private static let queue = DispatchQueue(label: "http.simple-post", attributes: .concurrent)

    /// Returns the HTTP status; throws `CurlError` when there was no answer.
    public static func send(url: String, headers: [String], body: [UInt8], timeout: Double) async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try sendBlocking(url: url, headers: headers, body: body, timeout: timeout) }) }
        }
    }

    static func sendBlocking(url: String, headers: [String], body: [UInt8], timeout: Double) throws -> Int {
        let multi = try CurlMulti()
        try multi.start(HTTPPost(id: 1, url: url, headers: headers, body: body, timeout: timeout))
        while true {
            for outcome in multi.perform() where outcome.id == 1 {
                if let status = outcome.status { return status }
                throw CurlError(code: -1, message: outcome.error ?? "no answer")
            }
            _ = multi.poll(extraDescriptor: nil, timeoutMilliseconds: 100)
        }
    }
}
