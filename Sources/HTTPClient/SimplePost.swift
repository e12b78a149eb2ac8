internal import CCurl
import Foundation

/// One blocking POST with libcurl's easy interface, for rare calls (the Go Metrics push).
/// Call it from a thread of your own or a dispatch queue, never the cooperative pool.
public enum SimplePost {
    /// Returns the HTTP status; throws `CurlError` when there was no answer.
    public static func send(url: String, headers: [String], body: [UInt8], timeout: Double) throws -> Int {
        let multi = CurlMulti()
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
