"""The jobs service as the repository's jupyterhub_config.py runs it: started by the hub,
proxied at /services/jobs/, listed in the Services menu, used by alice with a token she
made with her own login cookie, and by her browser session through the hub's OAuth."""

from __future__ import annotations

import contextlib
import json
import re
import time

import httpx
import pytest

from devstack.stack import DEMO_STORAGE
from tests.helpers.e2e import browser, running_hub, running_stack, stack_objects
from tests.helpers.security_stack import jobs_api, own_token

pytestmark = pytest.mark.e2e

ALICE = next(d for d in DEMO_STORAGE if d.username == "alice")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jobs-managed")
    with running_stack(tmp) as stack, running_hub(stack, tmp / "hub") as hub:
        yield stack, hub


def test_the_hub_starts_and_proxies_the_jobs_service(env):
    _, hub = env
    resp = httpx.get(f"{hub.public_url}/services/jobs/", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["message"] == "kbatch"
    # without a token the API refuses, as the service does
    resp = httpx.get(f"{hub.public_url}/services/jobs/jobs/", timeout=10)
    assert resp.status_code == 401


def test_services_menu_links_batch_jobs(env):
    _, hub = env
    with contextlib.closing(browser(hub, "bob")) as client:
        page = client.get(f"{hub.public_url}/hub/home").text
    link = re.search(r'<a class="dropdown-item" href="([^"]+)">\s*([^<]+?)\s*</a>', page)
    assert link is not None, page[:2000]
    assert link.groups() == ("/services/jobs/", "Batch jobs")


def test_alice_submits_a_job_with_her_own_token_and_it_runs_as_her(env):
    _, hub = env
    with contextlib.closing(browser(hub, "alice")) as client:
        token = own_token(client, hub.public_url, "alice")
    api = jobs_api(hub, token)
    with api:
        assert api.get("authorized").json()["name"] == "alice"
        container = {
            "name": "job",
            "image": "python:3.11",
            "command": ["/bin/sh", "-c", "id -u; echo key=$AWS_ACCESS_KEY_ID; echo managed-ok"],
        }
        body = {
            "job": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"generateName": "managed-"},
                "spec": {
                    "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}
                },
            }
        }
        resp = api.post("jobs/", json=body)
        assert resp.status_code == 201, resp.text
        name = resp.json()["metadata"]["name"]
        deadline = time.monotonic() + 90
        status: dict = {}
        while time.monotonic() < deadline:
            status = api.get(f"jobs/{name}").json().get("status") or {}
            if status.get("succeeded") or status.get("failed"):
                break
            time.sleep(0.5)
        assert status.get("succeeded") == 1, status
        log = api.get(f"jobs/logs/{name}/").text.splitlines()
        assert log == [str(ALICE.uid), f"key={ALICE.s3_access_key}", "managed-ok"]
        assert api.delete(f"jobs/{name}").status_code == 200
        assert api.get(f"jobs/{name}").status_code == 404


def test_a_browser_session_reaches_the_service_through_the_hubs_oauth(env):
    _, hub = env
    with contextlib.closing(browser(hub, "alice")) as client:
        resp = client.get(
            f"{hub.public_url}/services/jobs/authorized", headers={"Accept": "text/html"}
        )
        # hub authorize (no confirmation page) -> service callback -> back to the page
        assert resp.status_code == 200, resp.text[:500]
        assert resp.json() == {"name": "alice", "groups": ["researchers", "team-a"]}
        hops = [str(r.url) for r in resp.history]
        assert any("/hub/api/oauth2/authorize" in h for h in hops), hops
        assert client.cookies.get("jobs-token", path="/services/jobs/")


def jobs_session(hub) -> tuple[httpx.Client, str]:
    """alice's browser on the jobs page (through the hub's OAuth) and the page's XSRF token."""
    client = browser(hub, "alice")
    page = client.get(
        f"{hub.public_url}/services/jobs/ui/",
        headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
    )
    assert page.status_code == 200, page.text[:300]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    found = re.search(r'<meta name="xsrf-token" content="([0-9a-f]+)">', page.text)
    assert found, page.text[:500]
    return client, found.group(1)


def small_job(name: str) -> dict:
    container = {"name": "job", "image": "python:3.11", "command": ["true"]}
    spec = {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}
    return {
        "job": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}
    }


def test_the_login_cookie_acts_only_with_the_pages_xsrf_token_and_from_this_site(env):
    """A page elsewhere (another site, or a user's server on this origin without the
    token) cannot make alice's browser submit a job that runs with her identity."""
    stack, hub = env
    client, xsrf = jobs_session(hub)
    api = f"{hub.public_url}/services/jobs/"
    with contextlib.closing(client):
        refused = {
            "no token": client.post(api + "jobs/", json=small_job("csrf-a")),
            "wrong token": client.post(
                api + "jobs/", json=small_job("csrf-b"), headers={"X-XSRFToken": "0" * 40}
            ),
            "read without token": client.get(api + "jobs/", headers={"Accept": "application/json"}),
            "cross-site": client.post(
                api + "jobs/",
                json=small_job("csrf-c"),
                headers={"X-XSRFToken": xsrf, "Sec-Fetch-Site": "cross-site"},
            ),
            "other origin": client.post(
                api + "jobs/",
                json=small_job("csrf-d"),
                headers={"X-XSRFToken": xsrf, "Origin": "https://evil.example"},
            ),
            "script reading the page": client.get(
                api + "ui/", headers={"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
            ),
        }
        for label, resp in refused.items():
            assert resp.status_code == 403, (label, resp.status_code, resp.text[:200])
        # a body that is not declared JSON is never read as JSON (no preflight needed)
        plain = client.post(
            api + "jobs/",
            content=json.dumps(small_job("csrf-e")),
            headers={"X-XSRFToken": xsrf, "Content-Type": "text/plain"},
        )
        assert plain.status_code == 422, plain.text[:200]
        jobs = stack_objects(stack, "batch/v1/jobs")
        assert not [j for j in jobs if j["metadata"]["name"].startswith("csrf-")]
        # the page's own requests work
        ok = client.post(api + "jobs/", json=small_job("csrf-ok"), headers={"X-XSRFToken": xsrf})
        assert ok.status_code == 201, ok.text[:300]
        listed = client.get(api + "jobs/", headers={"X-XSRFToken": xsrf})
        assert "csrf-ok" in {j["metadata"]["name"] for j in listed.json()["items"]}
        assert client.delete(api + "jobs/csrf-ok", headers={"X-XSRFToken": xsrf}).status_code == 200


def test_logout_ends_the_jobs_page_session_at_once(env):
    _, hub = env
    client, xsrf = jobs_session(hub)
    api = f"{hub.public_url}/services/jobs/"
    with contextlib.closing(client):
        headers = {"X-XSRFToken": xsrf, "Accept": "application/json"}
        assert client.get(api + "jobs/", headers=headers).status_code == 200
        client.get(f"{hub.public_url}/hub/logout")
        after = client.get(api + "jobs/", headers=headers)
        assert after.status_code == 401, after.text[:200]


def test_a_logout_reaches_the_service_at_once(env):
    """The service reuses the hub's answer about a login for login_recheck_seconds
    (30 s) between submissions; the hub tells it when the login ends, so a submission a
    moment after the logout is refused and makes nothing. Nobody but the hub can send
    that message."""
    _, hub = env
    client = browser(hub, "alice")
    with contextlib.closing(client):
        token = own_token(client, hub.public_url, "alice")
        with jobs_api(hub, token) as api:
            assert api.post("jobs/", json=small_job("before-logout")).status_code == 201
            assert api.post("jobs/", json=small_job("still-in")).status_code == 201
            for headers in ({}, {"Authorization": f"token {token}"}):  # not the hub
                forged = httpx.post(
                    f"{hub.public_url}/services/jobs/hub-events/login-ended",
                    json={"name": "alice"},
                    headers=headers,
                    timeout=10,
                )
                assert forged.status_code == 403, forged.text[:200]
            assert api.post("jobs/", json=small_job("after-forgery")).status_code == 201
            client.get(f"{hub.public_url}/hub/logout")
            after = api.post("jobs/", json=small_job("after-logout"))
            assert after.status_code == 401, after.text[:300]
            assert "log in" in after.json()["detail"].lower()
            assert api.get("jobs/after-logout").status_code == 404
            for name in ("before-logout", "still-in", "after-forgery"):
                assert api.delete(f"jobs/{name}").status_code == 200


def test_a_back_channel_logout_reaches_the_service_at_once(env):
    """Keycloak ends bob's session (an administrator, or bob elsewhere): its back-channel
    logout reaches the hub, which tells the service; bob's next submission is refused."""
    stack, hub = env
    kc = stack.keycloak
    before = kc.call(lambda: kc.realm.clients["jupyterhub"].backchannel_logout_url)
    url = f"{hub.public_url}/hub/backchannel-logout"
    kc.call(kc.update_client, "jupyterhub", backchannel_logout_url=url)
    try:
        with contextlib.closing(browser(hub, "bob")) as client:
            token = own_token(client, hub.public_url, "bob")
        with jobs_api(hub, token) as api:
            assert api.post("jobs/", json=small_job("bob-before")).status_code == 201
            assert kc.call(kc.end_user_sessions, "bob") >= 1
            delivery = kc.call(lambda: kc.backchannel_log[-1])
            assert delivery.get("status") == 200, delivery
            after = api.post("jobs/", json=small_job("bob-after"))
            assert after.status_code == 401, after.text[:300]
            assert api.delete("jobs/bob-before").status_code == 200
    finally:
        kc.call(kc.update_client, "jupyterhub", backchannel_logout_url=before)


def test_a_token_in_its_last_seconds_is_refreshed_by_the_hub_not_refused(env):
    """A submission never gets a spurious "log in again" while the person's Keycloak
    session is alive: the service has the hub refresh a token close to expiry first."""
    stack, hub = env
    kc = stack.keycloak
    before = kc.call(kc.set_lifetimes)["access_token_lifespan"]
    kc.call(kc.set_lifetimes, access_token_lifespan=40)
    try:
        with contextlib.closing(browser(hub, "alice")) as client:  # a new 40 s token
            token = own_token(client, hub.public_url, "alice")

        def refreshes() -> int:
            return kc.call(kc.token_counts).get("refresh_token", {}).get("jupyterhub", 0)

        counted = refreshes()
        time.sleep(12)  # 28 s left: less than the 30 s the Vault login needs
        with jobs_api(hub, token) as api:
            resp = api.post("jobs/", json=small_job("fresh-token"))
            assert resp.status_code == 201, resp.text[:300]
            assert refreshes() == counted + 1
            assert api.delete("jobs/fresh-token").status_code == 200
    finally:
        kc.call(kc.set_lifetimes, access_token_lifespan=before)
