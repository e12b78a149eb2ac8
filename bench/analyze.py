"""Turns nginx's arrival log into benchmark results (one JSON line per phase), and the
lines into the report: bench/results/delivery.json and a table on standard output.

Arrival log lines: '<msec> <idempotency key> <scheduled for> <uri>'."""
import datetime
import json
import os
import platform
import sys


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def arrivals(path, tag):
    rows = []
    with open(path) as log:
        for line in log:
            parts = line.split()
            if len(parts) == 4 and parts[3] == "/" + tag:
                rows.append((float(parts[0]), parts[1], parse_time(parts[2])))
    return rows


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def lateness_stats(rows):
    late = [(arrived - due) * 1000 for arrived, _, due in rows]
    return {
        "p50_ms": percentile(late, 50), "p95_ms": percentile(late, 95), "p99_ms": percentile(late, 99),
        "max_ms": max(late) if late else None,
    }


def burst(tag, expected, path, due, peaks):
    rows = arrivals(path, tag)
    keys = [key for _, key, _ in rows]
    due_time = parse_time(due)
    last = max((arrived for arrived, _, _ in rows), default=due_time)
    span = max(last - due_time, 0.001)
    return {
        "phase": "burst", "schedules": int(expected), "received": len(rows), "unique": len(set(keys)),
        "duplicates": len(keys) - len(set(keys)), "lateness": lateness_stats(rows),
        "deliveries_per_second": round(len(set(keys)) / span, 1), "peak_rss_mb": json.loads(peaks),
    }


def steady(tag, schedules, path, start, peaks, seconds):
    rows = arrivals(path, tag)
    keys = [key for _, key, _ in rows]
    start_time = parse_time(start)
    window = [row for row in rows if start_time <= row[2] < start_time + float(seconds)]
    return {
        "phase": "steady", "schedules": int(schedules), "seconds": int(seconds), "received": len(rows),
        "duplicates": len(keys) - len(set(keys)), "expected": int(schedules) * int(seconds),
        "deliveries_per_second": round(len(window) / float(seconds), 1), "lateness": lateness_stats(window),
        "peak_rss_mb": json.loads(peaks),
    }


def scale(tag, expected, path, due, peaks, round_seconds, stored, plans_path):
    rows = arrivals(path, tag)
    plans = open(plans_path).read()
    return {
        "phase": "scale", "stored": int(stored), "due": int(expected), "received": len(rows),
        "beat_round_ms": float(round_seconds) * 1000 if round_seconds else None, "lateness": lateness_stats(rows),
        "uses_index": "schedules_due" in plans and "Seq Scan on schedules" not in plans,
        "plans": plans, "peak_rss_mb": json.loads(peaks),
    }


def fairness(nginx_path, slow_path, due, slow_count, fast_count, slow_seconds, window, slow_records, peaks):
    due_time = parse_time(due)
    fast = {}
    for tag in ("fair-fast-same-host", "fair-fast-other-host"):
        rows = arrivals(nginx_path, tag)
        keys = [key for _, key, _ in rows]
        fast[tag] = {"expected": int(fast_count), "received": len(set(keys)), "duplicates": len(keys) - len(set(keys)),
                     "lateness": lateness_stats(rows)}
    slow_rows = arrivals(slow_path, "fair-slow")
    slow_keys = [key for _, key, _ in slow_rows]
    delivered, extra_attempts, timeouts, failing = (int(x) for x in slow_records.split())
    return {
        "phase": "fairness", "window_s": int(window), "slow": {
            "schedules": int(slow_count), "answer_s": float(slow_seconds), "requests": len(slow_rows),
            "unique": len(set(slow_keys)), "delivered": delivered, "extra_attempts": extra_attempts,
            "timeouts_recorded": timeouts, "retrying_or_dead": failing,
            "first_request_lateness": lateness_stats(slow_rows)},
        "fast": fast, "peak_rss_mb": json.loads(peaks),
    }


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, {cpu}, {platform.system()} {platform.release()}"


def fmt(value, digits=0):
    return "-" if value is None else f"{value:.{digits}f}"


def report(results_path, out_path):
    results = [json.loads(line) for line in open(results_path) if line.strip()]
    document = {"machine": machine(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "results": results}
    with open(out_path, "w") as out:
        json.dump(document, out, indent=2)
    print(f"machine: {document['machine']}")
    print("| phase | schedules | received (dupes) | deliveries/s | lateness p50 / p95 / p99 / max ms | peak RSS web / beat / worker MB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        rss = r.get("peak_rss_mb", {})
        memory = " / ".join(fmt(rss.get(name), 0) for name in ("web", "beat", "worker"))
        if r["phase"] in ("burst", "steady"):
            late = r["lateness"]
            count = r["schedules"] if r["phase"] == "burst" else f"{r['schedules']} x {r['seconds']}s"
            received = f"{r['received']} ({r['duplicates']})"
            print(f"| {r['phase']} | {count} | {received} | {fmt(r['deliveries_per_second'])} | "
                  f"{fmt(late['p50_ms'])} / {fmt(late['p95_ms'])} / {fmt(late['p99_ms'])} / {fmt(late['max_ms'])} | {memory} |")
        elif r["phase"] == "scale":
            print(f"| scale | {r['stored']} stored, {r['due']} due | {r['received']} | - | beat round {fmt(r['beat_round_ms'], 2)} ms, "
                  f"index used: {r['uses_index']} | {memory} |")
        elif r["phase"] == "fairness":
            slow = r["slow"]
            for tag, x in r["fast"].items():
                late = x["lateness"]
                print(f"| fairness {tag} | {x['expected']} | {x['received']} ({x['duplicates']}) | - | "
                      f"{fmt(late['p50_ms'])} / {fmt(late['p95_ms'])} / {fmt(late['p99_ms'])} / {fmt(late['max_ms'])} | {memory} |")
            print(f"| fairness slow ({slow['answer_s']:.0f} s answers) | {slow['schedules']} | {slow['requests']} requests, "
                  f"{slow['delivered']} delivered in {r['window_s']} s | - | extra attempts {slow['extra_attempts']}, "
                  f"timeouts recorded {slow['timeouts_recorded']}, retrying/dead {slow['retrying_or_dead']} | {memory} |")
        elif r["phase"] == "api":
            for name in ("get", "post"):
                x = r[name]
                print(f"| api {name.upper()} | - | {x['requests']} ({x['errors']} errors) | {fmt(x['rps'])} req/s | "
                      f"{fmt(x['p50_ms'], 2)} / - / {fmt(x['p99_ms'], 2)} / {fmt(x['max_ms'], 2)} | {memory} |")
    for r in results:
        if r["phase"] == "scale":
            print("\nbeat's query plans with", r["stored"], "schedules stored:\n" + r["plans"])
    failures = [r for r in results if r["phase"] == "burst" and (r["unique"] != r["schedules"] or r["duplicates"] != 0)]
    if failures:
        print("\nFAILED: a burst lost or duplicated deliveries:", [(r["schedules"], r["unique"], r["duplicates"]) for r in failures])
        sys.exit(1)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "report":
        report(*args)
    else:
        print(json.dumps({"burst": burst, "steady": steady, "scale": scale, "fairness": fairness}[mode](*args)))
