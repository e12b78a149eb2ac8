import ArgumentParser
import Foundation
import Logging
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl create-admin`.
struct CreateAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an admin user (or make an existing user admin) and print its API token.",
        discussion: "An admin may call POST /api/v1/user/token/ to issue tokens for others.")

    @OptionGroup var user: UserEmail

    func run() async throws {
        print(try await issue(email: user.email, admin: true))
    }
}
