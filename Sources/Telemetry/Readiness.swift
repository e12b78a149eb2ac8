import Hummingbird
import SchedulerCore
import Synchronization

/// Whether this process can do its work: the checks its program registers (the broker,
/// PostgreSQL), each ready or failing with a reason, set where the program learns it.
/// `/readyz` answers 200 while every check is ready, else 503 naming the failing ones;
/// `/livez` answers 200 while the process serves at all. Both need no token: the reasons
/// are fixed words the program chose, never an error's text (no host, user or query).
public final class Readiness: Sendable {
    /// The process's readiness (one per program, like its metrics).
    public static let shared = Readiness()

    /// Each check's failure reason; nil while it is ready.
    private let checks = Mutex<[String: String?]>([:])

    public init() {}

    /// Registers checks that start failing with `reason` until they are first set ready.
    public func expect(_ names: [String], reason: String = "starting") {
        checks.withLock { checks in
            for name in names where checks[name] == nil { checks[name] = .some(reason) }
        }
    }

    /// Marks `name` ready.
    public func ready(_ name: String) {
        checks.withLock { $0[name] = .some(nil) }
    }

    /// Marks `name` failing, with a reason a stranger may read.
    public func failing(_ name: String, _ reason: String) {
        checks.withLock { $0[name] = .some(reason) }
    }

    /// Every check and its state, and whether all are ready.
    public func report() -> (ready: Bool, checks: [(name: String, failure: String?)]) {
        let all = checks.withLock { $0 }.map { (name: $0.key, failure: $0.value) }.sorted { $0.name < $1.name }
        return (all.allSatisfy { $0.failure == nil }, all)
    }

    /// `GET /readyz`: 200 `{"ready": true, "checks": {...}}`, or 503 with the failing checks' reasons.
    public func response() -> Response {
        let (ready, checks) = report()
        return Self.response(ready: ready, checks: checks)
    }

    public static func response(ready: Bool, checks: [(name: String, failure: String?)]) -> Response {
        var named = JSONObject()
        for check in checks { named[check.name] = .string(check.failure ?? "ok") }
        let body = JSONValue.object(["ready": .bool(ready), "checks": .object(named)])
        return Response(
            status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body.serializedBytes)))
    }

    /// `GET /livez`: 200 while the process answers.
    public static func live() -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"live":true}"#)))
    }
}
