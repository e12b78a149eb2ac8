import Foundation
import Logging
import SchedulerCore
import Synchronization

/// `LOG_FORMAT=json`: one JSON object a line on standard error, for log collectors:
/// `time` (UTC, microseconds), `level`, `logger` (the program), `message`, then the
/// metadata under its own keys (`request.id`, `schedule.id`, `delivery.id`, `error`, ...),
/// nested metadata as objects and arrays. Lines are written whole: two threads' lines
/// never interleave.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: @Sendable ([UInt8]) -> Void

    /// Writes to standard error.
    public init(label: String) {
        self.init(label: label, output: Self.standardError)
    }

    /// Writes each line (with its newline) to `output`: for tests.
    public init(label: String, output: @escaping @Sendable ([UInt8]) -> Void) {
        self.label = label
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        var line = JSONObject()
        line["time"] = .string(Timestamp.format(Date()))
        line["level"] = .string(event.level.rawValue)
        line["logger"] = .string(label)
        line["message"] = .string(event.message.description)
        for key in merged.keys.sorted() {
            let name = Self.renamed[key] ?? key
            if line[name] == nil { line[name] = Self.json(merged[key]!) }
        }
        output(JSONValue.object(line).serializedBytes + [0x0A])
    }

    /// Hummingbird's request id under the name the other ids follow.
    static let renamed = ["hb.request.id": "request.id"]

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): .string(text)
        case .stringConvertible(let convertible): .string(convertible.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let entries):
            .object(
                entries.keys.sorted().reduce(into: JSONObject()) { object, key in object[key] = json(entries[key]!) })
        }
    }

    private static let lock = Mutex(())

    private static let standardError: @Sendable ([UInt8]) -> Void = { bytes in
        lock.withLock { _ in
            bytes.withUnsafeBufferPointer { buffer in
                var written = 0
                while written < buffer.count {
                    let result = write(2, buffer.baseAddress! + written, buffer.count - written)
                    if result > 0 {
                        written += result
                    } else if result < 0, errno == EINTR {
                        continue
                    } else {
                        return
                    }
                }
            }
        }
    }
}
