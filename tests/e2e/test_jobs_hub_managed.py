"""The jobs service as the repository's jupyterhub_config.py runs it: started by the hub,
proxied at /services/jobs/, listed in the Services menu, used by alice with a token she
made with her own login cookie, and by her browser session through the hub's OAuth."""

from __future__ import annotations

import contextlib
import re
import time

import httpx
import pytest

from devstack.stack import DEMO_STORAGE
from tests.helpers.e2e import browser, running_hub, running_stack

pytestmark = pytest.mark.e2e

ALICE = next(d for d in DEMO_STORAGE if d.username == "alice")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jobs-managed")
    with running_stack(tmp) as stack, running_hub(stack, tmp / "hub") as hub:
        yield stack, hub


def own_token(client: httpx.Client, hub_url: str, user: str) -> str:
    """A token made through the hub API with the user's login cookie (as the token page does)."""
    xsrf = client.cookies.get("_xsrf", path="/hub/") or ""
    resp = client.post(
        f"{hub_url}/hub/api/users/{user}/tokens",
        json={"note": "jobs cli", "expires_in": 3600},
        headers={"X-XSRFToken": xsrf, "Referer": f"{hub_url}/hub/token"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["token"]


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
    api = httpx.Client(
        base_url=f"{hub.public_url}/services/jobs/",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
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
