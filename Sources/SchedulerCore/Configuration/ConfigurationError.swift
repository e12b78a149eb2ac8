/// A setting that is missing or malformed. Programs print it as one line and stop.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
