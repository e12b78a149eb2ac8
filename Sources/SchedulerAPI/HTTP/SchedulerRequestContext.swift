import Hummingbird
import SchedulerStore

/// The request context: Hummingbird's core storage plus the caller, once authenticated.
public struct SchedulerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var user: User?
    /// Bodies past this size are refused with 413 before they are read whole.
    public var maxUploadSize: Int
    /// The address of the peer that sent the request (a proxy's, when there is one).
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        user = nil
        maxUploadSize = 1_048_576
        peerAddress = source.channel.remoteAddress?.ipAddress
    }

    /// The authenticated caller; the authentication middleware guarantees one.
    func caller() throws -> User {
        guard let user else { throw APIError.notAuthenticated }
        return user
    }

    /// Whose data the caller may see: nil for an admin (everyone's), else their own id.
    func owner() throws -> Int64? {
        let user = try caller()
        return user.isAdmin ? nil : user.id
    }
}
