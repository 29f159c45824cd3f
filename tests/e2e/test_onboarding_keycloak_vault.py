"""A CSV of three users onboarded with ``valeria-hub users onboard`` into a Vault that
knows nobody yet; then each of them logs in to the real hub and spawns a notebook that
runs with the uid the CSV gave them."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from devstack.stack import NFS_EXPORT, DevStack
from tests.helpers.e2e import (
    browser,
    notebook_processes,
    progress_events,
    running_hub,
    spawn,
    stack_objects,
)
from valeria_hub.cli import main

USERS = {"alice": (23001, 33001), "bob": (23002, 33002), "carol": (23003, 33003)}


def secret_file(path, value):
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.e2e
def test_three_onboarded_users_spawn_with_their_uid(tmp_path, capsys, monkeypatch):
    for var in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "KEYCLOAK_CLIENT_SECRET", "VAULT_ADDR"):
        monkeypatch.delenv(var, raising=False)
    stack = DevStack(tmp_path / "state", kube_options={"strict_schema": True}, storage=[])
    with stack.serve_in_threads():
        vault = stack.vault
        role = httpx.get(
            f"{vault.url}/v1/auth/approle/role/valeria/role-id",
            headers={"X-Vault-Token": vault.root_token},
            timeout=10,
        ).json()["data"]["role_id"]
        secret_id = httpx.post(
            f"{vault.url}/v1/auth/approle/role/valeria/secret-id",
            headers={"X-Vault-Token": vault.root_token},
            timeout=10,
        ).json()["data"]["secret_id"]
        rows = ["username,keycloak_id,uid,gid,s3_access_key,s3_secret_file"]
        for user, (uid, gid) in USERS.items():
            secret_file(tmp_path / f"{user}.s3", f"{user}-e2e-secret-key")
            rows.append(f"{user},,{uid},{gid},AK{user.upper()},{user}.s3")
            # the operator creates the user's directories on the export with the account
            for top in ("home", "scratch"):
                path = stack.state_dir / "nfs" / NFS_EXPORT.lstrip("/") / top / user
                path.mkdir(parents=True, exist_ok=True)
                if os.geteuid() == 0:
                    os.chown(path, uid, gid)
                path.chmod(0o700)
        (tmp_path / "users.csv").write_text("\n".join(rows) + "\n")
        flags = [
            "--vault-url", vault.url,
            "--role-id-file", str(secret_file(tmp_path / "role-id", role)),
            "--secret-id-file", str(secret_file(tmp_path / "secret-id", secret_id)),
            "--keycloak-realm-url", stack.keycloak.issuer,
            "--keycloak-client-secret-file",
            str(secret_file(tmp_path / "kc", "demo-onboarding-secret")),
        ]  # fmt: skip
        code = main(["users", "onboard", "--from-csv", str(tmp_path / "users.csv"), "--format",
                     "json", *flags])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0, out
        assert {u["status"] for u in json.loads(out)["users"]} == {"created"}

        with running_hub(stack, tmp_path / "hub") as hub:
            for user in USERS:
                client = browser(hub, user)
                assert spawn(client, hub).status_code == 200
                events = progress_events(client, hub, user)
                assert events[-1].get("ready"), [e.get("message") for e in events]
                pod = next(
                    p
                    for p in stack_objects(stack, "v1/pods", "default")
                    if p["metadata"]["name"] == f"jupyter-{user}"
                )
                uid, gid = USERS[user]
                assert pod["spec"]["securityContext"]["runAsUser"] == uid
                assert pod["spec"]["securityContext"]["runAsGroup"] == gid
                if os.geteuid() == 0:
                    # only this hub's notebooks (other tests may run an "alice" too)
                    hub_port = hub.env["JUPYTERHUB_HUB_BIND_URL"].rsplit(":", 1)[1]
                    mine = [
                        p
                        for p in notebook_processes(user)
                        if f":{hub_port}/" in p["env"].get("JUPYTERHUB_API_URL", "")
                    ]
                    assert mine and {p["uid"] for p in mine} == {uid}
