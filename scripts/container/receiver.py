#!/usr/bin/env python3
"""The receiver scripts/image-test delivers to, and its check of what arrived.

    receiver.py PORT FILE                                  record each POST as a JSON line in FILE
    receiver.py --verify FILE SCHEDULE_ID SECRET DUE_ISO   exit 0 if FILE holds exactly one POST for
                                                           the schedule, with its payload, a valid
                                                           Standard Webhooks signature, within 30 s
                                                           of its due time
"""
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import sys
import time


def serve(port, path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            record = {"at": time.time(), "path": self.path, "body": body,
                      "headers": {k.lower(): v for k, v in self.headers.items()}}
            with open(path, "a") as out:
                out.write(json.dumps(record) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def verify(path, schedule_id, secret, due_iso):
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    problems = []
    if len(records) != 1:
        problems.append(f"{len(records)} POSTs arrived, not 1")
    for r in records:
        h = r["headers"]
        if json.loads(r["body"]) != {"from": "the image", "n": 1}:
            problems.append(f"body {r['body']!r}")
        if h.get("x-scheduler-schedule-id", "").lower() != schedule_id.lower():
            problems.append(f"schedule id header {h.get('x-scheduler-schedule-id')!r}")
        key = base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else secret.encode()
        signed = f"{h.get('webhook-id')}.{h.get('webhook-timestamp')}.{r['body']}".encode()
        expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if expected not in h.get("webhook-signature", "").split(" "):
            problems.append(f"signature {h.get('webhook-signature')!r} is not {expected!r}")
        due = datetime.datetime.fromisoformat(due_iso.replace("Z", "+00:00")).timestamp()
        if not due - 1 <= r["at"] <= due + 30:
            problems.append(f"arrived {r['at'] - due:+.1f} s from its due time")
    for p in problems:
        print(f"      {p}", file=sys.stderr)
    return not problems


if __name__ == "__main__":
    if sys.argv[1] == "--verify":
        sys.exit(0 if verify(*sys.argv[2:6]) else 1)
    serve(int(sys.argv[1]), sys.argv[2])
