/// A libcurl failure to set up a transfer.
public struct CurlError: Error, Sendable, CustomStringConvertible {
    public let code: Int
    public let message: String
    public var description: String { "libcurl error \(code): \(message)" }
}
