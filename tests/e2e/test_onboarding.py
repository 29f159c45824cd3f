"""Onboarding: the pure planning, and ``valeria-hub users onboard|check`` against the
Vault stand-in (configured like seed 003, AppRole with the onboarding policy) and the
Keycloak stand-in (the ``valeria-onboarding`` service account looks user ids up).
Onboarded users then log in to Vault with their own Keycloak token and read their uid.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path

import httpx
import pytest

from devstack.keycloak import KeycloakStandIn
from devstack.vault import VaultStandIn, valeria_app_policy
from valeria_hub.cli import main
from valeria_hub.onboarding.plan import (
    META_FINGERPRINT,
    META_UID,
    InputError,
    UserRecord,
    VaultState,
    fingerprint,
    format_report,
    parse_csv,
    plan_user,
)
from valeria_hub.vault import VaultIdentity

ACCESSOR = "auth_jwt_1234"
PERMISSION_DENIED = {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}


# -- pure planning ------------------------------------------------------------------------
def record(uid: int = 2001, gid: int | None = 3001, secret: str = "s3cr3t-value") -> UserRecord:
    return UserRecord("alice", uid, "AKIAALICE", secret, gid=gid, keycloak_id="sub-a")


def entity(metadata: dict | None = None, aliases: list | None = None) -> dict:
    return {"id": "e-1", "name": "alice", "metadata": metadata, "aliases": aliases or []}


def onboarded_metadata(r: UserRecord) -> dict:
    return {
        META_UID: str(r.uid),
        "valeria_gid": str(r.gid or ""),
        "keycloak_username": r.username,
        "s3_access_key_id": r.s3_access_key,
        META_FINGERPRINT: fingerprint("e-1", r.s3_access_key, r.s3_secret_key),
    }


def test_plan_new_user_creates_everything():
    plan = plan_user(record(), "sub-a", VaultState(None, None, False, False, ACCESSOR))
    assert plan.status == "created"
    assert plan.create_entity and plan.create_alias and plan.write_uid and plan.write_ceph
    assert plan.metadata is not None


def test_plan_onboarded_user_is_unchanged():
    r = record()
    state = VaultState(entity(onboarded_metadata(r)), None, True, True, ACCESSOR)
    plan = plan_user(r, "sub-a", state)
    assert (plan.status, plan.writes, plan.changes) == ("unchanged", False, [])


def test_plan_refuses_a_uid_change_unless_forced():
    old = record(uid=2001)
    state = VaultState(entity(onboarded_metadata(old)), None, True, True, ACCESSOR)
    plan = plan_user(record(uid=2002), "sub-a", state)
    assert plan.status == "failed" and not plan.writes
    assert "2001" in plan.reason and "2002" in plan.reason and "--force" in plan.reason
    forced = plan_user(record(uid=2002), "sub-a", state, force=True)
    assert forced.status == "updated" and forced.write_uid and not forced.write_ceph
    assert forced.metadata[META_UID] == "2002"


def test_plan_refuses_a_gid_change_too():
    state = VaultState(entity(onboarded_metadata(record(gid=3001))), None, True, True, ACCESSOR)
    assert plan_user(record(gid=3009), "sub-a", state).status == "failed"


def test_plan_refuses_overwriting_a_uid_it_did_not_write():
    state = VaultState(entity({}), None, True, True, ACCESSOR)
    plan = plan_user(record(), "sub-a", state)
    assert plan.status == "failed" and "not by this tool" in plan.reason


def test_plan_rotates_s3_keys_without_force():
    old = record(secret="old-secret")
    state = VaultState(entity(onboarded_metadata(old)), None, True, True, ACCESSOR)
    plan = plan_user(record(secret="new-secret"), "sub-a", state)
    assert plan.status == "updated" and plan.write_ceph and not plan.write_uid


def test_plan_rewrites_a_deleted_secret():
    r = record()
    plan = plan_user(
        r, "sub-a", VaultState(entity(onboarded_metadata(r)), None, True, False, ACCESSOR)
    )
    assert plan.status == "updated" and plan.write_ceph and not plan.write_uid


def test_plan_adopts_an_entity_of_the_same_name_without_a_jwt_alias():
    named = entity({"team": "x"}, aliases=[{"mount_accessor": "auth_approle_1", "name": "r"}])
    plan = plan_user(record(), "sub-a", VaultState(None, named, False, False, ACCESSOR))
    assert plan.status == "created" and plan.create_alias and not plan.create_entity
    assert plan.metadata["team"] == "x"  # others' metadata is kept


def test_plan_refuses_an_entity_linked_to_another_keycloak_user():
    named = entity(aliases=[{"mount_accessor": ACCESSOR, "name": "sub-other"}])
    plan = plan_user(record(), "sub-a", VaultState(None, named, False, False, ACCESSOR))
    assert plan.status == "failed" and "sub-other" in plan.reason


def test_fingerprint_is_salted_by_entity():
    assert fingerprint("e-1", "AK", "s") != fingerprint("e-2", "AK", "s")
    assert "s3cr3t" not in fingerprint("e-1", "AK", "s3cr3t")


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def test_csv_parsing(tmp_path):
    write_secret(tmp_path / "a.key", "secret-a")
    text = (
        "username,keycloak_id,uid,gid,s3_access_key,s3_secret_file\n"
        "alice,,2001,3001,AKA,a.key\n"
        "bob,,0,,AKB,a.key\n"
        "carol,,2003,,AKC,missing.key\n"
        "alice,,2004,,AKD,a.key\n"
    )
    records, problems = parse_csv(text, tmp_path)
    assert [r.username for r in records] == ["alice"]
    assert records[0].s3_secret_key == "secret-a" and records[0].gid == 3001
    assert "secret-a" not in repr(records[0])
    why = dict(problems)
    assert "uid" in why["bob"] and "cannot read" in why["carol"] and "twice" in why["alice"]


def test_csv_refuses_secret_columns_and_world_readable_files(tmp_path):
    with pytest.raises(InputError, match="unknown columns"):
        parse_csv("username,uid,s3_access_key,s3_secret_key\nalice,1,AK,plain\n", tmp_path)
    with pytest.raises(InputError, match="missing columns"):
        parse_csv("username,uid\nalice,1\n", tmp_path)
    key = write_secret(tmp_path / "open.key", "x")
    key.chmod(0o644)
    _, problems = parse_csv(
        "username,uid,s3_access_key,s3_secret_file\nalice,1,AK,open.key\n", tmp_path
    )
    assert "world-readable" in problems[0][1]


def test_report_formats():
    plans = [plan_user(record(), "sub-a", VaultState(None, None, False, False, ACCESSOR))]
    table = format_report(plans)
    assert "alice" in table and "created" in table and "s3cr3t" not in table
    data = json.loads(format_report(plans, "json", dry_run=True))
    assert data["dry_run"] is True and data["summary"] == {"created": 1}


# -- against the stand-ins ------------------------------------------------------------------
class Env:
    """Vault and Keycloak stand-ins in threads, Vault set up like seed 003."""

    def __init__(self, vault: VaultStandIn, keycloak: KeycloakStandIn, tmp: Path) -> None:
        self.vault, self.keycloak, self.tmp = vault, keycloak, tmp
        info = vault.call(vault.configure_valeria, keycloak.issuer)
        self.jwt_accessor = info["jwt_accessor"]
        resp = httpx.post(
            f"{vault.url}/v1/auth/approle/role/{info['approle_role']}/secret-id",
            headers={"X-Vault-Token": vault.root_token},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        self.role_id_file = write_secret(tmp / "role-id", info["approle_role_id"])
        self.secret_id_file = write_secret(tmp / "secret-id", resp.json()["data"]["secret_id"])
        self.kc_secret_file = write_secret(tmp / "kc-secret", "demo-onboarding-secret")

    def flags(self, keycloak: bool = True) -> list[str]:
        out = [
            "--vault-url",
            self.vault.url,
            "--role-id-file",
            str(self.role_id_file),
            "--secret-id-file",
            str(self.secret_id_file),
        ]
        if keycloak:
            out += [
                "--keycloak-realm-url",
                self.keycloak.issuer,
                "--keycloak-client-secret-file",
                str(self.kc_secret_file),
            ]
        return out

    def user_id(self, username: str) -> str:
        return self.keycloak.realm.find_login(username).id

    def profile(self, username: str):
        """What the spawner gets: a Vault login with the user's own Keycloak token."""
        token = self.keycloak.call(self.keycloak.issue_tokens, username)["access_token"]
        identity = VaultIdentity(url=self.vault.url)
        profile, _ = asyncio.run(identity.fetch_profile(token, username))
        return profile

    def kv_version(self, entity_id: str, leaf: str) -> int:
        resp = httpx.get(
            f"{self.vault.url}/v1/valeria/metadata/users/{entity_id}/{leaf}",
            headers={"X-Vault-Token": self.vault.root_token},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]["current_version"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    # the command reads these; the developer's shell must not change the tests
    for var in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "KEYCLOAK_CLIENT_SECRET", "VAULT_ADDR"):
        monkeypatch.delenv(var, raising=False)
    for var in ("VAULT_URL", "KEYCLOAK_REALM_URL", "VAULT_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    vault, keycloak = VaultStandIn(), KeycloakStandIn()
    with keycloak.serve_in_thread(), vault.serve_in_thread():
        yield Env(vault, keycloak, tmp_path)


USERS = {"alice": (21001, 31001), "bob": (21002, 31002), "carol": (21003, None)}
KEYS = {u: (f"AK{u.upper()}0001", f"{u}-s3-secret-{u[::-1]}-key") for u in USERS}


def write_csv(env: Env, uids: dict = USERS, keys: dict = KEYS) -> Path:
    rows = ["username,keycloak_id,uid,gid,s3_access_key,s3_secret_file"]
    for user, (uid, gid) in uids.items():
        write_secret(env.tmp / f"{user}.s3", keys[user][1])
        kc_id = env.user_id(user) if user == "carol" else ""  # given, and checked
        rows.append(f"{user},{kc_id},{uid},{gid or ''},{keys[user][0]},{user}.s3")
    path = env.tmp / "users.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_csv_of_three_users_onboarded_and_each_reads_only_their_own(env, capsys):
    csv_path = write_csv(env)
    code, out = run(
        capsys, "users", "onboard", "--from-csv", str(csv_path), "--format", "json", *env.flags()
    )
    assert code == 0, out
    report = json.loads(out)
    assert {u["username"]: u["status"] for u in report["users"]} == dict.fromkeys(USERS, "created")
    for _, secret in KEYS.values():
        assert secret not in out
    for user, (uid, gid) in USERS.items():
        profile = env.profile(user)
        # no gid stored (carol): the uid is the group, never the image's group 0
        assert (profile.uid, profile.gid) == (uid, gid or uid)
        assert (profile.s3_access_key, profile.s3_secret_key) == KEYS[user]

    # the second run changes nothing, and says so
    entities = {u["username"]: u["entity_id"] for u in report["users"]}
    versions = {u: env.kv_version(e, "ceph") for u, e in entities.items()}
    code, out = run(capsys, "users", "onboard", "--from-csv", str(csv_path), *env.flags())
    assert code == 0, out
    assert out.count("unchanged") >= 3 and "3 unchanged" in out
    assert {u: env.kv_version(e, "ceph") for u, e in entities.items()} == versions


def test_the_onboarding_role_cannot_read_a_secret(env, capsys):
    code, out = run(
        capsys,
        "users",
        "onboard",
        "--from-csv",
        str(write_csv(env)),
        "--format",
        "json",
        *env.flags(),
    )
    assert code == 0, out
    entity_id = json.loads(out)["users"][0]["entity_id"]
    role_id, secret_id = (
        env.role_id_file.read_text().strip(),
        env.secret_id_file.read_text().strip(),
    )
    login = httpx.post(
        f"{env.vault.url}/v1/auth/approle/login",
        json={"role_id": role_id, "secret_id": secret_id},
        timeout=10,
    )
    token = login.json()["auth"]["client_token"]
    for leaf in ("uid", "ceph"):
        resp = httpx.get(
            f"{env.vault.url}/v1/valeria/data/users/{entity_id}/{leaf}",
            headers={"X-Vault-Token": token},
            timeout=10,
        )
        assert resp.status_code == 403 and resp.json() == PERMISSION_DENIED
    # seed 003's policy does not even allow KV metadata
    meta = httpx.get(
        f"{env.vault.url}/v1/valeria/metadata/users/{entity_id}/ceph",
        headers={"X-Vault-Token": token},
        timeout=10,
    )
    assert meta.status_code == 403 and meta.json() == PERMISSION_DENIED
    # nor anyone else's entity's path when guessed
    resp = httpx.get(
        f"{env.vault.url}/v1/valeria/data/users/{entity_id}/uid?version=1",
        headers={"X-Vault-Token": token},
        timeout=10,
    )
    assert resp.status_code == 403


def test_a_changed_uid_is_refused_unless_forced(env, capsys):
    csv_path = write_csv(env)
    assert run(capsys, "users", "onboard", "--from-csv", str(csv_path), *env.flags())[0] == 0
    changed = dict(USERS, bob=(29999, 31002))
    csv_path = write_csv(env, changed)
    code, out = run(capsys, "users", "onboard", "--from-csv", str(csv_path), *env.flags())
    assert code == 1 and "failed" in out and "--force" in out
    assert env.profile("bob").uid == USERS["bob"][0]
    code, out = run(
        capsys, "users", "onboard", "--from-csv", str(csv_path), "--force", *env.flags()
    )
    assert code == 0 and "updated" in out
    assert env.profile("bob").uid == 29999


def test_a_uid_stored_by_other_means_is_never_replaced_silently(env, capsys):
    """Seed 003's policy cannot read KV metadata and the tool has no record of a uid that
    the original Valeria script wrote: the write is check-and-set 0, so Vault refuses
    it instead of giving the person a new uid (their files belong to the old one)."""
    env.vault.call(
        env.vault.provision_user, env.user_id("bob"), "bob", 21002, 31002, "AKOLD", "old-secret"
    )
    changed = dict(USERS, bob=(29999, 31002))
    csv_path = write_csv(env, changed)
    code, out = run(capsys, "users", "onboard", "--from-csv", str(csv_path), *env.flags())
    assert code == 1 and "not by this tool" in out and "--force" in out
    assert env.profile("bob").uid == 21002
    code, out = run(
        capsys, "users", "onboard", "--from-csv", str(csv_path), "--force", *env.flags()
    )
    assert code == 0 and env.profile("bob").uid == 29999


def test_rotated_s3_keys_are_updated(env, capsys):
    assert run(capsys, "users", "onboard", "--from-csv", str(write_csv(env)), *env.flags())[0] == 0
    keys = dict(KEYS, alice=("AKALICE0002", "alice-rotated-secret"))
    code, out = run(
        capsys,
        "users",
        "onboard",
        "--from-csv",
        str(write_csv(env, keys=keys)),
        "--format",
        "json",
        *env.flags(),
    )
    assert code == 0
    status = {u["username"]: u["status"] for u in json.loads(out)["users"]}
    assert status == {"alice": "updated", "bob": "unchanged", "carol": "unchanged"}
    assert (env.profile("alice").s3_access_key, env.profile("alice").s3_secret_key) == keys["alice"]


def test_single_user_dry_run_and_check(env, capsys):
    secret = write_secret(env.tmp / "alice.s3", "alice-single-secret")
    args = ["--uid", "21001", "--s3-access-key", "AKALICE", "--s3-secret-file", str(secret)]
    code, out = run(capsys, "users", "check", "alice", *env.flags())
    assert code == 1 and "NOT provisioned" in out
    code, out = run(capsys, "users", "onboard", "alice", *args, "--dry-run", *env.flags())
    assert code == 0 and "dry run, nothing written" in out
    assert run(capsys, "users", "check", "alice", *env.flags())[0] == 1
    code, out = run(capsys, "users", "onboard", "alice", *args, *env.flags())
    assert code == 0 and "created" in out
    code, out = run(capsys, "users", "check", "alice", "--format", "json", *env.flags())
    assert code == 0, out
    result = json.loads(out)
    assert (
        result["provisioned"]
        and result["uid"] == 21001
        and result["keycloak_id"] == env.user_id("alice")
    )
    assert "alice-single-secret" not in out


def test_without_keycloak_the_id_is_required(env, capsys):
    secret = write_secret(env.tmp / "bob.s3", "bob-secret")
    args = ["--uid", "21002", "--s3-access-key", "AKBOB", "--s3-secret-file", str(secret)]
    code, out = run(capsys, "users", "onboard", "bob", *args, *env.flags(keycloak=False))
    assert code == 1 and "no keycloak_id" in out
    bob = env.user_id("bob")
    code, out = run(
        capsys, "users", "onboard", "bob", "--keycloak-id", bob, *args, *env.flags(keycloak=False)
    )
    assert code == 0, out
    assert env.profile("bob").uid == 21002


def test_unknown_users_and_mismatched_ids_fail_alone(env, capsys):
    uids = {"alice": (21001, None), "nobody": (21005, None)}
    keys = {"alice": KEYS["alice"], "nobody": ("AKNOBODY", "nobody-secret")}
    code, out = run(
        capsys, "users", "onboard", "--from-csv", str(write_csv(env, uids, keys)), *env.flags()
    )
    assert code == 1
    assert "no user named 'nobody'" in out and "1 created" in out
    secret = write_secret(env.tmp / "x.s3", "x-secret")
    code, out = run(
        capsys, "users", "onboard", "alice", "--keycloak-id", env.user_id("bob"), "--uid", "1",
        "--s3-access-key", "AK", "--s3-secret-file", str(secret), *env.flags(),
    )  # fmt: skip
    assert code == 1 and "belongs to 'bob'" in out


def test_bad_credentials_are_reported_without_secrets(env, capsys):
    wrong = write_secret(env.tmp / "wrong", "not-the-secret-id")
    flags = env.flags()
    flags[flags.index("--secret-id-file") + 1] = str(wrong)
    code, out = run(capsys, "users", "check", "alice", *flags)
    assert code == 1 and "AppRole login" in out and "not-the-secret-id" not in out
    write_secret(env.kc_secret_file, "wrong-kc-secret")
    code, out = run(capsys, "users", "check", "alice", *env.flags())
    assert code == 1 and "onboarding client" in out and "wrong-kc-secret" not in out
    code, out = run(capsys, "users", "check", "alice", "--vault-url", env.vault.url)
    assert code == 2 and "VAULT_ROLE_ID" in out


def test_with_metadata_read_a_deleted_secret_is_noticed(env, capsys):
    """The README's policy adds read on KV metadata: check and onboard then verify in KV."""
    extra = 'path "valeria/metadata/users/*" {\n  capabilities = ["read"]\n}\n'
    env.vault.call(env.vault.model.put_policy, "valeria_app", valeria_app_policy("valeria") + extra)
    csv_path = write_csv(env)
    code, out = run(
        capsys, "users", "onboard", "--from-csv", str(csv_path), "--format", "json", *env.flags()
    )
    assert code == 0, out
    entity_id = json.loads(out)["users"][1]["entity_id"]  # bob
    code, out = run(capsys, "users", "check", "bob", "--format", "json", *env.flags())
    assert code == 0 and json.loads(out)["verified_in_kv"] is True
    resp = httpx.delete(
        f"{env.vault.url}/v1/valeria/data/users/{entity_id}/ceph",
        headers={"X-Vault-Token": env.vault.root_token},
        timeout=10,
    )
    assert resp.status_code == 204
    code, out = run(capsys, "users", "check", "bob", "--format", "json", *env.flags())
    assert code == 1 and json.loads(out)["s3_secret"] is False
    code, out = run(
        capsys, "users", "onboard", "--from-csv", str(csv_path), "--format", "json", *env.flags()
    )
    status = {u["username"]: u["status"] for u in json.loads(out)["users"]}
    assert status == {"alice": "unchanged", "bob": "updated", "carol": "unchanged"}
    assert env.profile("bob").s3_secret_key == KEYS["bob"][1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_slow_or_sealed_vault_is_one_clear_line(env, capsys):
    flags = env.flags()
    flags[flags.index("--vault-url") + 1] = f"http://127.0.0.1:{free_port()}"
    code, out = run(capsys, "users", "check", "alice", *flags)
    assert code == 1
    assert out == "valeria-hub users check: Vault is unreachable (AppRole login: ConnectionError)\n"
    # (answered late with an error: a login that completes late would leave a token)
    env.vault.faults.inject("/v1/auth/approle/login", delay=3, status=504, times=1)
    code, out = run(capsys, "users", "check", "alice", "--timeout", "0.5", *env.flags())
    assert code == 1
    assert out == "valeria-hub users check: Vault did not answer in time (AppRole login)\n"
    # a connection dropped after login: the token is still revoked
    env.vault.faults.inject("/v1/identity/lookup/entity", drop=True, times=1)
    code, out = run(capsys, "users", "check", "alice", *env.flags())
    assert code == 1 and out.count("\n") == 1
    assert "Vault is unreachable (looking up the entity by its JWT alias" in out
    env.vault.seal()
    try:
        code, out = run(capsys, "users", "check", "alice", *env.flags())
    finally:
        env.vault.unseal()
    assert (code, out) == (1, "valeria-hub users check: AppRole login: HTTP 503: Vault is sealed\n")
    assert [t for t in env.vault.live_tokens() if not t["root"]] == []


def test_a_policy_refusal_gives_vaults_message_never_the_token(env, capsys, monkeypatch):
    issued: list[str] = []
    login_token = env.vault.model.login_token

    def remember(*args, **kwargs):
        token = login_token(*args, **kwargs)
        issued.append(token.id)
        return token

    monkeypatch.setattr(env.vault.model, "login_token", remember)
    # this AppRole may no longer write the user secrets
    policy = valeria_app_policy("valeria").replace('"valeria/data/users/*"', '"valeria/data/x/*"')
    env.vault.call(env.vault.model.put_policy, "valeria_app", policy)
    code, out = run(
        capsys,
        "users",
        "onboard",
        "--from-csv",
        str(write_csv(env)),
        "--format",
        "json",
        *env.flags(),
    )
    assert code == 1
    for user in json.loads(out)["users"]:
        assert user["status"] == "failed"
        assert re.fullmatch(
            r"writing users/[0-9a-f-]+/uid: HTTP 403: permission denied", user["reason"]
        ), user
    code, check_out = run(capsys, "users", "check", "alice", *env.flags())
    assert code == 1 and "NOT provisioned" in check_out
    assert len(issued) == 2
    for token in issued:
        assert token not in out and token not in check_out
    # both AppRole tokens were revoked when the command ended
    assert [t for t in env.vault.live_tokens() if not t["root"]] == []


def test_onboarding_reads_kv_metadata_only(env, capsys):
    """Even with read on KV metadata, the command never asks for a secret's data."""
    extra = 'path "valeria/metadata/users/*" {\n  capabilities = ["read"]\n}\n'
    env.vault.call(env.vault.model.put_policy, "valeria_app", valeria_app_policy("valeria") + extra)
    env.vault.reset_counters()
    csv_path = write_csv(env)
    for _ in range(2):
        assert run(capsys, "users", "onboard", "--from-csv", str(csv_path), *env.flags())[0] == 0
    assert run(capsys, "users", "check", "bob", *env.flags())[0] == 0
    kv = [key for key in env.vault.counters() if " valeria/" in key]
    assert any(k.startswith("GET valeria/metadata/users/") for k in kv), kv
    assert any(k.startswith("POST valeria/data/users/") for k in kv), kv
    assert all(
        k.startswith(("GET valeria/metadata/users/", "POST valeria/data/users/")) for k in kv
    ), kv


def vault_root(env: Env, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{env.vault.url}/v1/{path}",
        json=body,
        headers={"X-Vault-Token": env.vault.root_token},
        timeout=10,
    )


def test_an_entity_with_policies_is_never_adopted(env, capsys):
    """An entity named like the person but carrying policies (an admin's, say) must not
    become that person's: linking their Keycloak login to it would hand them its rights."""
    made = vault_root(
        env, "POST", "identity/entity", {"name": "carol", "policies": ["vault-admin"]}
    )
    assert made.status_code == 200, made.text
    entity_id = made.json()["data"]["id"]
    code, out = run(capsys, "users", "onboard", "--from-csv", str(write_csv(env)), *env.flags())
    assert code == 1 and "has policies (vault-admin)" in out
    entity = vault_root(env, "GET", f"identity/entity/id/{entity_id}").json()["data"]
    assert entity["aliases"] == [] and entity["policies"] == ["vault-admin"]
    assert env.profile("alice").uid == USERS["alice"][0]  # the others were onboarded


def test_one_uid_is_never_given_to_two_people_in_one_run(env, capsys):
    clash = dict(USERS, bob=(USERS["alice"][0], 31002))
    code, out = run(
        capsys,
        "users",
        "onboard",
        "--from-csv",
        str(write_csv(env, clash)),
        "--format",
        "json",
        *env.flags(),
    )
    assert code == 1
    status = {u["username"]: (u["status"], u["reason"]) for u in json.loads(out)["users"]}
    assert status["alice"][0] == "created" and status["carol"][0] == "created"
    assert status["bob"] == (
        "failed",
        f"uid {USERS['alice'][0]} is given to 'alice' in this run already",
    )
    assert vault_root(env, "LIST", "identity/entity/name").json()["data"]["keys"].count("bob") == 0


def test_check_says_cannot_verify_for_people_onboarded_by_other_means(env, capsys):
    """Seed 003's policy cannot read KV metadata; a person provisioned by the original
    Valeria script spawns fine, and check must not call them "NOT provisioned"."""
    env.vault.call(
        env.vault.provision_user, env.user_id("bob"), "bob", 21002, 31002, "AKOLDBOB", "old-bob"
    )
    assert env.profile("bob").uid == 21002  # what the spawner gets: they are provisioned
    code, out = run(capsys, "users", "check", "bob", *env.flags())
    assert code == 3, out
    assert "bob: cannot verify" in out and "NOT provisioned" not in out
    code, out = run(capsys, "users", "check", "bob", "--format", "json", *env.flags())
    assert code == 3 and json.loads(out)["provisioned"] is None
