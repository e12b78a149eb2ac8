internal import CCurl
import Dispatch
import Foundation

/// Many POSTs in flight at once on one thread, through libcurl's multi interface:
/// connections are kept alive and reused per host. Internal to the box: `HTTPPoster` and
/// `SimplePost` own the threads that drive it.
///
/// `@unchecked Sendable` is safe because a multi handle and its easy handles have a single
/// owner, the thread of the `HTTPPoster` (or `SimplePost` call) that made it; the only
/// method other threads may call is `wakeup()`, which libcurl documents as thread-safe.
final class CurlMulti: @unchecked Sendable {
    private let multi: UnsafeMutableRawPointer
    private var transfers: [UnsafeMutableRawPointer: Transfer] = [:]
    /// Easy handles of finished transfers, for the next POSTs (see `start`: every option of
    /// the last POST's own is set again, so none of it is left in them): a new handle per
    /// POST allocated and freed its buffers each time, a tenth to a fifth of libcurl's CPU
    /// per POST (a C loop of 30,000 POSTs to nginx, 64 at once, runs taking turns: 29-36 µs
    /// a POST with a new handle each, 23-31 µs with handles kept).
    private var idle: [UnsafeMutableRawPointer] = []
    /// Idle handles kept at most (each keeps its buffers: tens of kilobytes).
    static let idleLimit = 128

    /// libcurl's one global set-up, before the first handle of this process (`SimpleGet` too).
    static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// Bytes of an answer's body read at most; past it the transfer stops, and its status
    /// (already received) is its outcome.
    public let maximumResponseBytes: Int

    /// Judges the addresses of guarded POSTs (see `HTTPPost.guarded`).
    let egress: (@Sendable ([UInt8]) -> String?)?

    /// Throws `CurlError` when libcurl cannot make a multi handle (out of memory).
    public init(
        maxConnectionsPerHost: Int = 64, maximumResponseBytes: Int = 1_048_576, egress: (@Sendable ([UInt8]) -> String?)? = nil
    ) throws {
        self.maximumResponseBytes = maximumResponseBytes
        self.egress = egress
        _ = Self.globalInit
        guard let multi = curl_multi_init() else { throw CurlError(code: -1, message: "curl_multi_init failed") }
        self.multi = multi
        _ = shim_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
        _ = shim_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxConnectionsPerHost * 4)
    }

    deinit {
        for transfer in transfers.values { release(transfer) }
        for easy in idle { curl_easy_cleanup(easy) }
        curl_multi_cleanup(multi)
    }

    public var inFlight: Int { transfers.count }

    /// Starts a POST; its outcome comes from a later `perform()`. Throws `HTTPPostError`
    /// for a request that must never be sent (a header or URL with a line break or other
    /// control character: it would add headers or smuggle a request), `CurlError` when
    /// libcurl could not set the transfer up.
    public func start(_ post: HTTPPost) throws {
        if !post.isValidated { try post.validate() }
        let kept = idle.popLast()
        guard let easy = kept ?? curl_easy_init() else { throw CurlError(code: -1, message: "curl_easy_init failed") }
        var list: UnsafeMutablePointer<curl_slist>?
        for header in post.headers { list = curl_slist_append(list, header) }
        list = curl_slist_append(list, "Expect:")
        let transfer = Transfer(
            id: post.id, easy: easy, headers: list, maximumBodyBytes: maximumResponseBytes,
            answerMicroseconds: Int64(min(max(post.timeout, 0.001), 86_400) * 1_000_000), egress: post.guarded ? egress : nil)
        // A kept handle has the options every POST shares from its first POST; every option
        // a POST sets for itself is set again below, so none of the last POST's is left.
        var code = kept == nil ? Self.setSharedOptions(easy) : CURLE_OK
        if code == CURLE_OK { code = shim_easy_setopt_string(easy, CURLOPT_URL, post.url) }
        if code == CURLE_OK { code = shim_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, post.body.count) }
        if code == CURLE_OK {
            // libcurl copies the body (COPYPOSTFIELDS), so it need not outlive this call (nor
            // be copied here to be passed as mutable: libcurl only reads it).
            let body = post.body.isEmpty ? [0] : post.body
            code = body.withUnsafeBytes {
                shim_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress))
            }
        }
        if code == CURLE_OK { code = shim_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list) }
        // libcurl's timeout covers the whole transfer: the connect time is added to it, so a
        // slow connect never eats into the answer's time. (Clamped: settings are checked,
        // but a Double this large must not trap on conversion.)
        let connectMilliseconds = Int(min(max(post.connectTimeout, 0.001), 86_400) * 1000)
        let answerMilliseconds = Int(min(max(post.timeout, 0.001), 86_400) * 1000)
        if code == CURLE_OK { code = shim_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, connectMilliseconds + answerMilliseconds) }
        if code == CURLE_OK { code = shim_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, connectMilliseconds) }
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        if code == CURLE_OK { code = shim_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context) }
        if code == CURLE_OK { code = shim_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context) }
        if code == CURLE_OK { code = shim_easy_setopt_pointer(easy, CURLOPT_XFERINFODATA, context) }
        if code == CURLE_OK { code = shim_easy_setopt_pointer(easy, CURLOPT_OPENSOCKETDATA, context) }
        guard code == CURLE_OK else {
            release(transfer)
            throw CurlError(code: Int(code.rawValue), message: String(cString: curl_easy_strerror(code)))
        }
        let added = curl_multi_add_handle(multi, easy)
        guard added == CURLM_OK else {
            release(transfer)
            throw CurlError(code: Int(added.rawValue), message: String(cString: curl_multi_strerror(added)))
        }
        transfers[easy] = transfer
    }

    /// Waits up to `timeoutMilliseconds` for network activity, a `wakeup()`, or `extraDescriptor`
    /// becoming readable; returns true in that last case.
    public func poll(extraDescriptor: Int32?, timeoutMilliseconds: Int) -> Bool {
        var extra = curl_waitfd(fd: extraDescriptor ?? -1, events: Int16(CURL_WAIT_POLLIN), revents: 0)
        var count: Int32 = 0
        if extraDescriptor != nil {
            _ = curl_multi_poll(multi, &extra, 1, Int32(timeoutMilliseconds), &count)
            return extra.revents & Int16(CURL_WAIT_POLLIN) != 0
        }
        _ = curl_multi_poll(multi, nil, 0, Int32(timeoutMilliseconds), &count)
        return false
    }

    /// Stops every transfer in flight without an outcome; returns how many there were.
    @discardableResult
    public func cancelAll() -> Int {
        let all = transfers
        transfers.removeAll()
        for (easy, transfer) in all {
            curl_multi_remove_handle(multi, easy)
            release(transfer)
        }
        return all.count
    }

    /// Stops these transfers, if still in flight, without an outcome.
    func cancel(_ ids: Set<UInt64>) {
        for (easy, transfer) in transfers where ids.contains(transfer.id) {
            transfers.removeValue(forKey: easy)
            curl_multi_remove_handle(multi, easy)
            release(transfer)
        }
    }

    /// Wakes a `poll` in progress; safe from any thread.
    public func wakeup() {
        _ = curl_multi_wakeup(multi)
    }

    /// Drives the transfers and returns those that finished.
    public func perform() -> [HTTPOutcome] {
        var running: Int32 = 0
        _ = curl_multi_perform(multi, &running)
        var outcomes: [HTTPOutcome] = []
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                let transfer = transfers.removeValue(forKey: easy)
            else { continue }
            let result = message.pointee.data.result
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - transfer.started.uptimeNanoseconds) / 1e9
            // A body past the limit stops the transfer; the status came before it.
            if result == CURLE_OK || (result == CURLE_WRITE_ERROR && transfer.bodyTooLarge) {
                var status = 0
                _ = shim_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
                outcomes.append(
                    HTTPOutcome(
                        id: transfer.id, status: status, failure: nil, error: nil, retryAfter: transfer.retryAfter, seconds: seconds))
            } else if let refusal = transfer.egressRefusal {
                outcomes.append(
                    HTTPOutcome(
                        id: transfer.id, status: nil, failure: .egressDenied, error: "egress-denied: \(refusal)", retryAfter: nil,
                        seconds: seconds))
            } else if result == CURLE_ABORTED_BY_CALLBACK && transfer.answerTimedOut {
                let limit = Double(transfer.answerMicroseconds) / 1_000_000
                outcomes.append(
                    HTTPOutcome(
                        id: transfer.id, status: nil, failure: .timeout,
                        error: "Timeout was reached: no answer within \(limit) s of sending",
                        retryAfter: nil, seconds: seconds))
            } else {
                let failure: HTTPOutcome.Failure
                switch result {
                case CURLE_OPERATION_TIMEDOUT: failure = .timeout
                case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SEND_ERROR,
                    CURLE_RECV_ERROR, CURLE_GOT_NOTHING:
                    failure = .connection
                default: failure = .other
                }
                outcomes.append(
                    HTTPOutcome(
                        id: transfer.id, status: nil, failure: failure, error: String(cString: curl_easy_strerror(result)),
                        retryAfter: nil, seconds: seconds))
            }
            curl_multi_remove_handle(multi, easy)
            release(transfer, reuse: true)
        }
        return outcomes
    }

    /// The options every POST shares, set once on a new handle (a kept one has them): set for
    /// each POST after a `curl_easy_reset`, they cost a sixth of a POST's CPU (a C loop of
    /// 30,000 POSTs to nginx, 32 at once, three runs taking turns: 22.6-25.2 µs a POST
    /// against 18.9-20.1 with these set once).
    private static func setSharedOptions(_ easy: UnsafeMutableRawPointer) -> CURLcode {
        var code = shim_easy_setopt_long(easy, CURLOPT_POST, 1)
        if code == CURLE_OK { code = setPolicy(easy, userAgent: "seed-scheduler") }
        if code == CURLE_OK { code = shim_easy_setopt_write(easy, CURLOPT_WRITEFUNCTION, discardBody) }
        if code == CURLE_OK { code = shim_easy_setopt_write(easy, CURLOPT_HEADERFUNCTION, readHeader) }
        if code == CURLE_OK { code = shim_easy_setopt_xferinfo(easy, checkProgress) }
        if code == CURLE_OK { code = shim_easy_setopt_long(easy, CURLOPT_NOPROGRESS, 0) }
        if code == CURLE_OK { code = shim_easy_setopt_opensocket(easy, openSocket) }
        return code
    }

    /// What every request of this box keeps to: no signals (libcurl would time name lookups
    /// out with SIGALRM, which is not safe in a program with threads), no redirect followed,
    /// HTTP and HTTPS only, and never through a proxy named in the environment (http_proxy,
    /// ...): a proxy would connect for us, past the egress guard.
    static func setPolicy(_ easy: UnsafeMutableRawPointer, userAgent: String) -> CURLcode {
        var code = shim_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        if code == CURLE_OK { code = shim_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0) }
        if code == CURLE_OK { code = shim_easy_setopt_string(easy, CURLOPT_PROXY, "") }
        if code == CURLE_OK { code = shim_easy_setopt_long(easy, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS)) }
        if code == CURLE_OK { code = shim_easy_setopt_string(easy, CURLOPT_USERAGENT, userAgent) }
        return code
    }

    /// Ends a transfer's handle (removed from the multi handle, or never added): kept for
    /// the next POST when `reuse` (a transfer that ran to its end) and there is room.
    private func release(_ transfer: Transfer, reuse: Bool = false) {
        if reuse && idle.count < Self.idleLimit {
            // Its next POST sets its own list; none freed is left in the handle meanwhile.
            _ = shim_easy_setopt_slist(transfer.easy, CURLOPT_HTTPHEADER, nil)
            idle.append(transfer.easy)
        } else {
            curl_easy_cleanup(transfer.easy)
        }
        curl_slist_free_all(transfer.headers)
    }
}

private func discardBody(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    let (length, overflow) = size.multipliedReportingOverflow(by: count)
    guard !overflow, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    transfer.bodyBytes = transfer.bodyBytes.addingReportingOverflow(length).partialValue
    // Returning less than given stops the transfer (CURLE_WRITE_ERROR).
    return transfer.bodyTooLarge ? 0 : length
}

/// Opens the socket for a connection, unless the egress guard refuses its address.
private func openSocket(
    _ context: UnsafeMutableRawPointer?, _ purpose: curlsocktype, _ address: UnsafeMutablePointer<curl_sockaddr>?
) -> curl_socket_t {
    guard let address else { return shim_socket_bad() }
    guard let context else { return shim_open_socket(address) }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    guard let egress = transfer.egress else { return shim_open_socket(address) }
    var bytes = [UInt8](repeating: 0, count: 16)
    let count = Int(shim_sockaddr_bytes(address, &bytes))
    // Neither IPv4 nor IPv6 (a Unix socket cannot be asked for here): refused.
    let refusal = count == 0 ? "not an internet address" : egress(Array(bytes.prefix(count)))
    if let refusal {
        transfer.egressRefusal = refusal
        return shim_socket_bad()
    }
    return shim_open_socket(address)
}

private func checkProgress(
    _ context: UnsafeMutableRawPointer?, _ downloadTotal: curl_off_t, _ downloaded: curl_off_t, _ uploadTotal: curl_off_t,
    _ uploaded: curl_off_t
) -> Int32 {
    guard let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    // Non-zero aborts the transfer (CURLE_ABORTED_BY_CALLBACK).
    return transfer.checkAnswerTime() ? 0 : 1
}

private func readHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    let (length, overflow) = size.multipliedReportingOverflow(by: count)
    guard !overflow else { return 0 }
    guard let data, let context else { return length }
    // Only `Retry-After` is read, and only a sane length of it.
    let prefix = "retry-after:"
    guard length > prefix.utf8.count, length <= 256 else { return length }
    // Most lines are other headers: looked at as text only when the first byte could begin it.
    guard data[0] == CChar(UInt8(ascii: "r")) || data[0] == CChar(UInt8(ascii: "R")) else { return length }
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    if line.lowercased().hasPrefix(prefix) {
        Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().retryAfter = String(line.dropFirst(prefix.count)).trimmingCharacters(
            in: .whitespacesAndNewlines)
    }
    return length
}

/// One POST in flight: its easy handle and what its callbacks learn. The callbacks reach it
/// through the pointer libcurl hands back (`Unmanaged`, unretained: `CurlMulti.transfers` owns it).
private final class Transfer {
    let id: UInt64
    let easy: UnsafeMutableRawPointer
    let headers: UnsafeMutablePointer<curl_slist>?
    let started = DispatchTime.now()
    var retryAfter: String?
    var bodyBytes = 0
    let maximumBodyBytes: Int
    /// Microseconds the receiver has to answer, counted from when the request is sent.
    let answerMicroseconds: Int64
    /// Set when the answer took longer than that (the transfer is then aborted).
    var answerTimedOut = false
    /// Judges each address before a connection to it is opened (nil: no guard).
    let egress: (@Sendable ([UInt8]) -> String?)?
    /// Why the guard refused an address, if it did.
    var egressRefusal: String?

    init(
        id: UInt64, easy: UnsafeMutableRawPointer, headers: UnsafeMutablePointer<curl_slist>?, maximumBodyBytes: Int,
        answerMicroseconds: Int64, egress: (@Sendable ([UInt8]) -> String?)?
    ) {
        self.egress = egress
        self.id = id
        self.easy = easy
        self.headers = headers
        self.maximumBodyBytes = maximumBodyBytes
        self.answerMicroseconds = answerMicroseconds
    }

    /// Called by libcurl about once a second and on every chunk: aborts a transfer whose
    /// request was sent more than `answerMicroseconds` ago.
    func checkAnswerTime() -> Bool {
        var sentAt: curl_off_t = 0
        var now: curl_off_t = 0
        guard shim_easy_getinfo_off_t(easy, CURLINFO_PRETRANSFER_TIME_T, &sentAt) == CURLE_OK, sentAt > 0,
            shim_easy_getinfo_off_t(easy, CURLINFO_TOTAL_TIME_T, &now) == CURLE_OK
        else { return true }
        if Int64(now) - Int64(sentAt) > answerMicroseconds {
            answerTimedOut = true
            return false
        }
        return true
    }

    var bodyTooLarge: Bool { bodyBytes > maximumBodyBytes }
}
