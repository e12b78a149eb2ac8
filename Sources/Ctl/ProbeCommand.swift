import ArgumentParser
import Foundation
import HTTPClient

/// `scheduler-ctl probe`: a health check for images without curl (the Dockerfile's
/// `HEALTHCHECK`, compose's healthchecks, a Kubernetes exec probe).
struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GET a probe URL; exit 0 when it answers 2xx, 1 otherwise.",
        discussion: """
            The URL defaults to PROBE_URL, else scheduler-web's readiness on this host, \
            http://127.0.0.1:$PORT/readyz (PORT defaults to 8000). Beat and worker serve /livez and \
            /readyz on their metrics ports (BEAT_METRICS_PORT 9101, WORKER_METRICS_PORT 9102). The \
            answer's status and body are printed.
            """)

    @Argument(help: "The URL to GET (http or https).")
    var url: String?

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Double = 5

    func validate() throws {
        guard timeout > 0, timeout <= 600 else { throw ValidationError("--timeout must be between 0 and 600 seconds") }
        if let url, !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ValidationError("the URL must start with http:// or https://, got '\(url)'")
        }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let port = environment["PORT"].flatMap { Int($0) } ?? 8000
        let target = url ?? environment["PROBE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:\(port)/readyz"
        let answer: (status: Int, body: [UInt8])
        do {
            answer = try await SimpleGet.fetch(url: target, timeout: timeout)
        } catch {
            throw fail("probe: no answer from \(target): \(error)")
        }
        let line = "\(answer.status) \(String(decoding: answer.body, as: UTF8.self))\n"
        if (200..<300).contains(answer.status) {
            FileHandle.standardOutput.write(Data(line.utf8))
        } else {
            throw fail("probe: \(target) answered \(line)")
        }
    }
}
