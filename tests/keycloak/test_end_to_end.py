"""Item 3, end to end with Keycloak's own server: the repository's hub, the Vault stand-in
trusting the real issuer, the Kubernetes stand-in's OpenShift profile. A login on the real
page, a spawn and a batch job all carry alice's identity from Keycloak to Vault to a pod.

The Keycloak stand-in is not started (DevStack's ``realm_url``): nothing on the way can
fall back on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.hub import REPO_ROOT, HubProcess
from devstack.stack import DemoStorage, DevStack
from tests.helpers.e2e import (
    notebook_processes,
    progress_events,
    require_root,
    running_hub,
    spawn,
    stack_objects,
)
from tests.helpers.real_keycloak import (
    browser_client,
    hub_url_allowed,
    login,
    user_id_of,
    wait_for,
)
from tests.helpers.security_stack import job_body, jobs_api, own_token, stop_server

pytestmark = pytest.mark.keycloak

REALM_FILE = REPO_ROOT / "devstack" / "keycloak" / "realm-valeria.json"
# not the demo's values: a pod running with these can only have had them from this Vault
ALICE_UID, ALICE_GID = 24301, 24302
ALICE_KEYS = ("AKREALKCALICE2430101", "real-keycloak-alice-s3-secret-01")
# a cold Keycloak JVM on a loaded 2-core machine can be slow over its first token requests
EXTRA_CONFIG = "c.KeycloakAuthenticator.http_timeout = 20\n"


def hub_client_secret() -> str:
    realm = json.loads(REALM_FILE.read_text())
    return next(c for c in realm["clients"] if c["clientId"] == "jupyterhub")["secret"]


@contextmanager
def hub_on_real_keycloak(
    issuer: str, admin, alice_sub: str, tmp: Path
) -> Iterator[tuple[DevStack, HubProcess]]:
    """Vault and Kubernetes stand-ins seeded with alice under ``alice_sub``, and the
    repository's hub logging in at ``issuer``, its URL a redirect URI of the real client."""
    alice = DemoStorage("alice", ALICE_UID, ALICE_GID, *ALICE_KEYS, sub=alice_sub)
    stack = DevStack(
        tmp / "state",
        kube_options={"strict_schema": True},
        openshift=True,
        storage=[alice],
        realm_url=issuer,
    )
    extra = tmp / "extra_config.py"
    extra.write_text(EXTRA_CONFIG)
    with (
        stack.serve_in_threads(),
        running_hub(
            stack,
            tmp / "hub",
            KEYCLOAK_REALM_URL=issuer,
            OAUTH_CLIENT_ID="jupyterhub",
            OAUTH_CLIENT_SECRET=hub_client_secret(),
            JUPYTERHUB_EXTRA_CONFIG=str(extra),
        ) as hub,
        hub_url_allowed(admin, hub.public_url),
    ):
        yield stack, hub


def page_text(page: str) -> str:
    """A hub page's words, for a failure message (the spawner's refusal is among them)."""
    page = re.sub(r"<(script|style)\b.*?</\1>|<[^>]+>", " ", page, flags=re.S)
    return " ".join(page.split())[:600]


def alice_processes(hub: HubProcess) -> list[dict] | None:
    """alice's notebook processes, or None when one ended while being looked at: the
    server's short-lived children carry its environment too, so there may be several."""
    try:
        return notebook_processes("alice", hub)
    except OSError:
        return None


def notebook_pods(stack: DevStack) -> list[dict]:
    return [p for p in stack_objects(stack, "v1/pods") if p["metadata"]["name"] == "jupyter-alice"]


def job_pod(stack: DevStack, job: str) -> dict:
    pods = stack_objects(stack, "v1/pods")
    [pod] = [p for p in pods if p["metadata"].get("labels", {}).get("job-name") == job]
    return pod


def test_spawn_and_job_with_the_real_keycloaks_token(real_keycloak, admin, tmp_path):
    """Item 3's end: alice logs in on Keycloak's own page; her notebook and her batch job
    run with the uid, gid and S3 keys Vault holds for her real ``sub``, both fetched with
    her real access token (the only issuer Vault trusts)."""
    require_root("running notebooks and jobs as alice's uid")
    sub = user_id_of(admin, "alice")
    with (
        hub_on_real_keycloak(real_keycloak.issuer, admin, sub, tmp_path) as (stack, hub),
        browser_client() as browser,
    ):
        resp = login(browser, hub.public_url, "alice")
        assert resp.status_code == 200 and resp.url.path == "/hub/home", resp.text[:500]
        # the password went to the real server, which sent the browser back to this hub
        assert str(resp.history[0].url).startswith(real_keycloak.issuer), resp.history
        logins = stack.vault.request_count("auth/jwt/login")

        spawned = spawn(browser, hub)
        assert spawned.status_code == 200, page_text(spawned.text)
        events = progress_events(browser, hub, "alice", timeout=60)
        messages = [e.get("message", "") for e in events]
        assert events[-1].get("ready"), messages
        assert "Fetching your storage credentials" in messages
        assert stack.vault.request_count("auth/jwt/login") > logins
        for proc in wait_for(lambda: alice_processes(hub), "alice's notebook process"):
            assert (proc["uid"], proc["gid"]) == (ALICE_UID, ALICE_GID)
            env = proc["env"]
            assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ALICE_KEYS
            assert proc["cwd"] == "/home/alice"
        [pod] = notebook_pods(stack)
        assert pod["spec"]["securityContext"]["runAsUser"] == ALICE_UID
        assert ALICE_KEYS[1] not in json.dumps(pod)

        # a job through the hub-managed service: it reads her access token from auth_state
        # and logs in to Vault with it, as the spawner did
        token = own_token(browser, hub.public_url, "alice")
        logins = stack.vault.request_count("auth/jwt/login")
        with jobs_api(hub, token) as api:
            command = "id -u; id -g; echo key=$AWS_ACCESS_KEY_ID"
            created = api.post("jobs/", json=job_body(command, name="real-kc"))
            assert created.status_code == 201, created.text
            assert stack.vault.request_count("auth/jwt/login") > logins

            def finished() -> dict:
                status = api.get("jobs/real-kc").json().get("status") or {}
                return status if status.get("succeeded") or status.get("failed") else {}

            status = wait_for(finished, "the job to finish", timeout=60)
            assert status.get("succeeded") == 1, status
            spec = job_pod(stack, "real-kc")["spec"]
            assert spec["securityContext"]["runAsUser"] == ALICE_UID
            log = api.get("jobs/logs/real-kc/").text.splitlines()
            assert log == [str(ALICE_UID), str(ALICE_GID), f"key={ALICE_KEYS[0]}"], log
            assert api.delete("jobs/real-kc").status_code == 200

        assert stop_server(browser, hub, "alice").status_code in (202, 204)
        wait_for(lambda: alice_processes(hub) == [], "the notebook to stop")
        wait_for(lambda: not notebook_pods(stack), "alice's pod to be deleted")
