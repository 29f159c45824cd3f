"""``valeria-hub users onboard|check`` with Keycloak's own admin API: the onboarding
client's service account (realm-management view-users, from the realm file) looks the
person up; Vault is the stand-in, configured with the real realm as its issuer. The
onboarded person then logs in to the hub and reaches their uid in Vault with the token
the hub got at that login.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import httpx
import pytest

from devstack.vault import VaultStandIn
from tests.helpers.real_keycloak import browser_client, checked, new_user, signed_in
from valeria_hub.cli import main
from valeria_hub.vault import VaultIdentity

pytestmark = pytest.mark.keycloak


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


@pytest.fixture
def vault(real_keycloak):
    stand_in = VaultStandIn()
    with stand_in.serve_in_thread():
        yield stand_in


@pytest.fixture
def flags(real_keycloak, vault, tmp_path, monkeypatch) -> list[str]:
    """The command's settings: AppRole files for Vault, the onboarding client for
    Keycloak (nothing from the developer's environment)."""
    for var in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "KEYCLOAK_CLIENT_SECRET", "VAULT_ADDR",
                "VAULT_URL", "KEYCLOAK_REALM_URL", "VAULT_NAMESPACE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    info = vault.call(vault.configure_valeria, real_keycloak.issuer)
    resp = httpx.post(
        f"{vault.url}/v1/auth/approle/role/{info['approle_role']}/secret-id",
        headers={"X-Vault-Token": vault.root_token},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return [
        "--vault-url", vault.url,
        "--role-id-file", str(secret_file(tmp_path / "role-id", info["approle_role_id"])),
        "--secret-id-file",
        str(secret_file(tmp_path / "secret-id", resp.json()["data"]["secret_id"])),
        "--keycloak-realm-url", real_keycloak.issuer,
        "--keycloak-client-secret-file",
        str(secret_file(tmp_path / "kc-secret", "demo-onboarding-secret")),
        "--timeout", "30",
    ]  # fmt: skip


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_onboard_and_check_through_the_real_admin_api(
    admin, hub_url, vault, flags, tmp_path, capsys
):
    name, user_id = new_user(admin)
    s3 = secret_file(tmp_path / "s3", "onboarded-s3-secret")
    args = ["--uid", "25001", "--gid", "35001", "--s3-access-key", "AKONBOARD"]
    code, out = run(
        capsys, "users", "onboard", name, *args, "--s3-secret-file", str(s3),
        "--format", "json", *flags,
    )  # fmt: skip
    assert code == 0, out
    [report] = json.loads(out)["users"]
    assert report["status"] == "created" and "onboarded-s3-secret" not in out

    code, out = run(capsys, "users", "check", name, "--format", "json", *flags)
    assert code == 0, out
    checked_user = json.loads(out)
    assert checked_user["provisioned"] is True and checked_user["keycloak_id"] == user_id
    assert checked_user["entity_id"] == report["entity_id"]

    with browser_client() as browser:
        token = signed_in(browser, hub_url, name)["access_token"]
    profile, _ = asyncio.run(VaultIdentity(url=vault.url, timeout=30).fetch_profile(token, name))
    assert (profile.uid, profile.gid, profile.s3_access_key) == (25001, 35001, "AKONBOARD")
    assert profile.s3_secret_key == "onboarded-s3-secret"


def test_onboarding_refusals_from_the_real_admin_api(admin, flags, tmp_path, capsys):
    name, _ = new_user(admin)
    other, other_id = new_user(admin)
    s3 = secret_file(tmp_path / "s3", "x-secret")
    args = ["--uid", "25002", "--s3-access-key", "AKX", "--s3-secret-file", str(s3)]
    code, out = run(capsys, "users", "onboard", "nobody-here", *args, *flags)
    assert code == 1 and "Keycloak has no user named 'nobody-here'" in out
    code, out = run(capsys, "users", "onboard", name, "--keycloak-id", other_id, *args, *flags)
    assert code == 1 and f"belongs to '{other}'" in out

    # the service account without realm-management view-users: the message says so
    [account] = checked(
        admin.get("/users", params={"username": "service-account-valeria-onboarding"})
    ).json()
    [rm] = checked(admin.get("/clients", params={"clientId": "realm-management"})).json()
    mapping = f"/users/{account['id']}/role-mappings/clients/{rm['id']}"
    roles = [r for r in checked(admin.get(mapping)).json() if r["name"] == "view-users"]
    checked(admin.request("DELETE", mapping, json=roles))
    try:
        code, out = run(capsys, "users", "check", name, *flags)
    finally:
        checked(admin.post(mapping, json=roles))
    assert code == 1 and "needs realm-management view-users" in out, out

    wrong = flags.index("--keycloak-client-secret-file") + 1
    flags[wrong] = str(secret_file(tmp_path / "wrong", "not-the-onboarding-secret"))
    code, out = run(capsys, "users", "check", name, *flags)
    assert code == 1 and "refused the onboarding client 'valeria-onboarding'" in out
    assert "not-the-onboarding-secret" not in out
