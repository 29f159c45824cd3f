"""One realm file for both servers: ``realm-valeria.json`` read by the stand-in and by Keycloak.

The reader (``from_representation``) is checked on its own, fast; then the stand-in and
the real server, given the same file, must agree on the claims the hub and Vault read.
"""

from __future__ import annotations

import copy
import json

import httpx
import jwt
import pytest

from devstack.keycloak import DEMO_REALM, KeycloakStandIn
from devstack.keycloak.model import Realm, from_representation, load_definition
from tests.helpers.auth_hub import CLIENT_SECRET

USERS = ("alice", "bob", "carol", "admin")
# What the authenticator, the access rules and Vault's jwt role read from an access token.
COMPARED = ("sub", "typ", "azp", "preferred_username", "email", "email_verified", "name",
            "given_name", "family_name", "resource_access", "acr")  # fmt: skip


def representation() -> dict:
    return json.loads(DEMO_REALM.read_text())


def test_the_demo_realm_is_keycloaks_export_format_with_hub_url_placeholders():
    assert DEMO_REALM.name == "realm-valeria.json"
    default = Realm(load_definition(DEMO_REALM))
    hub = default.clients["jupyterhub"]
    assert hub.redirect_uris == ["http://127.0.0.1:8000/*", "http://localhost:8000/*"]
    assert hub.backchannel_logout_url == "http://127.0.0.1:8000/hub/backchannel-logout"
    assert hub.audiences == ["vault-valeria"] and hub.pkce_method == "S256"
    assert hub.post_logout_redirect_uris == ["+"] and hub.direct_access_grants
    assert default.clients["vault-valeria"].bearer_only
    onboarding = default.clients["valeria-onboarding"]
    assert onboarding.service_accounts and not onboarding.standard_flow
    assert onboarding.service_account_client_roles == {"realm-management": ["view-users"]}
    assert default.settings.revoke_refresh_token and default.settings.groups_full_path
    assert default.users["admin"].realm_roles == ["hub-user", "hub-admin"]
    assert default.users["alice"].groups == ["/researchers", "/team-a"]
    assert default.users["alice"].password == "alice"

    moved = Realm(load_definition(DEMO_REALM, {"HUB_URL": "http://127.0.0.1:9999"}))
    assert moved.clients["jupyterhub"].redirect_uris[0] == "http://127.0.0.1:9999/*"
    assert moved.clients["jupyterhub"].backchannel_logout_url == (
        "http://127.0.0.1:9999/hub/backchannel-logout"
    )


@pytest.mark.parametrize(
    "change, refused",
    [
        (lambda r: r["clients"][0]["attributes"].update(
            {"client.use.lightweight.access.token.enabled": "true"}), "lightweight"),
        (lambda r: r["clients"][0]["protocolMappers"][0].update(
            protocolMapper="oidc-hardcoded-claim-mapper"), "oidc-hardcoded-claim-mapper"),
        (lambda r: r["clients"][0]["protocolMappers"][1]["config"].update(
            {"id.token.claim": "false"}), "groups claim"),
        (lambda r: r["users"][0]["realmRoles"].append("hub-owner"), "hub-owner"),
        (lambda r: r["users"][0].update(requiredActions=["UPDATE_PASSWORD"]), "requiredActions"),
        (lambda r: r.update(clientScopes=[]), "clientScopes"),
        (lambda r: r["clients"][0].update(redirectUris=["${NOWHERE}/*"]), "NOWHERE"),
    ],
)  # fmt: skip
def test_the_reader_refuses_what_the_stand_in_cannot_model(change, refused):
    """A realm file whose meaning the stand-in would drop must not load silently."""
    rep = copy.deepcopy(representation())
    change(rep)
    with pytest.raises(ValueError, match=refused):
        Realm(from_representation(rep))


@pytest.mark.keycloak
def test_stand_in_and_keycloak_agree_on_the_demo_users_tokens(real_keycloak):
    def claims(issuer: str, username: str) -> dict:
        resp = httpx.post(
            f"{issuer}/protocol/openid-connect/token",
            data={"grant_type": "password", "username": username, "password": username},
            auth=("jupyterhub", CLIENT_SECRET),
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return jwt.decode(resp.json()["access_token"], options={"verify_signature": False})

    stand_in = KeycloakStandIn()
    with stand_in.serve_in_thread():
        for username in USERS:
            fake, real = claims(stand_in.issuer, username), claims(real_keycloak.issuer, username)
            for key in COMPARED:
                assert fake.get(key) == real.get(key), (username, key)
            assert sorted(fake["aud"]) == sorted(real["aud"]), username
            # Keycloak's groups mapper leaves the claim out for a user in no group; the
            # stand-in sends [] (a known difference, harmless to the authenticator)
            assert fake["groups"] == real.get("groups", []), username
            fake_roles, real_roles = fake["realm_access"]["roles"], real["realm_access"]["roles"]
            assert sorted(fake_roles) == sorted(real_roles), username
            assert set(fake["scope"].split()) == set(real["scope"].split()), username
