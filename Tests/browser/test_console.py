"""The operations console in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium) against the real services: scheduler-web, beat and a worker over the
test PostgreSQL and RabbitMQ, and two real HTTP receivers on loopback. Run by
scripts/browser-test (from scripts/test), which installs what it needs and passes the
environment. Screenshots of each view go to .data/console-shots/ (CONSOLE_SHOTS=docs/console
refreshes the README's)."""
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ["CONSOLE_BIN"]
SHOTS = os.path.join(ROOT, os.environ.get("CONSOLE_SHOTS") or os.path.join(".data", "console-shots"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """An HTTP receiver on loopback that answers `status` and counts what it got, by path."""

    def __init__(self, status):
        self.status = status
        self.arrivals = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                receiver.arrivals.append((self.path, self.headers.get("Idempotency-Key"), receiver.status))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def got(self, path, status=None):
        return [a for a in self.arrivals if a[0] == path and (status is None or a[2] == status)]


class Stack:
    def __init__(self, label="console"):
        base = os.environ["SCHEDULER_TEST_DATABASE"].rsplit("/", 1)[0]
        name = f"{label}_{os.getpid()}"
        self.database = f"{base}/{name}"
        subprocess.run(["psql", os.environ["SCHEDULER_TEST_DATABASE"], "-qc", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}"],
                       check=True, stdout=subprocess.DEVNULL)
        ctl = os.environ["SCHEDULER_TEST_RABBITMQCTL"]
        subprocess.run([ctl, "add_vhost", name], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], check=True, stdout=subprocess.DEVNULL)
        self.port = free_port()
        self.env = dict(os.environ, SCHEDULER_DATABASE=f"{base}/{name}", BROKER_URL=f"{os.environ['SCHEDULER_TEST_BROKER']}/{name}",
                        SECRET_KEY="console-tests-secret-0123456789", HOST="127.0.0.1", PORT=str(self.port),
                        EGRESS_ALLOW="127.0.0.0/8", DELIVERY_ATTEMPTS="1", BEAT_METRICS_PORT="0", WORKER_METRICS_PORT="0")
        subprocess.run([f"{BIN}/scheduler-ctl", "migrate"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        self.admin = self.ctl("create-admin", "--email", "ops@example.org")
        self.user = self.ctl("create-token", "--email", "app@example.org")
        self.other = self.ctl("create-token", "--email", "other@example.org")
        self.logs = os.path.join(ROOT, ".data", "browser")
        os.makedirs(self.logs, exist_ok=True)
        self.processes = {}
        for program in ["web", "beat", "worker"]:
            self.start(program)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{self.url}/api/v1/schema/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)

    def ctl(self, *args):
        return subprocess.run([f"{BIN}/scheduler-ctl", *args], env=self.env, check=True, capture_output=True, text=True).stdout.strip()

    def start(self, program):
        log = open(os.path.join(self.logs, f"{program}.log"), "a")
        self.processes[program] = subprocess.Popen([f"{BIN}/scheduler-{program}"], env=self.env, stdout=log, stderr=log)

    def stop(self, program):
        process = self.processes.pop(program)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    def close(self):
        for program in list(self.processes):
            self.stop(program)

    def api(self, method, path, token, body=None, headers=None):
        request = urllib.request.Request(f"{self.url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {}), **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def session(self, token):
        """Signs in as the console does and returns the session cookie's value."""
        request = urllib.request.Request(f"{self.url}/console/session/", method="POST", data=json.dumps({"token": token}).encode(),
                                         headers={"Content-Type": "application/json", "X-Scheduler-Console": "1"})
        with urllib.request.urlopen(request, timeout=30) as response:
            cookie = response.headers["Set-Cookie"]
        return cookie.split(";")[0].split("=", 1)[1]

    def claimed(self, count, endpoint):
        """Whether beat claimed (recorded a delivery for) at least `count` schedules of `endpoint`."""
        found = subprocess.run(["psql", self.env["SCHEDULER_DATABASE"], "-Atc",
                                "SELECT count(*) FROM deliveries d JOIN schedules s ON s.id = d.schedule_id WHERE s.endpoint = '"
                                + endpoint.replace("'", "''") + "'"], check=True, capture_output=True, text=True).stdout.strip()
        return int(found or 0) >= count

    def schedule(self, token, endpoint, seconds=1):
        at = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        status, body = self.api("POST", "/api/v1/schedule/", token, {"endpoint": endpoint, "payload": {"n": 1}, "next_send_at": at})
        assert status == 201, body
        return body["id"]


@pytest.fixture(scope="module")
def stack():
    stack = Stack()
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def receivers():
    return {"ok": Receiver(200), "failing": Receiver(500)}


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1200", "--disable-gpu"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def wait(browser, condition, seconds=30, message=""):
    # The page redraws its tables on every refresh: an element found just before a redraw
    # is stale by the time it is read, so the condition is simply asked again.
    waiting = WebDriverWait(browser, seconds, poll_frequency=0.25, ignored_exceptions=(StaleElementReferenceException,))
    return waiting.until(condition, message)


def shot(browser, name):
    os.makedirs(SHOTS, exist_ok=True)
    browser.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def sign_in(browser, stack, token):
    browser.get(f"{stack.url}/console/")
    # The page asks who is signed in when it loads: wait for its answer (the sign-in form, or
    # someone's console) before deciding, or a session still open shows up after the check.
    wait(browser, lambda b: b.find_element(By.ID, "token").is_displayed() or b.find_element(By.ID, "who").text != "",
         message="the console knows whether someone is signed in")
    if browser.find_element(By.ID, "who").text != "":
        browser.find_element(By.ID, "signout").click()
    field = wait(browser, expected_conditions.visibility_of_element_located((By.ID, "token")))
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait(browser, lambda b: b.find_element(By.ID, "who").text != "", message="signed in")


def depth(browser):
    """Messages ready in the delivery queues: jobs due now (scheduler.deliveries) and published
    ahead of their due time (scheduler.held, where beat's lookahead puts a job due in a second,
    up to 100 to a message)."""
    total = 0
    for queue in ("scheduler.deliveries", "scheduler.held"):
        cells = browser.find_elements(By.CSS_SELECTOR, f'#queues td[data-queue="{queue}"]')
        try:
            total += int(cells[0].text)
        except (IndexError, ValueError):
            return None
    return total


def test_sign_in_with_a_token_sets_an_http_only_session_cookie(stack, browser):
    browser.get(f"{stack.url}/console/")
    wait(browser, expected_conditions.visibility_of_element_located((By.ID, "token")))
    shot(browser, "sign-in")
    browser.find_element(By.ID, "token").send_keys("not-a-token")
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait(browser, lambda b: "Sign-in failed" in b.find_element(By.ID, "signin-error").text)
    browser.find_element(By.ID, "token").clear()
    sign_in(browser, stack, stack.admin)
    assert browser.find_element(By.ID, "who").text == "ops@example.org (admin)"
    cookie = browser.get_cookie("scheduler_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # Scripts on the page cannot read it.
    assert "scheduler_session" not in browser.execute_script("return document.cookie")


def test_a_cookie_without_the_console_header_cannot_change_anything(stack):
    # The token itself is no session.
    status, _ = stack.api("GET", "/api/v1/console/whoami/", None, None, {"Cookie": f"scheduler_session={stack.admin}"})
    assert status == 401
    session = stack.session(stack.admin)
    assert stack.admin not in session and len(session) == 64
    headers = {"Cookie": f"scheduler_session={session}"}
    status, body = stack.api("POST", "/api/v1/console/dead-letters/redrive/", None, {"filter": {}}, headers)
    assert status == 403, body
    status, _ = stack.api("GET", "/api/v1/console/whoami/", None, None, headers)
    assert status == 200
    status, body = stack.api("POST", "/api/v1/console/dead-letters/redrive/", None, {"dry_run": True}, {**headers, "X-Scheduler-Console": "1"})
    assert status == 200 and body["matched"] == 0


def test_the_queue_rises_while_the_worker_is_stopped_and_falls_when_it_starts(stack, browser, receivers):
    sign_in(browser, stack, stack.admin)
    browser.get(f"{stack.url}/console/#overview")
    wait(browser, lambda b: depth(b) == 0, message="an empty delivery queue")
    stack.stop("worker")
    ok = receivers["ok"]
    for _ in range(30):
        stack.schedule(stack.admin, f"http://127.0.0.1:{ok.port}/ok")
    # Messages, not jobs: held jobs claimed in one round of beat share a message (up to 100).
    wait(browser, lambda b: (depth(b) or 0) >= 1 and stack.claimed(30, f"http://127.0.0.1:{ok.port}/ok"),
         message="30 claimed, ready in scheduler.deliveries and scheduler.held")
    time.sleep(6)  # a sample or two at the top of the chart
    shot(browser, "overview-worker-stopped")
    stack.start("worker")
    wait(browser, lambda b: depth(b) == 0, seconds=60, message="the queue drained")
    # Estimated for the main and held queues together, on the main queue's row; 0 for the
    # queues nobody consumes.
    rows = browser.find_elements(By.CSS_SELECTOR, "#queues tr")
    unacked = {row.find_element(By.CSS_SELECTOR, "td").text: row.find_element(By.CSS_SELECTOR, 'td[data-field="unacked"]').text
               for row in rows if row.find_elements(By.CSS_SELECTOR, 'td[data-field="unacked"]')}
    assert unacked.get("scheduler.deliveries", "").isdigit() and unacked.get("scheduler.held") == "", unacked
    assert all(text.isdigit() for queue, text in unacked.items() if queue not in ("scheduler.deliveries", "scheduler.held")), unacked
    wait(browser, lambda b: len(ok.got("/ok", 200)) >= 30, message="30 delivered")
    assert len({a[1] for a in ok.got("/ok")}) == 30
    wait(browser, lambda b: "p50" in b.find_element(By.ID, "lateness").text, message="lateness shown")
    beats = browser.find_elements(By.CSS_SELECTOR, "#beats .beat")
    assert len(beats) == 1 and "last round" in beats[0].text, [b.text for b in beats]
    assert "(30 deliveries)" in browser.find_element(By.ID, "lateness").text
    time.sleep(6)
    shot(browser, "overview")


def test_a_failing_receivers_dead_letters_are_redriven_with_a_filter_and_delivered(stack, browser, receivers):
    failing = receivers["failing"]
    for _ in range(5):
        stack.schedule(stack.admin, f"http://127.0.0.1:{failing.port}/flaky")
    for _ in range(2):
        stack.schedule(stack.admin, f"http://127.0.0.1:{failing.port}/broken")
    deadline = time.time() + 60
    while time.time() < deadline:
        _, body = stack.api("GET", "/api/v1/console/dead-letters/", stack.admin)
        if body["count"] >= 7:
            break
        time.sleep(0.5)
    assert body["count"] == 7, body
    sign_in(browser, stack, stack.admin)
    browser.get(f"{stack.url}/console/#dead")
    wait(browser, lambda b: b.find_element(By.ID, "dead-count").text == "7 matching")
    form = browser.find_element(By.ID, "dead-filters")
    form.find_element(By.NAME, "endpoint").send_keys("/flaky")
    Select(form.find_element(By.NAME, "error_kind")).select_by_visible_text("http")
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait(browser, lambda b: b.find_element(By.ID, "dead-count").text == "5 matching")
    rows = browser.find_elements(By.CSS_SELECTOR, "#dead tbody tr")
    assert len(rows) == 5 and all("/flaky" in row.text and "500" in row.text for row in rows)
    rows[0].find_elements(By.TAG_NAME, "td")[1].click()
    wait(browser, lambda b: '"last_status": 500' in b.find_element(By.ID, "dead-detail-body").text)
    shot(browser, "dead-letters")
    # The receiver is fixed; re-drive what the filter matches (the page asks first, with the count).
    failing.status = 200
    browser.find_element(By.ID, "redrive-matching").click()
    alert = wait(browser, expected_conditions.alert_is_present())
    assert "Re-drive 5 dead letter(s)?" in alert.text
    alert.accept()
    wait(browser, lambda b: b.find_element(By.ID, "message").text == "Re-driven: 5 of 5.", seconds=60)
    # The walk's progress, as the page polled it while the re-drive ran.
    _, progress = stack.api("GET", "/api/v1/console/dead-letters/progress/", stack.admin)
    assert progress["running"] is False and progress["action"] == "redrive", progress
    assert progress["matched"] == 5 and progress["done"] == 5 and progress["error"] is None, progress
    wait(browser, lambda b: len(failing.got("/flaky", 200)) == 5, message="the five delivered")
    # The other receiver's two stay dead; nothing else moved.
    _, body = stack.api("GET", "/api/v1/console/dead-letters/", stack.admin)
    assert body["count"] == 2 and all("/broken" in letter["endpoint"] for letter in body["results"])
    assert failing.got("/broken", 200) == []
    time.sleep(2)
    assert len(failing.got("/flaky", 200)) == 5, "each delivered once"


def test_endpoints_show_the_failing_receiver(stack, browser, receivers):
    sign_in(browser, stack, stack.admin)
    browser.get(f"{stack.url}/console/#endpoints")
    failing = f"127.0.0.1:{receivers['failing'].port}"
    # The figures are kept 30 s (and computed at web's start): the page refreshes until they show.
    wait(browser, lambda b: any(r.text.startswith(failing) for r in b.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr")), seconds=75)
    rows = {r.find_element(By.TAG_NAME, "td").text: r.text for r in browser.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr")}
    assert "HTTP 500" in rows[failing] or "500" in rows[failing]
    first = browser.find_element(By.CSS_SELECTOR, "#endpoints tbody tr td").text
    assert first == failing, "the receiver with dead letters comes first"
    shot(browser, "endpoints")


def test_a_normal_users_console_shows_only_their_schedules(stack, browser, receivers):
    mine = stack.schedule(stack.user, f"http://127.0.0.1:{receivers['ok'].port}/mine", seconds=3600)
    stack.schedule(stack.other, f"http://127.0.0.1:{receivers['ok'].port}/theirs", seconds=3600)
    sign_in(browser, stack, stack.user)
    assert browser.find_element(By.ID, "who").text == "app@example.org"
    browser.get(f"{stack.url}/console/#schedules")
    wait(browser, lambda b: b.find_element(By.ID, "schedule-count").text == "1 schedules")
    text = browser.find_element(By.ID, "schedules").text
    assert "/mine" in text and "/theirs" not in text and "/flaky" not in text and "/ok" not in text
    # Queues are everyone's: a normal user's overview has none; their dead letters are none.
    browser.get(f"{stack.url}/console/#overview")
    wait(browser, lambda b: b.find_element(By.ID, "health").text != "")
    assert not browser.find_element(By.ID, "queues-section").is_displayed()
    wait(browser, lambda b: "Your quotas: schedules" in b.find_element(By.ID, "quota").text, message="the user's quotas shown")
    assert " of 10000 · webhooks 0 of 20" in browser.find_element(By.ID, "quota").text
    browser.get(f"{stack.url}/console/#dead")
    wait(browser, lambda b: b.find_element(By.ID, "dead-count").text == "0 matching")
    # An admin's re-drive is not theirs to see.
    assert stack.api("GET", "/api/v1/console/dead-letters/progress/", stack.user) == (200, {"running": False})
    # Disable from the console.
    browser.get(f"{stack.url}/console/#schedules")
    wait(browser, lambda b: b.find_element(By.ID, "schedule-count").text == "1 schedules")
    # The list may render again under the click (the page's refresh): clicked once it holds.
    wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, f'#schedules button[data-id="{mine}"]').click() is None,
         message="the schedule's disable button clicked")
    wait(browser, lambda b: "disabled" in b.find_element(By.ID, "schedules").text)
    _, body = stack.api("GET", f"/api/v1/schedule/{mine}/", stack.user)
    assert body["enabled"] is False


def test_the_schedules_view(stack, browser):
    sign_in(browser, stack, stack.admin)
    # The earlier tests made the schedules: the page shows the count the API gives.
    status, every = stack.api("GET", "/api/v1/schedule/", stack.admin)
    assert status == 200, every
    status, flaky = stack.api("GET", "/api/v1/schedule/?endpoint_contains=/flaky", stack.admin)
    assert status == 200 and flaky["count"] >= 1, flaky
    browser.get(f"{stack.url}/console/#schedules")
    wait(browser, lambda b: b.find_element(By.ID, "schedule-count").text == f"{every['count']} schedules")
    form = browser.find_element(By.ID, "schedule-filters")
    form.find_element(By.NAME, "endpoint_contains").send_keys("/flaky")
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait(browser, lambda b: b.find_element(By.ID, "schedule-count").text == f"{flaky['count']} schedules")
    browser.find_element(By.CSS_SELECTOR, "#schedules tbody tr a").click()
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#schedule-deliveries tbody tr")) >= 1)
    history = browser.find_element(By.ID, "schedule-deliveries").text
    assert "delivered" in history, history
    # A crontab in London: in words, and its next ten runs in London time.
    status, body = stack.api("POST", "/api/v1/schedule/", stack.admin, {
        "endpoint": "http://127.0.0.1:9/weekly-report", "payload": {}, "cron_definition": "0 9 * * 1", "timezone": "Europe/London"})
    assert status == 201, body
    field = browser.find_element(By.NAME, "endpoint_contains")
    field.clear()
    field.send_keys("weekly-report")
    browser.find_element(By.CSS_SELECTOR, "#schedule-filters button").click()
    wait(browser, lambda b: b.find_element(By.ID, "schedule-count").text == "1 schedules")
    browser.find_element(By.CSS_SELECTOR, "#schedules tbody tr a").click()
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#schedule-runs tbody tr")) == 10)
    assert browser.find_element(By.ID, "schedule-detail-words").text.startswith("every Monday at 09:00, Europe/London")
    runs = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#schedule-runs tbody tr")]
    assert all("T09:00:00+0" in r for r in runs), runs
    shot(browser, "schedules")


def test_a_schedules_controls_history_and_run_now(stack, browser, receivers):
    endpoint = f"http://127.0.0.1:{receivers['ok'].port}/run-now"
    status, body = stack.api("POST", "/api/v1/schedule/", stack.admin, {
        "endpoint": endpoint, "interval_definition": "1 hours", "enabled": False, "paused_note": "receiver moving",
        "jitter": 30, "overlap": "skip"})
    assert status == 201, body
    sign_in(browser, stack, stack.admin)
    browser.get(f"{stack.url}/console/#schedules")
    # The list drawn first: before it, the page's script may not hold the form yet, and a
    # click would submit it as a plain form (seen on a busy machine: all schedules listed).
    wait(browser, lambda b: b.find_element(By.ID, "schedule-count").text.endswith(" schedules"))
    form = browser.find_element(By.ID, "schedule-filters")
    field = form.find_element(By.NAME, "endpoint_contains")
    field.clear()
    field.send_keys("/run-now")
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait(browser, lambda b: b.find_element(By.ID, "schedule-count").text == "1 schedules")
    browser.find_element(By.CSS_SELECTOR, "#schedules tbody tr a").click()
    wait(browser, lambda b: "receiver moving" in b.find_element(By.ID, "schedule-controls").text,
         message="the pause and its note shown")
    controls = browser.find_element(By.ID, "schedule-controls").text
    assert "jitter 30 s" in controls and "overlap: skip" in controls, controls
    wait(browser, lambda b: "created" in b.find_element(By.ID, "schedule-history").text, message="the history shown")
    # Run now: one POST at once although it is paused, listed as manual, in the history.
    browser.find_element(By.ID, "schedule-run-now").click()
    wait(browser, lambda b: len(receivers["ok"].got("/run-now")) == 1, message="the receiver got the run-now")
    wait(browser, lambda b: "manual" in b.find_element(By.ID, "schedule-deliveries").text, message="the delivery listed as manual")
    wait(browser, lambda b: "triggered" in b.find_element(By.ID, "schedule-history").text, message="the run-now in the history")
    shot(browser, "schedule-controls")


def test_an_admin_sees_receivers_circuits_and_sets_their_limits(stack, browser, receivers):
    key = f"http://127.0.0.1:{receivers['ok'].port}"
    # Receivers are every tenant's: not a normal user's to see or change.
    assert stack.api("GET", "/api/v1/console/receivers/", stack.user)[0] == 403
    assert stack.api("POST", "/api/v1/console/receivers/", stack.user, {"receiver": key, "action": "open"})[0] == 403
    status, body = stack.api("POST", "/api/v1/console/receivers/", stack.admin, {"receiver": key, "action": "set", "concurrency": 0})
    assert status == 400 and "concurrency" in json.dumps(body), body
    sign_in(browser, stack, stack.admin)
    browser.get(f"{stack.url}/console/#endpoints")
    wait(browser, lambda b: any(r.text.startswith(key) for r in b.find_elements(By.CSS_SELECTOR, "#receivers tbody tr")),
         message="the receiver listed as the workers see it")

    def receiver_row(b):
        return next((r.text for r in b.find_elements(By.CSS_SELECTOR, "#receivers tbody tr") if r.text.startswith(key)), "")

    assert "closed" in receiver_row(browser) and "adaptive" in receiver_row(browser)
    form = browser.find_element(By.ID, "receiver-limits")
    for field, value in [("limits-receiver", key), ("limits-concurrency", "50"), ("limits-rate", "20"), ("limits-burst", "40")]:
        box = form.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait(browser, lambda b: "concurrency 50, 20/s burst 40" in receiver_row(b), message="the limits set by hand shown")
    # Kept where every worker and scheduler-ctl read them.
    listed = [json.loads(line) for line in stack.ctl("receivers", "list", "--json").splitlines()]
    assert next(r for r in listed if r["receiver"] == key)["limits"] == {"concurrency": 50, "rate": 20, "burst": 40}
    wait(browser, lambda b: "50" in receiver_row(b).split()[2], seconds=15, message="the worker took the concurrency")
    # Hold it open, then close it again, from its row.
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#receivers tbody tr") if r.text.startswith(key))
    row.find_element(By.CSS_SELECTOR, 'button[data-action="open"]').click()
    wait(browser, lambda b: "open (by hand)" in receiver_row(b), message="held open")
    shot(browser, "receivers")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#receivers tbody tr") if r.text.startswith(key))
    row.find_element(By.CSS_SELECTOR, 'button[data-action="close"]').click()
    wait(browser, lambda b: receiver_row(b).split()[1] == "closed", seconds=15, message="closed again")
    # Back to the adaptive limit: all fields empty.
    stack.api("POST", "/api/v1/console/receivers/", stack.admin, {"receiver": key, "action": "set"})
    wait(browser, lambda b: "adaptive" in receiver_row(b), message="the limits removed")
    # A normal user's endpoints view has no receivers table.
    sign_in(browser, stack, stack.user)
    browser.get(f"{stack.url}/console/#endpoints")
    wait(browser, lambda b: b.find_element(By.ID, "view-endpoints").is_displayed())
    assert not browser.find_element(By.ID, "receivers-section").is_displayed()
