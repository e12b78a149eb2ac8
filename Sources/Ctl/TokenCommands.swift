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

    @Option(help: "The user's email address.")
    var email: String

    func validate() throws {
        guard ScheduleValidation.isEmail(email) else { throw ValidationError("'\(email)' is not a valid email address") }
    }

    func run() async throws {
        try await withUserStore { store in
            guard let user = try await store.revokeToken(email: email) else { throw fail("error: no user with email \(email)") }
            print("Revoked the token of \(user.email); 'scheduler-ctl create-token --email \(user.email)' issues the next one.")
        }
    }
}

/// `scheduler-ctl rotate-token`: revoke and issue the next token in one step.
struct RotateToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke a user's API token and print the next one (the old one stops working at once).")

    @Option(help: "The user's email address.")
    var email: String

    func validate() throws {
        guard ScheduleValidation.isEmail(email) else { throw ValidationError("'\(email)' is not a valid email address") }
    }

    func run() async throws {
        try await withUserStore { store in
            guard let rotated = try await store.rotateToken(email: email) else { throw fail("error: no user with email \(email)") }
            print(rotated.token)
        }
    }
}
