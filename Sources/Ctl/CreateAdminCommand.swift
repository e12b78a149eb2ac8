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

    @Option(help: "The admin's email address.")
    var email: String

    func validate() throws {
        guard ScheduleValidation.isEmail(email) else { throw ValidationError("'\(email)' is not a valid email address") }
    }

    func run() async throws {
        print(try await issue(email: email, admin: true))
    }
}
