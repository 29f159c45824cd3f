"""The jobs web page in headless Chromium: the hub from the repository's config (Keycloak
login form, hub-managed jobs service, the Kubernetes stand-in running the jobs).

Jobs submitted from the page's form (with and without a zip of code) run and turn to
their final status without a click; a job's details show its image, its command quoted
as a shell would, its resources, exit code, times in the browser's zone, the events
Kubernetes recorded about it and its pods, and a timeline from their status;
refusals show the service's message next to the form and make nothing; commands and
names holding HTML stay text; cronjobs are listed and deleted; the page polls only while
a job is active and the tab is visible."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import os
import random
import re
import shlex
import time
import zipfile
import zoneinfo
from dataclasses import dataclass, field

import httpx
import pytest

from tests.helpers.browser import launch, require_chromium
from tests.helpers.e2e import browser, running_hub, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

XSS = "<img src=x onerror=alert(1)>"
ZONE = "Europe/Zurich"  # the browser's zone: times must show in it, with their offset
DEFAULT_PLATFORM = "Valeria data-science platform"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_chromium()
    tmp = tmp_path_factory.mktemp("jobs-browser")
    with running_stack(tmp) as stack, running_hub(stack, tmp / "hub") as hub:
        with contextlib.closing(browser(hub, "alice")) as client:
            xsrf = client.cookies.get("_xsrf", path="/hub/") or ""
            resp = client.post(
                f"{hub.public_url}/hub/api/users/alice/tokens",
                json={"note": "browser test", "expires_in": 3600},
                headers={"X-XSRFToken": xsrf},
            )
            assert resp.status_code == 201, resp.text
        api = httpx.Client(
            base_url=f"{hub.public_url}/services/jobs/",
            headers={"Authorization": f"token {resp.json()['token']}"},
            timeout=30,
        )
        with api:
            yield hub, api


@pytest.fixture(scope="module")
def context(env):
    """One browser logged in as alice through the Services menu's link, the hub's login
    page and Keycloak's form; each test opens its own tab in it."""
    from playwright.sync_api import expect, sync_playwright

    hub, _ = env
    # this machine may be busy: an assertion waits up to 20 s for the page (polls are 5 s)
    expect.set_options(timeout=20_000)
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            ctx = chromium.new_context(timezone_id=ZONE)
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{hub.public_url}/services/jobs/")
            page.click('a[href*="oauth_login"]')  # the login page's Keycloak button
            page.wait_for_selector("#kc-form-login")
            page.fill("#username", "alice")
            page.fill("#password", "alice")
            page.click("#kc-login")
            page.wait_for_url(f"{hub.public_url}/services/jobs/ui/")
            expect(page.locator("#user")).to_have_text("alice")
            page.close()
            yield ctx
        finally:
            chromium.close()
            expect.set_options(timeout=5_000)  # Playwright's default, for other modules


@dataclass
class Tab:
    """A tab on the jobs page, with what it saw: dialogs (confirms are answered from
    ``answers``; an alert is a script that should never have run), page errors, CSP
    reports, and the API requests it sent."""

    page: object
    response: object = None  # the page load's answer
    answers: list[bool] = field(default_factory=list)
    dialogs: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[tuple[float, str, str]] = field(default_factory=list)

    def on_dialog(self, dialog) -> None:
        self.dialogs.append((dialog.type, dialog.message))
        if dialog.type == "confirm" and self.answers and self.answers.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    def on_console(self, msg) -> None:
        # (a refused fetch is logged as an error too: that one is expected)
        if "Content Security Policy" in msg.text or "Refused to" in msg.text:
            self.errors.append(f"console: {msg.text}")

    def lists(self, since: float) -> int:
        """Job list calls (GET .../jobs/) made since ``since`` (monotonic)."""
        calls = [(t, url.split("?")[0]) for t, method, url in self.requests if method == "GET"]
        return sum(1 for t, url in calls if t >= since and url.endswith("/services/jobs/jobs/"))

    def assert_clean(self) -> None:
        assert not [d for d in self.dialogs if d[0] != "confirm"], self.dialogs
        assert not self.errors, self.errors


@pytest.fixture
def tab(context, env):
    from playwright.sync_api import expect

    hub, _ = env
    page = context.new_page()
    page.set_default_timeout(30_000)
    t = Tab(page)
    page.on("dialog", t.on_dialog)
    page.on("pageerror", lambda e: t.errors.append(f"pageerror: {e}"))
    page.on("console", t.on_console)
    page.on("request", lambda r: t.requests.append((time.monotonic(), r.method, r.url)))
    t.response = page.goto(f"{hub.public_url}/services/jobs/ui/")
    expect(page.locator("#f-profile option")).not_to_have_count(0)
    try:
        yield t
        t.assert_clean()
    finally:
        page.close()


# -- helpers ----------------------------------------------------------------------------------
def job_body(name: str, command: list[str], kind: str = "Job", **spec: object) -> dict:
    container = {"name": "job", "image": "python:3.11", "command": command}
    pod = {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}
    body_spec = pod if kind == "Job" else {**spec, "jobTemplate": {"spec": pod}}
    return {
        "job": {
            "apiVersion": "batch/v1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": body_spec,
        }
    }


def submit(api: httpx.Client, name: str, script: str) -> None:
    resp = api.post("jobs/", json=job_body(name, ["/bin/sh", "-c", script]))
    assert resp.status_code == 201, resp.text


def wait_status(api: httpx.Client, name: str, key: str = "succeeded", timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"jobs/{name}").json()
        if (job.get("status") or {}).get(key):
            return job
        time.sleep(0.3)
    raise AssertionError(f"{name} never had status.{key}")


def names(api: httpx.Client, what: str = "jobs/") -> set[str]:
    resp = api.get(what)
    assert resp.status_code == 200, resp.text
    return {i["metadata"]["name"] for i in resp.json()["items"]}


def shown_in(zone: str, iso: str) -> str:
    """A time as the page must show it in ``zone``: local time and the zone's offset."""
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(zoneinfo.ZoneInfo(zone))
    minutes = int(t.utcoffset().total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    offset = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}" if minutes else "UTC"
    return f"{t:%Y-%m-%d %H:%M:%S} {offset}"


def fill_form(page, *, name: str = "", image: str = "python:3.11", command: str = "") -> None:
    page.fill("#f-name", name)
    page.fill("#f-image", image)
    page.fill("#f-command", command)


# -- the page ----------------------------------------------------------------------------------
def test_header_security_headers_and_accessible_form(env, tab):
    from playwright.sync_api import expect

    hub, _ = env
    page = tab.page
    headers = tab.response.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    # nothing the CSP would have to allow: no inline script, style or handler attribute
    inline = page.evaluate(
        """() => [...document.querySelectorAll('*')].filter(e =>
              (e.tagName === 'SCRIPT' && !e.src) || e.tagName === 'STYLE' ||
              e.hasAttribute('style') ||
              [...e.attributes].some(a => a.name.startsWith('on'))).map(e => e.outerHTML)"""
    )
    assert inline == []
    assert page.request.get(f"{hub.public_url}/hub/static/css/style.min.css").ok

    # the platform's name and the way back to the hub
    expect(page.locator("#platform")).to_have_text(DEFAULT_PLATFORM)
    assert page.title() == f"Batch jobs – {DEFAULT_PLATFORM}"
    assert page.locator("#platform").get_attribute("href") == "/hub/home"
    expect(page.locator("#user")).to_have_text("alice")

    # every form field has a label, every button says what it does
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
              .filter(e => !e.labels.length || !e.labels[0].textContent.trim()).map(e => e.id)"""
    )
    assert unlabelled == []
    assert all(b.strip() for b in page.locator("button").all_inner_texts())
    profiles = page.locator("#f-profile option").all_inner_texts()
    assert any(p.startswith("small") for p in profiles), profiles
    # the profile the service would pick: default_profile, unset here, so the first
    expect(page.locator("#f-profile")).to_have_value("small")

    page.click("#hub-home")
    page.wait_for_url(re.compile(r".*/hub/home$"))


def test_command_splitting_and_quoting_match_pythons_shlex(tab):
    """The form splits a command like the CLI (shlex.split) and the details show it back
    quoted like shlex.quote: checked on random strings of the characters that matter."""
    rng = random.Random(15)
    alphabet = " ab'\"\\\t<>$`=\u00a0/"
    cases = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(800)]
    results = tab.page.evaluate(
        """cases => cases.map(c => {
              try { const w = shellSplit(c); return {words: w, line: shellLine(w)}; }
              catch (e) { return {error: e.message}; } })""",
        cases,
    )
    for case, got in zip(cases, results, strict=True):
        try:
            expected = shlex.split(case)
        except ValueError:
            assert "error" in got, (case, got)
            continue
        assert got.get("words") == expected, case
        assert got["line"] == " ".join(shlex.quote(w) for w in expected), case
        assert shlex.split(got["line"]) == expected


def test_a_job_from_the_form_succeeds_by_itself_and_shows_its_details(env, tab):
    from playwright.sync_api import expect

    _, api = env
    page = tab.page
    command = """sh -c 'sleep 3; echo "two  words" $0' it\\'s"""
    fill_form(page, name="from-page", command=command)
    page.fill("#f-env", "GREETING=hello there")
    page.click("#submit")
    expect(page.locator("#submit-ok")).to_have_text("Submitted job from-page.")
    expect(page.locator("#submit-error")).to_be_hidden()

    # the very body the CLI sends: the command split as a shell would
    job = api.get("jobs/from-page").json()
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", 'sleep 3; echo "two  words" $0', "it's"]
    assert {e["name"]: e.get("value") for e in container["env"]}["GREETING"] == "hello there"
    assert container["image"] == "python:3.11"

    row = page.locator('tr[data-job="from-page"]')
    expect(row.locator(".job-status")).to_have_text(re.compile("Pending|Running"))
    expect(page.locator("#live")).to_contain_text("updating every 5 s")
    clicks = tab.lists(0)
    # no click from here on: the page polls while the job runs
    expect(row.locator(".job-status")).to_have_text("Succeeded", timeout=60_000)
    assert tab.lists(0) > clicks
    expect(page.locator("#live")).to_have_text("")

    row.locator(".job-details").click()
    expect(page.locator("#details-name")).to_have_text("from-page")
    expect(page.locator(".details-status")).to_have_text("Succeeded")
    expect(page.locator(".details-exit")).to_have_text("0 (Completed)")
    expect(page.locator(".details-image")).to_have_text("python:3.11")
    expect(page.locator(".details-command")).to_have_text(
        """sh -c 'sleep 3; echo "two  words" $0' 'it'"'"'s'"""
    )
    assert shlex.split(page.inner_text(".details-command")) == container["command"]
    requests = container["resources"]["requests"]
    expect(page.locator(".details-requests")).to_contain_text(f"cpu {requests['cpu']}")
    expect(page.locator(".details-limits")).to_contain_text("memory")
    status = api.get("jobs/from-page").json()["status"]
    expect(page.locator(".details-started")).to_have_text(shown_in(ZONE, status["start_time"]))
    expect(page.locator(".details-finished")).to_have_text(
        shown_in(ZONE, status["completion_time"])
    )
    assert "UTC+0" in page.inner_text(".details-finished")  # Zurich is UTC+01:00 or +02:00
    steps = page.locator("#timeline tbody").inner_text()
    for what in ("Submitted", "Job started", "Container job started", "exited, code 0"):
        assert what in steps, steps
    # Kubernetes' own events: the job controller's and the kubelet's about its pod
    events = page.locator("#events tbody tr")
    expect(events.filter(has_text="Completed")).to_have_count(1)
    recorded = api.get("jobs/from-page/events").json()["items"]
    started = next(e for e in recorded if e["reason"] == "Started")
    pod = started["involved_object"]["name"]
    line = events.filter(has=page.locator(".event-reason", has_text="Started"))
    expect(line.locator(".event-object")).to_have_text(f"Pod {pod} (spec.containers{{job}})")
    expect(line.locator(".event-message")).to_have_text("Started container job")
    expect(line.locator(".event-type")).to_have_text("Normal")
    expect(line.locator(".event-count")).to_have_text("1")
    expect(line.locator(".event-time")).to_have_text(shown_in(ZONE, started["last_timestamp"]))
    reasons = [r.strip() for r in page.locator("#events .event-reason").all_inner_texts()]
    assert reasons == [e["reason"] for e in recorded], reasons  # all of them, in order
    assert reasons[0] == "SuccessfulCreate" and "Scheduled" in reasons, reasons
    link = page.locator(".details-log-link").get_attribute("href")
    assert link.endswith("/services/jobs/jobs/logs/from-page/")

    page.locator(".details-log").click()
    expect(page.locator("#log-name")).to_have_text("from-page")
    expect(page.locator("#log")).to_have_text("two  words it's\n")

    tab.answers.append(True)
    row.locator(".job-delete").click()
    expect(row).to_have_count(0)
    expect(page.locator("#details-panel")).to_be_hidden()
    assert api.get("jobs/from-page").status_code == 404
    assert tab.dialogs == [("confirm", "Delete job from-page? Its pods and logs are deleted too.")]


def test_a_job_with_a_zip_of_code_runs_in_it_and_shows_its_exit_code(env, tab, tmp_path):
    from playwright.sync_api import expect

    _, api = env
    page = tab.page
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("run.sh", 'echo "from the zip in $(pwd)"\nexit 3\n')
    fill_form(page, command="sh run.sh")  # no name: the service makes one up
    page.select_option("#f-profile", "small")
    page.set_input_files("#f-code", str(archive))
    with page.expect_request(lambda r: r.method == "POST") as sent:
        page.click("#submit")
    body = json.loads(sent.value.post_data)
    assert body["profile"] == "small" and body["job"]["metadata"] == {"generateName": "job-"}
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(body["code"]))) as z:
        assert z.namelist() == ["run.sh"]
    expect(page.locator("#submit-ok")).to_have_text(re.compile(r"^Submitted job job-[a-z0-9]+\.$"))
    name = page.inner_text("#submit-ok").removeprefix("Submitted job ").removesuffix(".")

    row = page.locator(f'tr[data-job="{name}"]')
    expect(row.locator(".job-status")).to_have_text("Failed", timeout=60_000)
    row.locator(".job-details").click()
    expect(page.locator(".details-exit")).to_have_text("3 (Error)")
    expect(page.locator(".details-command")).to_have_text("sh run.sh")
    small = api.get("profiles/").json()["small"]["resources"]["limits"]
    expect(page.locator(".details-limits")).to_contain_text(f"memory {small['memory']}")
    expect(page.locator("#timeline tbody")).to_contain_text("exited, code 3")
    # (a Warning among others: the pod may have waited for its code's ConfigMap, FailedMount)
    reason = page.locator(".event-reason", has_text="BackoffLimitExceeded")
    limit = page.locator("#events tr.event-warning", has=reason)
    expect(limit.locator(".event-type")).to_have_text("Warning")
    expect(limit.locator(".event-object")).to_have_text(f"Job {name}")
    expect(limit.locator(".event-message")).to_have_text(
        "Job has reached the specified backoff limit"
    )
    page.locator(".details-log").click()
    expect(page.locator("#log")).to_have_text("from the zip in /code\n")

    tab.answers.append(True)
    row.locator(".job-delete").click()
    expect(row).to_have_count(0)
    assert api.get(f"jobs/{name}").status_code == 404


def test_refusals_show_the_services_message_and_make_nothing(env, tab, tmp_path):
    from playwright.sync_api import expect

    _, api = env
    page = tab.page
    before = names(api)
    error = page.locator("#submit-error")

    # 422 naming the field
    fill_form(page, name="Not_A_Name", command="true")
    page.click("#submit")
    expect(error).to_contain_text("metadata.name 'Not_A_Name' must consist of lower case")
    expect(error).to_contain_text("(HTTP 422)")
    expect(page.locator("#submit-ok")).to_be_hidden()

    # no image, and the profile has none either
    fill_form(page, name="no-image", image="", command="true")
    page.click("#submit")
    expect(error).to_contain_text("spec.template.spec.containers[0].image: an image is required")
    expect(error).to_contain_text("(HTTP 422)")

    # 413: an archive over the service's limit (1 000 000 bytes)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as z:
        z.writestr("noise.bin", os.urandom(1_200_000))
    fill_form(page, name="too-big", command="true")
    page.set_input_files("#f-code", str(big))
    page.click("#submit")
    expect(error).to_contain_text("code: the archive is larger than the limit of 1000000 bytes")
    expect(error).to_contain_text("(HTTP 413)")

    # a command no shell could split is refused on the page: nothing is sent
    page.set_input_files("#f-code", [])
    fill_form(page, name="open-quote", command="echo 'unclosed")
    posts = sum(1 for _, method, _ in tab.requests if method == "POST")
    page.click("#submit")
    expect(error).to_have_text("Not submitted: command: no closing quotation")
    assert sum(1 for _, method, _ in tab.requests if method == "POST") == posts

    assert names(api) == before
    assert names(api, "cronjobs/") == set()
    # the form still works after refusals
    fill_form(page, name="after-refusals", command="true")
    page.click("#submit")
    expect(page.locator("#submit-ok")).to_have_text("Submitted job after-refusals.")
    expect(error).to_be_hidden()
    wait_status(api, "after-refusals")
    assert api.delete("jobs/after-refusals").status_code == 200


def test_html_in_commands_names_and_messages_stays_text(env, tab):
    from playwright.sync_api import expect

    _, api = env
    page = tab.page
    fill_form(page, name="markup", command=f"echo '{XSS}' '</pre><script>alert(2)</script>'")
    page.fill("#f-env", f"NOTE={XSS}")
    page.click("#submit")
    expect(page.locator("#submit-ok")).to_have_text("Submitted job markup.")
    row = page.locator('tr[data-job="markup"]')
    expect(row.locator(".job-status")).to_have_text("Succeeded", timeout=60_000)
    row.locator(".job-details").click()
    expect(page.locator(".details-command")).to_have_text(
        f"echo '{XSS}' '</pre><script>alert(2)</script>'"
    )
    page.locator(".details-log").click()
    expect(page.locator("#log")).to_have_text(f"{XSS} </pre><script>alert(2)</script>\n")

    # a refusal whose message repeats what was typed
    fill_form(page, name=XSS, command="true")
    page.click("#submit")
    expect(page.locator("#submit-error")).to_contain_text(f"metadata.name '{XSS}'")

    assert page.locator("img[src='x']").count() == 0
    assert page.locator("main script").count() == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # app.js only
    tab.assert_clean()  # no alert ran
    assert api.delete("jobs/markup").status_code == 200


def test_cronjobs_are_listed_and_deleted(env, tab):
    from playwright.sync_api import expect

    _, api = env
    page = tab.page
    body = job_body("nightly", ["python", "nightly.py"], "CronJob", schedule="0 3 * * *")
    assert api.post("cronjobs/", json=body).status_code == 201
    paused = job_body("paused", ["true"], "CronJob", schedule="*/5 * * * *", suspend=True)
    assert api.post("cronjobs/", json=paused).status_code == 201
    page.click("#refresh")
    row = page.locator('tr[data-cronjob="nightly"]')
    expect(row.locator(".cronjob-schedule")).to_have_text("0 3 * * *")
    expect(row.locator(".cronjob-suspend")).to_have_text("no")
    expect(row.locator(".cronjob-last")).to_have_text("-")
    expect(page.locator('tr[data-cronjob="paused"] .cronjob-suspend')).to_have_text("yes")

    row.locator(".cronjob-details").click()
    expect(page.locator("#details-kind")).to_have_text("Cronjob")
    expect(page.locator(".details-schedule")).to_have_text("0 3 * * *")
    expect(page.locator(".details-command")).to_have_text("python nightly.py")

    # one made on the page: a schedule turns the form's job into a cronjob
    fill_form(page, name="weekly", command="python weekly.py")
    page.fill("#f-schedule", "0 4 * * 1")
    page.click("#submit")
    expect(page.locator("#submit-ok")).to_have_text("Submitted cronjob weekly.")
    expect(page.locator('tr[data-cronjob="weekly"] .cronjob-schedule')).to_have_text("0 4 * * 1")
    assert api.get("cronjobs/weekly").json()["spec"]["schedule"] == "0 4 * * 1"

    tab.answers.extend([False, True])
    row.locator(".cronjob-delete").click()  # "cancel" keeps it
    page.click("#refresh")
    expect(row).to_have_count(1)
    assert api.get("cronjobs/nightly").status_code == 200
    row.locator(".cronjob-delete").click()
    expect(row).to_have_count(0)
    expect(page.locator("#details-panel")).to_be_hidden()
    assert api.get("cronjobs/nightly").status_code == 404
    assert tab.dialogs[-1][1].startswith("Delete cronjob nightly?")
    for name in ("paused", "weekly"):
        assert api.delete(f"cronjobs/{name}").status_code == 200
    page.click("#refresh")
    expect(page.locator("#cron-empty")).to_be_visible()


def test_polls_only_while_a_job_is_active_and_the_tab_visible(env, tab):
    from playwright.sync_api import expect

    _, api = env
    page = tab.page
    expect(page.locator("#live")).to_have_text("")  # nothing active: no polling at all
    start = time.monotonic()
    page.wait_for_timeout(6_000)
    assert tab.lists(start) == 0

    submit(api, "long", "sleep 40")
    page.click("#refresh")
    expect(page.locator("#live")).to_contain_text("updating")
    page.locator('tr[data-job="long"] .job-logs').focus()
    start = time.monotonic()
    page.wait_for_timeout(11_500)
    assert 2 <= tab.lists(start) <= 3, tab.lists(start)  # every 5 s, never a storm
    # the table is drawn anew at each poll; the keyboard's place in it is kept
    focused = (
        "[document.activeElement.closest('tr')?.dataset.job, document.activeElement.textContent]"
    )
    assert page.evaluate(focused) == ["long", "Logs"]

    # a hidden tab stops, a visible one catches up at once and goes on
    page.evaluate(
        """() => { Object.defineProperty(document, 'hidden', {value: true, configurable: true});
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    expect(page.locator("#live")).to_have_text("")
    start = time.monotonic()
    page.wait_for_timeout(7_000)
    assert tab.lists(start) == 0
    start = time.monotonic()
    page.evaluate(
        """() => { Object.defineProperty(document, 'hidden', {value: false, configurable: true});
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    expect(page.locator("#live")).to_contain_text("updating")
    assert tab.lists(start) == 1
    assert api.delete("jobs/long").status_code == 200
    # the next poll (within 5 s) finds nothing active and stops
    expect(page.locator("#live")).to_have_text("", timeout=15_000)


def test_lists_shows_follows_and_deletes(env, tab):
    """A job submitted elsewhere (the API): listed with its times, its log shown; a
    running job's log followed as it is written; delete asks first."""
    from playwright.sync_api import expect

    _, api = env
    page = tab.page
    submit(api, "finished", "echo line-one; echo done-two")
    wait_status(api, "finished")
    page.click("#refresh")
    row = page.locator('tr[data-job="finished"]')
    expect(row.locator(".job-status")).to_have_text("Succeeded")
    cells = row.locator("td").all_inner_texts()
    assert all(c.strip() not in ("", "-") for c in cells[2:5]), cells
    created = api.get("jobs/finished").json()["metadata"]["creation_timestamp"]
    assert cells[2] == shown_in(ZONE, created)

    row.locator(".job-logs").click()
    expect(page.locator("#log-name")).to_have_text("finished")
    expect(page.locator("#log")).to_have_text("line-one\ndone-two\n")
    with page.context.expect_page() as opened:  # the link opens the log as text
        page.click("#log-raw")
    raw = opened.value
    raw.wait_for_load_state()
    assert raw.inner_text("body").strip() == "line-one\ndone-two"
    raw.close()

    # a running job's log grows on the page while it runs
    submit(api, "slow", "echo first; sleep 4; echo second")
    page.click("#refresh")
    slow = page.locator('tr[data-job="slow"]')
    expect(slow).to_have_count(1)
    slow.locator(".job-logs").click()
    expect(page.locator("#log-state")).to_have_text("(following)")
    expect(page.locator("#log")).to_contain_text("first")
    assert "second" not in page.inner_text("#log")
    expect(page.locator("#log")).to_have_text("first\nsecond\n", timeout=30_000)
    expect(page.locator("#log-state")).to_have_text("(ended)")
    expect(slow.locator(".job-status")).to_have_text("Succeeded")

    # delete asks first: "cancel" keeps the job, "OK" deletes it
    tab.answers.extend([False, True])
    row.locator(".job-delete").click()
    page.click("#refresh")
    expect(row).to_have_count(1)
    assert api.get("jobs/finished").status_code == 200
    row.locator(".job-delete").click()
    expect(row).to_have_count(0)
    assert tab.dialogs[0][1] == "Delete job finished? Its pods and logs are deleted too."
    assert api.get("jobs/finished").status_code == 404
    expect(page.locator("#message")).to_be_hidden()
    assert api.delete("jobs/slow").status_code == 200
