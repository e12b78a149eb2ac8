/// `limit` and `offset` paging, as Django REST Framework's LimitOffsetPagination: a bad or
/// missing limit means the default page size, a limit past the maximum means the maximum,
/// a bad offset means 0, and an offset past `maximumOffset` means `maximumOffset` (an
/// empty page). The arithmetic of the links never overflows, whatever the client sent.
public struct PageRequest: Sendable, Equatable {
    public let limit: Int
    public let offset: Int

    /// 2^31 - 1: far past any list this service keeps, far from `Int`'s edges.
    public static let maximumOffset = Int(Int32.max)

    public init(limit limitText: String?, offset offsetText: String?, defaultLimit: Int, maximumLimit: Int) {
        let maximum = max(1, maximumLimit)
        if let limitText, let value = Self.number(limitText), value > 0 {
            limit = min(value, maximum)
        } else {
            limit = min(max(1, defaultLimit), maximum)
        }
        if let offsetText, let value = Self.number(offsetText), value > 0 {
            offset = min(value, Self.maximumOffset)
        } else {
            offset = 0
        }
    }

    /// Digits only (a sign or spaces make it bad); any length, saturating at `Int.max`.
    static func number(_ text: some StringProtocol) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int(text) ?? .max
    }

    /// The offset of the next page, or nil on the last.
    public func nextOffset(count: Int) -> Int? {
        let next = offset + limit  // both at most 2^31 - 1: no overflow
        return next < count ? next : nil
    }

    /// Whether there is a previous page, and its offset (nil: the first page, no offset).
    public var previous: (exists: Bool, offset: Int?) {
        guard offset > 0 else { return (false, nil) }
        return (true, offset - limit > 0 ? offset - limit : nil)
    }
}
