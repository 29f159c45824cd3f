"""Secret hygiene: canary S3 keys in Vault and canary hub secrets (crypt key, cookie
secret, OAuth client secret, Vault root token); after an end-to-end scenario (login,
spawn, job submit, logs, stop, delete, and failures with their error pages) the hub's
log (which holds the managed jobs service's output), every stored Kubernetes object but
the intended Secrets, every event and every HTTP response body received are scanned:
no canary may appear. S3 Secrets must not outlive their server or job."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from devstack.stack import DEMO_ROOT_TOKEN, DemoStorage, DevStack
from tests.helpers.auth_hub import login
from tests.helpers.e2e import progress_events, spawn, wait_for_lab
from tests.helpers.security_stack import (
    job_body,
    jobs_api,
    managed_hub,
    own_token,
    stop_server,
    wait_until,
)

pytestmark = pytest.mark.e2e

STORAGE = [
    DemoStorage("alice", 1001, 1001, "CANARYAKALICE7Q2W9E1R", "canary-alice-s3-secret-9d8c7b6a"),
    DemoStorage("bob", 1002, 1002, "CANARYAKBOB4T5Y6U7I8O", "canary-bob-s3-secret-1a2b3c4d5e"),
]
CRYPT_KEY = "c0ffee5e" * 8  # 64 hex digits: 32 bytes
COOKIE_SECRET = "ba5eba11" * 8
CLIENT_SECRET = "canary-oauth-client-secret-5f4e3d"
CANARIES = [v for d in STORAGE for v in (d.s3_access_key, d.s3_secret_key)]
CANARIES += [CRYPT_KEY, COOKIE_SECRET, CLIENT_SECRET, DEMO_ROOT_TOKEN]
BODIES: list[bytes] = []


def recording_client() -> httpx.Client:
    """A browser-like client that keeps every response body it receives."""

    def record(resp: httpx.Response) -> None:
        resp.read()
        BODIES.append(resp.content)

    return httpx.Client(follow_redirects=True, timeout=60, event_hooks={"response": [record]})


def encodings(value: str) -> list[str]:
    """A canary as plain text, base64 (Secrets, ConfigMaps) and JSON-escaped."""
    b64 = base64.b64encode(value.encode()).decode()
    return [value, b64, b64.rstrip("="), json.dumps(value)[1:-1]]


def hits(text: str) -> dict[str, int]:
    found = {}
    for canary in CANARIES:
        n = sum(text.count(form) for form in set(encodings(canary)))
        if n:
            found[canary[:12] + "..."] = n
    return found


def intended_secret(obj: dict) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return labels.get("component") == "s3-credentials" or "valeria.io/job" in labels


def s3_secrets(stack) -> list[str]:
    items = stack.kube.call(stack.kube.store.list, "v1/secrets")[0]
    return [s["metadata"]["name"] for s in items if intended_secret(s)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hygiene")
    stack = DevStack(
        tmp / "state", kube_options={"strict_schema": True}, storage=STORAGE, openshift=True
    )
    with stack.serve_in_threads():
        kc = stack.keycloak
        kc.call(kc.update_client, "jupyterhub", secret=CLIENT_SECRET)
        from tests.helpers.security_stack import tune_kubelet

        tune_kubelet(stack)
        env = {
            "JUPYTERHUB_CRYPT_KEY": CRYPT_KEY,
            "JUPYTERHUB_COOKIE_SECRET": COOKIE_SECRET,
            "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        }
        with managed_hub(stack, tmp / "hub", **env) as hub:
            yield stack, hub


def test_the_whole_scenario_leaks_no_canary_and_leaves_no_secret(env):
    stack, hub = env
    url = hub.public_url
    with recording_client() as alice, recording_client() as bob, recording_client() as carol:
        for client, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            assert login(client, url, name).status_code == 200
        # alice: notebook, a job with logs, then everything stopped and deleted
        spawn(alice, hub)
        assert progress_events(alice, hub, "alice")[-1].get("ready")
        wait_for_lab(alice, hub, "alice")
        token = own_token(alice, url, "alice")
        with jobs_api(hub, token, event_hooks=alice.event_hooks) as api:
            cmd = "echo key=${AWS_ACCESS_KEY_ID:+set}; env | grep -c AWS_ || true"
            created = api.post("jobs/", json=job_body(cmd, "hygiene"))
            assert created.status_code == 201, created.text
            # the control: the scan finds the canaries where they belong
            intended = [
                o
                for o in stack.kube.call(stack.kube.store.list, "v1/secrets")[0]
                if intended_secret(o)
            ]
            assert hits(json.dumps(intended)), "the scan cannot see the canaries"
            wait_until(
                lambda: (api.get("jobs/hygiene").json().get("status") or {}).get("succeeded"),
                what="the job",
            )
            assert api.get("jobs/logs/hygiene/").text.startswith("key=set")
            events = api.get("jobs/hygiene/events").json()["items"]
            assert {e["involved_object"]["kind"] for e in events} == {"Job", "Pod"}
            api.get("pods/")
            api.post("jobs/", json=job_body("true", "hostNetwork", bad=1))  # refused
            assert api.delete("jobs/hygiene").status_code == 200
        # failures and their pages
        fault = stack.vault.faults.inject("/v1/auth/jwt/login", status=503)
        spawn(bob, hub)
        assert progress_events(bob, hub, "bob")[-1].get("failed")
        bob.get(f"{url}/hub/spawn-pending/bob")
        stack.vault.faults.remove(fault)
        spawn(carol, hub)
        assert progress_events(carol, hub, "carol")[-1].get("failed")
        carol.get(f"{url}/hub/spawn-pending/carol")
        alice.get(f"{url}/hub/no-such-page")
        alice.get(f"{url}/user/bob/lab")
        alice.get(f"{url}/services/jobs/jobs/nothing-here")
        assert stop_server(alice, hub, "alice").status_code in (202, 204)
    wait_until(lambda: not s3_secrets(stack), what=f"S3 secrets to go: {s3_secrets(stack)}")
    time.sleep(1)  # the hub's and the service's last log lines

    report = {"responses": hits("\n".join(b.decode("utf-8", "replace") for b in BODIES))}
    report["hub and jobs service log"] = hits(hub.log_text())
    dump = stack.kube.call(stack.kube.dump)
    kept = {
        kind: [o for o in items if not (kind == "v1/secrets" and intended_secret(o))]
        for kind, items in dump.items()
    }
    report["kubernetes objects"] = hits(json.dumps(kept))
    report["events"] = hits(json.dumps(dump.get("v1/events", [])))
    total = sum(sum(found.values()) for found in report.values())
    print(f"\ncanary hits: {total} (responses scanned: {len(BODIES)})")
    assert len(BODIES) > 30 and dump.get("v1/events")
    assert total == 0, report
