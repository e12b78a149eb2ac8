internal import CCurl
import Dispatch
import Foundation

/// One GET, for `scheduler-ctl probe` (images without curl): the blocking libcurl call runs
/// on a queue this box owns, never on the caller's thread or the cooperative pool.
public enum SimpleGet {
    private static let queue = DispatchQueue(label: "http.simple-get")
    /// Bytes of the body kept at most (a probe's answer is small).
    public static let maximumBodyBytes = 65_536

    /// The status and (the first `maximumBodyBytes` of) the body; throws `HTTPPostError` for a
    /// URL with a space or control character, `CurlError` when there was no answer within
    /// `timeout` seconds.
    public static func fetch(url: String, timeout: Double) async throws -> (status: Int, body: [UInt8]) {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try fetchBlocking(url: url, timeout: timeout) }) }
        }
    }

    private final class Body {
        var bytes: [UInt8] = []
    }

    static func fetchBlocking(url: String, timeout: Double) throws -> (status: Int, body: [UInt8]) {
        _ = CurlMulti.globalInit
        // The POSTs' rule for URLs: no space or control character.
        try HTTPPost(id: 0, url: url, headers: [], body: [], timeout: timeout).validate()
        guard let easy = curl_easy_init() else { throw CurlError(code: -1, message: "curl_easy_init failed") }
        defer { curl_easy_cleanup(easy) }
        let body = Body()
        let context = Unmanaged.passUnretained(body).toOpaque()
        let milliseconds = Int(min(max(timeout, 0.001), 3600) * 1000)
        var code = shim_easy_setopt_string(easy, CURLOPT_URL, url)
        if code == CURLE_OK { code = shim_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, milliseconds) }
        if code == CURLE_OK { code = CurlMulti.setPolicy(easy, userAgent: "scheduler-ctl probe") }
        if code == CURLE_OK { code = shim_easy_setopt_write(easy, CURLOPT_WRITEFUNCTION, keepBody) }
        if code == CURLE_OK { code = shim_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context) }
        if code == CURLE_OK { code = curl_easy_perform(easy) }
        guard code == CURLE_OK else { throw CurlError(code: Int(code.rawValue), message: String(cString: curl_easy_strerror(code))) }
        var status = 0
        _ = shim_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return (status, body.bytes)
    }

    /// libcurl's write callback: keeps up to `maximumBodyBytes`, drops the rest.
    private static let keepBody: shim_write_callback = { data, size, count, context in
        let total = size * count
        guard let data, let context else { return total }
        let body = Unmanaged<Body>.fromOpaque(context).takeUnretainedValue()
        let room = max(0, SimpleGet.maximumBodyBytes - body.bytes.count)
        data.withMemoryRebound(to: UInt8.self, capacity: total) { bytes in
            body.bytes.append(contentsOf: UnsafeBufferPointer(start: bytes, count: min(room, total)))
        }
        return total
    }
}
