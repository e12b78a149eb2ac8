"""The API at a fixed rate, as clients use it, while something else runs (bench/run's apiburst).

    api_load.py BASE_URL TOKEN RATE START END

From START to END (Unix seconds) it sends RATE `POST /api/v1/schedule/` a second (a schedule
far in the future, so that it adds nothing to the burst) and RATE `GET /api/v1/schedule/<id>/`
of the schedules it created, each kind on a kept-alive connection of its own. Requests leave
at fixed instants (open loop): a request's latency is counted from the instant it was due to
leave, so time spent waiting behind a slow answer counts too. Prints one JSON object:
{"post": {...}, "get": {...}} with requests, errors, p50/p99/max ms.
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(kind, base, token, rate, start, end, created, results):
    url = urllib.parse.urlparse(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    latencies, errors, n = [], 0, 0
    while True:
        leave = start + n / rate
        if leave >= end:
            break
        n += 1
        wait = leave - time.time()
        if wait > 0:
            time.sleep(wait)
        try:
            if kind == "post":
                body = json.dumps({"endpoint": "http://127.0.0.1:9/api-load", "cron_definition": "0 9 1 1 *",
                                   "payload": {"n": n}})
                connection.request("POST", "/api/v1/schedule/", body=body, headers=headers)
            else:
                if not created:
                    continue
                connection.request("GET", f"/api/v1/schedule/{created[n % len(created)]}/", headers=headers)
            response = connection.getresponse()
            text = response.read()
            latencies.append((time.time() - leave) * 1000)
            if response.status >= 400:
                errors += 1
            elif kind == "post":
                created.append(json.loads(text)["id"])
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    results[kind] = {
        "requests": len(latencies), "errors": errors, "rate": rate,
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=None),
    }


def main():
    base, token, rate, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    created, results = [], {}
    threads = [threading.Thread(target=run, args=(kind, base, token, rate, start, end, created, results))
               for kind in ("post", "get")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
