import ArgumentParser
import Foundation
import Logging
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl create-token`.
struct CreateToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a user if new and print its API token (the same token each time).")

    @Option(help: "The user's email address.")
    var email: String

    func validate() throws {
        guard ScheduleValidation.isEmail(email) else { throw ValidationError("'\(email)' is not a valid email address") }
    }

    func run() async throws {
        print(try await issue(email: email, admin: false))
    }
}
