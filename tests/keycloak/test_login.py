"""Login against Keycloak's own server: discovery, keys, the realm file, its login page.

The stand-in's tests show the authenticator meets our idea of Keycloak; these show it
meets Keycloak: the realm file imported by the real server, tokens shaped by its own
audience and group mappers, and its own login form posted as a browser posts it.
"""

from __future__ import annotations

import httpx
import pytest

from devstack.keycloak.real import KeycloakServer
from tests.helpers.auth_hub import CLIENT_SECRET, api_user
from tests.helpers.real_keycloak import admin_client, browser_client, login, page_form
from valeria_hub.auth.oidc import RealmClient

pytestmark = pytest.mark.keycloak

ONBOARDING_SECRET = "demo-onboarding-secret"


def password_grant(server: KeycloakServer, username: str) -> dict:
    resp = httpx.post(
        f"{server.issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": username,
            "scope": "openid",
        },
        auth=("jupyterhub", CLIENT_SECRET),
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert "id_token" in resp.json()
    return resp.json()


async def test_discovery_keys_and_tokens_through_the_realm_client(real_keycloak):
    realm = RealmClient(real_keycloak.issuer, timeout=30)
    try:
        meta = await realm.metadata()
        assert meta.issuer == real_keycloak.issuer == f"{real_keycloak.base_url}/realms/valeria"
        endpoints = f"{real_keycloak.issuer}/protocol/openid-connect"
        assert meta.token_endpoint == f"{endpoints}/token"
        assert meta.jwks_uri == f"{endpoints}/certs"
        assert meta.end_session_endpoint == f"{endpoints}/logout"

        body = password_grant(real_keycloak, "alice")
        claims = await realm.validate_tokens(body, "jupyterhub")
        assert claims["azp"] == "jupyterhub"
        assert claims["aud"] == ["vault-valeria", "account"]
        assert claims["preferred_username"] == "alice"
        assert claims["groups"] == ["/researchers", "/team-a"]
        assert {"hub-user", "default-roles-valeria"} <= set(claims["realm_access"]["roles"])
        assert "hub-admin" not in claims["realm_access"]["roles"]
        # what Vault's jwt role checks: the same token, its audience vault-valeria
        assert (await realm.decode(body["access_token"], audience="vault-valeria"))["sub"] == (
            "0b6a7c2e-1f3d-4c5a-9e8b-a11ce0000001"
        )
    finally:
        await realm.aclose()


def test_the_realm_file_is_imported_with_the_hub_url(real_keycloak, keycloak_hub_url):
    with admin_client(real_keycloak) as admin:
        [hub] = admin.get("/clients", params={"clientId": "jupyterhub"}).json()
        # Keycloak keeps redirect URIs as a set: their order is not part of the answer
        assert sorted(hub["redirectUris"]) == sorted(
            [f"{keycloak_hub_url}/*", "http://localhost:8000/*"]
        )
        attrs = hub["attributes"]
        assert attrs["backchannel.logout.url"] == f"{keycloak_hub_url}/hub/backchannel-logout"
        assert attrs["post.logout.redirect.uris"] == "+"
        assert attrs["pkce.code.challenge.method"] == "S256"
        [vault] = admin.get("/clients", params={"clientId": "vault-valeria"}).json()
        assert vault["bearerOnly"] is True
        groups = admin.get("/groups").json()
        assert sorted(g["path"] for g in groups) == ["/researchers", "/students", "/team-a"]

    # the onboarding client's service account may look users up (realm-management view-users)
    token = httpx.post(
        f"{real_keycloak.issuer}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials"},
        auth=("valeria-onboarding", ONBOARDING_SECRET),
        timeout=30,
    ).json()["access_token"]
    found = httpx.get(
        f"{real_keycloak.admin_url}/users",
        params={"username": "carol", "exact": "true"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert found.status_code == 200, found.text
    assert [u["id"] for u in found.json()] == ["0b6a7c2e-1f3d-4c5a-9e8b-ca7010000003"]


async def test_login_through_keycloak_login_page(real_keycloak, keycloak_hub):
    hub_url = keycloak_hub.public_url
    with browser_client() as browser:
        page = browser.get(f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"})
        assert page.url.host == "127.0.0.1" and page.url.port == real_keycloak.http_port
        action, fields = page_form(page.text)
        assert action.startswith(f"{real_keycloak.issuer}/login-actions/authenticate?")
        wrong = browser.post(action, data={**fields, "username": "alice", "password": "nope"})
        assert wrong.status_code == 200 and "Invalid username or password." in wrong.text
        action, fields = page_form(wrong.text)
        resp = browser.post(action, data={**fields, "username": "alice", "password": "alice"})
        assert resp.status_code == 200 and resp.url.path == "/hub/home", resp.text[:500]
        me = browser.get(
            f"{hub_url}/hub/api/user", headers={"X-XSRFToken": browser.cookies.get("_xsrf", "")}
        )
        assert me.status_code == 200, me.text
        assert me.json()["name"] == "alice"
        assert sorted(me.json()["groups"]) == ["researchers", "team-a"]
        assert me.json()["admin"] is False

    state = api_user(hub_url, "alice")["auth_state"]
    assert state["oauth_user"]["preferred_username"] == "alice"
    realm = RealmClient(real_keycloak.issuer, timeout=30)
    try:
        claims = await realm.validate_tokens(state["token_response"], "jupyterhub")
    finally:
        await realm.aclose()
    assert "vault-valeria" in claims["aud"] and claims["azp"] == "jupyterhub"
    assert claims["sub"] == "0b6a7c2e-1f3d-4c5a-9e8b-a11ce0000001"

    with browser_client() as browser:
        assert login(browser, hub_url, "admin").url.path == "/hub/home"
    admin = api_user(hub_url, "admin")
    assert admin["admin"] is True and admin["groups"] == []
    with browser_client() as browser:
        assert login(browser, hub_url, "carol").url.path == "/hub/home"
    assert api_user(hub_url, "carol")["groups"] == ["students"]
