"""Moving from the original Seed Scheduler: a database with the original's schema and rows
(Tests/Fixtures/original-*.sql) is imported with `scheduler-ctl import-original`, then the
original's own client, seed-services-client, works with an original token against the real
scheduler-web, and a due imported schedule reaches a real receiver, once, with the bytes the
original sent. Run by scripts/browser-test beside the console's tests (same services)."""
import http.server
import json
import os
import subprocess
import threading
import time

import inspect

import pytest

# The client (2018) and its `demands` call inspect.getargspec, which Python 3.11 removed;
# getfullargspec answers what they read of it (the argument names first). Their code runs
# unchanged.
if not hasattr(inspect, "getargspec"):
    inspect.getargspec = inspect.getfullargspec
from seed_services_client.scheduler import SchedulerApiClient  # noqa: E402

from test_console import BIN, ROOT, Stack

FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
APP_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
OPS_KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
LEGACY_KEY = "11112222333344445555666677778888aaaabbbb"
INACTIVE_KEY = "ccccddddeeeeffff0000111122223333444455aa"
WEEKLY, DUE, ONCE, PAUSED, BROKEN, METADATA, LEGACY = (f"{n}" * 8 + f"-{n * 4}-4{n * 3}-8{n * 3}-{n * 12}" for n in "1234567")


class BodyReceiver:
    """An HTTP receiver on loopback that keeps each POST's path, headers and body bytes."""

    def __init__(self):
        self.requests = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def got(self, path):
        return [r for r in self.requests if r[0] == path]


def psql(database, *args, variables=None):
    command = ["psql", database, "-qAtX", "-v", "ON_ERROR_STOP=1"]
    for name, value in (variables or {}).items():
        command += ["-v", f"{name}={value}"]
    return subprocess.run(command + list(args), check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def world():
    stack = Stack("import")
    receiver = BodyReceiver()
    base = os.environ["SCHEDULER_TEST_DATABASE"].rsplit("/", 1)[0]
    name = f"original_{os.getpid()}"
    psql(os.environ["SCHEDULER_TEST_DATABASE"], "-c", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}")
    original = f"{base}/{name}"
    psql(original, "-f", os.path.join(FIXTURES, "original-schema.sql"))
    psql(original, "-f", os.path.join(FIXTURES, "original-rows.sql"), variables={"receiver": receiver.url})
    yield stack, receiver, original
    stack.close()


def ctl(stack, *args):
    result = subprocess.run([f"{BIN}/scheduler-ctl", *args], env=stack.env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def counts(stack):
    """Rows of every table the import writes (deliveries: the dead ones; beat adds the others)."""
    tables = ["auth_user", "auth_group", "auth_user_groups", "schedules", "webhooks", "schedule_history", "original_imports"]
    found = {t: psql(stack.database, "-c", f"SELECT count(*) FROM {t}") for t in tables}
    found["dead letters"] = psql(stack.database, "-c", "SELECT count(*) FROM deliveries WHERE state = 'dead'")
    found["imported rows"] = psql(stack.database, "-c", "SELECT md5(string_agg(t::text, ',' ORDER BY kind, original_id)) FROM original_imports t")
    return found


def summary_row(output, kind):
    line = next(l for l in output.splitlines() if l.startswith(kind + " ") or l.startswith(kind + "s "))
    return [int(x) for x in line.split()[1:5]]


def test_a_dry_run_writes_nothing_and_says_what_it_would_do(world):
    stack, receiver, original = world
    before = counts(stack)
    output = ctl(stack, "import-original", "--from", original, "--dry-run")
    assert output.startswith("dry run: nothing was written"), output
    assert summary_row(output, "schedules") == [5, 0, 0, 2], output
    assert counts(stack) == before, "nothing written"
    time.sleep(4)
    assert receiver.requests == [], "nothing sent"


def test_the_import_keeps_tokens_schedules_hooks_and_failures_and_lists_what_it_refused(world):
    stack, receiver, original = world
    output = ctl(stack, "import-original", "--from", original)
    assert summary_row(output, "users") == [5, 0, 0, 0], output
    # The inactive user's token and the one with spaces are refused, and said why.
    assert summary_row(output, "tokens") == [3, 0, 0, 2], output
    assert summary_row(output, "schedules") == [5, 0, 0, 2], output
    assert summary_row(output, "hooks") == [1, 0, 0, 1], output
    assert summary_row(output, "failures") == [1, 0, 0, 0], output
    assert f"refused schedule {BROKEN}: cron_definition:" in output
    assert f"refused schedule {METADATA}: endpoint:" in output
    assert 'refused hook 2: event "schedule.exploded"' in output
    assert "refused token 4: the user is inactive in the original" in output
    assert "refused token 5: the token has characters other than printable ASCII" in output
    assert "note: user 3 (legacy): no email in the original" in output
    assert "dead letters published: 1" in output
    # Refused schedules are here, disabled, with the reason.
    assert stack.api("GET", f"/api/v1/schedule/{BROKEN}/", APP_KEY)[1]["enabled"] is False
    reason = psql(stack.database, "-c", f"SELECT disabled_reason FROM schedules WHERE id = '{METADATA}'")
    assert reason.startswith("imported disabled: endpoint:"), reason


def test_the_originals_client_works_with_an_original_token(world):
    stack, receiver, original = world
    client = SchedulerApiClient(auth_token=APP_KEY, api_url=f"{stack.url}/api/v1")
    listed = {s["id"] for s in client.get_schedules()["results"]}
    assert listed == {WEEKLY, DUE, ONCE, BROKEN, METADATA}, "the app's own schedules, no one else's"
    weekly = client.get_schedule(WEEKLY)
    assert weekly["cron_definition"] == "0 9 * * mon" and weekly["auth_token"] == "weekly-token"
    assert list(weekly["payload"]) == ["kind", "message"], "the key order the original kept (jsonb's)"
    assert weekly["triggered"] == 40 and weekly["enabled"] is True
    assert weekly["created_by"].endswith("/user/%s/" % psql(stack.database, "-c", "SELECT id FROM auth_user WHERE username = 'app'"))
    assert client.get_schedule(ONCE)["frequency"] == 1
    changed = client.update_schedule(WEEKLY, {"enabled": False})
    assert changed["enabled"] is False
    assert client.get_schedule(WEEKLY)["enabled"] is False
    # The admin's and the user without an email keep theirs too; the inactive one's does not work.
    assert stack.api("GET", f"/api/v1/schedule/{PAUSED}/", OPS_KEY)[0] == 200
    assert stack.api("GET", f"/api/v1/schedule/{LEGACY}/", LEGACY_KEY)[0] == 200
    assert stack.api("GET", "/api/v1/schedule/", INACTIVE_KEY)[0] == 401
    # The failure is a dead letter the original's failed-tasks lists, with its reason.
    status, failed = stack.api("GET", "/api/v1/failed-tasks/", OPS_KEY)
    assert status == 200 and [t["schedule"].rstrip("/").rsplit("/", 1)[1] for t in failed["results"]] == [WEEKLY], failed
    assert "500 Server Error" in failed["results"][0]["reason"]
    letters = json.loads(ctl(stack, "dead-letters", "list", "--json"))
    assert [l["schedule_id"] for l in letters] == [WEEKLY], letters


def test_a_due_imported_schedule_is_delivered_once_with_the_bytes_the_original_sent(world):
    stack, receiver, original = world
    deadline = time.time() + 30
    while not receiver.got("/due") and time.time() < deadline:
        time.sleep(0.2)
    got = receiver.got("/due")
    assert len(got) == 1, got
    _, headers, body = got[0]
    # What the original's worker POSTed: json.dumps of the payload it read from jsonb.
    text = psql(original, "-c", f"SELECT payload::text FROM scheduler_schedule WHERE id = '{DUE}'")
    assert body == json.dumps(json.loads(text)).encode(), body
    assert body == b'{"big": 1000, "zeta": 1, "alpha": {"a": null, "b": [1, 2.5, "caf\\u00e9"]}}', body
    assert headers["Authorization"] == "Token due-token"
    time.sleep(5)
    assert len(receiver.got("/due")) == 1, "once: the next is a minute later"


def test_a_second_import_changes_nothing(world):
    stack, receiver, original = world
    before = counts(stack)
    output = ctl(stack, "import-original", "--from", original)
    for kind in ["users", "tokens", "groups", "memberships", "schedules", "hooks", "failures"]:
        created, updated, _, _ = summary_row(output, kind)
        assert (created, updated) == (0, 0), output
    assert "dead letters published" not in output
    after = counts(stack)
    assert after == before, (before, after)
    # Not undone: the change made here through the client stands.
    assert stack.api("GET", f"/api/v1/schedule/{WEEKLY}/", APP_KEY)[1]["enabled"] is False
