/// The version the programs report (`/api/health/`, `--version`).
public enum SchedulerVersion {
    public static let current = "0.1.0"
}

/// The metric keys of `GET /api/metrics/`, pushed to the Go Metrics API when
/// `METRICS_URL` is set.
public enum MetricKeys {
    public static let available = [
        "schedules.created.sum",
        "schedules.deleted.sum",
        "schedules.total.last",
        "schedules.enabled.last",
    ]
}
