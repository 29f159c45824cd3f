"""The jobs web page in headless Chromium: the hub from the repository's config (Keycloak
login form, hub-managed jobs service), alice's jobs listed with their times, a finished
job's log, a running job's log followed as it is written, delete with confirmation."""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest

from tests.helpers.browser import launch, require_chromium
from tests.helpers.e2e import browser, running_hub, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


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


def submit(api: httpx.Client, name: str, script: str) -> None:
    container = {"name": "job", "image": "python:3.11", "command": ["/bin/sh", "-c", script]}
    body = {
        "job": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        }
    }
    resp = api.post("jobs/", json=body)
    assert resp.status_code == 201, resp.text


def wait_succeeded(api: httpx.Client, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (api.get(f"jobs/{name}").json().get("status") or {}).get("succeeded"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{name} did not succeed")


def test_jobs_page_lists_shows_follows_and_deletes(env):
    from playwright.sync_api import expect, sync_playwright

    hub, api = env
    submit(api, "finished", "echo line-one; echo done-two")
    wait_succeeded(api, "finished")

    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            page = chromium.new_page()
            page.set_default_timeout(30_000)
            # the Services menu's link; not logged in: hub login -> Keycloak's form
            page.goto(f"{hub.public_url}/services/jobs/")
            page.click('a[href*="oauth_login"]')  # the login page's Keycloak button
            page.wait_for_selector("#kc-form-login")
            page.fill("#username", "alice")
            page.fill("#password", "alice")
            page.click("#kc-login")
            page.wait_for_url(f"{hub.public_url}/services/jobs/ui/")
            expect(page.locator("#user")).to_have_text("alice")
            css = page.request.get(f"{hub.public_url}/hub/static/css/style.min.css")
            assert css.ok  # the hub's stylesheet the page links to

            row = page.locator('tr[data-job="finished"]')
            expect(row.locator(".job-status")).to_have_text("Succeeded")
            cells = row.locator("td").all_inner_texts()
            assert all(c.strip() not in ("", "-") for c in cells[2:5]), cells

            row.locator(".job-logs").click()
            expect(page.locator("#log-name")).to_have_text("finished")
            expect(page.locator("#log")).to_have_text("line-one\ndone-two\n")

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
            page.once("dialog", lambda d: d.dismiss())
            row.locator(".job-delete").click()
            page.click("#refresh")
            expect(row).to_have_count(1)
            assert api.get("jobs/finished").status_code == 200
            messages = []
            page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
            row.locator(".job-delete").click()
            expect(row).to_have_count(0)
            assert "Delete job finished?" in messages[0]
            assert api.get("jobs/finished").status_code == 404
            expect(page.locator("#message")).to_be_hidden()
        finally:
            chromium.close()
