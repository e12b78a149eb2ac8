/// How a POST ended: an HTTP status, or a transport error in libcurl's words.
public struct HTTPOutcome: Sendable {
    public enum Failure: Sendable, Equatable {
        case timeout
        case connection
        case other
        /// The egress guard refused every address the host resolved to.
        case egressDenied
    }

    public let id: UInt64
    public let status: Int?
    public let failure: Failure?
    public let error: String?
    /// The receiver's `Retry-After` header, as sent.
    public let retryAfter: String?
    public let seconds: Double

    public init(id: UInt64, status: Int?, failure: Failure?, error: String?, retryAfter: String?, seconds: Double) {
        self.id = id
        self.status = status
        self.failure = failure
        self.error = error
        self.retryAfter = retryAfter
        self.seconds = seconds
    }
}
