/// A request that must not be sent as it is.
public struct HTTPPostError: Error, Sendable, CustomStringConvertible {
    public let description: String
}
