#!/usr/bin/env python3
"""Reads a soak's delivery records, nginx's arrivals and the faults (bench/soak), prints what
was lost, unknown, repeated and how late, writes the JSON, and exits 1 when an occurrence was
lost or unknown, a record is not delivered, or a repeat fell away from every fault."""
import argparse
import datetime
import json
import sys
from collections import Counter

# A repeat is a job in flight at a fault sent again once it is handed out anew: within this
# many seconds after the fault began.
REPEAT_WINDOW = 60.0
# Occurrences due this long before a fault or after it are "near" it (their lateness is the
# fault's, not the steady state's).
NEAR_BEFORE, NEAR_AFTER = 2.0, 30.0


def instant(text):
    text = text.strip().replace(" ", "T")
    if text.endswith("+00"):
        text += ":00"
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser()
    for name in ("deliveries", "arrivals", "faults", "started", "ended", "rate", "seconds", "seed", "machine", "build", "out"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()

    records = {}
    for line in open(args.deliveries):
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3:
            records[parts[0]] = (parts[1], instant(parts[2]))
    arrivals = []
    for line in open(args.arrivals):
        parts = line.split()
        if len(parts) >= 2 and parts[1] != "-":
            arrivals.append((float(parts[0]), parts[1], instant(parts[2]) if len(parts) >= 3 and parts[2] != "-" else None))
    faults = []
    for line in open(args.faults):
        parts = line.split()
        if len(parts) == 3:
            faults.append((float(parts[0]), float(parts[1]), parts[2]))

    counts = Counter(key for _, key, _ in arrivals)
    states = Counter(state for state, _ in records.values())
    lost = sorted(set(records) - set(counts))
    unknown = sorted(set(counts) - set(records))
    undelivered = sorted(key for key, (state, _) in records.items() if state != "delivered")

    # Each repeat: the arrival after the first, and whether a fault began within the window before it.
    seen = set()
    repeats_near, repeats_away = 0, []
    for at, key, _ in sorted(arrivals):
        if key in seen:
            if any(begun <= at <= begun + REPEAT_WINDOW for begun, _, _ in faults):
                repeats_near += 1
            else:
                repeats_away.append(key)
        seen.add(key)

    def near_fault(due):
        return any(begun - NEAR_BEFORE <= due <= ended + NEAR_AFTER for begun, ended, _ in faults)

    first = {}
    for at, key, _ in sorted(arrivals):
        first.setdefault(key, at)
    lateness_all, lateness_away = [], []
    for key, at in first.items():
        if key not in records:
            continue
        late = (at - records[key][1]) * 1000
        lateness_all.append(late)
        if not near_fault(records[key][1]):
            lateness_away.append(late)

    def summary(values):
        return {
            "count": len(values),
            "p50_ms": percentile(values, 0.50),
            "p99_ms": percentile(values, 0.99),
            "max_ms": max(values) if values else None,
        }

    seconds = float(args.ended) - float(args.started)
    result = {
        "machine": args.machine,
        "date": datetime.date.today().isoformat(),
        "build": args.build,
        "seed": int(args.seed),
        "rate": int(args.rate),
        "seconds": int(args.seconds),
        "faults": [{"at": round(b - float(args.started), 1), "kind": kind, "seconds": round(e - b, 1)} for b, e, kind in faults],
        "occurrences": len(records),
        "occurrences_per_second": round(len(records) / seconds, 1) if seconds > 0 else None,
        "states": dict(states),
        "arrivals": len(arrivals),
        "lost": len(lost),
        "unknown": len(unknown),
        "not_delivered": len(undelivered),
        "repeats_after_a_fault": repeats_near,
        "repeats_away_from_faults": len(repeats_away),
        "lateness_away_from_faults": summary(lateness_away),
        "lateness_all": summary(lateness_all),
    }
    with open(args.out, "w") as out:
        json.dump(result, out, indent=2)

    kinds = Counter(kind for _, _, kind in faults)
    print(f"soak: {len(records)} occurrences in {seconds:.0f} s ({result['occurrences_per_second']} a second), "
          f"{len(faults)} faults ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), seed {args.seed}")
    print(f"  arrived {len(arrivals)}: lost {len(lost)}, unknown {len(unknown)}, not recorded as delivered "
          f"{len(undelivered)} {dict(states)}")
    print(f"  repeats (same Idempotency-Key): {repeats_near} within {REPEAT_WINDOW:.0f} s after a fault, "
          f"{len(repeats_away)} away from any")
    for name, values in (("away from faults", lateness_away), ("all", lateness_all)):
        s = summary(values)
        if s["count"]:
            print(f"  lateness, {name} ({s['count']}): p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, max {s['max_ms']:.0f} ms")
    for key in lost[:5]:
        print(f"  lost: {key} due {records[key][1]}", file=sys.stderr)
    for key in unknown[:5]:
        print(f"  unknown: {key}", file=sys.stderr)
    for key in repeats_away[:5]:
        print(f"  repeat away from faults: {key}", file=sys.stderr)
    failed = bool(lost or unknown or undelivered or repeats_away or not records)
    print("soak: " + ("FAILED" if failed else "passed") + f" (JSON: {args.out})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
