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

    @OptionGroup var user: UserEmail

    func run() async throws {
        print(try await issue(email: user.email, admin: false))
    }
}
