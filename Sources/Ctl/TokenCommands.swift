import ArgumentParser
import Foundation
import Logging
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl revoke-token`: the user's token stops working at once.
struct RevokeToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke a user's API token: it stops working at once.",
        discussion: """
            The user keeps their schedules. 'create-token --email' (or an admin's \
            POST /api/v1/user/token/) then issues the next token, a new one; 'rotate-token' does both.
            """)

    @OptionGroup var user: UserEmail

    func run() async throws {
        try await withUserStore { store in
            guard let revoked = try await store.revokeToken(email: user.email) else {
                throw fail("error: no user with email \(user.email)")
            }
            print("Revoked the token of \(revoked.email); 'scheduler-ctl create-token --email \(revoked.email)' issues the next one.")
        }
    }
}

/// `scheduler-ctl rotate-token`: revoke and issue the next token in one step.
struct RotateToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke a user's API token and print the next one (the old one stops working at once).")

    @OptionGroup var user: UserEmail

    func run() async throws {
        try await withUserStore { store in
            guard let rotated = try await store.rotateToken(email: user.email) else {
                throw fail("error: no user with email \(user.email)")
            }
            print(rotated.token)
        }
    }
}
