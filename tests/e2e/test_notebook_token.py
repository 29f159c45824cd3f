"""``valeria-hub token`` end to end: a real notebook of alice, spawned through the real hub
(repository config) on the stand-ins, runs the command with its own environment (its
JUPYTERHUB_API_TOKEN), also typed in its JupyterLab terminal with the notebook image's
own ``valeria-hub``; the hub hands out alice's Keycloak token and refreshes it, and
refuses everyone and everything else.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from devstack.hub import REPO_ROOT
from devstack.stack import DEMO_STORAGE
from tests.helpers.e2e import (
    browser,
    notebook_processes,
    progress_events,
    require_root,
    running_hub,
    running_stack,
    spawn,
    wait_for_lab,
)

pytestmark = pytest.mark.e2e

KEYS = {d.username: d for d in DEMO_STORAGE}
VALERIA_HUB = str(Path(sys.executable).parent / "valeria-hub")
NOTEBOOK_PYTHON = REPO_ROOT / ".venv-notebook" / "bin" / "python"
SCOPE = "custom:valeria:keycloak-token"
TOKEN_PATH = "/realms/valeria/protocol/openid-connect/token"


class Notebook:
    """Alice's running notebook server: its environment, and the tokens seen so far."""

    def __init__(self, stack, hub) -> None:
        self.stack, self.hub = stack, hub
        procs = notebook_processes("alice", hub)
        assert procs, "alice's notebook is not running"
        self.env = procs[0]["env"]
        self.api = self.env["JUPYTERHUB_API_URL"].rstrip("/")
        self.seen: set[str] = set()

    def command(self, *args: str, module: bool = False, **kwargs) -> subprocess.CompletedProcess:
        """``valeria-hub token ARGS`` with the notebook server's own environment."""
        argv = [sys.executable, "-m", "valeria_hub.token_client"] if module else [VALERIA_HUB]
        argv += [] if module else ["token"]
        proc = subprocess.run(
            [*argv, *args],
            env=kwargs.pop("env", self.env),
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/tmp",
            **kwargs,
        )
        if proc.returncode == 0:
            out = proc.stdout.strip()
            self.seen.add(json.loads(out)["access_token"] if out.startswith("{") else out)
        return proc

    def get(self, path: str, token: str, **params) -> httpx.Response:
        return httpx.get(
            f"{self.api}{path}",
            params=params,
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebook-token")
    with running_stack(tmp) as stack, running_hub(stack, tmp / "hub") as hub:
        client = browser(hub, "alice")
        assert spawn(client, hub).status_code == 200
        events = progress_events(client, hub, "alice")
        assert events[-1].get("ready"), [e.get("message") for e in events]
        wait_for_lab(client, hub, "alice")
        yield Notebook(stack, hub)


def service_token(hub, name: str) -> str:
    """The API token of the hub-managed service ``name``, from its process's environment."""
    api = hub.env["JUPYTERHUB_HUB_BIND_URL"]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if env.get("JUPYTERHUB_SERVICE_NAME") == name and env.get(
            "JUPYTERHUB_API_URL", ""
        ).startswith(api):
            return env["JUPYTERHUB_API_TOKEN"]
    raise AssertionError(f"no process of the {name} service")


def refresh_calls(stack) -> int:
    kc = stack.keycloak
    return kc.call(kc.token_counts).get("refresh_token", {}).get("jupyterhub", 0)


def own_token(client: httpx.Client, hub_url: str, user: str, scopes: list[str] | None) -> str:
    """A hub API token made with the user's login cookie, as the token page does."""
    body: dict = {"note": "notebook token tests", "expires_in": 3600}
    if scopes is not None:
        body["scopes"] = scopes
    xsrf = client.cookies.get("_xsrf", path="/hub/") or ""
    resp = client.post(
        f"{hub_url}/hub/api/users/{user}/tokens",
        json=body,
        headers={"X-XSRFToken": xsrf, "Referer": f"{hub_url}/hub/token"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["token"]


def test_the_notebook_gets_alices_own_keycloak_token(env):
    nb = env
    sub = nb.stack.keycloak.call(lambda: nb.stack.keycloak.realm.find_login("alice").id)

    proc = nb.command()
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert proc.stdout == token + "\n" and proc.stderr == ""
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == sub
    assert claims["preferred_username"] == "alice"
    assert claims["exp"] - time.time() >= 60  # the default --min-validity

    proc = nb.command("--json", "--min-validity", "30")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert set(answer) == {"access_token", "access_token_expires_at", "expires_in"}
    assert answer["access_token"] == token  # fresh enough: no refresh, the same token
    assert 30 <= answer["expires_in"] <= 300
    assert abs(answer["access_token_expires_at"] - claims["exp"]) <= 2

    # what it is for: log in to Vault as alice and read her own secrets, not bob's
    vault = nb.stack.vault.url
    login = httpx.post(
        f"{vault}/v1/auth/jwt/login", json={"role": "valeria", "jwt": token}, timeout=10
    )
    assert login.status_code == 200, login.text
    auth = login.json()["auth"]
    assert auth["entity_id"] == nb.stack.entities["alice"]
    headers = {"X-Vault-Token": auth["client_token"]}
    own = httpx.get(
        f"{vault}/v1/valeria/data/users/{auth['entity_id']}/ceph", headers=headers, timeout=10
    )
    assert own.status_code == 200, own.text
    assert own.json()["data"]["data"]["AWS_ACCESS_KEY_ID"] == KEYS["alice"].s3_access_key
    bobs = f"{vault}/v1/valeria/data/users/{nb.stack.entities['bob']}/ceph"
    assert httpx.get(bobs, headers=headers, timeout=10).status_code == 403

    # as the notebook's own uid, with the notebook image's Python (httpx, no package
    # dependencies): the command needs nothing but the server's environment
    require_root("running the command as the notebook's uid")
    assert NOTEBOOK_PYTHON.exists(), "the notebook image's Python (.venv-notebook) is missing"
    uid = KEYS["alice"].uid
    proc = subprocess.run(
        [str(NOTEBOOK_PYTHON), "-m", "valeria_hub.token_client", "--json"],
        env={**nb.env, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        user=uid,
        group=uid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/tmp",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["access_token"] == token


def in_a_terminal(hub, user: str, token: str, command: str, marker: str) -> str:
    """``command`` typed into a new JupyterLab terminal of ``user``'s server, through the
    hub's proxy as the browser's terminal does; what the terminal showed up to ``marker``."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    base = f"{hub.public_url}/user/{user}"
    headers = {"Authorization": f"token {token}"}
    made = httpx.post(f"{base}/api/terminals", headers=headers, timeout=30)
    assert made.status_code == 200, made.text
    name = made.json()["name"]

    async def talk() -> str:
        url = f"{base.replace('http', 'ws', 1)}/terminals/websocket/{name}"
        conn = await asyncio.wait_for(websocket_connect(HTTPRequest(url, headers=headers)), 30)
        out = ""
        try:
            conn.write_message(json.dumps(["stdin", command + "\r"]))
            deadline = time.monotonic() + 60
            while marker not in out:
                message = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
                assert message is not None, f"the terminal closed: {out!r}"
                kind, *data = json.loads(message)
                if kind == "stdout":
                    out += data[0]
        finally:
            conn.close()
        return out

    try:
        return asyncio.run(talk())
    finally:
        httpx.delete(f"{base}/api/terminals/{name}", headers=headers, timeout=30)


def test_valeria_hub_token_in_the_notebooks_jupyterlab_terminal(env):
    """The notebook image's own ``valeria-hub`` (.venv-notebook, which holds the package
    without the hub's dependencies), typed in alice's JupyterLab terminal as in the demo:
    her token, as her uid, with nothing configured."""
    nb = env
    require_root("the notebook running as alice's uid")
    alice = browser(nb.hub, "alice")
    token = own_token(alice, nb.hub.public_url, "alice", None)
    alice.close()
    # the marker is computed by the shell: the terminal's echo of the line does not hold it
    line = (
        'echo "uid=$(id -u)"; command -v valeria-hub; valeria-hub token --json; echo "END-$((6*7))"'
    )
    shown = in_a_terminal(nb.hub, "alice", token, line, "END-42").replace("\r", "")
    assert f"uid={KEYS['alice'].uid}\n" in shown, shown
    assert f"{REPO_ROOT / '.venv-notebook' / 'bin' / 'valeria-hub'}\n" in shown, shown
    answer = json.loads(re.search(r'\{"access_token".*\}', shown).group(0))
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    sub = nb.stack.keycloak.call(lambda: nb.stack.keycloak.realm.find_login("alice").id)
    assert claims["sub"] == sub and claims["preferred_username"] == "alice"
    assert answer["expires_in"] >= 60
    # the image has none of the hub's dependencies: the command needs none
    image = REPO_ROOT / ".venv-notebook" / "bin" / "python"
    for module in ("hvac", "kubernetes_asyncio", "kubespawner"):
        found = subprocess.run(
            [str(image), "-c", f"import importlib.util as u; print(u.find_spec('{module}'))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert found.stdout.strip() == "None", (module, found.stdout, found.stderr)


def test_the_servers_token_reaches_no_one_else(env):
    nb = env
    bob = browser(nb.hub, "bob")  # bob is logged in: his tokens are in the hub
    bob.close()
    server_token = nb.env["JUPYTERHUB_API_TOKEN"]

    resp = nb.get("/valeria/users/bob/fresh-tokens", server_token)
    assert resp.status_code == 403, resp.text
    assert "belongs to the user alice" in resp.json()["message"]
    assert "access_token" not in resp.text

    # nor read users, their auth_state or the services' path
    assert nb.get("/users", server_token).status_code == 403
    assert nb.get("/users/bob", server_token).status_code in (403, 404)
    own = nb.get("/users/alice", server_token)
    assert own.status_code in (200, 403)
    assert "refresh_token" not in own.text and "auth_state" not in own.json()
    resp = httpx.post(
        f"{nb.api}/valeria/users/alice/fresh-tokens",
        headers={"Authorization": f"token {server_token}"},
        timeout=30,
    )
    assert resp.status_code == 403, resp.text

    # the command asked for another user (a tampered environment) is refused the same way
    proc = nb.command(env={**nb.env, "JUPYTERHUB_USER": "bob"})
    assert proc.returncode == 1
    assert "belongs to the user alice" in proc.stderr and proc.stdout == ""


def test_tokens_without_the_scope_and_other_peoples_tokens_are_refused(env):
    nb = env
    hub_url = nb.hub.public_url
    alice = browser(nb.hub, "alice")
    admin = browser(nb.hub, "admin")
    try:
        for scopes in (["read:users:name!user"], ["self"]):
            narrow = own_token(alice, hub_url, "alice", scopes)
            resp = nb.get("/valeria/users/alice/fresh-tokens", narrow)
            assert resp.status_code == 403, (scopes, resp.text)
            assert SCOPE in resp.json()["message"]
            proc = nb.command(env={**nb.env, "JUPYTERHUB_API_TOKEN": narrow})
            assert proc.returncode == 1 and SCOPE in proc.stderr

        # a hub admin's own full token: still only the admin's own Keycloak token
        admins = own_token(admin, hub_url, "admin", None)
        resp = nb.get("/valeria/users/alice/fresh-tokens", admins)
        assert resp.status_code == 403 and "belongs to the user admin" in resp.text
        resp = nb.get("/valeria/users/admin/fresh-tokens", admins)
        assert resp.status_code == 200
        assert resp.headers["cache-control"] == "no-store"
        claims = jwt.decode(resp.json()["access_token"], options={"verify_signature": False})
        assert claims["preferred_username"] == "admin"

        # the login cookie is not enough, even for a plain navigation (no XSRF check)
        resp = alice.get(f"{nb.api}/valeria/users/alice/fresh-tokens")
        assert resp.status_code == 403 and "login cookie is not accepted" in resp.text
        resp = alice.get(
            f"{hub_url}/hub/api/valeria/users/alice/fresh-tokens",
            headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin"},
        )
        assert resp.status_code == 403 and "access_token" not in resp.text

        # the jobs service may read auth_state (POST), but this path serves no service
        jobs = service_token(nb.hub, "jobs")
        resp = nb.get("/valeria/users/alice/fresh-tokens", jobs)
        assert resp.status_code == 403 and "belongs to the service jobs" in resp.text

        # alice's own full token (the token page's default) holds what alice holds
        full = own_token(alice, hub_url, "alice", None)
        proc = nb.command(env={**nb.env, "JUPYTERHUB_API_TOKEN": full})
        assert proc.returncode == 0, proc.stderr
        claims = jwt.decode(proc.stdout.strip(), options={"verify_signature": False})
        assert claims["preferred_username"] == "alice"
    finally:
        alice.close()
        admin.close()

    resp = nb.get("/valeria/users/alice/fresh-tokens", "not-a-hub-token")
    assert resp.status_code == 403
    proc = nb.command(env={**nb.env, "JUPYTERHUB_API_TOKEN": "not-a-hub-token"})
    assert proc.returncode == 1 and "invalid credentials" in proc.stderr
    assert (
        nb.get(
            "/valeria/users/alice/fresh-tokens", nb.env["JUPYTERHUB_API_TOKEN"], min_validity="nan"
        ).status_code
        == 400
    )


def test_the_hub_refreshes_a_token_close_to_expiry(env):
    nb = env
    kc = nb.stack.keycloak
    kc.call(kc.set_lifetimes, access_token_lifespan=20)
    try:
        browser(nb.hub, "alice").close()  # a new login: tokens that last 20 s
        proc = nb.command("--json", "--min-validity", "0", module=True)
        assert proc.returncode == 0, proc.stderr
        first = json.loads(proc.stdout)
        assert first["expires_in"] <= 20

        # more than half the lifetime cannot be promised without refreshing every time
        proc = nb.command("--min-validity", "15", module=True)
        assert proc.returncode == 1 and proc.stdout == ""
        assert "at most 10 s" in proc.stderr

        proc = nb.command("--json", "--min-validity", "0", module=True)
        current = json.loads(proc.stdout)
        time.sleep(max(0.0, current["access_token_expires_at"] - 7.5 - time.time()))
        before = refresh_calls(nb.stack)
        proc = nb.command("--json", "--min-validity", "8", module=True)
        assert proc.returncode == 0, proc.stderr
        fresh = json.loads(proc.stdout)
        assert refresh_calls(nb.stack) == before + 1  # the stand-in saw one refresh
        assert fresh["access_token"] != current["access_token"]
        assert fresh["expires_in"] >= 8
        assert fresh["access_token_expires_at"] > current["access_token_expires_at"]
        claims = jwt.decode(fresh["access_token"], options={"verify_signature": False})
        assert claims["preferred_username"] == "alice"

        # fresh enough now: the same token, no further refresh
        proc = nb.command("--json", "--min-validity", "8", module=True)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["access_token"] == fresh["access_token"]
        assert refresh_calls(nb.stack) == before + 1

        # Keycloak down when a refresh is needed: exit 3, and the token is not handed out
        time.sleep(max(0.0, fresh["access_token_expires_at"] - 7.5 - time.time()))
        fault = kc.faults.inject(TOKEN_PATH, status=503)
        try:
            proc = nb.command("--min-validity", "8", module=True)
        finally:
            kc.faults.remove(fault)
        assert fault.hits >= 1
        assert proc.returncode == 3 and proc.stdout == ""
        assert "cannot be reached" in proc.stderr
        proc = nb.command("--min-validity", "8", module=True)  # Keycloak is back
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() != fresh["access_token"]
    finally:
        kc.call(kc.set_lifetimes, access_token_lifespan=300)
        browser(nb.hub, "alice").close()  # back to 300-s tokens for the tests after


def test_after_logout_the_command_says_to_log_in_again(env):
    nb = env
    client = browser(nb.hub, "alice")
    resp = client.get(f"{nb.hub.public_url}/hub/logout")
    assert resp.status_code == 200 and resp.url.path == "/hub/login"
    client.close()

    proc = nb.command()
    assert proc.returncode == 1 and proc.stdout == ""
    assert "log in to the hub again" in proc.stderr
    resp = nb.get("/valeria/users/alice/fresh-tokens", nb.env["JUPYTERHUB_API_TOKEN"])
    assert resp.status_code == 401
    assert "access_token" not in resp.text

    # the notebook kept running: a new login is all it takes
    browser(nb.hub, "alice").close()
    proc = nb.command()
    assert proc.returncode == 0, proc.stderr

    # no token handed out ever reached the hub's log
    log = nb.hub.log_path.read_text(errors="replace")
    assert "200 GET /hub/api/valeria/users/alice/fresh-tokens" in log  # the right log
    assert "401 GET /hub/api/valeria/users/alice/fresh-tokens" in log
    assert nb.seen and not [t for t in nb.seen if t in log]
    assert nb.env["JUPYTERHUB_API_TOKEN"] not in log
