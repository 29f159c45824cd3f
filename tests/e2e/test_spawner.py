"""ValeriaSpawner end to end: the real hub (repository config), KeycloakAuthenticator,
Vault and Kubernetes stand-ins; notebooks run as local processes with the user's uid.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time

import pytest
from kubernetes_validate import validate

from devstack.stack import DEMO_STORAGE, NFS_EXPORT
from tests.helpers.e2e import (
    browser,
    notebook_processes,
    progress_events,
    require_root,
    running_hub,
    running_stack,
    spawn,
    stack_objects,
    wait_for_lab,
)

KEYS = {d.username: d for d in DEMO_STORAGE}
VALIDATE_VERSION = "1.31"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spawn-e2e")
    with running_stack(tmp) as stack, running_hub(stack, tmp / "hub") as hub:
        yield stack, hub


def secrets_of(username: str) -> list[str]:
    d = KEYS[username]
    return [d.s3_access_key, d.s3_secret_key]


def test_two_users_run_with_their_own_uid_storage_and_keys(env):
    stack, hub = env
    clients = {}
    for user in ("alice", "bob"):
        clients[user] = browser(hub, user)
        resp = spawn(clients[user], hub)
        assert resp.status_code == 200
        events = progress_events(clients[user], hub, user)
        messages = [e.get("message", "") for e in events]
        assert "Checking your identity" in messages
        assert "Fetching your storage credentials" in messages
        assert events[-1].get("ready"), messages
    for user in ("alice", "bob"):
        wait_for_lab(clients[user], hub, user)

    pods = {p["metadata"]["name"]: p for p in stack_objects(stack, "v1/pods", "default")}
    assert {"jupyter-alice", "jupyter-bob"} <= set(pods)
    ips = {pods[f"jupyter-{u}"]["status"]["podIP"] for u in ("alice", "bob")}
    assert len(ips) == 2 and all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)

    require_root("checking the notebook process's uid")
    for user in ("alice", "bob"):
        procs = notebook_processes(user, hub)
        assert procs, f"no notebook process for {user}"
        expected = KEYS[user]
        for proc in procs:
            assert proc["uid"] == expected.uid
            assert proc["env"]["AWS_ACCESS_KEY_ID"] == expected.s3_access_key
            assert proc["env"]["AWS_SECRET_ACCESS_KEY"] == expected.s3_secret_key
            assert proc["env"]["S3_ENDPOINT_URL"].startswith("http")
            assert proc["env"]["HOME"] == f"/home/{user}"
            assert proc["cwd"] == f"/home/{user}"


def test_notebook_writes_to_its_own_home_on_nfs(env):
    stack, hub = env
    client = browser(hub, "alice")
    if not notebook_processes("alice", hub):
        spawn(client, hub)
        progress_events(client, hub, "alice")
    wait_for_lab(client, hub, "alice")
    xsrf = client.cookies.get("_xsrf", path="/user/alice/")
    resp = client.put(
        f"{hub.public_url}/user/alice/api/contents/hello.txt",
        json={"type": "file", "format": "text", "content": "written by alice"},
        headers={"X-XSRFToken": xsrf or ""},
    )
    assert resp.status_code in (200, 201), resp.text
    on_nfs = stack.state_dir / "nfs" / "export" / "home" / "alice" / "hello.txt"
    assert on_nfs.read_text() == "written by alice"
    require_root("checking file ownership")
    assert on_nfs.stat().st_uid == KEYS["alice"].uid


def test_pod_and_secret_are_hardened_and_hold_no_secret_in_the_pod(env):
    stack, hub = env
    pods = {p["metadata"]["name"]: p for p in stack_objects(stack, "v1/pods", "default")}
    if "jupyter-bob" not in pods:
        client = browser(hub, "bob")
        spawn(client, hub)
        progress_events(client, hub, "bob")
        pods = {p["metadata"]["name"]: p for p in stack_objects(stack, "v1/pods", "default")}
    pod = pods["jupyter-bob"]
    text = json.dumps(pod)
    for value in secrets_of("bob") + secrets_of("alice"):
        assert value not in text
    spec = pod["spec"]
    assert spec["securityContext"]["runAsUser"] == KEYS["bob"].uid
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    container = spec["containers"][0]
    csc = container["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["runAsUser"] == KEYS["bob"].uid
    env_refs = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env_refs["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["key"] == "AWS_SECRET_ACCESS_KEY"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/home/bob"]["subPath"] == "home/bob"
    assert mounts["/scratch"]["subPath"] == "scratch/bob"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts["/home/bob"]["name"]]["nfs"]["path"] == "/export"

    secret_name = env_refs["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["name"]
    secret = stack.kube.call(stack.kube.store.get, "v1/secrets", "default", secret_name)
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded["AWS_ACCESS_KEY_ID"] == KEYS["bob"].s3_access_key
    owners = secret["metadata"].get("ownerReferences", [])
    assert owners and owners[0]["kind"] == "Pod" and owners[0]["uid"] == pod["metadata"]["uid"]
    # the objects as stored validate against the Kubernetes schema, strictly
    for obj in (pod, secret):
        validate(obj, VALIDATE_VERSION, strict=True)


def test_stop_removes_pod_and_secret(env):
    stack, hub = env
    client = browser(hub, "bob")
    if not any(p["metadata"]["name"] == "jupyter-bob" for p in stack_objects(stack, "v1/pods")):
        spawn(client, hub)
        progress_events(client, hub, "bob")
    token_page = client.get(f"{hub.public_url}/hub/home")
    assert token_page.status_code == 200
    xsrf = client.cookies.get("_xsrf", path="/hub/")
    resp = client.delete(
        f"{hub.public_url}/hub/api/users/bob/server",
        headers={"X-XSRFToken": xsrf or "", "Referer": f"{hub.public_url}/hub/home"},
    )
    assert resp.status_code in (202, 204), resp.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = [p["metadata"]["name"] for p in stack_objects(stack, "v1/pods")]
        secrets = [
            s["metadata"]["name"]
            for s in stack_objects(stack, "v1/secrets")
            if s["metadata"].get("labels", {}).get("component") == "s3-credentials"
            and "bob" in s["metadata"]["name"]
        ]
        if "jupyter-bob" not in names and not secrets:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"left behind: pods {names}, secrets {secrets}")
    assert not notebook_processes("bob", hub)


def test_unprovisioned_user_gets_a_clear_refusal_and_nothing_is_created(env):
    stack, hub = env
    client = browser(hub, "carol")
    before = {r: len(stack_objects(stack, r)) for r in ("v1/pods", "v1/secrets")}
    spawn(client, hub)
    events = progress_events(client, hub, "carol")
    assert events[-1].get("failed")
    assert "no storage identity yet" in events[-1]["message"]
    page = client.get(f"{hub.public_url}/hub/spawn-pending/carol")
    assert "no storage identity yet" in page.text
    assert page.status_code == 403
    after = {r: len(stack_objects(stack, r)) for r in ("v1/pods", "v1/secrets")}
    assert after == before
    assert not any("carol" in p["metadata"]["name"] for p in stack_objects(stack, "v1/pods"))


def test_vault_down_stops_the_spawn_and_the_next_spawn_works(env):
    stack, hub = env
    client = browser(hub, "alice")
    # make sure alice has no server
    xsrf = client.cookies.get("_xsrf", path="/hub/")
    client.delete(
        f"{hub.public_url}/hub/api/users/alice/server",
        headers={"X-XSRFToken": xsrf or "", "Referer": f"{hub.public_url}/hub/home"},
    )
    deadline = time.monotonic() + 60
    while notebook_processes("alice", hub) and time.monotonic() < deadline:
        time.sleep(0.5)
    fault = stack.vault.faults.inject("/v1/auth/jwt/login", status=503)
    try:
        spawn(client, hub)
        events = progress_events(client, hub, "alice")
        assert events[-1].get("failed")
        assert "not reachable" in events[-1]["message"]
        assert not [p for p in stack_objects(stack, "v1/pods") if "alice" in p["metadata"]["name"]]
    finally:
        stack.vault.faults.remove(fault)
    spawn(client, hub)
    events = progress_events(client, hub, "alice")
    assert events[-1].get("ready"), events[-1]
    wait_for_lab(client, hub, "alice")


def test_tampered_form_asking_for_more_is_refused(env):
    stack, hub = env
    client = browser(hub, "bob")
    form = client.get(f"{hub.public_url}/hub/spawn")
    assert form.status_code == 200 and "profile" in form.text
    resp = spawn(client, hub, {"profile": "scipy", "profile-option-scipy--size": "64-cpus"})
    assert resp.status_code == 400
    assert "size: &#39;64-cpus&#39; is not one of small, medium, large" in resp.text
    resp = spawn(client, hub, {"profile": "gpu-monster"})
    assert resp.status_code == 400
    assert "profile: &#39;gpu-monster&#39; is not one of" in resp.text
    assert not [
        p for p in stack_objects(stack, "v1/pods") if p["metadata"]["name"] == "jupyter-bob"
    ]


def test_an_entry_with_only_a_uid_runs_with_that_uid_as_its_group(env):
    """Entries of the original Valeria script hold only a uid: the pod must not run with
    the image's group (often 0), but with the uid as its gid (VaultIdentity.default_gid)."""
    stack, hub = env
    require_root("checking the notebook process gid")
    sub = stack.keycloak.call(lambda: stack.keycloak.realm.find_login("admin").id)
    stack.vault.call(
        stack.vault.provision_user, sub, "admin", 1004, None, "AKADMINLEGACY", "admin-legacy-sk"
    )
    export = stack.state_dir / "nfs" / NFS_EXPORT.lstrip("/")
    for top in ("home", "scratch"):
        (export / top / "admin").mkdir(parents=True, exist_ok=True)
        os.chown(export / top / "admin", 1004, 1004)
    client = browser(hub, "admin")
    assert spawn(client, hub).status_code == 200
    events = progress_events(client, hub, "admin")
    assert events[-1].get("ready"), [e.get("message") for e in events]
    pod = next(
        p
        for p in stack_objects(stack, "v1/pods", "default")
        if p["metadata"]["name"] == "jupyter-admin"
    )
    sc = pod["spec"]["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (1004, 1004, 1004)
    procs = notebook_processes("admin", hub)
    assert procs and all((p["uid"], p["gid"]) == (1004, 1004) for p in procs)


def test_a_hub_on_sqlite_keeps_a_write_ahead_log(env):
    """Without JUPYTERHUB_DATABASE_HOST the hub uses SQLite: in WAL mode its commits do
    not wait for the disk, which its event loop would wait for (valeria_hub.database)."""
    _, hub = env
    db = sqlite3.connect(hub.workdir / "jupyterhub.sqlite")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # the hub's own database, not an empty file
        assert db.execute("select name from sqlite_master where name = 'users'").fetchone()
    finally:
        db.close()
    assert (hub.workdir / "jupyterhub.sqlite-wal").exists()
