import Foundation
import Postgres
import SchedulerStore
import TestSupport
import Testing

/// Runs the built `scheduler-ctl` as an operator would, with its own environment.
func ctl(
    _ arguments: [String], environment: [String: String], in folder: URL? = nil
) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = productsDirectory.appendingPathComponent("scheduler-ctl")
    process.arguments = arguments
    if let folder { process.currentDirectoryURL = folder }
    process.environment = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
}

@Suite("scheduler-ctl", .scratch)
struct SchedulerCtlTests {
    static let secret = "ctl-tests-secret-key-0123456789"

    func emptyDatabase() async throws -> String {
        let name = "c_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        try await admin.execute("CREATE DATABASE \(name)")
        return try TestDatabase.url(database: name)
    }

    @Test("migrate applies the migrations once; a second run changes nothing")
    func migrate() async throws {
        let url = try await emptyDatabase()
        let environment = ["SCHEDULER_DATABASE": url]
        let first = try ctl(["migrate", "--directory", TestDatabase.migrationsDirectory], environment: environment)
        #expect(first.status == 0, "\(first.error)")
        #expect(first.output.contains("Applied 1 initial"))
        let second = try ctl(["migrate", "--directory", TestDatabase.migrationsDirectory], environment: environment)
        #expect(second.status == 0)
        #expect(second.output == "Database is up to date.\n")
    }

    @Test("migrate works from any folder: the migrations ship inside the program")
    func migrateAnywhere() async throws {
        let url = try await emptyDatabase()
        let elsewhere = FileManager.default.temporaryDirectory
        let first = try ctl(["migrate"], environment: ["SCHEDULER_DATABASE": url], in: elsewhere)
        #expect(first.status == 0, "\(first.error)")
        #expect(first.output.contains("Applied 1 initial") && first.output.contains("Applied 4 quarantine"), "\(first.output)")
        let second = try ctl(["migrate"], environment: ["SCHEDULER_DATABASE": url], in: elsewhere)
        #expect(second.output == "Database is up to date.\n")
        let missing = try ctl(["migrate", "--directory", "/nonexistent"], environment: ["SCHEDULER_DATABASE": url], in: elsewhere)
        #expect(missing.status != 0 && missing.error.contains("cannot read migrations from /nonexistent"))
    }

    @Test("create-admin and create-token print tokens that authenticate, the same each time")
    func tokens() async throws {
        let url = try await TestDatabase.fresh()
        let environment = ["SCHEDULER_DATABASE": url, "SECRET_KEY": Self.secret]
        let admin = try ctl(["create-admin", "--email", "ops@example.org"], environment: environment)
        #expect(admin.status == 0, "\(admin.error)")
        let adminToken = admin.output.trimmingCharacters(in: .newlines)
        #expect(adminToken.count == 40 && adminToken.allSatisfy(\.isHexDigit))

        let user = try ctl(["create-token", "--email", "dev@example.org"], environment: environment)
        let userToken = user.output.trimmingCharacters(in: .newlines)
        #expect(try ctl(["create-token", "--email", "dev@example.org"], environment: environment).output == user.output)

        let pool = PostgresPool(url: url, size: 1, logger: TestDatabase.logger)
        defer { pool.close() }
        let store = UserStore(pool: pool, minter: TokenMinter(secretKey: Self.secret))
        #expect(try await store.authenticate(token: adminToken)?.isAdmin == true)
        let dev = try #require(try await store.authenticate(token: userToken))
        #expect(dev.email == "dev@example.org" && !dev.isAdmin)
    }

    @Test("a missing setting or a bad email stops with one clear line")
    func errors() async throws {
        let url = try await TestDatabase.fresh()
        let noSecret = try ctl(["create-admin", "--email", "ops@example.org"], environment: ["SCHEDULER_DATABASE": url])
        #expect(noSecret.status != 0)
        #expect(noSecret.error.contains("SECRET_KEY is not set"))
        let badEmail = try ctl(
            ["create-token", "--email", "not-an-email"], environment: ["SCHEDULER_DATABASE": url, "SECRET_KEY": Self.secret])
        #expect(badEmail.status != 0)
        #expect(badEmail.error.contains("'not-an-email' is not a valid email address"))
        let noDatabase = try ctl(
            ["create-token", "--email", "a@example.org"],
            environment: ["SCHEDULER_DATABASE": "postgres://postgres@127.0.0.1:1/none", "SECRET_KEY": Self.secret])
        #expect(noDatabase.status != 0)
        #expect(noDatabase.error.hasPrefix("error: PostgreSQL error"))
    }

    @Test("maintain-history adds what is missing, drops old days, lists the partitions; bad settings stop with one line")
    func maintainHistory() async throws {
        let url = try await TestDatabase.fresh()
        let pool = PostgresPool(url: url, size: 1, logger: TestDatabase.logger)
        defer { pool.close() }
        // The week of 60 days ago, and this week's partition gone missing.
        let old = Date().addingTimeInterval(-60 * 86_400)
        try await DeliveryHistory(pool: pool, retentionDays: 0).addPartitions(from: old, to: old)
        let today = DeliveryHistoryName.of(Date())
        try await pool.query("ALTER TABLE deliveries DETACH PARTITION \(today)")
        try await pool.query("DROP TABLE \(today)")

        let run = try ctl(["maintain-history"], environment: ["SCHEDULER_DATABASE": url])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("Added 1 partition(s), dropped 1; records are kept 30 days."), "\(run.output)")
        #expect(
            run.output.contains(today) && !run.output.contains(DeliveryHistoryName.of(old)) && run.output.contains("deliveries_default"))
        let again = try ctl(["maintain-history", "--retention-days", "0"], environment: ["SCHEDULER_DATABASE": url])
        #expect(again.output.contains("Added 0 partition(s), dropped 0; everything is kept."), "\(again.output)")

        let negative = try ctl(["maintain-history", "--retention-days=-1"], environment: ["SCHEDULER_DATABASE": url])
        #expect(negative.status != 0 && negative.error.contains("--retention-days must be from 0 to 36500"), "\(negative.error)")
        let badSetting = try ctl(
            ["maintain-history"], environment: ["SCHEDULER_DATABASE": url, "DELIVERY_RETENTION_DAYS": "99999999999999999999"])
        #expect(badSetting.status != 0 && badSetting.error.contains("DELIVERY_RETENTION_DAYS"), "\(badSetting.error)")
    }
}

/// The partition of a date's UTC week: `deliveries_` and its Monday, `yyyyMMdd`.
enum DeliveryHistoryName {
    static func of(_ date: Date) -> String {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let monday = calendar.dateInterval(of: .weekOfYear, for: date)!.start
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd"
        return "deliveries_" + formatter.string(from: monday)
    }
}

extension SchedulerCtlTests {
    @Test("quota show and set: a user's limits and use; own values, 'default' and --reset; bad values refused")
    func quota() async throws {
        let url = try await emptyDatabase()
        let environment = ["SCHEDULER_DATABASE": url, "SECRET_KEY": Self.secret, "QUOTA_SCHEDULES": "50"]
        #expect(try ctl(["migrate"], environment: environment).status == 0)
        #expect(try ctl(["create-token", "--email", "tenant@example.org"], environment: environment).status == 0)
        let shown = try ctl(["quota", "show", "--email", "tenant@example.org", "--json"], environment: environment)
        #expect(shown.status == 0, "\(shown.error)")
        #expect(shown.output.contains(#""schedules":{"limit":50,"used":0}"#), "\(shown.output)")
        let set = try ctl(
            [
                "quota", "set", "--email", "tenant@example.org", "--schedules", "7", "--min-interval", "1m", "--deliveries-per-second",
                "2.5",
            ],
            environment: environment)
        #expect(set.status == 0, "\(set.error)")
        #expect(set.output.contains("schedules") && set.output.contains("7") && set.output.contains("own"), "\(set.output)")
        let after = try ctl(["quota", "--email", "tenant@example.org", "--json"], environment: environment)
        #expect(
            after.output.contains(#""schedules":{"limit":7"#) && after.output.contains(#""min_interval_seconds":60"#), "\(after.output)")
        #expect(after.output.contains(#""deliveries_per_second":{"limit":2.500"#), "\(after.output)")
        _ = try ctl(["quota", "set", "--email", "tenant@example.org", "--schedules", "default"], environment: environment)
        let defaulted = try ctl(["quota", "show", "--email", "tenant@example.org", "--json"], environment: environment)
        #expect(defaulted.output.contains(#""schedules":{"limit":50"#) && defaulted.output.contains(#""min_interval_seconds":60"#))
        _ = try ctl(["quota", "set", "--email", "tenant@example.org", "--reset"], environment: environment)
        let reset = try ctl(["quota", "show", "--email", "tenant@example.org", "--json"], environment: environment)
        #expect(reset.output.contains(#""min_interval_seconds":10"#), "\(reset.output)")
        for bad in [["--schedules", "-1"], ["--schedules", "many"], ["--min-interval", "0s"], ["--deliveries-per-second", "nan"]] {
            let refused = try ctl(["quota", "set", "--email", "tenant@example.org"] + bad, environment: environment)
            #expect(refused.status != 0 && refused.error.lowercased().contains("error"), "\(bad): \(refused.error)")
        }
        let nobody = try ctl(["quota", "show", "--email", "nobody@example.org"], environment: environment)
        #expect(nobody.status != 0 && nobody.error.contains("no user"))
    }
}
