/// An account that may call the API. `isAdmin` may ask for tokens for others.
public struct User: Sendable, Equatable {
    public let id: Int64
    public let username: String
    public let email: String
    public let isAdmin: Bool
    public let groupIDs: [Int]

    public init(id: Int64, username: String, email: String, isAdmin: Bool, groupIDs: [Int] = []) {
        self.id = id
        self.username = username
        self.email = email
        self.isAdmin = isAdmin
        self.groupIDs = groupIDs
    }
}

public struct Group: Sendable, Equatable {
    public let id: Int
    public let name: String
}
