#!/usr/bin/env python3
"""Real-browser test of spoold's web console.

Starts a real spoold (temporary data directory, HTTP listener with admin actions on), drives
traffic with the real spool CLI, and checks every console page in headless Chromium through
Selenium: status and charts, the topic list, the message browser (pretty JSON, hex of a binary
value, filters by key and header, live tail), a group's lag rising and falling, an offset reset
after its dry run, a saga trace and a dead-letter replay; then, on a second spoold with a token and
without http.admin, the token prompt and the read-only mode. Saves a screenshot of each page.

    /usr/bin/python3 Tests/browser/console_test.py --spoold .build/debug/spoold --spool .build/debug/spool

(scripts/browser-test runs it.) Needs Debian's chromium, chromium-driver and python3-selenium.
Screenshots go to $SPOOL_SCREENSHOTS (default .build/console-screenshots). If the browser cannot
start, the test fails and says so: it never skips.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from datetime import datetime

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as error:  # never skip: a missing browser stack is a failure
    print(f"console test: FAILED: Selenium is not importable ({error}); "
          "install it with: apt-get install -y chromium chromium-driver python3-selenium", file=sys.stderr)
    sys.exit(1)

WAIT = 60  # seconds: the machine running this may be slow and busy


class TestFailure(Exception):
    pass


def log(message):
    print(f"[console test] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -------------------------------------------------------------------------------------------------
# spoold and the spool CLI


class Broker:
    """A real spoold on free ports with a temporary data directory."""

    def __init__(self, spoold, workdir, admin=True, token=None):
        self.spoold = spoold
        self.admin = admin
        self.token = token
        self.workdir = workdir
        self.port = free_port()
        self.http_port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.config = os.path.join(workdir, "spoold.yaml")
        self.log_path = os.path.join(workdir, "spoold.log")
        self.process = None

    def start(self):
        with open(self.config, "w") as f:
            f.write(f"listen: {self.endpoint}\n"
                    f"data.dir: {os.path.join(self.workdir, 'data')}\n"
                    f"fsync: always\n"
                    f"http.listen: 127.0.0.1:{self.http_port}\n"
                    f"http.admin: {'true' if self.admin else 'false'}\n")
            if self.token:
                token_file = os.path.join(self.workdir, "http.token")
                with open(token_file, "w") as t:
                    t.write(self.token + "\n")
                f.write(f"http.token.file: {token_file}\n")
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen([self.spoold, "--config", self.config], stdout=self.log_file, stderr=subprocess.STDOUT)
        log(f"spoold pid {self.process.pid}: {self.endpoint}, HTTP {self.base}")
        deadline = time.time() + WAIT
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise TestFailure(f"spoold exited with status {self.process.returncode} before it was ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        raise TestFailure(f"spoold's /readyz did not answer 200 within {WAIT} s:\n{self.log_tail()}")

    def request(self, path, body=None):
        """(status, JSON answer) of an API call, with the token when there is one."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path):
        status, answer = self.request(path)
        if status != 200:
            raise TestFailure(f"GET {path} answered {status}: {answer}")
        return answer

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log_file.close()

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Cli:
    """The real spool CLI against the test's broker."""

    def __init__(self, spool, endpoint):
        self.spool = spool
        self.env = dict(os.environ, SPOOL_BROKER=endpoint, NO_COLOR="1")
        self.consumers = []

    def run(self, *args, stdin=None):
        result = subprocess.run([self.spool, *args], input=stdin, capture_output=True, env=self.env, timeout=180)
        if result.returncode != 0:
            raise TestFailure(f"spool {' '.join(args)} exited {result.returncode}:\n{result.stderr.decode(errors='replace')}")
        return result.stdout.decode(errors="replace")

    def publish_json_lines(self, topic, records):
        """Publishes records (dicts as `spool publish --format json` reads them) in one command."""
        lines = "".join(json.dumps(r) + "\n" for r in records)
        return self.run("publish", topic, "--format", "json", stdin=lines.encode())

    def start_consumer(self, topic, group, out_path):
        """`spool tail TOPIC --group GROUP` in the background: commits every second and at SIGTERM."""
        out = open(out_path, "wb")
        process = subprocess.Popen([self.spool, "tail", topic, "--group", group], stdout=out, stderr=subprocess.STDOUT, env=self.env)
        self.consumers.append((process, out))
        log(f"consumer pid {process.pid} in group {group}")
        return process

    def stop_consumer(self, process):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the CLI commits what it printed, then leaves the group
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self):
        for process, out in self.consumers:
            self.stop_consumer(process)
            out.close()


# -------------------------------------------------------------------------------------------------
# The browser


def start_browser():
    chromium = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
    driver_path = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,800", "--no-first-run", "--disable-extensions"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except (WebDriverException, OSError) as error:
        raise TestFailure(f"Chromium or chromedriver could not start (chromium: {chromium}, driver: {driver_path}): {error}\n"
                          "install them with: apt-get install -y chromium chromium-driver python3-selenium")
    # Screenshots of exactly 1280x800 CSS pixels, whatever the window's decorations take.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    driver.set_page_load_timeout(WAIT)
    return driver


class Page:
    """Explicit waits on the console's data-test attributes."""

    def __init__(self, driver, base, shots):
        self.driver = driver
        self.base = base
        self.shots = shots

    def open(self, route):
        self.driver.get(self.base + "/#/" + route)
        self.until(lambda d: d.execute_script("return document.getElementById('app').dataset.page") is not None, f"the console to render #/{route}")

    def until(self, condition, what, timeout=WAIT):
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.3, ignored_exceptions=(StaleElementReferenceException,))
        try:
            return wait.until(condition)
        except TimeoutException:
            raise TestFailure(f"timed out after {timeout} s waiting for {what}")

    def css(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector, what=None):
        return self.until(lambda d: d.find_element(By.CSS_SELECTOR, selector), what or selector)

    def text_is(self, selector, expected, what=None):
        """Waits until the element's text is `expected` (the page refreshes itself)."""
        def check(d):
            elements = d.find_elements(By.CSS_SELECTOR, selector)
            return elements and elements[0].text.strip() == str(expected)
        self.until(check, what or f"{selector} to read {expected!r}")

    def text_contains(self, selector, expected, what=None):
        def check(d):
            elements = d.find_elements(By.CSS_SELECTOR, selector)
            return elements and str(expected) in elements[0].text
        self.until(check, what or f"{selector} to contain {expected!r}")

    def type(self, selector, text):
        field = self.one(selector)
        field.clear()
        field.send_keys(text)

    def click(self, selector):
        self.until(EC.element_to_be_clickable((By.CSS_SELECTOR, selector)), f"{selector} to be clickable").click()

    def accept_confirm(self, what):
        alert = self.until(EC.alert_is_present(), f"the confirmation dialog of {what}")
        log(f"confirm: {alert.text}")
        alert.accept()

    def screenshot(self, name, top=True):
        if top:
            self.driver.execute_script("window.scrollTo(0, 0)")
        path = os.path.join(self.shots, name + ".png")
        self.driver.save_screenshot(path)
        log(f"screenshot {path}")

    def browser_log(self):
        try:
            return [f"{e['level']}: {e['message']}" for e in self.driver.get_log("browser")]
        except WebDriverException:
            return []


# -------------------------------------------------------------------------------------------------
# The test

TOPIC = "orders"
GROUP = "audit"
SAGA = "saga-42"
BINARY = bytes([0x00, 0x01, 0x02, 0xFE, 0xFF]) + b"SPOOL\x80\x81"


def seed(cli, workdir):
    """Records the pages will show: 10 JSON values (keys order-0..4, header kind=even|odd), a binary one, a text one."""
    cli.run("topics", "create", TOPIC, "--partitions", "1")
    cli.publish_json_lines(TOPIC, [{"key": f"order-{i % 5}", "value": json.dumps({"id": i, "item": "widget", "qty": i % 3 + 1}),
                                    "headers": [{"name": "kind", "value": "even" if i % 2 == 0 else "odd"}]} for i in range(10)])
    blob = os.path.join(workdir, "blob.bin")
    with open(blob, "wb") as f:
        f.write(BINARY)
    cli.run("publish", TOPIC, "--key", "blob", "--file", blob)            # offset 10
    cli.run("publish", TOPIC, "--key", "note", "plain text, not JSON")    # offset 11

    # A saga: its events carry the envelope headers (Sources/Spool/EventEnvelope.swift), key = correlation id.
    def envelope(event_id, event_type, source, role, time, cause=None):
        headers = [("spool-event-id", event_id), ("spool-event-type", event_type), ("spool-correlation-id", SAGA),
                   ("spool-event-time", time), ("spool-schema-version", "1"), ("spool-source", source), ("spool-event-role", role)]
        if cause:
            headers.append(("spool-causation-id", cause))
        return [arg for name, value in headers for arg in ("--header", f"{name}={value}")]
    cli.run("publish", "order-placed", "--key", SAGA, *envelope("e-1", "order-placed", "orders", "success", "2026-12-01T10:00:00.000Z"), '{"order":42}')
    cli.run("publish", "payment-failed", "--key", SAGA, *envelope("e-2", "payment-failed", "billing", "failure", "2026-12-01T10:00:01.500Z", "e-1"),
            '{"order":42,"reason":"card declined"}')
    # The saga kit gave up on a payment request: it sits in payments.dlq with the dead-letter headers.
    cli.run("publish", "payments.dlq", "--key", SAGA, *envelope("e-3", "payment-requested", "orders", "success", "2026-12-01T10:00:02.000Z", "e-1"),
            "--header", "spool-dlq-error=payment service unavailable", "--header", "spool-dlq-attempts=5",
            "--header", "spool-dlq-group=billing", "--header", "spool-dlq-origin=payments/0@0",
            "--header", "spool-dlq-time=2026-12-01T10:00:09.000Z", '{"order":42,"amount":1999}')


def consume_until(cli, workdir, expected_lines, name):
    """Runs a group member until it printed `expected_lines` records in total, then stops it (it commits on SIGTERM)."""
    out_path = os.path.join(workdir, name + ".out")
    process = cli.start_consumer(TOPIC, GROUP, out_path)
    deadline = time.time() + WAIT
    while time.time() < deadline:
        with open(out_path, "rb") as f:
            if f.read().count(b"\n") >= expected_lines:
                return process, out_path
        if process.poll() is not None:
            raise TestFailure(f"the consumer exited ({process.returncode}):\n{open(out_path, 'rb').read().decode(errors='replace')}")
        time.sleep(0.2)
    raise TestFailure(f"the consumer printed fewer than {expected_lines} records within {WAIT} s")


def check_overview(page, broker, name, traffic=False):
    page.open("overview")
    status = broker.get("/api/status")
    page.text_is("[data-test=status-version]", status["version"])
    page.text_is("[data-test=status-endpoint]", broker.endpoint)
    page.text_is("[data-test=status-topics]", broker.get("/api/status")["topics"])
    page.one("[data-test=disk]", "the disk use")
    page.one("#records-chart svg", "the records chart")
    page.one("#sync-chart svg", "the sync latency chart")
    if traffic:
        # The history (one sample every 5 s) saw the records published above, and the chart draws it.
        page.until(lambda d: any(s["recordsInPerSecond"] > 0 for s in broker.get("/api/history")["samples"]), "/api/history to count records in")
        page.one("#records-chart polyline[data-series=recordsInPerSecond]", "the records-in line")
    assert not page.one("[data-test=writes-refused]").is_displayed(), "a refused-writes banner shows while every partition accepts writes"
    assert not page.one("[data-test=readonly-note]").is_displayed(), "the read-only note shows although http.admin is true"
    page.screenshot(name)


def check_topics(page):
    page.open("topics")
    row = f"[data-test=topic-row][data-topic='{TOPIC}']"
    page.text_is(row + " [data-test=log-end]", 12, "the topics table to show orders with log end 12")
    page.text_is(row + " [data-test=partitions]", 1)
    page.one("[data-test=topic-row][data-topic='payments.dlq']", "payments.dlq in the topic list")
    page.screenshot("topics")
    page.click(row + " [data-test=topic-link]")
    page.until(lambda d: d.current_url.endswith("#/topics/" + TOPIC), "the topic link to open the topic page")


def records_shown(page):
    return page.css("#records [data-test=record]")


def check_topic_browser(page, cli, seeded_at):
    page.text_is("[data-test=topic-name]", TOPIC)
    page.text_is("[data-test=partition-row][data-partition='0'] [data-test=log-end]", 12)
    page.until(lambda d: len(records_shown(page)) == 12, "the message browser to show the 12 records (last 50)")

    page.screenshot("topic")

    # JSON values are pretty-printed.
    first = page.one("[data-test=record][data-offset='0'] [data-test=value-json]").text
    assert json.loads(first) == {"id": 0, "item": "widget", "qty": 1} and '\n  "id": 0' in first, f"offset 0 is not pretty-printed JSON: {first!r}"
    headers = page.one("[data-test=record][data-offset='0'] [data-test=record-headers]").text
    assert "kind=even" in headers, f"offset 0's headers read {headers!r}"
    # A binary value shows hex (computed in the page), with a base64 toggle.
    binary = page.one("[data-test=record][data-offset='10'] [data-test=value-binary]")
    assert "00 01 02 fe ff 53 50 4f 4f 4c 80 81" in binary.text, f"binary value is not shown as hex: {binary.text!r}"
    page.click("[data-test=record][data-offset='10'] [data-test=binary-toggle]")
    page.text_is("[data-test=record][data-offset='10'] [data-test=value-binary]", base64.b64encode(BINARY).decode())
    page.text_is("[data-test=record][data-offset='11'] [data-test=value-text]", "plain text, not JSON")

    # Filter by key: order-1 is at offsets 1 and 6.
    page.type("#browse-key", "order-1")
    page.click("#browse-submit")
    page.until(lambda d: [r.get_attribute("data-offset") for r in records_shown(page)] == ["1", "6"], "the key filter to show offsets 1 and 6 only")
    keys = {r.find_element(By.CSS_SELECTOR, "[data-test=record-key]").text for r in records_shown(page)}
    assert keys == {"order-1"}, f"key filter shows keys {keys}"
    # Filter by header: kind=odd with key order-1 is offset 1 only... key order-1 has ids 1 and 6: only 1 is odd.
    page.type("#browse-header", "kind=odd")
    page.click("#browse-submit")
    page.until(lambda d: [r.get_attribute("data-offset") for r in records_shown(page)] == ["1"], "key order-1 and header kind=odd to show offset 1 only")
    page.one("#browse-key").clear()
    page.click("#browse-submit")
    page.until(lambda d: [r.get_attribute("data-offset") for r in records_shown(page)] == ["1", "3", "5", "7", "9"], "the header filter kind=odd")
    page.one("#browse-header").clear()

    # Seek by offset.
    Select(page.one("#browse-mode")).select_by_value("offset")
    page.type("#browse-offset", "9")
    page.click("#browse-submit")
    page.until(lambda d: [r.get_attribute("data-offset") for r in records_shown(page)] == ["9", "10", "11"], "seek to offset 9")

    # Seek by time (a datetime-local input, local time): a minute before the seeding finds offset 0 on;
    # an hour ahead finds nothing.
    def seek_time(when):
        Select(page.one("#browse-mode")).select_by_value("time")
        field = page.one("#browse-time")
        page.driver.execute_script("arguments[0].value = arguments[1]", field, datetime.fromtimestamp(when).strftime("%Y-%m-%dT%H:%M:%S"))
        page.click("#browse-submit")
    seek_time(seeded_at - 60)
    page.until(lambda d: [r.get_attribute("data-offset") for r in records_shown(page)] == [str(n) for n in range(12)], "seek by time to offset 0")
    seek_time(time.time() + 3600)
    page.one("[data-test=no-records]", "no records after a time an hour ahead")
    Select(page.one("#browse-mode")).select_by_value("offset")
    page.type("#browse-offset", "12")
    page.click("#browse-submit")
    page.one("[data-test=no-records]", "no records from offset 12 (the log end)")

    # Live tail: a record published now appears without a reload.
    page.click("#live-tail")
    page.one("[data-test=tailing]", "the live tail to start")
    marker = str(uuid.uuid4())
    cli.run("publish", TOPIC, "--key", "live", json.dumps({"live": marker}))
    page.text_contains("[data-test=record][data-offset='12'] [data-test=value-json]", marker, "the live-tailed record at offset 12")
    page.screenshot("topic-live-tail", top=False)
    page.click("#live-tail")


def group_partition(page, field):
    return f"[data-test=group-partition][data-topic='{TOPIC}'][data-partition='0'] [data-test={field}]"


def check_groups(page, cli, workdir):
    page.open("groups")
    page.one(f"[data-test=group-row][data-group='{GROUP}']", "the group audit in the group list")
    page.screenshot("groups")
    page.click(f"[data-test=group-row][data-group='{GROUP}'] [data-test=group-link]")
    page.text_is("[data-test=group-name]", GROUP)
    # The seeding consumer committed 12; the live-tail record makes the lag 1.
    page.text_is(group_partition(page, "committed"), 12)
    page.text_is(group_partition(page, "lag"), 1)

    # Lag rises while nobody consumes.
    cli.publish_json_lines(TOPIC, [{"key": f"order-{i}", "value": json.dumps({"id": 100 + i})} for i in range(5)])
    page.text_is(group_partition(page, "log-end"), 18, "log end 18 on the group page")
    page.text_is(group_partition(page, "lag"), 6, "the lag to rise to 6")

    # ...and falls to 0 while a member consumes.
    consumer, _ = consume_until(cli, workdir, 6, "consumer-2")
    page.text_is(group_partition(page, "lag"), 0, "the lag to fall to 0 while a member consumes")
    page.text_is("[data-test=group-member-count]", 1, "one live member")
    page.text_contains(group_partition(page, "owner"), "member", "the partition's owner")

    # A reset while a member lives is refused (409), and the page says so.
    page.type("#reset-topic", TOPIC)
    Select(page.one("#reset-to")).select_by_value("earliest")
    page.click("#reset-dry-run")
    page.text_contains("[data-test=reset-error]", "409", "the 409 of a reset with live members")
    page.screenshot("group-live-member")

    cli.stop_consumer(consumer)
    page.text_is("[data-test=group-member-count]", 0, "the member to leave after SIGTERM")
    page.text_is(group_partition(page, "committed"), 18)

    # The dry run shows the plan; Apply asks for confirmation and executes.
    page.click("#reset-dry-run")
    page.text_is("[data-test=plan-row][data-partition='0'] [data-test=plan-committed]", 18, "the dry run's plan")
    page.text_is("[data-test=plan-row][data-partition='0'] [data-test=plan-new]", 0)
    page.text_is(group_partition(page, "committed"), 18)  # a dry run changes nothing
    page.screenshot("group-reset-plan")
    page.click("#reset-apply")
    page.accept_confirm("the reset")
    page.one("[data-test=reset-result]", "the reset's result")
    page.text_is(group_partition(page, "committed"), 0, "the group page to show the new committed offset 0")
    page.text_is(group_partition(page, "lag"), 18)
    page.screenshot("group")


def check_saga(page):
    page.open("sagas")
    page.type("#saga-id", SAGA)
    page.click("#saga-trace")
    page.until(lambda d: len(page.css("[data-test=saga-step]")) == 3, "the saga's 3 steps")
    types = [e.text for e in page.css("[data-test=saga-step] [data-test=step-type]")]
    assert types == ["order-placed", "payment-failed", "payment-requested"], f"saga steps in order: {types}"
    failed = page.one("[data-test=saga-step][data-event-type='payment-failed']")
    assert "failure" in failed.get_attribute("class"), "the failed step is not highlighted"
    assert "FAILED" in failed.find_element(By.CSS_SELECTOR, "[data-test=step-mark]").text
    dead = page.one("[data-test=saga-step][data-event-type='payment-requested']")
    assert "failure" in dead.get_attribute("class"), "the dead-lettered step is not highlighted"
    assert "DEAD-LETTERED" in dead.find_element(By.CSS_SELECTOR, "[data-test=step-mark]").text
    page.screenshot("sagas")


def check_dead_letters(page, cli):
    page.open("dead-letters")
    row = "[data-test=dlq-row][data-topic='payments.dlq']"
    page.text_is(row + " [data-test=dlq-records]", 1, "payments.dlq holding 1 record")
    replay = page.one(row + " [data-test=dlq-replay]")
    assert replay.text == "Replay to payments", f"replay button reads {replay.text!r}"
    page.screenshot("dead-letters")
    page.click(row + " [data-test=dlq-replay]")
    page.accept_confirm("the replay")
    page.text_contains("[data-test=dlq-copied]", "Copied 1 records", "the replay's copied count")
    copied = [json.loads(line) for line in cli.run("tail", "payments", "--from-beginning", "--exit-at-end", "--format", "json").splitlines()]
    assert len(copied) == 1 and copied[0].get("key") == SAGA, f"payments after the replay: {copied}"
    names = [h["name"] for h in copied[0].get("headers", [])]
    assert "spool-event-id" in names and not any(n.startswith("spool-dlq-") for n in names), f"replayed headers: {names}"
    page.screenshot("dead-letters-replayed")


def check_token_and_read_only(page, spoold, spool, workdir):
    """A second spoold with a token and without http.admin: the page asks for the token, then shows
    the read-only note and disabled actions; the API refuses the action itself with 403."""
    broker = Broker(spoold, os.path.join(workdir, "read-only"), admin=False, token="s3cret-" + uuid.uuid4().hex[:8])
    os.makedirs(broker.workdir)
    try:
        broker.start()
        Cli(spool, broker.endpoint).run("publish", "payments.dlq", "--key", SAGA, "--header", "spool-dlq-error=boom", '{"order":42}')
        page.driver.get(broker.base + "/#/dead-letters")
        page.until(lambda d: page.one("#token-form").is_displayed(), "the token prompt after a 401")
        page.screenshot("token-prompt")
        page.type("#token-input", broker.token)
        page.click("#token-save")
        row = "[data-test=dlq-row][data-topic='payments.dlq']"
        page.text_is(row + " [data-test=dlq-records]", 1, "the dead letters once the token is given")
        assert not page.one(row + " [data-test=dlq-replay]").is_enabled(), "replay is enabled on a read-only listener"
        page.until(lambda d: page.one("[data-test=readonly-note]").is_displayed(), "the read-only note")
        assert page.one("[data-test=readonly-note]").text == "read-only: set http.admin: true"
        stored = page.driver.execute_script("return sessionStorage.getItem('spool.console.token')")
        assert stored == broker.token, f"the token kept in sessionStorage is {stored!r}"
        page.screenshot("read-only")
        status, answer = broker.request("/api/dead-letters/payments.dlq/replay", {"to": "payments"})
        assert status == 403, f"a replay on a read-only listener answered {status}: {answer}"
    except Exception:
        print(f"  read-only spoold log ({broker.log_path}):\n{broker.log_tail()}", file=sys.stderr)
        raise
    finally:
        broker.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spoold", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    shots = os.path.abspath(os.environ.get("SPOOL_SCREENSHOTS", ".build/console-screenshots"))
    os.makedirs(shots, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="spool-console-test-")
    broker = Broker(os.path.abspath(args.spoold), workdir)
    cli = Cli(os.path.abspath(args.spool), broker.endpoint)
    driver = page = None
    step = "start"
    try:
        step = "start spoold"
        broker.start()
        step = "seed records"
        seeded_at = time.time()
        seed(cli, workdir)
        step = "create the group"
        consumer, _ = consume_until(cli, workdir, 12, "consumer-1")
        cli.stop_consumer(consumer)
        step = "start the browser"
        driver = start_browser()
        page = Page(driver, broker.base, shots)
        for step, check in [("overview", lambda: check_overview(page, broker, "overview")),
                            ("topics", lambda: check_topics(page)),
                            ("topic browser", lambda: check_topic_browser(page, cli, seeded_at)),
                            ("groups", lambda: check_groups(page, cli, workdir)),
                            ("sagas", lambda: check_saga(page)),
                            ("dead letters", lambda: check_dead_letters(page, cli)),
                            # Again at the end, when the history has samples of the traffic above.
                            ("overview after traffic", lambda: check_overview(page, broker, "overview-after-traffic", traffic=True)),
                            ("token and read-only", lambda: check_token_and_read_only(page, broker.spoold, cli.spool, workdir))]:
            log(f"checking {step}")
            check()
        log(f"PASSED: every console page checked; screenshots in {shots}")
        return 0
    except (TestFailure, AssertionError, WebDriverException) as error:
        print(f"[console test] FAILED at {step}: {error or type(error).__name__}", file=sys.stderr)
        if not isinstance(error, TestFailure):
            traceback.print_exc()
        if page:
            try:
                page.screenshot("FAILED-" + step.replace(" ", "-"))
            except WebDriverException:
                pass
            for line in page.browser_log():
                print(f"  browser: {line}", file=sys.stderr)
        print(f"  spoold log ({broker.log_path}):\n{broker.log_tail()}", file=sys.stderr)
        return 1
    finally:
        if driver:
            try:
                driver.quit()
            except WebDriverException:
                pass
        cli.stop_all()
        broker.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
