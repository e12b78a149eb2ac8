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


def cpu(*roles):
    """CPU seconds used so far by each role, given as 'name=pid,pid,...': the processes, their
    descendants, and the children they reaped (a backend that exited still counts)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # from field 3 (state) on
        stats[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))  # ppid; utime stime cutime cstime
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    result = {}
    for role in roles:
        name, _, pids = role.partition("=")
        stack, seen, total = [int(p) for p in pids.split(",") if p.strip()], set(), 0
        while stack:
            pid = stack.pop()
            if pid in seen or pid not in stats:
                continue
            seen.add(pid)
            total += stats[pid][1]
            stack.extend(children.get(pid, []))
        result[name] = total / os.sysconf("SC_CLK_TCK")
    return result


def budget(deliveries, cpu_before, cpu_after, pg_before, pg_after, frames_before, frames_after, jobs_before="0 0 0", jobs_after="0 0 0",
           statements_path=""):
    """What each delivery cost: CPU milliseconds per role, PostgreSQL transactions and rows
    written, the packets the broker read and wrote on the programs' connections (RabbitMQ's recv_cnt + send_cnt);
    and how many jobs the workers parked, retried and dead-lettered in the phase (counts, from their metrics);
    with statements_path (bench/run's PG_STATEMENTS=1), the phase's statements that took longest."""
    n = max(int(deliveries), 1)
    before, after = json.loads(cpu_before), json.loads(cpu_after)
    per_role = {role: round((after[role] - before.get(role, 0)) * 1000 / n, 3) for role in after}
    pg0, pg1 = [int(x) for x in pg_before.split()], [int(x) for x in pg_after.split()]
    return {
        "deliveries": int(deliveries), "cpu_ms_per_delivery": per_role, "cpu_ms_per_delivery_total": round(sum(per_role.values()), 3),
        "pg_transactions_per_delivery": round((pg1[0] - pg0[0]) / n, 3),
        "pg_rows_written_per_delivery": round((pg1[1] - pg0[1]) / n, 3),
        "broker_packets_per_delivery": round((int(frames_after) - int(frames_before)) / n, 3),
        "worker_jobs": dict(zip(("parked", "retried", "dead"), (
            int(a) - int(b) for a, b in zip(jobs_after.split(), jobs_before.split())))),
    } | ({"pg_statements": statements(statements_path)} if statements_path else {})


def statements(path):
    """pg_stat_statements rows written by bench/run (tab-separated: calls, total ms, mean ms,
    planning ms, the statement's start)."""
    rows = []
    for line in open(path, encoding="utf-8", errors="replace"):
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 5:
            continue
        calls, total, mean, plan = fields[:4]
        rows.append({"calls": int(calls), "total_ms": float(total), "mean_ms": float(mean), "plan_ms": float(plan),
                     "statement": "\t".join(fields[4:])})
    return rows


def burst(tag, expected, path, due, peaks, cost="{}"):
    rows = arrivals(path, tag)
    keys = [key for _, key, _ in rows]
    due_time = parse_time(due)
    last = max((arrived for arrived, _, _ in rows), default=due_time)
    span = max(last - due_time, 0.001)
    return {
        "phase": "burst", "schedules": int(expected), "received": len(rows), "unique": len(set(keys)),
        "duplicates": len(keys) - len(set(keys)), "lateness": lateness_stats(rows),
        "deliveries_per_second": round(len(set(keys)) / span, 1), "peak_rss_mb": json.loads(peaks), "cost": json.loads(cost),
    }


def apiburst(tag, expected, path, due, peaks, cost, api_path):
    """A burst, and the API's latency around it (bench/api_load.py's output)."""
    result = burst(tag, expected, path, due, peaks, cost)
    result["phase"] = "apiburst"
    with open(api_path) as api:
        result["api"] = json.load(api)
    return result


def steady(tag, schedules, path, start, peaks, seconds, cost="{}"):
    rows = arrivals(path, tag)
    keys = [key for _, key, _ in rows]
    start_time = parse_time(start)
    window = [row for row in rows if start_time <= row[2] < start_time + float(seconds)]
    return {
        "phase": "steady", "schedules": int(schedules), "seconds": int(seconds), "received": len(rows),
        "duplicates": len(keys) - len(set(keys)), "expected": int(schedules) * int(seconds),
        "deliveries_per_second": round(len(window) / float(seconds), 1), "lateness": lateness_stats(window),
        "peak_rss_mb": json.loads(peaks), "cost": json.loads(cost),
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


def tenants(path, due, big_tag, big_count, small_tag, small_count, fair, peaks, cost="{}"):
    """One tenant's big burst and another's few at the same instant: each tenant's lateness,
    and where the small tenant's POSTs fell among all of the instant's."""
    big, small = arrivals(path, big_tag), arrivals(path, small_tag)
    order = sorted([(arrived, "big") for arrived, _, _ in big] + [(arrived, "small") for arrived, _, _ in small])
    positions = [index for index, (_, who) in enumerate(order) if who == "small"]
    def side(rows, expected):
        keys = [key for _, key, _ in rows]
        return {"expected": int(expected), "received": len(set(keys)), "duplicates": len(keys) - len(set(keys)),
                "lateness": lateness_stats(rows)}
    return {"phase": "tenants", "fair_slots": fair == "1", "big": side(big, big_count), "small": side(small, small_count),
            "small_positions": positions, "peak_rss_mb": json.loads(peaks), "cost": json.loads(cost)}


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
    document = {"machine": machine(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "stored_delivery_records": int(os.environ.get("HISTORY", "0") or 0), "results": results}
    with open(out_path, "w") as out:
        json.dump(document, out, indent=2)
    print(f"machine: {document['machine']}")
    print("| phase | schedules | received (dupes) | deliveries/s | lateness p50 / p95 / p99 / max ms | peak RSS web / beat / worker MB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        rss = r.get("peak_rss_mb", {})
        memory = " / ".join(fmt(rss.get(name), 0) for name in ("web", "beat", "worker"))
        if r["phase"] in ("burst", "steady", "apiburst"):
            late = r["lateness"]
            count = r["schedules"] if r["phase"] != "steady" else f"{r['schedules']} x {r['seconds']}s"
            received = f"{r['received']} ({r['duplicates']})"
            print(f"| {r['phase']} | {count} | {received} | {fmt(r['deliveries_per_second'])} | "
                  f"{fmt(late['p50_ms'])} / {fmt(late['p95_ms'])} / {fmt(late['p99_ms'])} / {fmt(late['max_ms'])} | {memory} |")
        if r["phase"] == "apiburst":
            for name in ("post", "get"):
                x = r["api"].get(name, {})
                print(f"| apiburst: API {name.upper()} at {fmt(x.get('rate'))}/s around the instant | - | "
                      f"{x.get('requests', 0)} ({x.get('errors', 0)} errors) | - | "
                      f"{fmt(x.get('p50_ms'), 1)} / - / {fmt(x.get('p99_ms'), 1)} / {fmt(x.get('max_ms'), 1)} | {memory} |")
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
        elif r["phase"] == "tenants":
            for name in ("big", "small"):
                x = r[name]
                late = x["lateness"]
                where = f", at {min(r['small_positions'], default='-')}-{max(r['small_positions'], default='-')} of the instant" if name == "small" else ""
                print(f"| tenants{'' if r['fair_slots'] else ' (no fair slots)'}: {name} tenant{where} | {x['expected']} | "
                      f"{x['received']} ({x['duplicates']}) | - | "
                      f"{fmt(late['p50_ms'])} / {fmt(late['p95_ms'])} / {fmt(late['p99_ms'])} / {fmt(late['max_ms'])} | {memory} |")
        elif r["phase"] == "api":
            for name in ("get", "post"):
                x = r[name]
                print(f"| api {name.upper()} | - | {x['requests']} ({x['errors']} errors) | {fmt(x['rps'])} req/s | "
                      f"{fmt(x['p50_ms'], 2)} / - / {fmt(x['p99_ms'], 2)} / {fmt(x['max_ms'], 2)} | {memory} |")
    costed = [r for r in results if r.get("cost")]
    if costed:
        roles = list(costed[0]["cost"]["cpu_ms_per_delivery"])
        print("\ncost per delivery (CPU ms by role; PostgreSQL transactions and rows written; broker packets;"
              " jobs the workers parked, retried and dead-lettered in the phase):")
        print("| phase | deliveries | " + " | ".join(roles)
              + " | total CPU ms | PG xacts | PG rows | broker packets | parked / retried / dead |")
        print("|---|---|" + "---|" * (len(roles) + 5))
        for r in costed:
            c = r["cost"]
            label = r["phase"] + (f" {r['schedules']}" if r["phase"] in ("burst", "apiburst") else "")
            jobs = c.get("worker_jobs")
            jobs_text = " / ".join(str(jobs[k]) for k in ("parked", "retried", "dead")) if jobs else "-"
            print(f"| {label} | {c['deliveries']} | " + " | ".join(fmt(c["cpu_ms_per_delivery"].get(x), 3) for x in roles)
                  + f" | {fmt(c['cpu_ms_per_delivery_total'], 3)} | {fmt(c['pg_transactions_per_delivery'], 2)} | "
                  f"{fmt(c['pg_rows_written_per_delivery'], 2)} | {fmt(c['broker_packets_per_delivery'], 2)} | {jobs_text} |")
        for r in costed:
            if not r["cost"].get("pg_statements"):
                continue
            label = r["phase"] + (f" {r['schedules']}" if r["phase"] in ("burst", "apiburst") else "")
            print(f"\nPostgreSQL statements, {label} (the ten that took longest):")
            print("| calls | total ms | mean ms | planning ms | statement |")
            print("|---|---|---|---|---|")
            for x in r["cost"]["pg_statements"]:
                text = x["statement"].replace("|", "\\|")
                print(f"| {x['calls']} | {fmt(x['total_ms'])} | {fmt(x['mean_ms'], 3)} | {fmt(x['plan_ms'])} | `{text}` |")
    for r in results:
        if r["phase"] == "scale":
            print("\nbeat's query plans with", r["stored"], "schedules stored:\n" + r["plans"])
    failures = [r for r in results if r["phase"] in ("burst", "apiburst") and (r["unique"] != r["schedules"] or r["duplicates"] != 0)]
    if failures:
        print("\nFAILED: a burst lost or duplicated deliveries:", [(r["schedules"], r["unique"], r["duplicates"]) for r in failures])
        sys.exit(1)


def compare(before_path, after_path):
    """Two runs' results side by side (bench/history): the same phases, and after / before."""
    runs = [json.load(open(path)) for path in (before_path, after_path)]
    print(f"machine: {runs[1]['machine']}")
    names = [f"{run.get('stored_delivery_records', 0):,} records stored" for run in runs]
    print(f"| phase | measure | {names[0]} | {names[1]} | ratio |")
    print("|---|---|---|---|---|")

    def key(r):
        return (r["phase"], r.get("schedules"), r.get("stored"))

    def measures(r):
        if r["phase"] in ("burst", "steady"):
            yield "deliveries/s", r["deliveries_per_second"]
            yield "lateness p99 ms", r["lateness"]["p99_ms"]
        elif r["phase"] == "scale":
            yield "beat round ms", r["beat_round_ms"]
            yield "lateness p50 ms", r["lateness"]["p50_ms"]

    after = {key(r): r for r in runs[1]["results"]}
    for r in runs[0]["results"]:
        other = after.get(key(r))
        if other is None:
            continue
        label = r["phase"] + (f" {r['schedules']}" if r["phase"] == "burst" else "")
        for (name, a), (_, b) in zip(measures(r), measures(other)):
            ratio = "-" if not a else f"{b / a:.2f}"
            print(f"| {label} | {name} | {fmt(a, 2 if a < 100 else 0)} | {fmt(b, 2 if b < 100 else 0)} | {ratio} |")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "report":
        report(*args)
    elif mode == "compare":
        compare(*args)
    elif mode == "cpu":
        print(json.dumps(cpu(*args)))
    elif mode == "budget":
        print(json.dumps(budget(*args)))
    else:
        print(json.dumps({"burst": burst, "steady": steady, "scale": scale, "fairness": fairness, "tenants": tenants,
                          "apiburst": apiburst}[mode](*args)))
