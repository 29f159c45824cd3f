"""The production configuration end to end: environment checks at boot, PostgreSQL,
restarts with running servers, metrics and the idle culler."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time

import httpx
import pytest

from devstack.hub import DEFAULT_CONFIG, HubProcess, descendants, free_port, start_time
from tests.helpers.e2e import browser, progress_events, running_stack, spawn, wait_for_lab
from tests.helpers.pg import postgres_server

# a password that breaks an unescaped database URL
DB_PASSWORD = "p@ss:w/rd%?#"


def hub_for(stack, workdir, **extra: str) -> HubProcess:
    public = f"http://127.0.0.1:{free_port()}"
    stack.allow_redirects_to(public)
    env = stack.hub_environment(public_url=public, hub_port=free_port(), proxy_api_port=free_port())
    env["JOBS_SERVICE_PORT"] = str(free_port())
    env.update(extra)
    return HubProcess(env, workdir, public_url=public)


def test_boot_refuses_with_one_message_listing_every_problem(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "KEYCLOAK_"))}
    env.update(
        {
            "JUPYTERHUB_PUBLIC_URL": "http://127.0.0.1:1",
            "JUPYTERHUB_CRYPT_KEY": "too-short",
            "KEYCLOAK_REALM_URL": "sso.example.org/realms/x",
            "OAUTH_CLIENT_ID": "jupyterhub",
            "VAULT_URL": "http://127.0.0.1:8200",
            "NFS_SERVER": "nfs",
            "NFS_PATH": "relative/path",
            "S3_ENDPOINT_URL": "http://s3",
            "JUPYTERHUB_DATABASE_HOST": "db.example",
        }
    )
    jupyterhub = os.path.join(os.path.dirname(sys.executable), "jupyterhub")
    proc = subprocess.run(
        [jupyterhub, "-f", str(DEFAULT_CONFIG)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    err = proc.stderr
    for expected in (
        "JUPYTERHUB_CRYPT_KEY must be 32 bytes",
        "JUPYTERHUB_COOKIE_SECRET is not set",
        "OAUTH_CLIENT_SECRET is not set",
        "KEYCLOAK_REALM_URL must be an http(s) URL",
        "NFS_PATH must be an absolute path",
        "JUPYTERHUB_DATABASE_PASSWORD is not set",
    ):
        assert expected in err, err
    assert err.count("valeria-hub cannot start") == 1
    assert not (tmp_path / "jupyterhub.sqlite").exists()


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    with postgres_server(DB_PASSWORD) as pg, running_stack(tmp) as stack:
        yield pg, stack, tmp


def test_postgres_restart_keeps_sessions_servers_and_auth_state(pg_stack):
    pg, stack, tmp = pg_stack
    metrics_token = secrets.token_hex(16)
    hub = hub_for(stack, tmp / "hub", JUPYTERHUB_METRICS_TOKEN=metrics_token, **pg.env())
    hub.start(timeout=90)
    try:
        assert not (tmp / "hub" / "jupyterhub.sqlite").exists()
        client = browser(hub, "alice")
        spawn(client, hub)
        assert progress_events(client, hub, "alice")[-1].get("ready")
        wait_for_lab(client, hub, "alice")
        pods_before = {
            p["metadata"]["uid"]
            for p in stack.kube.call(stack.kube.store.list, "v1/pods", "default")[0]
        }
        metrics = httpx.get(
            f"{hub.public_url}/hub/metrics",
            headers={"Authorization": f"token {metrics_token}"},
            timeout=10,
        )
        assert metrics.status_code == 200
        assert 'valeria_vault_lookup_duration_seconds_count{result="ok"}' in metrics.text
    finally:
        hub.stop()

    # the same database, keys and cookie secret: a restarted hub (a new pod in production)
    hub2 = HubProcess(hub.env, tmp / "hub2", public_url=hub.public_url)
    hub2.start(timeout=90)
    try:
        # the browser session survives and the running server is found again
        resp = client.get(f"{hub.public_url}/user/alice/lab")
        assert resp.status_code == 200 and "JupyterLab" in resp.text
        pods_after = {
            p["metadata"]["uid"]
            for p in stack.kube.call(stack.kube.store.list, "v1/pods", "default")[0]
        }
        assert pods_after == pods_before
        # auth_state (the Keycloak tokens) came back from PostgreSQL, decrypted: a new
        # spawn logs in to Vault with it
        xsrf = client.cookies.get("_xsrf", path="/hub/") or ""
        stop = client.delete(
            f"{hub.public_url}/hub/api/users/alice/server",
            headers={"X-XSRFToken": xsrf, "Referer": f"{hub.public_url}/hub/home"},
        )
        assert stop.status_code in (202, 204)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            model = client.get(f"{hub.public_url}/hub/api/user").json()
            if not model.get("servers"):
                break
            time.sleep(0.5)
        spawn(client, hub2)
        assert progress_events(client, hub2, "alice")[-1].get("ready")
    finally:
        hub2.stop()


def test_keys_in_base64_boot_a_working_hub(pg_stack):
    """Every key format the checks accept is one JupyterHub can use (a base64 crypt key
    used to pass the checks and then crash the hub at start)."""
    _, stack, tmp = pg_stack
    key = bytes(range(250, 256)) + secrets.token_bytes(26)
    hub = hub_for(
        stack,
        tmp / "hub-b64",
        JUPYTERHUB_CRYPT_KEY=base64.b64encode(key).decode(),
        JUPYTERHUB_COOKIE_SECRET=base64.urlsafe_b64encode(key[::-1]).decode().rstrip("="),
    )
    hub.start(timeout=90)
    try:
        client = browser(hub, "alice")  # logs in: auth_state is encrypted with the key
        model = client.get(f"{hub.public_url}/hub/api/user").json()
        assert model["name"] == "alice"
    finally:
        hub.stop()


def test_cookies_carry_secure_when_the_public_url_is_https(pg_stack):
    """Behind an edge route that forwards plain http (X-Forwarded-Proto: http), the
    hub's and the jobs service's cookies still carry Secure: the public URL is https."""
    _, stack, tmp = pg_stack
    hub = hub_for(stack, tmp / "hub-https")
    hub.env["JUPYTERHUB_PUBLIC_URL"] = hub.public_url.replace("http://", "https://", 1)
    hub.start(timeout=90)
    plain = {"X-Forwarded-Proto": "http"}
    try:
        with httpx.Client(timeout=10, follow_redirects=False, headers=plain) as c:
            set_cookies = []
            for path in ("/hub/login", "/hub/oauth_login"):
                set_cookies += c.get(f"{hub.public_url}{path}").headers.get_list("set-cookie")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the managed service starts after the hub
                page = c.get(f"{hub.public_url}/services/jobs/ui/", headers={"Accept": "text/html"})
                if page.status_code != 503:
                    break
                time.sleep(0.5)
            assert page.status_code == 302, page.text[:200]
            set_cookies += page.headers.get_list("set-cookie")
        names = {c.split("=", 1)[0] for c in set_cookies}
        assert {"_xsrf", "oauthenticator-state", "jobs-oauth-state"} <= names, names
        for cookie in set_cookies:
            assert "secure" in [a.strip().lower() for a in cookie.split(";")], cookie
    finally:
        hub.stop()


def test_jobs_metrics_need_a_token(pg_stack):
    pg, stack, tmp = pg_stack
    metrics_token = secrets.token_hex(16)
    hub = hub_for(stack, tmp / "hub3", JUPYTERHUB_METRICS_TOKEN=metrics_token, **pg.env())
    hub.start(timeout=90)
    try:
        url = f"{hub.public_url}/services/jobs/metrics"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            anonymous = httpx.get(url, timeout=10)
            if anonymous.status_code != 503:
                break
            time.sleep(0.5)
        assert anonymous.status_code == 401
        ok = httpx.get(url, headers={"Authorization": f"token {metrics_token}"}, timeout=10)
        assert ok.status_code == 200
        assert "valeria_job_submissions_total" in ok.text
    finally:
        hub.stop()


def test_idle_culler_stops_an_unused_server(pg_stack):
    pg, stack, tmp = pg_stack
    hub = hub_for(stack, tmp / "hub4", JUPYTERHUB_IDLE_TIMEOUT="4", **pg.env())
    hub.start(timeout=90)
    try:
        client = browser(hub, "bob")
        spawn(client, hub)
        assert progress_events(client, hub, "bob")[-1].get("ready")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not client.get(f"{hub.public_url}/hub/api/user").json().get("servers"):
                break
            time.sleep(1)
        else:
            raise AssertionError("the idle culler did not stop bob's server")
        assert "Culling server" in hub.log_text() or "culling" in hub.log_text().lower()
        below = descendants(hub.proc.pid)
        culler = [p for p in below if b"jupyterhub_idle_culler" in _cmdline(p)]
        assert culler, "the hub runs its idle culler"
    finally:
        # no time to stop its services itself (a loaded machine, a hub with many servers)
        hub.stop(timeout=0)
    # JupyterHub starts managed services in sessions of their own: stopping the hub must
    # still stop them, and the proxy (nothing a test starts outlives it)
    assert [pid for pid, started in below.items() if start_time(pid) == started] == []


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
