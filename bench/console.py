"""bench/console's measuring half: loads each console view as the page does and prints
p50 / p95 / max milliseconds per view and user."""
import json
import platform
import statistics
import sys
import time
import urllib.request
from datetime import datetime, timezone

base, admin, user, rounds, schedules, records, out = sys.argv[1:8]
rounds = int(rounds)


def get(path, token, cookie=False):
    headers = {"Cookie": f"scheduler_session={token}"} if cookie else {"Authorization": f"Token {token}"}
    with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=30) as response:
        body = response.read()
        assert response.status == 200, (path, response.status)
        return body


def first_schedule(token):
    return json.loads(get("/api/v1/schedule/?limit=1", token))["results"][0]["id"]


VIEWS = {
    "overview": lambda t, s: ["/api/v1/console/whoami/", "/api/v1/console/overview/?minutes=60"],
    "dead letters": lambda t, s: ["/api/v1/console/whoami/", "/api/v1/console/dead-letters/?"],
    "dead letters, filtered": lambda t, s: ["/api/v1/console/dead-letters/?endpoint=receiver-7.example.org&status=503"],
    "schedules": lambda t, s: ["/api/v1/console/whoami/", "/api/v1/schedule/?limit=100"],
    "schedules, search": lambda t, s: ["/api/v1/schedule/?endpoint_contains=receiver-42.example&limit=100"],
    "a schedule's history": lambda t, s: [f"/api/v1/schedule/{s}/deliveries/?limit=50"],
    "endpoints": lambda t, s: ["/api/v1/console/whoami/", "/api/v1/console/endpoints/"],
}
ASSETS = ["/console/", "/console/console.js", "/console/chart.js"]

results = []
for who, token in (("admin", admin), ("tenant", user)):
    schedule = first_schedule(token)
    for name, calls in VIEWS.items():
        times = []
        for index in range(rounds + 2):
            start = time.perf_counter()
            if name in ("overview", "dead letters", "schedules", "endpoints"):
                for asset in ASSETS:
                    get(asset, token)
            for path in calls(token, schedule):
                get(path, token, cookie=True)
            if index == 0:
                first = (time.perf_counter() - start) * 1000
            if index >= 2:  # two warm-up loads
                times.append((time.perf_counter() - start) * 1000)
        if name == "endpoints":
            # Its figures are kept 30 s: the first load of a normal user's scope computes them;
            # the admins' are kept warm by web, so their first look finds them ready.
            label = "endpoints, first look (kept warm)" if who == "admin" else "endpoints, first load (computed)"
            results.append({"view": label, "user": who, "p50_ms": round(first, 1),
                            "p95_ms": round(first, 1), "max_ms": round(first, 1)})
        times.sort()
        entry = {"view": name, "user": who, "p50_ms": round(statistics.median(times), 1),
                 "p95_ms": round(times[int(len(times) * 0.95) - 1], 1), "max_ms": round(times[-1], 1)}
        results.append(entry)

print(f"| view | user | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|")
for e in results:
    print(f"| {e['view']} | {e['user']} | {e['p50_ms']} | {e['p95_ms']} | {e['max_ms']} |")
with open("/proc/meminfo") as f:
    mem = round(int(f.readline().split()[1]) / 1024 / 1024)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
import os
json.dump({"machine": f"{os.cpu_count()} cores, {mem} GiB, {cpu}, Linux {platform.release()}",
           "date": datetime.now(timezone.utc).isoformat(), "schedules": int(schedules), "delivery_records": int(records),
           "rounds": rounds, "results": results}, open(out, "w"), indent=2)
