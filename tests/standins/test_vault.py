"""The Vault stand-in through hvac (the real client) over real HTTP.

A tiny OIDC issuer lives in this module (discovery document + JWKS, RS256 tokens made
with PyJWT), so these tests do not depend on the Keycloak stand-in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import hvac
import hvac.exceptions as hx
import jwt
import pytest
import requests
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.server import StandIn
from devstack.vault import VaultStandIn
from devstack.vault.errors import ACL_DENIED, INVALID_TOKEN

ROOT = "root-token-for-tests"
AUD = "vault-valeria"
TIMEOUT = 10


# ---------------------------------------------------------------------- mini issuer
class MiniIssuer(StandIn):
    """Serves an OIDC discovery document and a JWKS; signs RS256 tokens."""

    name = "mini-issuer"

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        super().__init__()
        self.key = key
        self.kid = "k1"
        self.issuer_override: str | None = None

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/valeria"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/realms/valeria/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/realms/valeria/certs", self._jwks)

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer_override or self.issuer,
                "jwks_uri": f"{self.issuer}/certs",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return web.json_response({"keys": [jwk]})

    def token(self, sub: str = "sub-alice", key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "sub": sub,
            "aud": [AUD, "account"],
            "iat": now,
            "exp": now + 300,
            "preferred_username": sub.removeprefix("sub-"),
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer(rsa_key: rsa.RSAPrivateKey) -> Iterator[MiniIssuer]:
    idp = MiniIssuer(rsa_key)
    with idp.serve_in_thread():
        yield idp


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    s = VaultStandIn(root_token=ROOT)
    with s.serve_in_thread():
        yield s


@pytest.fixture
def root(vault: VaultStandIn) -> hvac.Client:
    return hvac.Client(url=vault.url, token=ROOT, timeout=TIMEOUT)


@pytest.fixture
def valeria(vault: VaultStandIn, issuer: MiniIssuer) -> dict[str, Any]:
    issuer.issuer_override = None
    return vault.call(vault.configure_valeria, issuer.issuer)


def client(vault: VaultStandIn, token: str | None = None) -> hvac.Client:
    return hvac.Client(url=vault.url, token=token, timeout=TIMEOUT)


def login(vault: VaultStandIn, jwt_token: str, role: str = "valeria") -> dict[str, Any]:
    return client(vault).auth.jwt.jwt_login(role=role, jwt=jwt_token, use_token=False)


# --------------------------------------------------------------------------- health
def test_health_get_head_and_sealed(vault: VaultStandIn, root: hvac.Client) -> None:
    body = root.sys.read_health_status(method="GET")
    assert body["initialized"] is True and body["sealed"] is False and body["standby"] is False
    head = root.sys.read_health_status(method="HEAD")
    assert head.status_code == 200 and head.text == ""

    vault.seal()
    sealed = root.sys.read_health_status(method="GET")
    assert sealed.status_code == 503 and sealed.json()["sealed"] is True
    assert root.sys.read_health_status(method="GET", sealed_code=200)["sealed"] is True
    with pytest.raises(hx.VaultDown) as err:
        root.secrets.kv.v2.read_secret_version("x", raise_on_deleted_version=True)
    assert err.value.errors == ["Vault is sealed"]

    requests.post(f"{vault.url}/_control/vault/unseal", timeout=TIMEOUT).raise_for_status()
    assert root.sys.read_health_status(method="GET")["sealed"] is False


# ---------------------------------------------------------------- mounts, auth, policy
def test_enable_mounts_and_auth_methods_through_hvac(root: hvac.Client) -> None:
    root.sys.enable_secrets_engine("kv", path="valeria", options={"version": "2"})
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["valeria/"]["type"] == "kv"
    assert mounts["valeria/"]["options"] == {"version": "2"}
    assert "secret/" in mounts and "sys/" in mounts
    with pytest.raises(hx.InvalidRequest) as err:
        root.sys.enable_secrets_engine("kv", path="valeria", options={"version": "2"})
    assert err.value.errors == ["path is already in use at valeria/"]

    root.sys.enable_auth_method("jwt")
    root.sys.enable_auth_method("approle")
    methods = root.sys.list_auth_methods()["data"]
    assert set(methods) == {"token/", "jwt/", "approle/"}
    assert re.fullmatch(r"auth_jwt_[0-9a-f]{8}", methods["jwt/"]["accessor"])
    assert re.fullmatch(r"auth_approle_[0-9a-f]{8}", methods["approle/"]["accessor"])
    with pytest.raises(hx.InvalidRequest):
        root.sys.enable_auth_method("jwt")
    with pytest.raises(hx.InvalidRequest) as err:
        root.sys.enable_auth_method("no-such-plugin", path="x")
    assert err.value.errors == ["plugin not found in the catalog: no-such-plugin"]
    root.sys.disable_auth_method("approle")
    assert "approle/" not in root.sys.list_auth_methods()["data"]


HCL = """
# Valeria users: their own secrets only.
path "valeria/data/users/{{identity.entity.id}}/*" {
  capabilities = ["create", "update", "read", "delete"]  // inline comment
}
/* the metadata path, fixed */
path "valeria/metadata/users/{{identity.entity.id}}/*" {
  capabilities = ["list"]
}
"""


def test_policies_written_as_hcl_through_hvac(root: hvac.Client) -> None:
    root.sys.create_or_update_policy("valeria", HCL)
    assert root.sys.read_policy("valeria")["data"]["rules"] == HCL
    assert {"default", "root", "valeria"} <= set(root.sys.list_policies()["data"]["policies"])

    root.sys.create_or_update_acl_policy("json-one", {"path": {"kv/*": {"capabilities": ["read"]}}})
    assert "json-one" in root.sys.list_acl_policies()["data"]["keys"]
    assert '"kv/*"' in root.sys.read_acl_policy("json-one")["data"]["policy"]

    with pytest.raises(hx.InvalidRequest) as err:
        root.sys.create_or_update_policy("broken", 'path "a" { capabilities = ["reed"] }')
    assert err.value.errors[0].startswith("failed to parse policy:")
    with pytest.raises(hx.InvalidRequest):
        root.sys.delete_policy("default")
    root.sys.delete_policy("json-one")
    with pytest.raises(hx.InvalidPath):
        root.sys.read_acl_policy("json-one")


# ------------------------------------------------------------------------------ jwt
def test_jwt_config_and_roles_through_hvac(root: hvac.Client, issuer: MiniIssuer) -> None:
    issuer.issuer_override = None
    root.sys.enable_auth_method("jwt")
    root.auth.jwt.configure(oidc_discovery_url=issuer.issuer, default_role="valeria")
    assert root.auth.jwt.read_config()["data"]["oidc_discovery_url"] == issuer.issuer

    root.auth.jwt.create_role(
        "valeria",
        user_claim="sub",
        allowed_redirect_uris=None,
        role_type="jwt",
        bound_audiences=[AUD],
        token_policies=["valeria"],
        token_ttl="1h",
    )
    role = root.auth.jwt.read_role("valeria")["data"]
    assert role["role_type"] == "jwt" and role["bound_audiences"] == [AUD]
    assert role["token_ttl"] == 3600 and role["clock_skew_leeway"] == 60

    # Vault's default role_type is oidc, which needs redirect URIs ...
    with pytest.raises(hx.InvalidRequest) as err:
        root.write("auth/jwt/role/implicit", user_claim="sub", bound_audiences=AUD)
    assert err.value.errors == [
        "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified."
    ]
    # ... and a jwt role needs at least one bound constraint.
    with pytest.raises(hx.InvalidRequest) as err:
        root.write("auth/jwt/role/loose", user_claim="sub", role_type="jwt")
    assert err.value.errors == [
        "must have at least one bound constraint when creating/updating a role"
    ]


def test_discovery_issuer_must_equal_the_discovery_url(
    root: hvac.Client, vault: VaultStandIn, issuer: MiniIssuer
) -> None:
    root.sys.enable_auth_method("jwt")
    issuer.issuer_override = issuer.issuer + "/"  # differs by one character
    try:
        with pytest.raises(hx.InvalidRequest) as err:
            root.auth.jwt.configure(oidc_discovery_url=issuer.issuer)
    finally:
        issuer.issuer_override = None
    assert err.value.errors == [
        "error checking oidc discovery URL: issuer did not match the returned issuer, "
        f'expected "{issuer.issuer}" got "{issuer.issuer}/"'
    ]
    with pytest.raises(hx.InvalidRequest) as err:
        login(vault, issuer.token())
    assert err.value.errors == ["could not load configuration"]


def test_jwt_login_creates_entity_once_and_reuses_it(
    vault: VaultStandIn, valeria: dict[str, Any], issuer: MiniIssuer, root: hvac.Client
) -> None:
    vault.reset_counters()
    first = login(vault, issuer.token("sub-alice"))["auth"]
    second = login(vault, issuer.token("sub-alice"))["auth"]
    assert first["entity_id"] and first["entity_id"] == second["entity_id"]
    assert first["client_token"] != second["client_token"]
    assert first["client_token"].startswith("hvs.")
    assert first["policies"] == ["default", "valeria"]
    assert first["token_policies"] == ["default", "valeria"]
    assert first["metadata"] == {"role": "valeria"}
    assert first["token_type"] == "service" and first["orphan"] is True
    assert first["renewable"] is True and 3500 < first["lease_duration"] <= 3600
    assert vault.request_count("auth/jwt/login") == 2

    entity = root.secrets.identity.read_entity(first["entity_id"])["data"]
    assert [(a["name"], a["mount_accessor"]) for a in entity["aliases"]] == [
        ("sub-alice", valeria["jwt_accessor"])
    ]
    other = login(vault, issuer.token("sub-bob"))["auth"]
    assert other["entity_id"] != first["entity_id"]


def test_jwt_login_accepts_clock_skew_within_leeway(
    vault: VaultStandIn, valeria: dict[str, Any], issuer: MiniIssuer
) -> None:
    now = int(time.time())
    auth = login(vault, issuer.token(exp=now - 30, iat=now - 400))["auth"]
    assert auth["client_token"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "wrong-signature",
            "error validating token: error verifying token signature: "
            "failed to verify id token signature",
        ),
        (
            "expired",
            "error validating token: invalid expiration time (exp) claim: token is expired",
        ),
        (
            "wrong-audience",
            "error validating token: invalid audience (aud) claim: "
            "audience claim does not match any expected audience",
        ),
        (
            "no-audience",
            "error validating token: invalid audience (aud) claim: "
            "audience claim does not match any expected audience",
        ),
        (
            "not-yet-valid",
            "error validating token: invalid not before (nbf) claim: token not yet valid",
        ),
        ("unknown-role", 'role "nope" could not be found'),
        ("oidc-role", "role with oidc role_type is not allowed"),
        (
            "garbage",
            "error validating token: error verifying token signature: oidc: malformed jwt: "
            "compact JWS format must have three parts",
        ),
    ],
)
def test_jwt_login_refusals(
    case: str,
    message: str,
    vault: VaultStandIn,
    valeria: dict[str, Any],
    issuer: MiniIssuer,
    other_key: rsa.RSAPrivateKey,
    root: hvac.Client,
) -> None:
    now = int(time.time())
    role = "valeria"
    token = {
        "wrong-signature": lambda: issuer.token(key=other_key),
        "expired": lambda: issuer.token(exp=now - 600, iat=now - 900),
        "wrong-audience": lambda: issuer.token(aud="someone-else"),
        "no-audience": lambda: issuer.token(aud=None),
        "not-yet-valid": lambda: issuer.token(nbf=now + 600, iat=now),
        "unknown-role": lambda: issuer.token(),
        "oidc-role": lambda: issuer.token(),
        "garbage": lambda: "not-a-jwt",
    }[case]()
    if case == "unknown-role":
        role = "nope"
    if case == "oidc-role":
        root.write(
            "auth/jwt/role/browser",
            user_claim="sub",
            bound_audiences=AUD,
            allowed_redirect_uris="http://localhost:8250/oidc/callback",
        )
        role = "browser"
    with pytest.raises(hx.InvalidRequest) as err:
        login(vault, token, role=role)
    assert err.value.errors == [message]
    assert token not in (err.value.text or "")
    assert not vault.model.entities, "a refused login must not create an entity"


def test_jwt_with_static_keys_bound_claims_and_claim_mappings(
    vault: VaultStandIn,
    root: hvac.Client,
    rsa_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    issuer: MiniIssuer,
) -> None:
    pem = (
        rsa_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    root.sys.enable_auth_method("jwt", path="jwt-static")
    root.auth.jwt.configure(
        jwt_validation_pubkeys=[pem], bound_issuer=issuer.issuer, path="jwt-static"
    )
    root.auth.jwt.create_role(
        "team",
        user_claim="sub",
        allowed_redirect_uris=None,
        role_type="jwt",
        bound_audiences=[AUD],
        bound_claims={"groups": ["/team-a"]},
        claim_mappings={"preferred_username": "username"},
        token_policies=["team"],
        path="jwt-static",
    )

    def go(token: str) -> dict[str, Any]:
        return client(vault).auth.jwt.jwt_login("team", token, use_token=False, path="jwt-static")

    auth = go(issuer.token("sub-frank", groups=["/team-a", "/other"]))["auth"]
    assert auth["metadata"] == {"role": "team", "username": "frank"}
    alias = root.secrets.identity.read_entity(auth["entity_id"])["data"]["aliases"][0]
    assert alias["metadata"] == {"username": "frank"}

    cases = [
        (
            issuer.token("sub-frank", groups=["/team-b"]),
            'error validating claims: claim "groups" does not match any associated '
            "bound claim values",
        ),
        (issuer.token("sub-frank"), 'error validating claims: claim "groups" is missing'),
        (
            issuer.token("sub-frank", key=other_key, groups=["/team-a"]),
            "error validating token: error verifying token signature: "
            "no known key successfully validated the token signature",
        ),
        (
            issuer.token("sub-frank", iss="https://elsewhere", groups=["/team-a"]),
            "error validating token: invalid issuer (iss) claim",
        ),
    ]
    for token, message in cases:
        with pytest.raises(hx.InvalidRequest) as err:
            go(token)
        assert err.value.errors == [message]


# ---------------------------------------------------------------------------- tokens
def test_token_self_service_and_revoked_token(
    vault: VaultStandIn, valeria: dict[str, Any], issuer: MiniIssuer
) -> None:
    auth = login(vault, issuer.token())["auth"]
    user = client(vault, auth["client_token"])
    me = user.auth.token.lookup_self()["data"]
    assert me["entity_id"] == auth["entity_id"] and me["policies"] == ["default", "valeria"]
    assert me["meta"] == {"role": "valeria"} and me["type"] == "service"

    renewed = user.auth.token.renew_self(increment="30m")["auth"]
    assert 1700 < renewed["lease_duration"] <= 1800

    # Authorization: Bearer is accepted like X-Vault-Token.
    r = requests.get(
        f"{vault.url}/v1/auth/token/lookup-self",
        headers={"Authorization": f"Bearer {auth['client_token']}"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"

    revoked = user.auth.token.revoke_self()
    assert revoked.status_code == 204
    with pytest.raises(hx.Forbidden) as err:
        user.auth.token.lookup_self()
    assert err.value.errors == [INVALID_TOKEN]
    assert not user.is_authenticated()

    with pytest.raises(hx.Forbidden) as err:
        client(vault).auth.token.lookup_self()
    assert err.value.errors == ["permission denied"]


def test_token_lookup_and_create_need_authorization(
    vault: VaultStandIn, valeria: dict[str, Any], issuer: MiniIssuer, root: hvac.Client
) -> None:
    auth = login(vault, issuer.token())["auth"]
    user = client(vault, auth["client_token"])
    with pytest.raises(hx.Forbidden) as err:
        user.auth.token.create(policies=["valeria"])
    assert err.value.errors == [ACL_DENIED]

    looked = root.auth.token.lookup(auth["client_token"])["data"]
    assert looked["accessor"] == auth["accessor"]
    with pytest.raises(hx.Forbidden) as err:
        root.auth.token.lookup("hvs.doesnotexist")
    assert err.value.errors == ["bad token"]

    root.sys.create_or_update_policy(
        "minter", 'path "auth/token/create" { capabilities = ["update"] }'
    )
    minter = client(
        vault, root.auth.token.create(policies=["minter"], ttl="10m")["auth"]["client_token"]
    )
    with pytest.raises(hx.InvalidRequest) as err:
        minter.auth.token.create(policies=["valeria"])
    assert err.value.errors == ["child policies must be subset of parent"]
    child = minter.auth.token.create(policies=["minter"], ttl="1m")["auth"]
    assert child["policies"] == ["default", "minter"] and child["orphan"] is False


def test_limited_use_and_expired_tokens() -> None:
    now = [1_000_000.0]
    s = VaultStandIn(root_token=ROOT, clock=lambda: now[0])
    with s.serve_in_thread():
        once = client(s, s.create_token(["default"], num_uses=1))
        assert once.auth.token.lookup_self()["data"]["num_uses"] == 0
        with pytest.raises(hx.Forbidden) as err:
            once.auth.token.lookup_self()
        assert err.value.errors == [INVALID_TOKEN]

        short = client(s, s.create_token(["default"], ttl=10))
        assert short.auth.token.lookup_self()["data"]["ttl"] == 10
        now[0] += 11
        with pytest.raises(hx.Forbidden) as err:
            short.auth.token.lookup_self()
        assert err.value.errors == [INVALID_TOKEN]


# ------------------------------------------------------------------------------- kv
def test_kv_v2_versions_cas_delete_and_metadata(vault: VaultStandIn, root: hvac.Client) -> None:
    kv = root.secrets.kv.v2
    root.sys.enable_secrets_engine("kv", path="valeria", options={"version": "2"})
    assert (
        kv.create_or_update_secret("team/app", {"a": "1"}, mount_point="valeria")["data"]["version"]
        == 1
    )
    kv.create_or_update_secret("team/app", {"a": "2"}, cas=1, mount_point="valeria")
    kv.create_or_update_secret("team/sub/deep", {"x": "y"}, mount_point="valeria")

    latest = kv.read_secret_version(
        "team/app", mount_point="valeria", raise_on_deleted_version=True
    )
    assert latest["data"]["data"] == {"a": "2"} and latest["data"]["metadata"]["version"] == 2
    v1 = kv.read_secret_version(
        "team/app", version=1, mount_point="valeria", raise_on_deleted_version=True
    )
    assert v1["data"]["data"] == {"a": "1"}

    with pytest.raises(hx.InvalidRequest) as err:
        kv.create_or_update_secret("team/app", {"a": "secret-value"}, cas=1, mount_point="valeria")
    assert err.value.errors == ["check-and-set parameter did not match the current version"]
    assert "secret-value" not in err.value.text
    with pytest.raises(hx.InvalidRequest):
        kv.create_or_update_secret("team/app", {"a": "3"}, cas=0, mount_point="valeria")
    kv.create_or_update_secret("team/new", {"a": "1"}, cas=0, mount_point="valeria")

    meta = kv.read_secret_metadata("team/app", mount_point="valeria")["data"]
    assert meta["current_version"] == 2 and set(meta["versions"]) == {"1", "2"}
    assert kv.list_secrets("team", mount_point="valeria")["data"]["keys"] == ["app", "new", "sub/"]

    assert kv.delete_latest_version_of_secret("team/app", mount_point="valeria").status_code == 204
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("team/app", mount_point="valeria", raise_on_deleted_version=True)
    deleted = kv.read_secret_version(
        "team/app", mount_point="valeria", raise_on_deleted_version=False
    )
    assert deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"]
    kv.undelete_secret_versions("team/app", versions=[2], mount_point="valeria")
    assert kv.read_secret_version("team/app", mount_point="valeria", raise_on_deleted_version=True)[
        "data"
    ]["data"] == {"a": "2"}
    kv.destroy_secret_versions("team/app", versions=[1], mount_point="valeria")
    meta = kv.read_secret_metadata("team/app", mount_point="valeria")["data"]
    assert meta["versions"]["1"]["destroyed"] is True

    # A missing secret is 404 with an empty error list, as JSON.
    r = requests.get(
        f"{vault.url}/v1/valeria/data/team/missing",
        headers={"X-Vault-Token": ROOT},
        timeout=TIMEOUT,
    )
    assert r.status_code == 404 and r.json() == {"errors": []}
    assert r.headers["Content-Type"] == "application/json"
    # LIST also works as GET ?list=true
    r = requests.get(
        f"{vault.url}/v1/valeria/metadata/team?list=true",
        headers={"X-Vault-Token": ROOT, "X-Vault-Request": "true"},
        timeout=TIMEOUT,
    )
    assert r.json()["data"]["keys"] == ["app", "new", "sub/"]

    kv.delete_metadata_and_all_versions("team/app", mount_point="valeria")
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_metadata("team/app", mount_point="valeria")

    kv.configure(max_versions=2, cas_required=True, mount_point="valeria")
    assert kv.read_configuration(mount_point="valeria")["data"]["max_versions"] == 2
    with pytest.raises(hx.InvalidRequest) as err:
        kv.create_or_update_secret("team/new", {"a": "2"}, mount_point="valeria")
    assert err.value.errors == ["check-and-set parameter required for this call"]
    kv.create_or_update_secret("team/new", {"a": "2"}, cas=1, mount_point="valeria")
    kv.create_or_update_secret("team/new", {"a": "3"}, cas=2, mount_point="valeria")
    meta = kv.read_secret_metadata("team/new", mount_point="valeria")["data"]
    assert sorted(meta["versions"]) == ["2", "3"] and meta["oldest_version"] == 2


# ------------------------------------------------------------------------------ ACL
def test_user_token_reads_only_its_own_secrets(
    vault: VaultStandIn, valeria: dict[str, Any], issuer: MiniIssuer
) -> None:
    alice_id = vault.provision_user(
        "sub-alice", "alice", 20001, 20001, "AKALICE", "alice-s3-secret"
    )
    bob_id = vault.provision_user("sub-bob", "bob", 20002, None, "AKBOB", "bob-s3-secret")
    auth = login(vault, issuer.token("sub-alice"))["auth"]
    assert auth["entity_id"] == alice_id, "login must land on the provisioned entity"
    kv = client(vault, auth["client_token"]).secrets.kv.v2

    uid = kv.read_secret_version(
        f"users/{alice_id}/uid", mount_point="valeria", raise_on_deleted_version=True
    )["data"]["data"]
    assert uid == {"uid": "20001", "gid": "20001"}
    ceph = kv.read_secret_version(
        f"users/{alice_id}/ceph", mount_point="valeria", raise_on_deleted_version=True
    )["data"]["data"]
    assert ceph == {"AWS_ACCESS_KEY_ID": "AKALICE", "AWS_SECRET_ACCESS_KEY": "alice-s3-secret"}
    assert kv.list_secrets(f"users/{alice_id}", mount_point="valeria")["data"]["keys"] == [
        "ceph",
        "uid",
    ]

    for path in (f"users/{bob_id}/ceph", f"users/{bob_id}/nonexistent", f"users/{alice_id}"):
        with pytest.raises(hx.Forbidden) as err:
            kv.read_secret_version(path, mount_point="valeria", raise_on_deleted_version=True)
        assert err.value.errors == [ACL_DENIED], path
    with pytest.raises(hx.Forbidden):
        kv.list_secrets(f"users/{bob_id}", mount_point="valeria")
    with pytest.raises(hx.Forbidden):
        kv.create_or_update_secret(f"users/{bob_id}/ceph", {"x": "y"}, mount_point="valeria")
    r = requests.get(
        f"{vault.url}/v1/valeria/data/users/{bob_id}/ceph",
        headers={"X-Vault-Token": auth["client_token"]},
        timeout=TIMEOUT,
    )
    assert r.status_code == 403
    assert r.text == json.dumps({"errors": ["1 error occurred:\n\t* permission denied\n\n"]})
    assert "bob-s3-secret" not in r.text


def test_onboarding_approle_writes_but_never_reads(
    vault: VaultStandIn, valeria: dict[str, Any], root: hvac.Client
) -> None:
    secret_id = root.auth.approle.generate_secret_id(valeria["approle_role"])["data"]["secret_id"]
    with pytest.raises(hx.InvalidRequest) as err:
        client(vault).auth.approle.login(valeria["approle_role_id"], "wrong-secret-id")
    assert err.value.errors == ["invalid role or secret ID"]
    app_auth = client(vault).auth.approle.login(valeria["approle_role_id"], secret_id)["auth"]
    assert app_auth["metadata"] == {"role_name": "valeria"}
    app = client(vault, app_auth["client_token"])
    ident = app.secrets.identity

    accessor = app.sys.list_auth_methods()["data"]["jwt/"]["accessor"]
    unknown = ident.lookup_entity(alias_name="sub-carol", alias_mount_accessor=accessor)
    assert unknown.status_code == 204
    entity_id = ident.create_or_update_entity(name="carol")["data"]["id"]
    ident.create_or_update_entity_alias(
        name="sub-carol", canonical_id=entity_id, mount_accessor=accessor
    )
    found = ident.lookup_entity(alias_name="sub-carol", alias_mount_accessor=accessor)
    assert found["data"]["id"] == entity_id

    kv = app.secrets.kv.v2
    kv.create_or_update_secret(f"users/{entity_id}/uid", {"uid": "20003"}, mount_point="valeria")
    kv.create_or_update_secret(f"users/{entity_id}/uid", {"uid": "20004"}, mount_point="valeria")
    for call in (
        lambda: kv.read_secret_version(
            f"users/{entity_id}/uid", mount_point="valeria", raise_on_deleted_version=True
        ),
        lambda: kv.list_secrets(f"users/{entity_id}", mount_point="valeria"),
        lambda: kv.read_secret_metadata(f"users/{entity_id}/uid", mount_point="valeria"),
        lambda: ident.read_entity(entity_id),
    ):
        with pytest.raises(hx.Forbidden) as err:
            call()
        assert err.value.errors == [ACL_DENIED]
    stored = root.secrets.kv.v2.read_secret_version(
        f"users/{entity_id}/uid", mount_point="valeria", raise_on_deleted_version=True
    )
    assert stored["data"]["data"] == {"uid": "20004"}


def test_create_versus_update_capability(vault: VaultStandIn, root: hvac.Client) -> None:
    root.sys.create_or_update_policy(
        "create-only", 'path "secret/data/*" { capabilities = ["create"] }'
    )
    tok = root.auth.token.create(policies=["create-only"])["auth"]["client_token"]
    kv = client(vault, tok).secrets.kv.v2
    kv.create_or_update_secret("fresh", {"a": "1"})
    with pytest.raises(hx.Forbidden) as err:
        kv.create_or_update_secret("fresh", {"a": "2"})
    assert err.value.errors == [ACL_DENIED]


# ------------------------------------------------------------------------- identity
def test_identity_entities_aliases_and_lookup(root: hvac.Client) -> None:
    root.sys.enable_auth_method("jwt")
    accessor = root.sys.list_auth_methods()["data"]["jwt/"]["accessor"]
    ident = root.secrets.identity
    created = ident.create_or_update_entity(name="dora", metadata={"team": "bio"})["data"]
    assert set(created) == {"id", "name", "aliases"} and created["name"] == "dora"
    again = ident.create_or_update_entity(name="dora", policies=["p1"])
    assert again.status_code == 204
    by_name = ident.read_entity_by_name("dora")["data"]
    assert by_name["id"] == created["id"] and by_name["policies"] == ["p1"]

    alias = ident.create_or_update_entity_alias("sub-dora", created["id"], accessor)["data"]
    assert alias["canonical_id"] == created["id"]
    assert ident.read_entity_alias(alias["id"])["data"]["mount_type"] == "jwt"
    assert ident.lookup_entity(name="dora")["data"]["id"] == created["id"]
    assert ident.lookup_entity(entity_id=created["id"])["data"]["name"] == "dora"
    assert ident.lookup_entity(name="nobody").status_code == 204
    with pytest.raises(hx.InvalidRequest):
        ident.create_or_update_entity_alias("sub-x", created["id"], "auth_nope_00000000")

    ident.delete_entity(created["id"])
    with pytest.raises(hx.InvalidPath):
        ident.read_entity(created["id"])
    with pytest.raises(hx.InvalidPath):
        ident.read_entity_alias(alias["id"])


# ------------------------------------------------------------------ protocol details
def test_methods_routes_and_bad_input(vault: VaultStandIn, root: hvac.Client) -> None:
    h = {"X-Vault-Token": ROOT}
    r = requests.put(f"{vault.url}/v1/sys/mounts", headers=h, timeout=TIMEOUT)
    assert r.status_code == 405
    r = requests.options(f"{vault.url}/v1/secret/data/x", headers=h, timeout=TIMEOUT)
    assert r.status_code == 405
    r = requests.post(f"{vault.url}/v1/secret/data/x", headers=h, data="{not json", timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["errors"][0].startswith("failed to parse JSON input")
    r = requests.get(f"{vault.url}/v1/nomount/data/x/y", headers=h, timeout=TIMEOUT)
    assert r.status_code == 404
    assert r.json() == {
        "errors": ['no handler for route "nomount/data/x/y". route entry not found.']
    }
    user = root.auth.token.create(policies=["default"])["auth"]["client_token"]
    r = requests.get(
        f"{vault.url}/v1/nomount/data/x/y", headers={"X-Vault-Token": user}, timeout=TIMEOUT
    )
    assert r.status_code == 403 and r.json() == {"errors": [ACL_DENIED]}
    # sys/auth/<path> is root-protected: sudo is needed, not just update.
    root.sys.create_or_update_policy(
        "auth-admin", 'path "sys/auth/*" { capabilities = ["update"] }'
    )
    admin = client(vault, root.auth.token.create(policies=["auth-admin"])["auth"]["client_token"])
    with pytest.raises(hx.Forbidden):
        admin.sys.enable_auth_method("approle")


def test_fault_injection_is_seen_by_hvac(vault: VaultStandIn, root: hvac.Client) -> None:
    root.secrets.kv.v2.create_or_update_secret("x", {"a": "1"})
    r = requests.post(
        f"{vault.url}/_control/faults",
        json={"path": "/v1/secret/data/x", "status": 503, "times": 1},
        timeout=TIMEOUT,
    )
    assert r.status_code == 201
    with pytest.raises(hx.VaultDown):
        root.secrets.kv.v2.read_secret_version("x", raise_on_deleted_version=True)
    assert root.secrets.kv.v2.read_secret_version("x", raise_on_deleted_version=True)["data"][
        "data"
    ]

    vault.faults.inject("/v1/secret/data/x", delay=1.0, times=1)
    slow = hvac.Client(url=vault.url, token=ROOT, timeout=0.3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        slow.secrets.kv.v2.read_secret_version("x", raise_on_deleted_version=True)


def test_control_http_endpoints(vault: VaultStandIn, issuer: MiniIssuer) -> None:
    issuer.issuer_override = None
    base = f"{vault.url}/_control/vault"
    r = requests.post(
        f"{base}/configure_valeria", json={"discovery_url": issuer.issuer}, timeout=TIMEOUT
    )
    assert r.status_code == 200 and r.json()["approle_role_id"]
    r = requests.post(
        f"{base}/provision_user",
        json={
            "sub": "sub-erin",
            "username": "erin",
            "uid": 20005,
            "s3_access_key": "AKERIN",
            "s3_secret_key": "erin-secret",
        },
        timeout=TIMEOUT,
    )
    entity_id = r.json()["entity_id"]
    auth = login(vault, issuer.token("sub-erin"))["auth"]
    assert auth["entity_id"] == entity_id

    counters = requests.get(f"{base}/counters", timeout=TIMEOUT).json()["counters"]
    assert counters["POST auth/jwt/login"] == 1
    requests.delete(f"{base}/counters", timeout=TIMEOUT)
    assert vault.request_count("auth/jwt/login") == 0

    tokens = requests.get(f"{base}/tokens", timeout=TIMEOUT).json()["tokens"]
    assert any(t["entity_id"] == entity_id for t in tokens)
    assert auth["client_token"] not in json.dumps(tokens), "token ids never leave the stand-in"
    r = requests.post(f"{base}/provision_user", json={"sub": "x", "bogus": 1}, timeout=TIMEOUT)
    assert r.status_code == 400
