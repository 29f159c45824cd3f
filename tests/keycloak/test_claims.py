"""What Keycloak's own tokens carry, and who accepts them: lightweight access tokens at
the hub, and the real access token at the Vault stand-in.

Each test makes its own user and puts back every client setting it changes.
"""

from __future__ import annotations

import asyncio

import httpx
import jwt
import pytest

from devstack.vault import VaultStandIn
from tests.helpers.auth_hub import api_user
from tests.helpers.real_keycloak import (
    SHORT_TOKENS,
    browser_client,
    client_changed,
    client_mapper,
    home,
    login,
    mapper_changed,
    new_user,
    signed_in,
    until_refresh_due,
)
from valeria_hub.vault import VaultError, VaultIdentity

pytestmark = pytest.mark.keycloak

LIGHTWEIGHT = {"client.use.lightweight.access.token.enabled": "true"}
# What the README asks for with lightweight access tokens: realm roles in the ID token.
ROLES_IN_ID_TOKEN = {
    "name": "realm roles in the ID token",
    "protocol": "openid-connect",
    "protocolMapper": "oidc-usermodel-realm-role-mapper",
    "config": {
        "claim.name": "realm_access.roles",
        "multivalued": "true",
        "jsonType.label": "String",
        "id.token.claim": "true",
        "access.token.claim": "true",
        "userinfo.token.claim": "true",
        "introspection.token.claim": "true",
    },
}


# What the README asks for so that Vault takes lightweight access tokens.
SUB_IN_LIGHTWEIGHT_TOKEN = {
    "name": "sub in the lightweight access token",
    "protocol": "openid-connect",
    "protocolMapper": "oidc-sub-mapper",
    "config": {
        "access.token.claim": "true",
        "lightweight.claim": "true",
        "introspection.token.claim": "true",
    },
}


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_lightweight_access_tokens_keep_login_username_roles_and_groups(
    admin, hub_url, keycloak_hub
):
    """Item 3f: "Always use lightweight access token" on the hub client. The access
    token then has no sub, username, groups or roles (and Keycloak refuses it at
    userinfo); the hub takes the person from the ID token of the same answer, at login
    and at every refresh, and still enforces the roles."""
    with (
        client_changed(admin, {**LIGHTWEIGHT, **SHORT_TOKENS}),
        client_mapper(admin, ROLES_IN_ID_TOKEN),
    ):
        name, user_id = new_user(admin, groups=("/researchers", "/team-a"))
        with browser_client() as browser:
            state = signed_in(browser, hub_url, name)
            access = claims_of(state["access_token"])
            for claim in ("sub", "preferred_username", "groups", "realm_access", "email"):
                assert claim not in access, claim  # really a lightweight token
            assert access["azp"] == "jupyterhub"
            user = api_user(hub_url, name)
            assert sorted(user["groups"]) == ["researchers", "team-a"] and user["admin"] is False
            assert state["oauth_user"]["sub"] == user_id == state["sub"]
            assert "hub-user" in state["oauth_user"]["realm_access"]["roles"]

            # a refresh brings lightweight tokens again: the hub reads the new ID token
            until_refresh_due(state)
            assert home(browser, hub_url).url.path == "/hub/home"
            renewed = api_user(hub_url, name)
            assert renewed["auth_state"]["refresh_token"] != state["refresh_token"]
            assert "preferred_username" not in claims_of(renewed["auth_state"]["access_token"])
            assert sorted(renewed["groups"]) == ["researchers", "team-a"]

        admin_name, _ = new_user(admin, roles=("hub-user", "hub-admin"), groups=())
        with browser_client() as browser:
            signed_in(browser, hub_url, admin_name)
        assert api_user(hub_url, admin_name)["admin"] is True

        outsider, _ = new_user(admin, roles=(), groups=("/researchers",))
        with browser_client() as browser:
            resp = login(browser, hub_url, outsider)
        assert resp.status_code == 403 and "not currently authorized" in resp.text

    # without roles in the ID token nobody gets in, and the log says why
    with client_changed(admin, LIGHTWEIGHT):
        name, _ = new_user(admin)
        with browser_client() as browser:
            resp = login(browser, hub_url, name)
        assert resp.status_code == 403
        assert f"The tokens of {name} carry no roles at all" in keycloak_hub.log_text()


def test_the_vault_stand_in_accepts_the_real_access_token(real_keycloak, admin, hub_url):
    """Item 3g: the Vault stand-in's jwt auth configured with Keycloak's own issuer
    (its discovery document and JWKS) takes the access token the hub got at a real
    login, through the code the spawner uses (VaultIdentity); a token without the
    vault-valeria audience and one signed by another realm are refused."""
    name, user_id = new_user(admin)
    with browser_client() as browser:
        state = signed_in(browser, hub_url, name)
    vault = VaultStandIn()
    with vault.serve_in_thread():
        config = vault.call(vault.configure_valeria, real_keycloak.issuer)
        assert config["mount"] == "valeria"
        entity = vault.call(
            vault.provision_user,
            sub=user_id,
            username=name,
            uid=24001,
            gid=24001,
            s3_access_key="AKIA-test",
            s3_secret_key="s3-secret-test",
        )
        identity = VaultIdentity(url=vault.url, timeout=30)
        profile, _ = asyncio.run(identity.fetch_profile(state["access_token"], name))
        assert (profile.entity_id, profile.uid, profile.gid) == (entity, 24001, 24001)
        assert profile.s3_access_key == "AKIA-test"

        # the onboarding client's service-account token: genuine, but not for Vault
        service = httpx.post(
            f"{real_keycloak.issuer}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials"},
            auth=("valeria-onboarding", "demo-onboarding-secret"),
            timeout=30,
        ).json()["access_token"]
        assert "vault-valeria" not in str(claims_of(service).get("aud"))
        with pytest.raises(VaultError) as refused:
            asyncio.run(identity.fetch_profile(service, name))
        assert refused.value.reason == "login_rejected"
        assert "invalid audience (aud) claim" in refused.value.message

        # a token of another realm on the same server (the master realm's admin)
        other = httpx.post(
            f"{real_keycloak.base_url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": real_keycloak.admin_user,
                "password": real_keycloak.admin_password,
            },
            timeout=30,
        ).json()["access_token"]
        with pytest.raises(VaultError) as refused:
            asyncio.run(identity.fetch_profile(other, name))
        assert refused.value.reason == "login_rejected"
        assert "signature" in refused.value.message


def test_vault_takes_lightweight_access_tokens_only_with_sub_and_aud_put_back(
    real_keycloak, admin, hub_url
):
    """The README's advice for lightweight access tokens, checked: as they come, Vault
    refuses them (no aud); with the audience mapper's "Add to lightweight access token"
    on and a sub mapper with it on, Vault takes them."""
    name, user_id = new_user(admin)
    vault = VaultStandIn()
    with (
        vault.serve_in_thread(),
        client_changed(admin, LIGHTWEIGHT),
        client_mapper(admin, ROLES_IN_ID_TOKEN),
    ):
        vault.call(vault.configure_valeria, real_keycloak.issuer)
        vault.call(
            vault.provision_user,
            sub=user_id,
            username=name,
            uid=24002,
            s3_access_key="AKIA-light",
            s3_secret_key="s3-secret-light",
        )
        identity = VaultIdentity(url=vault.url, timeout=30)
        with browser_client() as browser:
            bare = signed_in(browser, hub_url, name)["access_token"]
        assert "aud" not in claims_of(bare) and "sub" not in claims_of(bare)
        with pytest.raises(VaultError) as refused:
            asyncio.run(identity.fetch_profile(bare, name))
        assert "invalid audience (aud) claim" in refused.value.message

        with (
            mapper_changed(admin, "oidc-audience-mapper", {"lightweight.claim": "true"}),
            client_mapper(admin, SUB_IN_LIGHTWEIGHT_TOKEN),
            browser_client() as browser,
        ):
            token = signed_in(browser, hub_url, name)["access_token"]
            assert "preferred_username" not in claims_of(token)  # still lightweight
            profile, _ = asyncio.run(identity.fetch_profile(token, name))
            assert profile.uid == 24002
