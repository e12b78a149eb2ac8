import ArgumentParser
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl maintain-history`: what beat does every hour to the delivery history.
struct MaintainHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maintain-history",
        abstract: "Add the coming weeks' partitions of the delivery records and drop those past the retention.",
        discussion: """
            Delivery records are kept in one partition per UTC week (Monday to Sunday, named after \
            its Monday). This adds the missing partitions of the weeks from yesterday's to that \
            --days-ahead days from now, drops whole weeks older than --retention-days (default: \
            $DELIVERY_RETENTION_DAYS, 30; 0 keeps everything; a record is kept up to 7 days more), moving \
            their records still wanted (queued, retrying, dead) to the default partition first, and \
            deletes finished records that old from the default partition. Beat does the same every \
            hour; run this from cron if beat is stopped for days, or to see the partitions. Safe to \
            run at any time and from several places at once.
            """)

    @Option(help: "Days to keep records at least (default: $DELIVERY_RETENTION_DAYS, or 30).")
    var retentionDays: Int?

    @Option(help: "Days after today whose weeks get their partitions now.")
    var daysAhead = 7

    @Flag(help: "Only list the partitions; change nothing.")
    var list = false

    func validate() throws {
        if let retentionDays, !(0...36_500).contains(retentionDays) {
            throw ValidationError("--retention-days must be from 0 to 36500")
        }
        guard (0...366).contains(daysAhead) else { throw ValidationError("--days-ahead must be from 0 to 366") }
    }

    func run() async throws {
        let configuration = try loadConfiguration(requireSecret: false)
        let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
        defer { pool.close() }
        let history = DeliveryHistory(
            pool: pool, retentionDays: retentionDays ?? configuration.deliveryRetentionDays, daysAhead: daysAhead)
        do {
            if !list {
                let done = try await history.maintain()
                let kept = history.retentionDays == 0 ? "everything is kept" : "records are kept \(history.retentionDays) days"
                print("Added \(done.added) partition(s), dropped \(done.dropped); \(kept).")
            }
            let rows = try await history.partitions().map {
                [$0.name, $0.day ?? "(other)", $0.estimatedRows < 0 ? "-" : "\($0.estimatedRows)"]
            }
            print(Terminal.table(["PARTITION", "WEEK OF (UTC)", "ROWS (ESTIMATE)"], rows), terminator: "")
        } catch {
            throw fail("error: \(error)")
        }
    }
}
