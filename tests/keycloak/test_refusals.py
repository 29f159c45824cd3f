"""Logins that go wrong against Keycloak's own server: each ends on a 4xx page that says
what is wrong (never a 500), and nothing secret reaches the hub's log: no
authorization code, state, token or set of claims.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.helpers.auth_hub import CLIENT_SECRET
from tests.helpers.real_keycloak import (
    browser_client,
    new_user,
    page_form,
    scope_mapper_removed,
    sessions_of,
)

pytestmark = pytest.mark.keycloak

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")


def to_keycloak(browser: httpx.Client, hub_url: str) -> httpx.Response:
    """/hub/oauth_login's redirect to Keycloak (not followed)."""
    resp = browser.get(
        f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"}, follow_redirects=False
    )
    assert resp.status_code == 302 and "/protocol/openid-connect/auth?" in resp.headers["location"]
    return resp


def callback_of(browser: httpx.Client, hub_url: str, name: str) -> str:
    """Keycloak's redirect back to the hub (after its login form, or at once with an
    SSO session), not yet followed."""
    resp = browser.get(to_keycloak(browser, hub_url).headers["location"], follow_redirects=False)
    form = page_form(resp.text) if resp.status_code == 200 else None
    if form is not None:
        action, fields = form
        data = {**fields, "username": name, "password": name}
        resp = browser.post(action, data=data, follow_redirects=False)
    assert resp.status_code == 302, resp.text[:300]
    location = resp.headers["location"]
    assert location.startswith(f"{hub_url}/hub/oauth_callback?"), location
    return location


def test_failed_logins_are_4xx_pages_and_leave_no_secrets_in_the_log(
    real_keycloak, admin, hub_url, keycloak_hub
):
    name, user_id = new_user(admin)
    logged_before = len(keycloak_hub.log_text())
    query_values: list[str] = []

    # 1. the realm's profile scope lost its "username" mapper: no preferred_username
    with scope_mapper_removed(admin, "profile", "username"), browser_client() as browser:
        callback = callback_of(browser, hub_url, name)
        query_values += [v[0] for v in parse_qs(urlsplit(callback).query).values()]
        resp = browser.get(callback)
        assert resp.status_code == 400, resp.text[:500]
        assert "did not send your username (the &#39;preferred_username&#39; claim is missing)" in (
            resp.text
        )
        assert "support team" in resp.text

    with browser_client() as browser:
        # 2. Keycloak's own error answer (an unknown scope asked for) comes back as a page
        auth = urlsplit(to_keycloak(browser, hub_url).headers["location"])
        params = {k: v[0] for k, v in parse_qs(auth.query).items()}
        params["scope"] = "openid no-such-scope"
        resp = browser.get(auth._replace(query=urlencode(params)).geturl())
        assert resp.url.path == "/hub/oauth_callback"
        assert resp.status_code == 400
        assert "The login service did not sign you in (Invalid scopes" in resp.text

        # 3. the answer of this login brought by another browser (no state cookie)
        callback = callback_of(browser, hub_url, name)
        query_values += [v[0] for v in parse_qs(urlsplit(callback).query).values()]
        with browser_client() as other:
            resp = other.get(callback)
        assert resp.status_code == 400 and "not started in this browser" in resp.text

        # 4. a code already spent (here by someone who intercepted it, without the
        #    PKCE verifier): Keycloak refuses the hub's exchange, the hub says so
        callback = callback_of(browser, hub_url, name)
        query = parse_qs(urlsplit(callback).query)
        query_values += [v[0] for v in query.values()]
        stolen = httpx.post(
            f"{real_keycloak.issuer}/protocol/openid-connect/token",
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": f"{hub_url}/hub/oauth_callback",
            },
            auth=("jupyterhub", CLIENT_SECRET),
            timeout=30,
        )
        assert stolen.status_code == 400, stolen.text
        resp = browser.get(callback)
        assert resp.status_code == 400, resp.text[:500]
        assert "Your sign-in expired or was already used" in resp.text

    log = keycloak_hub.log_text()[logged_before:]
    assert "Login refused: the tokens carry no 'preferred_username' claim" in log
    assert "Login code exchange refused: HTTP 400 invalid_grant" in log
    assert "oauth_callback?state=[removed]" in log  # the refusals were logged, scrubbed
    secrets = [v for v in query_values if len(v) >= 16 and not v.startswith("http")]
    assert len(secrets) >= 6  # code, state and session_state of three answers
    for secret in secrets:
        assert secret not in log
    assert not JWT.search(log)
    for claim_value in (user_id, f"{name}@valeria.example"):
        assert claim_value not in log
    assert sessions_of(admin, user_id)  # Keycloak signed them in: the hub refused
