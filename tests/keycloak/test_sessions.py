"""Sessions against Keycloak's own server: refresh, the ways a session ends, and users
who lose access, each through the hub's real code path (a JupyterHub process with
KeycloakAuthenticator, a browser-like client on Keycloak's real login page, Keycloak's
admin REST API to act as an administrator would).

Keycloak is shared by the whole test session: each test makes its own user and puts
back every realm or client setting it changes. Token lifetimes are shortened on the hub
client only (``access.token.lifespan``), and tests wait on conditions, not fixed times.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.helpers.auth_hub import CLIENT_SECRET, api_user
from tests.helpers.real_keycloak import (
    SHORT_TOKENS,
    browser_client,
    checked,
    client_changed,
    home,
    login,
    new_user,
    page_form,
    realm_changed,
    refresh_events,
    sessions_of,
    signed_in,
    tokens_gone,
    until_refresh_due,
    wait_for,
)

pytestmark = pytest.mark.keycloak


def test_revoke_refresh_token_is_on_and_a_reused_refresh_token_ends_the_session(
    real_keycloak, admin
):
    """The premise of the hub's refresh lock, on the real server: the realm rotates
    refresh tokens, and using one twice detaches the session from the client."""
    realm = checked(admin.get("")).json()
    assert realm["revokeRefreshToken"] is True and realm["refreshTokenMaxReuse"] == 0
    name, _ = new_user(admin)
    token_url = f"{real_keycloak.issuer}/protocol/openid-connect/token"
    auth = ("jupyterhub", CLIENT_SECRET)
    first = httpx.post(
        token_url,
        data={"grant_type": "password", "username": name, "password": name, "scope": "openid"},
        auth=auth,
        timeout=30,
    ).json()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": first}
    second = httpx.post(token_url, data=form, auth=auth, timeout=30)
    assert second.status_code == 200
    again = httpx.post(token_url, data=form, auth=auth, timeout=30)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "Maximum allowed refresh token reuse exceeded",
    }
    newest = {"grant_type": "refresh_token", "refresh_token": second.json()["refresh_token"]}
    dead = httpx.post(token_url, data=newest, auth=auth, timeout=30)
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"


async def burst(cookies: httpx.Cookies, url: str, n: int) -> list[tuple[int, str]]:
    """``n`` requests at once with the person's hub cookies: (status, final path)."""
    async with httpx.AsyncClient(cookies=cookies, timeout=60) as hub:
        answers = await asyncio.gather(*(hub.get(url) for _ in range(n)))
    return [(r.status_code, r.url.path) for r in answers]


def test_fifty_concurrent_requests_after_expiry_refresh_once(real_keycloak, admin, hub_url):
    """Item 3a: Revoke Refresh Token on, the access token expired, 50 requests at once:
    Keycloak sees exactly one refresh, nobody is logged out, and the kept refresh
    token is the newest (the next refresh works). Then the proof that this mattered:
    using a spent refresh token again, as a second concurrent refresh would have, ends
    the person's Keycloak session for the hub."""
    rotation = {"revokeRefreshToken": True, "refreshTokenMaxReuse": 0}
    with (
        realm_changed(admin, **rotation),
        client_changed(admin, SHORT_TOKENS),
        refresh_events(admin) as events,
    ):
        name, user_id = new_user(admin)
        with browser_client() as browser:
            first = signed_in(browser, hub_url, name)
            until_refresh_due(first, expired=True)
            assert first["access_token_expires_at"] < time.time()
            answers = asyncio.run(burst(httpx.Cookies(browser.cookies), f"{hub_url}/hub/home", 50))
            assert answers == [(200, "/hub/home")] * 50
            assert wait_for(
                lambda: events(user_id)["REFRESH_TOKEN"] >= 1, "Keycloak's refresh event"
            )
            assert events(user_id) == {"REFRESH_TOKEN": 1, "REFRESH_TOKEN_ERROR": 0}
            second = api_user(hub_url, name)["auth_state"]
            assert second["refresh_token"] not in (None, first["refresh_token"])
            assert second["access_token_expires_at"] > time.time()
            [session] = sessions_of(admin, user_id)
            assert list(session["clients"].values()) == ["jupyterhub"]

            until_refresh_due(second)
            assert home(browser, hub_url).url.path == "/hub/home"
            assert wait_for(lambda: events(user_id)["REFRESH_TOKEN"] == 2, "the second refresh")
            third = api_user(hub_url, name)["auth_state"]
            assert third["refresh_token"] != second["refresh_token"]

            # what a second, unserialised refresh would have done: use a spent token again
            replay = httpx.post(
                f"{real_keycloak.issuer}/protocol/openid-connect/token",
                data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
                auth=("jupyterhub", CLIENT_SECRET),
                timeout=30,
            )
            assert replay.json()["error_description"] == (
                "Maximum allowed refresh token reuse exceeded"
            )
            # Keycloak tells the hub nothing (no back-channel logout on reuse) ...
            assert home(browser, hub_url).url.path == "/hub/home"
            # ... the hub's next refresh is refused and the person must log in again
            until_refresh_due(third)
            assert home(browser, hub_url).url.path == "/hub/login"
            assert tokens_gone(hub_url, name)
            assert events(user_id)["REFRESH_TOKEN_ERROR"] >= 2  # the replay, then the hub's


def test_a_session_ended_at_keycloak_sends_the_person_to_login_at_the_next_refresh(
    admin, hub_url, keycloak_hub
):
    """Item 3b: an administrator deletes the session (with no back-channel logout URL,
    so only the refresh can tell): the next request that needs a refresh goes to the
    login page, and a new login asks for the password again."""
    with client_changed(admin, {**SHORT_TOKENS, "backchannel.logout.url": ""}):
        name, user_id = new_user(admin)
        with browser_client() as browser:
            state = signed_in(browser, hub_url, name)
            checked(admin.delete(f"/sessions/{state['sid']}"))
            assert sessions_of(admin, user_id) == []
            assert home(browser, hub_url).url.path == "/hub/home"  # no refresh due yet
            until_refresh_due(state)
            resp = home(browser, hub_url)
            assert (resp.status_code, resp.url.path) == (200, "/hub/login")
            assert tokens_gone(hub_url, name)
            assert (
                f"Keycloak refused to refresh {name} (HTTP 400 invalid_grant: Session not active)"
                in (keycloak_hub.log_text())
            )
            page = browser.get(f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"})
            assert page_form(page.text) is not None  # Keycloak's password form again
            assert signed_in(browser, hub_url, name)["access_token"]


def test_keycloak_ends_the_hub_session_by_back_channel_logout(admin, hub_url, keycloak_hub):
    """Item 3c: an administrator logs the user out in Keycloak; Keycloak itself posts
    a logout token to the hub's back-channel URL (the realm file's ${HUB_URL}); the
    hub ends the person's session at once: no refresh is needed (300 s tokens)."""
    client = checked(admin.get("/clients", params={"clientId": "jupyterhub"})).json()[0]
    assert client["attributes"]["backchannel.logout.url"] == f"{hub_url}/hub/backchannel-logout"
    name, user_id = new_user(admin)
    with browser_client() as browser:
        state = signed_in(browser, hub_url, name)
        assert state["access_token_expires_at"] - time.time() > 200
        checked(admin.post(f"/users/{user_id}/logout"))
        assert wait_for(lambda: tokens_gone(hub_url, name), "the hub to forget the tokens")
        resp = home(browser, hub_url)
        assert resp.url.path == "/hub/login"  # the hub cookie itself is revoked
    assert f"Back-channel logout ended the hub session of {name}" in keycloak_hub.log_text()


def test_hub_logout_ends_the_keycloak_session(admin, hub_url):
    """Item 3d: RP-initiated logout. /hub/logout sends the browser to Keycloak's
    end-session endpoint with id_token_hint; Keycloak ends the session (the admin API
    lists none) and returns to the hub's login page; a new login asks for the password."""
    name, user_id = new_user(admin)
    with browser_client() as browser:
        signed_in(browser, hub_url, name)
        assert len(sessions_of(admin, user_id)) == 1
        resp = browser.get(f"{hub_url}/hub/logout")
        assert (resp.status_code, resp.url.path) == (200, "/hub/login")
        hops = [str(r.url) for r in resp.history]
        assert any("/protocol/openid-connect/logout?" in h and "id_token_hint=" in h for h in hops)
        assert sessions_of(admin, user_id) == []
        assert tokens_gone(hub_url, name)
        assert home(browser, hub_url).url.path == "/hub/login"
        page = browser.get(f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"})
        assert page_form(page.text) is not None  # the password is asked for again


def test_a_user_disabled_in_keycloak_loses_access_at_the_next_refresh(admin, hub_url, keycloak_hub):
    """Item 3e: disabling keeps Keycloak's session, but the next refresh is refused:
    the hub sends the person to log in, and Keycloak's login says the account is
    disabled."""
    with client_changed(admin, SHORT_TOKENS):
        name, user_id = new_user(admin)
        with browser_client() as browser:
            state = signed_in(browser, hub_url, name)
            user = checked(admin.get(f"/users/{user_id}")).json()
            checked(admin.put(f"/users/{user_id}", json={**user, "enabled": False}))
            assert home(browser, hub_url).url.path == "/hub/home"  # token still fresh
            until_refresh_due(state)
            resp = home(browser, hub_url)
            assert (resp.status_code, resp.url.path) == (200, "/hub/login")
            assert tokens_gone(hub_url, name)
            assert (
                f"Keycloak refused to refresh {name} (HTTP 400 invalid_grant: User disabled)"
                in (keycloak_hub.log_text())
            )
        with browser_client() as browser:
            resp = login(browser, hub_url, name)
            assert "Account is disabled" in resp.text
            assert resp.url.host == "127.0.0.1" and "/realms/valeria/" in resp.url.path
