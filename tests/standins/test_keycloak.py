"""The Keycloak stand-in, driven through real HTTP (httpx, oauthenticator, aiohttp).

Each test starts its own stand-in on a free port. Tokens are verified with PyJWT
against the JWKS named by the discovery document, as a relying party would.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from aiohttp import web

from devstack.keycloak import KeycloakStandIn

SECRET = "demo-jupyterhub-secret"
REDIRECT = "http://127.0.0.1:8000/hub/oauth_callback"


# -- helpers ----------------------------------------------------------------------------


class _Form(HTMLParser):
    """Collects the login form's action, input names and the error texts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: set[str] = set()
        self.texts: dict[str, str] = {}
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = self.action or a.get("action")
        if tag == "input" and a.get("name"):
            self.inputs.add(a["name"])
        if a.get("id") in ("input-error", "kc-error-message", "kc-info-message"):
            self._capture = a["id"]
        if "kc-feedback-text" in (a.get("class") or "") and a.get("id") != "input-error":
            self._capture = "alert"

    def handle_data(self, data: str) -> None:
        if self._capture and data.strip():
            self.texts[self._capture] = self.texts.get(self._capture, "") + data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("span", "p"):
            self._capture = None


def parse(html: str) -> _Form:
    form = _Form()
    form.feed(html)
    return form


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def auth_params(challenge: str | None, **extra: str) -> dict[str, str]:
    params = {
        "client_id": "jupyterhub",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return params


def query_of(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["location"]).query).items()}


async def login(
    http: httpx.AsyncClient,
    kc: KeycloakStandIn,
    username: str = "alice",
    password: str | None = None,
    **extra: str,
) -> tuple[dict[str, str], str, dict[str, str]]:
    """Browser login (or SSO): (redirect query, code_verifier, auth params)."""
    verifier, challenge = pkce()
    params = auth_params(challenge, **extra)
    page = await http.get(kc.endpoint("auth"), params=params)
    if page.status_code == 302:  # a live SSO session: no form
        return query_of(page), verifier, params
    assert page.status_code == 200, page.text
    form = parse(page.text)
    resp = await http.post(
        form.action, data={"username": username, "password": password or username}
    )
    return query_of(resp), verifier, params


async def exchange(
    http: httpx.AsyncClient, kc: KeycloakStandIn, code: str, verifier: str | None, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "jupyterhub",
        "client_secret": SECRET,
    }
    if verifier:
        data["code_verifier"] = verifier
    data.update(extra)
    return await http.post(kc.endpoint("token"), data=data)


async def tokens_for(http: httpx.AsyncClient, kc: KeycloakStandIn, username: str = "alice"):
    query, verifier, params = await login(http, kc, username)
    resp = await exchange(http, kc, query["code"], verifier)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def password_grant(http, kc, username="alice", password=None, client_id="jupyterhub"):
    return await http.post(
        kc.endpoint("token"),
        data={
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": SECRET,
            "username": username,
            "password": password if password is not None else username,
            "scope": "openid",
        },
    )


async def refresh(http, kc, refresh_token):
    return await http.post(
        kc.endpoint("token"),
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=("jupyterhub", SECRET),
    )


async def verify(http: httpx.AsyncClient, kc: KeycloakStandIn, token: str, audience: str):
    """Verify like a relying party: discovery -> jwks_uri -> key by kid."""
    disc = (await http.get(kc.discovery_url)).json()
    jwks = jwt.PyJWKSet.from_dict((await http.get(disc["jwks_uri"])).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(
        token, key.key, algorithms=["RS256"], issuer=disc["issuer"], audience=audience
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def receiver():
    """A back-channel logout receiver: records the forms POSTed to it."""
    received: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(dict(await request.post()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hub/logout/backchannel", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/hub/logout/backchannel", received
    await runner.cleanup()


# -- discovery and keys -----------------------------------------------------------------


async def test_discovery_document_and_jwks(kc, http):
    disc = (await http.get(kc.discovery_url)).json()
    issuer = f"{kc.url}/realms/valeria"
    assert disc["issuer"] == issuer
    oidc = f"{issuer}/protocol/openid-connect"
    assert disc["authorization_endpoint"] == f"{oidc}/auth"
    assert disc["token_endpoint"] == f"{oidc}/token"
    assert disc["userinfo_endpoint"] == f"{oidc}/userinfo"
    assert disc["end_session_endpoint"] == f"{oidc}/logout"
    assert disc["introspection_endpoint"] == f"{oidc}/token/introspect"
    assert "S256" in disc["code_challenge_methods_supported"]
    assert disc["backchannel_logout_supported"] and disc["backchannel_logout_session_supported"]
    assert {"authorization_code", "refresh_token", "password", "client_credentials"} <= set(
        disc["grant_types_supported"]
    )
    jwks = (await http.get(disc["jwks_uri"])).json()
    [key] = jwks["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"] == kc.keys.active.kid and key["n"] and key["e"] == "AQAB"
    missing = await http.get(f"{kc.url}/realms/other/.well-known/openid-configuration")
    assert missing.status_code == 404 and missing.json() == {"error": "Realm does not exist"}


async def test_legacy_prefix_moves_everything_under_auth(http):
    stand_in = KeycloakStandIn(legacy_prefix=True)
    await stand_in.start()
    try:
        disc = await http.get(
            f"{stand_in.url}/auth/realms/valeria/.well-known/openid-configuration"
        )
        assert disc.status_code == 200
        issuer = f"{stand_in.url}/auth/realms/valeria"
        assert disc.json()["issuer"] == issuer == stand_in.issuer
        assert disc.json()["token_endpoint"].startswith(f"{issuer}/protocol/")
        plain = await http.get(f"{stand_in.url}/realms/valeria/.well-known/openid-configuration")
        assert plain.status_code == 404
        body = (await password_grant(http, stand_in)).json()
        claims = await verify(http, stand_in, body["access_token"], "vault-valeria")
        assert claims["iss"] == issuer
        info = await http.get(stand_in.endpoint("userinfo"), headers=bearer(body["access_token"]))
        assert info.status_code == 200 and info.json()["preferred_username"] == "alice"
    finally:
        await stand_in.stop()


# -- browser login and the authorization code -------------------------------------------


async def test_authorization_code_flow_with_pkce(kc, http):
    verifier, challenge = pkce()
    params = auth_params(challenge)
    page = await http.get(kc.endpoint("auth"), params=params)
    assert page.status_code == 200
    form = parse(page.text)
    assert {"username", "password", "login"} <= form.inputs
    action = urlsplit(form.action)
    assert action.path == "/realms/valeria/login-actions/authenticate"
    assert {"session_code", "execution", "client_id", "tab_id"} <= set(parse_qs(action.query))

    wrong = await http.post(form.action, data={"username": "alice", "password": "nope"})
    assert wrong.status_code == 200
    again = parse(wrong.text)
    assert again.texts["input-error"] == "Invalid username or password."
    stale = await http.post(form.action, data={"username": "alice", "password": "alice"})
    assert stale.status_code == 200 and "Action expired" in parse(stale.text).texts["alert"]

    form = parse(stale.text)
    ok = await http.post(form.action, data={"username": "alice", "password": "alice"})
    query = query_of(ok)
    assert ok.headers["location"].startswith(REDIRECT + "?")
    assert query["state"] == params["state"]
    assert query["iss"] == kc.issuer
    assert query["session_state"] in {s["id"] for s in kc.list_sessions()}
    assert "KEYCLOAK_IDENTITY" in http.cookies and "KEYCLOAK_SESSION" in http.cookies

    resp = await exchange(http, kc, query["code"], verifier)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["refresh_expires_in"] == 1800 and body["not-before-policy"] == 0
    assert body["session_state"] == query["session_state"]
    assert set(body["scope"].split()) == {"openid", "profile", "email"}
    assert resp.headers["Cache-Control"] == "no-store"

    access = await verify(http, kc, body["access_token"], "vault-valeria")
    assert jwt.get_unverified_header(body["access_token"])["kid"] == kc.keys.active.kid
    assert set(access["aud"]) == {"vault-valeria", "account"}
    assert access["typ"] == "Bearer" and access["azp"] == "jupyterhub"
    assert access["sub"] == "0b6a7c2e-1f3d-4c5a-9e8b-a11ce0000001"
    assert access["preferred_username"] == "alice" and access["email"] == "alice@valeria.example"
    assert access["given_name"] == "Alice" and access["name"] == "Alice Tremblay"
    assert access["groups"] == ["/researchers", "/team-a"]
    assert "hub-user" in access["realm_access"]["roles"]
    assert "hub-admin" not in access["realm_access"]["roles"]
    assert "view-profile" in access["resource_access"]["account"]["roles"]
    assert access["sid"] == access["session_state"] == query["session_state"]
    assert access["exp"] - access["iat"] == 300 and access["acr"] == "1"
    for claim in ("auth_time", "jti", "scope", "email_verified", "family_name"):
        assert claim in access

    id_token = await verify(http, kc, body["id_token"], "jupyterhub")
    assert id_token["typ"] == "ID" and id_token["aud"] == "jupyterhub"
    assert id_token["nonce"] == params["nonce"] and id_token["sid"] == access["sid"]
    refresh_claims = jwt.decode(body["refresh_token"], options={"verify_signature": False})
    assert refresh_claims["typ"] == "Refresh" and refresh_claims["sid"] == access["sid"]

    query, verifier, _ = await login(http, kc, "admin", prompt="login")
    admin = (await exchange(http, kc, query["code"], verifier)).json()
    admin_access = await verify(http, kc, admin["access_token"], "vault-valeria")
    assert "hub-admin" in admin_access["realm_access"]["roles"]
    assert admin_access["groups"] == []


async def test_code_is_single_use_and_reuse_detaches_the_session(kc, http):
    query, verifier, _ = await login(http, kc)
    first = await exchange(http, kc, query["code"], verifier)
    assert first.status_code == 200
    reused = await exchange(http, kc, query["code"], verifier)
    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant", "error_description": "Code not valid"}
    after = await refresh(http, kc, first.json()["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    bogus = await exchange(http, kc, "not-a-code", verifier)
    assert bogus.json() == {"error": "invalid_grant", "error_description": "Code not valid"}


async def test_code_checks_verifier_redirect_uri_and_expiry(kc, http):
    query, verifier, _ = await login(http, kc)
    wrong = await exchange(http, kc, query["code"], pkce()[0])
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "PKCE verification failed: Code mismatch",
    }
    query, verifier, _ = await login(http, kc)
    missing = await exchange(http, kc, query["code"], None)
    assert missing.json()["error_description"] == "PKCE code verifier not specified"
    query, verifier, _ = await login(http, kc)
    moved = await exchange(
        http, kc, query["code"], verifier, redirect_uri="http://127.0.0.1:8000/elsewhere"
    )
    assert moved.json() == {"error": "invalid_grant", "error_description": "Incorrect redirect_uri"}
    query, verifier, _ = await login(http, kc)
    kc.advance(61)
    late = await exchange(http, kc, query["code"], verifier)
    assert late.status_code == 400 and late.json()["error_description"] == "Code is expired"


async def test_client_authentication_errors(kc, http):
    query, verifier, _ = await login(http, kc)
    bad = await exchange(http, kc, query["code"], verifier, client_secret="wrong")
    assert bad.status_code == 401
    assert bad.json() == {
        "error": "unauthorized_client",
        "error_description": "Invalid client or Invalid client credentials",
    }
    basic = await http.post(
        kc.endpoint("token"),
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=("jupyterhub", "wrong"),
    )
    assert basic.status_code == 401 and basic.json()["error"] == "unauthorized_client"
    unknown = await http.post(
        kc.endpoint("token"), data={"grant_type": "password", "client_id": "nobody"}
    )
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    grant = await http.post(
        kc.endpoint("token"), data={"grant_type": "implicit", "client_id": "jupyterhub"}
    )
    assert grant.status_code == 400
    assert grant.json() == {
        "error": "unsupported_grant_type",
        "error_description": "Unsupported grant_type",
    }
    # the code survived the failed attempts and still works with the right secret
    assert (await exchange(http, kc, query["code"], verifier)).status_code == 200


async def test_authorization_request_validation(kc, http):
    _, challenge = pkce()
    bad = await http.get(
        kc.endpoint("auth"), params=auth_params(challenge, redirect_uri="http://evil.example/cb")
    )
    assert bad.status_code == 400
    assert parse(bad.text).texts["kc-error-message"] == "Invalid parameter: redirect_uri"
    unknown = await http.get(kc.endpoint("auth"), params=auth_params(challenge, client_id="x"))
    assert unknown.status_code == 400 and "Client not found." in unknown.text
    wildcard = await http.get(
        kc.endpoint("auth"),
        params=auth_params(challenge, redirect_uri="http://localhost:8000/any/path?x=1"),
    )
    assert wildcard.status_code == 200
    no_pkce = await http.get(kc.endpoint("auth"), params=auth_params(None))
    q = query_of(no_pkce)
    assert q["error"] == "invalid_request"
    assert q["error_description"] == "Missing parameter: code_challenge_method"
    plain = await http.get(
        kc.endpoint("auth"), params=auth_params(challenge, code_challenge_method="plain")
    )
    assert query_of(plain)["error_description"] == "Invalid parameter: code_challenge_method"
    token_type = await http.get(
        kc.endpoint("auth"), params=auth_params(challenge, response_type="token")
    )
    assert query_of(token_type)["error"] == "unsupported_response_type"
    bad_scope = await http.get(kc.endpoint("auth"), params=auth_params(challenge, scope="openid x"))
    assert query_of(bad_scope)["error"] == "invalid_scope"


async def test_disabled_user_sees_keycloak_message(kc, http):
    kc.update_user("carol", enabled=False)
    _, challenge = pkce()
    page = await http.get(kc.endpoint("auth"), params=auth_params(challenge))
    resp = await http.post(parse(page.text).action, data={"username": "carol", "password": "carol"})
    assert resp.status_code == 200
    assert parse(resp.text).texts["alert"] == "Account is disabled, contact your administrator."


async def test_login_post_needs_the_auth_session_cookie(kc):
    _, challenge = pkce()
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(kc.endpoint("auth"), params=auth_params(challenge))
        action = parse(page.text).action
    async with httpx.AsyncClient(timeout=10) as cookieless:
        resp = await cookieless.post(action, data={"username": "alice", "password": "alice"})
    assert resp.status_code == 400 and "Cookie not found" in resp.text


async def test_sso_cookie_skips_the_form_unless_prompt_login(kc, http):
    first, verifier, _ = await login(http, kc)
    _, challenge = pkce()
    again = await http.get(kc.endpoint("auth"), params=auth_params(challenge))
    q = query_of(again)
    assert q["session_state"] == first["session_state"] and q["code"] != first["code"]
    forced = await http.get(kc.endpoint("auth"), params=auth_params(challenge, prompt="login"))
    assert forced.status_code == 200 and "kc-form-login" in forced.text
    await kc.end_user_sessions("alice")
    after = await http.get(kc.endpoint("auth"), params=auth_params(challenge, prompt="none"))
    assert query_of(after)["error"] == "login_required"


# -- refresh tokens ---------------------------------------------------------------------


async def test_refresh_rotates_and_reuse_detaches_the_client_quietly(kc, http):
    """As Keycloak 26.7.3 does (tests/keycloak/test_sessions.py shows it on the real
    server): a spent refresh token used again is refused, the client is dropped from the
    session without a back-channel logout, and its next refresh is refused."""
    body = await tokens_for(http, kc)
    first = body["refresh_token"]
    r1 = await refresh(http, kc, first)
    assert r1.status_code == 200, r1.text
    second = r1.json()["refresh_token"]
    assert second != first and r1.json()["access_token"] != body["access_token"]
    assert "id_token" in r1.json()
    r2 = await refresh(http, kc, second)
    assert r2.status_code == 200
    newest = r2.json()

    reuse = await refresh(http, kc, first)
    assert reuse.status_code == 400
    assert reuse.json() == {
        "error": "invalid_grant",
        "error_description": "Maximum allowed refresh token reuse exceeded",
    }
    dead = await refresh(http, kc, newest["refresh_token"])
    assert dead.status_code == 400
    assert dead.json() == {
        "error": "invalid_grant",
        "error_description": "Session doesn't have required client",
    }
    [session] = kc.list_sessions()
    assert session["clients"] == []


async def test_refresh_without_revoke_mode_allows_reuse(http):
    from devstack.keycloak import DEMO_REALM
    from devstack.keycloak.model import load_definition

    realm = load_definition(DEMO_REALM)
    realm["revoke_refresh_token"] = False
    stand_in = KeycloakStandIn(realm)
    await stand_in.start()
    try:
        body = (await password_grant(http, stand_in)).json()
        assert (await refresh(http, stand_in, body["refresh_token"])).status_code == 200
        assert (await refresh(http, stand_in, body["refresh_token"])).status_code == 200
    finally:
        await stand_in.stop()


async def test_expired_and_ended_refresh_tokens(kc, http):
    body = (await password_grant(http, kc)).json()
    kc.advance(1801)
    expired = await refresh(http, kc, body["refresh_token"])
    assert expired.status_code == 400
    assert expired.json() == {"error": "invalid_grant", "error_description": "Token is not active"}

    body = (await password_grant(http, kc)).json()
    sid = jwt.decode(body["access_token"], options={"verify_signature": False})["sid"]
    assert await kc.end_session(sid)
    ended = await refresh(http, kc, body["refresh_token"])
    assert ended.json() == {"error": "invalid_grant", "error_description": "Session not active"}

    body = (await password_grant(http, kc)).json()
    forged = jwt.encode({"typ": "Refresh"}, "x" * 64, algorithm="HS512")
    assert (await refresh(http, kc, forged)).json()["error_description"] == "Invalid refresh token"
    kc.advance(1000)
    assert (await refresh(http, kc, body["refresh_token"])).status_code == 200


async def test_sso_session_idle_and_max_lifetimes(kc, http):
    kc.set_lifetimes(sso_session_idle_timeout=60, sso_session_max_lifespan=1000)
    body = await tokens_for(http, kc)
    assert body["refresh_expires_in"] == 60
    kc.advance(50)
    refreshed = await refresh(http, kc, body["refresh_token"])
    assert refreshed.status_code == 200 and refreshed.json()["refresh_expires_in"] == 60
    kc.advance(50)  # idle clock was reset by the refresh
    info = await http.get(kc.endpoint("userinfo"), headers=bearer(refreshed.json()["access_token"]))
    assert info.status_code == 200
    kc.advance(61)  # idle: the access token has not expired, but its session has
    info = await http.get(kc.endpoint("userinfo"), headers=bearer(refreshed.json()["access_token"]))
    assert info.status_code == 401
    assert info.json()["error_description"] == (
        "User session not found or doesn't have client attached on it"
    )
    _, challenge = pkce()
    form = await http.get(kc.endpoint("auth"), params=auth_params(challenge))
    assert form.status_code == 200 and "kc-form-login" in form.text

    kc.set_lifetimes(sso_session_max_lifespan=150)
    body = await tokens_for(http, kc)
    for _ in range(3):  # refreshing keeps the session alive only up to its max lifespan
        kc.advance(45)
        resp = await refresh(http, kc, body["refresh_token"])
        assert resp.status_code == 200
        body = resp.json()
    assert body["refresh_expires_in"] == 150 - 135
    kc.advance(16)
    assert (await refresh(http, kc, body["refresh_token"])).status_code == 400
    info = await http.get(kc.endpoint("userinfo"), headers=bearer(body["access_token"]))
    assert info.status_code == 401


# -- password and client credentials grants ---------------------------------------------


async def test_password_grant(kc, http):
    ok = await password_grant(http, kc, "bob")
    assert ok.status_code == 200
    claims = await verify(http, kc, ok.json()["access_token"], "account")
    assert claims["preferred_username"] == "bob" and claims["groups"] == ["/researchers"]
    wrong = await password_grant(http, kc, "bob", "bad")
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid user credentials",
    }
    kc.update_user("bob", enabled=False)
    disabled = await password_grant(http, kc, "bob")
    assert (
        disabled.status_code == 400 and disabled.json()["error_description"] == "Account disabled"
    )
    kc.update_client("jupyterhub", direct_access_grants=False)
    off = await password_grant(http, kc, "alice")
    assert off.status_code == 400 and off.json()["error"] == "unauthorized_client"


async def test_client_credentials_and_admin_user_lookup(kc, http):
    def cc(client_id: str, secret: str):
        return http.post(
            kc.endpoint("token"),
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )

    resp = await cc("valeria-onboarding", "demo-onboarding-secret")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "refresh_token" not in body
    claims = await verify(http, kc, body["access_token"], "realm-management")
    assert claims["resource_access"]["realm-management"]["roles"] == ["view-users"]
    assert claims["preferred_username"] == "service-account-valeria-onboarding"

    found = await http.get(
        f"{kc.admin_url}/users",
        params={"username": "alice", "exact": "true"},
        headers=bearer(body["access_token"]),
    )
    assert found.status_code == 200
    [alice] = found.json()
    assert alice["id"] == "0b6a7c2e-1f3d-4c5a-9e8b-a11ce0000001"
    assert alice["username"] == "alice" and alice["email"] == "alice@valeria.example"
    assert alice["firstName"] == "Alice" and alice["lastName"] == "Tremblay"
    assert alice["enabled"] is True and isinstance(alice["createdTimestamp"], int)
    partial = await http.get(
        f"{kc.admin_url}/users", params={"username": "a"}, headers=bearer(body["access_token"])
    )
    assert {u["username"] for u in partial.json()} == {"alice", "carol", "admin"}
    one = await http.get(
        f"{kc.admin_url}/users/{alice['id']}", headers=bearer(body["access_token"])
    )
    assert one.status_code == 200 and one.json()["username"] == "alice"
    nobody = await http.get(f"{kc.admin_url}/users/missing", headers=bearer(body["access_token"]))
    assert nobody.status_code == 404 and nobody.json() == {"error": "User not found"}

    kc.add_client(client_id="no-roles", secret="s3cret", service_accounts=True, standard_flow=False)
    weak = (await cc("no-roles", "s3cret")).json()["access_token"]
    denied = await http.get(f"{kc.admin_url}/users", headers=bearer(weak))
    assert denied.status_code == 403 and denied.json() == {"error": "HTTP 403 Forbidden"}
    user_token = (await password_grant(http, kc)).json()["access_token"]
    denied = await http.get(f"{kc.admin_url}/users/{alice['id']}", headers=bearer(user_token))
    assert denied.status_code == 403
    anonymous = await http.get(f"{kc.admin_url}/users")
    assert anonymous.status_code == 401 and anonymous.json() == {"error": "HTTP 401 Unauthorized"}
    no_sa = await cc("jupyterhub", SECRET)
    assert no_sa.status_code == 400
    assert no_sa.json() == {
        "error": "unauthorized_client",
        "error_description": "Client not enabled to retrieve service account",
    }


# -- userinfo, introspection ------------------------------------------------------------


async def test_userinfo(kc, http):
    body = await tokens_for(http, kc)
    ok = await http.get(kc.endpoint("userinfo"), headers=bearer(body["access_token"]))
    assert ok.status_code == 200
    assert ok.json()["sub"] == "0b6a7c2e-1f3d-4c5a-9e8b-a11ce0000001"
    assert ok.json()["preferred_username"] == "alice" and ok.json()["groups"] == [
        "/researchers",
        "/team-a",
    ]
    posted = await http.post(kc.endpoint("userinfo"), headers=bearer(body["access_token"]))
    assert posted.status_code == 200

    header, payload, sig = body["access_token"].split(".")
    tampered = f"{header}.{payload}.{sig[:-4]}AAAA"
    bad = await http.get(kc.endpoint("userinfo"), headers=bearer(tampered))
    assert bad.status_code == 401
    assert bad.json() == {
        "error": "invalid_token",
        "error_description": "Token verification failed",
    }
    assert bad.headers["WWW-Authenticate"] == (
        'Bearer realm="valeria", error="invalid_token", '
        'error_description="Token verification failed"'
    )
    kc.advance(301)
    expired = await http.get(kc.endpoint("userinfo"), headers=bearer(body["access_token"]))
    assert expired.status_code == 401
    kc.advance(-301)

    kc.expire_access_tokens()
    revoked = await http.get(kc.endpoint("userinfo"), headers=bearer(body["access_token"]))
    assert revoked.status_code == 401
    fresh = (await refresh(http, kc, body["refresh_token"])).json()
    again = await http.get(kc.endpoint("userinfo"), headers=bearer(fresh["access_token"]))
    assert again.status_code == 200

    await kc.end_user_sessions("alice")
    gone = await http.get(kc.endpoint("userinfo"), headers=bearer(fresh["access_token"]))
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_token"


async def test_introspection(kc, http):
    body = (await password_grant(http, kc)).json()

    def introspect(token: str, auth=("jupyterhub", SECRET)):
        return http.post(kc.endpoint("token/introspect"), data={"token": token}, auth=auth)

    active = (await introspect(body["access_token"])).json()
    assert active["active"] is True and active["username"] == "alice"
    assert active["client_id"] == "jupyterhub" and "vault-valeria" in active["aud"]
    assert (await introspect(body["refresh_token"])).json()["active"] is True
    assert (await introspect("garbage")).json() == {"active": False}
    bad_client = await introspect(body["access_token"], auth=("jupyterhub", "nope"))
    assert bad_client.status_code == 401
    kc.add_client(client_id="spa", public=True, redirect_uris=["http://127.0.0.1:9/*"])
    public = await http.post(
        kc.endpoint("token/introspect"), data={"token": body["access_token"], "client_id": "spa"}
    )
    assert public.status_code == 403
    await kc.end_user_sessions("alice")
    assert (await introspect(body["access_token"])).json() == {"active": False}


# -- logout -----------------------------------------------------------------------------


async def test_logout_with_redirect_and_state(kc, http):
    body = await tokens_for(http, kc)
    bad = await http.get(
        kc.endpoint("logout"),
        params={"id_token_hint": body["id_token"], "post_logout_redirect_uri": "http://evil/"},
    )
    assert bad.status_code == 400 and "Invalid redirect uri" in bad.text
    target = "http://127.0.0.1:8000/hub/logout-done"
    resp = await http.get(
        kc.endpoint("logout"),
        params={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": target,
            "state": "s-42",
        },
    )
    assert resp.status_code == 302 and resp.headers["location"] == f"{target}?state=s-42"
    assert "KEYCLOAK_IDENTITY" not in http.cookies
    assert kc.list_sessions() == []
    info = await http.get(kc.endpoint("userinfo"), headers=bearer(body["access_token"]))
    assert info.status_code == 401
    _, challenge = pkce()
    form = await http.get(kc.endpoint("auth"), params=auth_params(challenge))
    assert form.status_code == 200 and "kc-form-login" in form.text


async def test_logout_without_redirect_and_with_confirmation(kc, http):
    body = await tokens_for(http, kc)
    page = await http.post(kc.endpoint("logout"), data={"id_token_hint": body["id_token"]})
    assert page.status_code == 200
    assert parse(page.text).texts["kc-info-message"] == "You are logged out"

    await tokens_for(http, kc, "bob")
    confirm = await http.get(kc.endpoint("logout"))
    assert confirm.status_code == 200 and "Do you want to log out?" in confirm.text
    assert [s["username"] for s in kc.list_sessions()] == ["bob"]
    form = parse(confirm.text)
    code = confirm.text.split('name="session_code" value="')[1].split('"')[0]
    done = await http.post(form.action, data={"session_code": code, "confirmLogout": "Logout"})
    assert done.status_code == 200 and "You are logged out" in done.text
    assert kc.list_sessions() == []


async def test_backchannel_logout_delivery(kc, http, receiver):
    url, received = receiver
    kc.update_client("jupyterhub", backchannel_logout_url=url)
    body = await tokens_for(http, kc)
    sid = jwt.decode(body["access_token"], options={"verify_signature": False})["sid"]
    resp = await http.get(
        kc.endpoint("logout"),
        params={"id_token_hint": body["id_token"], "post_logout_redirect_uri": REDIRECT},
    )
    assert resp.status_code == 302
    [form] = received
    claims = await verify(http, kc, form["logout_token"], "jupyterhub")
    assert claims["typ"] == "Logout" and claims["sid"] == sid
    assert claims["sub"] == "0b6a7c2e-1f3d-4c5a-9e8b-a11ce0000001"
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert claims["iss"] == kc.issuer and claims["jti"] and claims["iat"]

    body = (await password_grant(http, kc)).json()
    first = body["refresh_token"]
    assert (await refresh(http, kc, first)).status_code == 200
    assert (await refresh(http, kc, first)).status_code == 400
    assert len(received) == 1  # refresh-token reuse tells nobody (Keycloak 26)

    kc.update_client("jupyterhub", backchannel_logout_url="http://127.0.0.1:9/nothing-here")
    body = (await password_grant(http, kc)).json()
    # the session whose client the reuse dropped is still there (Keycloak keeps it)
    assert await kc.end_user_sessions("alice") == 2
    assert "error" in kc.backchannel_log[-1] and kc.list_sessions() == []


# -- control surface, keys, faults ------------------------------------------------------


async def test_key_rotation(kc, http):
    old = (await password_grant(http, kc)).json()["access_token"]
    old_kid = kc.keys.active.kid
    new_kid = kc.rotate_key(keep_old=True)
    jwks = (await http.get(kc.endpoint("certs"))).json()
    assert [k["kid"] for k in jwks["keys"]] == [new_kid, old_kid]
    new = (await password_grant(http, kc)).json()["access_token"]
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    assert (await http.get(kc.endpoint("userinfo"), headers=bearer(old))).status_code == 200
    await verify(http, kc, old, "account")
    kc.rotate_key(keep_old=False)
    assert (await http.get(kc.endpoint("userinfo"), headers=bearer(old))).status_code == 401
    assert len((await http.get(kc.endpoint("certs"))).json()["keys"]) == 1


async def test_http_control_surface(kc, http):
    control = f"{kc.url}/_control/keycloak"
    await password_grant(http, kc)
    await password_grant(http, kc, "bob", "bad")
    counts = (await http.get(f"{control}/counters")).json()["token"]
    assert counts == {"password": {"jupyterhub": 2}}
    assert kc.token_counts() == counts
    await http.delete(f"{control}/counters")
    assert kc.token_counts() == {}

    lifetimes = await http.put(f"{control}/lifetimes", json={"access_token_lifespan": 60})
    assert lifetimes.json()["access_token_lifespan"] == 60
    assert (await password_grant(http, kc)).json()["expires_in"] == 60

    created = await http.post(
        f"{control}/users",
        json={"username": "dave", "password": "pw", "realm_roles": ["hub-user"],
              "groups": ["/students"]},
    )  # fmt: skip
    assert created.status_code == 201 and "password" not in created.json()
    token = (await password_grant(http, kc, "dave", "pw")).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["groups"] == ["/students"]
    await http.patch(f"{control}/users/dave", json={"realm_roles": ["hub-user", "hub-admin"]})
    token = (await password_grant(http, kc, "dave", "pw")).json()["access_token"]
    roles = jwt.decode(token, options={"verify_signature": False})["realm_access"]["roles"]
    assert "hub-admin" in roles

    sessions = (await http.get(f"{control}/sessions")).json()["sessions"]
    assert {s["username"] for s in sessions} == {"alice", "dave"}
    ended = await http.delete(f"{control}/users/dave/sessions")
    assert ended.json() == {"ended": 2}
    remaining = kc.list_sessions()
    assert [s["username"] for s in remaining] == ["alice", "alice"]
    sid = remaining[0]["id"]
    assert (await http.delete(f"{control}/sessions/{sid}")).json() == {"ended": True}
    assert [s["id"] for s in kc.list_sessions()] == [remaining[1]["id"]]
    assert (await http.delete(f"{control}/sessions/{sid}")).status_code == 404

    clock = await http.post(f"{control}/clock", json={"advance": 100})
    assert clock.json()["offset"] == 100 and kc.clock_offset == 100
    rotated = await http.post(f"{control}/keys/rotate", json={"keep_old": False})
    assert rotated.json()["keys"] == [rotated.json()["kid"]]
    minted = (await http.post(f"{control}/tokens", json={"username": "carol"})).json()
    info = await http.get(kc.endpoint("userinfo"), headers=bearer(minted["access_token"]))
    assert info.json()["preferred_username"] == "carol"
    await http.post(f"{control}/expire-access-tokens")
    info = await http.get(kc.endpoint("userinfo"), headers=bearer(minted["access_token"]))
    assert info.status_code == 401


async def test_fault_injection_on_the_token_endpoint(kc, http):
    kc.faults.inject("/realms/valeria/protocol/openid-connect/token", status=503, times=1)
    failed = await password_grant(http, kc)
    assert failed.status_code == 503
    assert (await password_grant(http, kc)).status_code == 200
    added = await http.post(
        f"{kc.url}/_control/faults",
        json={"path": "/realms/valeria/protocol/openid-connect/userinfo", "status": 500},
    )
    assert added.status_code == 201
    body = (await password_grant(http, kc)).json()
    assert (
        await http.get(kc.endpoint("userinfo"), headers=bearer(body["access_token"]))
    ).status_code == 500
    await http.delete(f"{kc.url}/_control/faults")
    assert (
        await http.get(kc.endpoint("userinfo"), headers=bearer(body["access_token"]))
    ).status_code == 200


def test_thread_mode_with_a_synchronous_client():
    stand_in = KeycloakStandIn()
    with stand_in.serve_in_thread():
        resp = httpx.post(
            stand_in.endpoint("token"),
            data={"grant_type": "password", "username": "carol", "password": "carol"},
            auth=("jupyterhub", SECRET),
            timeout=10,
        )
        assert resp.status_code == 200
        assert stand_in.call(stand_in.list_sessions)[0]["username"] == "carol"
        assert stand_in.call(stand_in.end_user_sessions, "carol") == 1


def test_realm_definition_validation(tmp_path):
    path = tmp_path / "realm.json"
    path.write_text(
        '{"realm": "lab", "accessTokenLifespan": 120, "groups": [{"name": "a",'
        ' "subGroups": [{"name": "b"}]}], "clients": [{"clientId": "app", "publicClient": true,'
        ' "redirectUris": ["http://x/*"], "attributes": {"pkce.code.challenge.method": "S256"}}],'
        ' "users": [{"username": "Eve", "credentials": [{"type": "password", "value": "pw"}],'
        ' "groups": ["/a/b"]}]}'
    )
    stand_in = KeycloakStandIn(path)
    assert stand_in.realm.name == "lab"
    assert stand_in.realm.settings.access_token_lifespan == 120
    assert (
        stand_in.realm.clients["app"].public and stand_in.realm.clients["app"].pkce_method == "S256"
    )
    assert stand_in.realm.users["eve"].groups == ["/a/b"]
    with pytest.raises(ValueError, match="needs a secret"):
        KeycloakStandIn({"realm": "x", "clients": [{"client_id": "c"}]})
    with pytest.raises(ValueError, match="unknown group"):
        KeycloakStandIn({"realm": "x", "users": [{"username": "u", "groups": ["/nope"]}]})


# -- a real relying party ---------------------------------------------------------------


async def test_oauthenticator_generic_code_path(kc, http):
    """oauthenticator's own code exchange, userinfo and refresh against the stand-in."""
    from oauthenticator.generic import GenericOAuthenticator
    from oauthenticator.oauth2 import _serialize_state

    authenticator = GenericOAuthenticator(
        client_id="jupyterhub",
        client_secret=SECRET,
        authorize_url=kc.endpoint("auth"),
        token_url=kc.endpoint("token"),
        userdata_url=kc.endpoint("userinfo"),
        oauth_callback_url=REDIRECT,
        username_claim="preferred_username",
        scope=["openid", "profile", "email"],
        enable_auth_state=True,
        basic_auth=True,
    )
    query, verifier, _ = await login(http, kc)

    class CallbackHandler:
        """What oauthenticator reads from the hub's callback request."""

        def get_argument(self, name, default=None):
            return {"code": query["code"]}.get(name, default)

        def get_state_cookie(self):
            return _serialize_state({"state_id": "s", "code_verifier": verifier})

    model = await authenticator.authenticate(CallbackHandler())
    assert model["name"] == "alice"
    state = model["auth_state"]
    assert state["access_token"] and state["refresh_token"] and state["id_token"]
    assert state["oauth_user"]["groups"] == ["/researchers", "/team-a"]

    class HubUser:
        name = "alice"

        async def get_auth_state(self):
            return state

    same = await authenticator.refresh_user(HubUser())
    assert same["auth_state"]["access_token"] == state["access_token"]
    assert "refresh_token" not in kc.token_counts()

    kc.expire_access_tokens()
    renewed = await authenticator.refresh_user(HubUser())
    assert renewed["name"] == "alice"
    assert renewed["auth_state"]["access_token"] != state["access_token"]
    assert renewed["auth_state"]["refresh_token"] != state["refresh_token"]
    assert kc.token_counts()["refresh_token"] == {"jupyterhub": 1}

    # the stale auth_state replays a used refresh token: reuse ends the login for good
    # (Keycloak keeps the session but drops the hub's client from it)
    assert await authenticator.refresh_user(HubUser()) is False
    assert [s["clients"] for s in kc.list_sessions()] == [[]]
