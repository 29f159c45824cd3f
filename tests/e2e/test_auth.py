"""KeycloakAuthenticator in a real JupyterHub process against the Keycloak stand-in.

One hub per module (refresh_margin 3 s, auth_refresh_age 1 s); each test uses its own
Keycloak user and sets the access-token lifetime it needs.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.hub import HubProcess, free_port
from tests.helpers.auth_hub import api_user, hub_client, keycloak_and_hub, login, login_form_action

pytestmark = pytest.mark.e2e

TOKEN_PATH = "/realms/valeria/protocol/openid-connect/token"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
JWKS_REFETCH = 1.0  # the test hub's KeycloakAuthenticator.jwks_refetch_interval


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with keycloak_and_hub(tmp_path_factory.mktemp("hub")) as (kc, hub):
        # any userinfo call would hit this fault: the authenticator must never make one
        userinfo = kc.faults.inject("/realms/valeria/protocol/openid-connect/userinfo", status=500)
        yield kc, hub
        assert userinfo.hits == 0, "the authenticator called userinfo"


@pytest.fixture
def kc(stack):
    kc, _ = stack
    yield kc
    kc.faults.clear()
    kc.faults.inject("/realms/valeria/protocol/openid-connect/userinfo", status=500)
    kc.call(kc.set_lifetimes, access_token_lifespan=300)


@pytest.fixture
def hub_url(stack):
    return stack[1].public_url


def new_user(kc, roles=("hub-user",), groups=("/researchers",)) -> str:
    name = f"u{uuid.uuid4().hex[:8]}"
    kc.call(
        kc.add_user,
        username=name,
        password=name,
        email=f"{name}@valeria.example",
        realm_roles=list(roles),
        groups=list(groups),
    )
    return name


def refresh_calls(kc) -> int:
    return kc.call(kc.token_counts).get("refresh_token", {}).get("jupyterhub", 0)


def home(client: httpx.Client, hub_url: str) -> httpx.Response:
    return client.get(f"{hub_url}/hub/home")


def test_login_maps_roles_groups_and_stores_tokens(kc, hub_url):
    kc.call(kc.rotate_key, keep_old=False)  # the hub must refetch the JWKS for the new kid
    time.sleep(JWKS_REFETCH + 0.1)  # (at most once per jwks_refetch_interval)
    with hub_client() as c:
        resp = login(c, hub_url, "alice")
        assert resp.status_code == 200 and resp.url.path == "/hub/home"
    alice = api_user(hub_url, "alice")
    state = alice["auth_state"]
    for key in (
        "access_token",
        "refresh_token",
        "id_token",
        "access_token_expires_at",
        "refresh_token_expires_at",
        "token_response",
        "oauth_user",
    ):
        assert state.get(key), key
    assert 290 < state["access_token_expires_at"] - time.time() <= 300
    assert state["oauth_user"]["preferred_username"] == "alice"
    assert sorted(alice["groups"]) == ["researchers", "team-a"]
    assert alice["admin"] is False

    with hub_client() as c:
        assert login(c, hub_url, "admin").status_code == 200
    assert api_user(hub_url, "admin")["admin"] is True


def test_user_without_allowed_role_is_refused(kc, hub_url):
    name = new_user(kc, roles=())
    with hub_client() as c:
        resp = login(c, hub_url, name)
    assert resp.status_code == 403
    assert "not currently authorized" in resp.text


def test_fresh_token_makes_no_keycloak_call(kc, hub_url):
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        before = refresh_calls(kc)
        token = api_user(hub_url, name)["auth_state"]["access_token"]
        for _ in range(3):
            time.sleep(1.1)  # past auth_refresh_age: refresh_user runs each time
            assert home(c, hub_url).status_code == 200
    assert refresh_calls(kc) == before
    assert api_user(hub_url, name)["auth_state"]["access_token"] == token


def test_expiring_token_is_refreshed(kc, hub_url):
    kc.call(kc.set_lifetimes, access_token_lifespan=5)
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        old = api_user(hub_url, name)["auth_state"]
        before = refresh_calls(kc)
        time.sleep(3)  # 5 s tokens, margin 3 s capped at 2.5 s
        resp = home(c, hub_url)
        assert resp.status_code == 200 and resp.url.path == "/hub/home"
    new = api_user(hub_url, name)["auth_state"]
    assert refresh_calls(kc) == before + 1
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert new["access_token_expires_at"] > old["access_token_expires_at"]


async def test_concurrent_requests_refresh_once(kc, hub_url):
    kc.call(kc.set_lifetimes, access_token_lifespan=5)
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        cookies = c.cookies
    deliveries = len(kc.call(lambda: list(kc.backchannel_log)))
    before = refresh_calls(kc)
    await asyncio.sleep(3)
    # a slow token endpoint keeps the first refresh in flight while the others arrive
    slow = kc.faults.inject(TOKEN_PATH, delay=0.5)
    async with httpx.AsyncClient(cookies=cookies, timeout=30) as ac:
        responses = await asyncio.gather(*(ac.get(f"{hub_url}/hub/home") for _ in range(50)))
        kc.faults.remove(slow)
        assert [r.status_code for r in responses] == [200] * 50
        assert refresh_calls(kc) == before + 1
        # reuse detection did not end the session: it is alive and still refreshable
        sessions = [s for s in kc.call(kc.list_sessions) if s["username"] == name]
        assert len(sessions) == 1 and sessions[0]["clients"] == ["jupyterhub"]
        assert len(kc.call(lambda: list(kc.backchannel_log))) == deliveries
        await asyncio.sleep(3)
        resp = await ac.get(f"{hub_url}/hub/home")
        assert resp.status_code == 200
    assert refresh_calls(kc) == before + 2


def test_ended_session_requires_login(kc, hub_url):
    kc.call(kc.set_lifetimes, access_token_lifespan=5)
    kc.call(kc.update_client, "jupyterhub", backchannel_logout_url=None)  # refresh path only
    try:
        name = new_user(kc)
        with hub_client() as c:
            login(c, hub_url, name)
            assert kc.call(kc.end_user_sessions, name) == 1
            time.sleep(3)
            resp = home(c, hub_url)
            assert resp.url.path == "/hub/login"
            assert resp.status_code == 200
            assert api_user(hub_url, name)["auth_state"]["refresh_token"] is None
            # a new login shows Keycloak's form again and works
            resp = c.get(f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"})
            action = login_form_action(resp.text)
            assert action is not None
            resp = c.post(action, data={"username": name, "password": name})
            assert resp.url.path == "/hub/home" and resp.status_code == 200
    finally:
        kc.call(
            kc.update_client,
            "jupyterhub",
            backchannel_logout_url=f"{hub_url}/hub/backchannel-logout",
        )


@pytest.mark.parametrize("fault", [{"status": 503}, {"drop": True}], ids=["503", "drop"])
def test_keycloak_down_keeps_valid_session_then_503(kc, hub_url, fault):
    kc.call(kc.set_lifetimes, access_token_lifespan=6)
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        started = time.time()
        injected = kc.faults.inject(TOKEN_PATH, **fault)
        time.sleep(3.5)  # inside the margin, token still valid
        resp = home(c, hub_url)
        assert resp.status_code == 200 and resp.url.path == "/hub/home"
        assert injected.hits >= 1
        time.sleep(max(0.0, started + 6.5 - time.time()))  # now expired
        resp = home(c, hub_url)
        assert resp.status_code == 503
        assert "login service" in resp.text and "try again" in resp.text.lower()
        # the "Try again" link goes to a page of this hub, whatever ?next= says
        for evil in ("https://evil.example/x", "//evil.example/x", "/\\evil.example/x"):
            page = c.get(f"{hub_url}/hub/login", params={"next": evil})
            assert page.status_code == 503
            links = re.findall(r'href="([^"]*)"[^>]*>Try again', page.text)
            assert links and all(link.startswith("/") for link in links), links
            assert not [link for link in links if "evil.example" in link.split("?")[0]], links
        kc.faults.remove(injected)
        # Keycloak is back: the kept refresh token works, no new login needed
        resp = home(c, hub_url)
        assert resp.status_code == 200 and resp.url.path == "/hub/home"


def test_login_while_token_endpoint_fails_is_503(kc, hub_url):
    name = new_user(kc)
    kc.faults.inject(TOKEN_PATH, status=502)
    with hub_client() as c:
        resp = login(c, hub_url, name)
    assert resp.status_code == 503
    assert "login service" in resp.text


def test_removed_role_loses_access_at_next_refresh(kc, hub_url):
    kc.call(kc.set_lifetimes, access_token_lifespan=5)
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        assert home(c, hub_url).status_code == 200
        kc.call(kc.update_user, name, realm_roles=[])
        assert home(c, hub_url).status_code == 200  # no refresh yet: token still fresh
        time.sleep(3)
        resp = home(c, hub_url)
        assert resp.status_code == 403
        assert "not currently authorized" in resp.text
        # the rotated refresh token was kept: the Keycloak session is intact
        assert [s for s in kc.call(kc.list_sessions) if s["username"] == name]


def test_group_change_syncs_at_refresh(kc, hub_url):
    kc.call(kc.set_lifetimes, access_token_lifespan=5)
    name = new_user(kc, groups=["/researchers"])
    with hub_client() as c:
        login(c, hub_url, name)
        assert api_user(hub_url, name)["groups"] == ["researchers"]
        kc.call(kc.update_user, name, groups=["/team-a"])
        time.sleep(3)
        assert home(c, hub_url).status_code == 200
    assert api_user(hub_url, name)["groups"] == ["team-a"]


def test_rp_logout_ends_keycloak_session(kc, hub_url):
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        assert [s for s in kc.call(kc.list_sessions) if s["username"] == name]
        resp = c.get(f"{hub_url}/hub/logout")
        assert resp.status_code == 200 and resp.url.path == "/hub/login"
        hops = [str(r.url) for r in resp.history]
        assert any("/protocol/openid-connect/logout" in h and "id_token_hint" in h for h in hops)
        assert not [s for s in kc.call(kc.list_sessions) if s["username"] == name]
        assert api_user(hub_url, name)["auth_state"]["access_token"] is None
        resp = c.get(f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"})
        assert login_form_action(resp.text) is not None  # Keycloak asks for a password again
        assert home(c, hub_url).url.path == "/hub/login"


def test_backchannel_logout_ends_hub_session(kc, hub_url):
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        assert home(c, hub_url).url.path == "/hub/home"
        assert kc.call(kc.end_user_sessions, name) == 1
        delivery = kc.call(lambda: kc.backchannel_log[-1])
        assert delivery["status"] == 200, delivery
        resp = home(c, hub_url)  # no refresh needed: the cookie itself is revoked
        assert resp.url.path == "/hub/login"
    assert api_user(hub_url, name)["auth_state"]["access_token"] is None


def _post_logout(hub_url: str, token: str) -> httpx.Response:
    return httpx.post(f"{hub_url}/hub/backchannel-logout", data={"logout_token": token}, timeout=10)


def test_made_up_key_ids_do_not_make_the_hub_fetch_keys_each_time(kc, hub_url):
    """An unauthenticated caller posting logout tokens with made-up key ids: the hub
    fetches the realm's keys at most once per jwks_refetch_interval."""
    fetches = kc.faults.inject("/realms/valeria/protocol/openid-connect/certs", delay=0.001)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    started = time.monotonic()
    for i in range(30):
        token = jwt.encode({"sub": "x"}, key, algorithm="RS256", headers={"kid": f"made-up-{i}"})
        assert _post_logout(hub_url, token).status_code == 400
    elapsed = time.monotonic() - started
    kc.faults.remove(fetches)
    assert fetches.hits <= 1 + int(elapsed / JWKS_REFETCH), (fetches.hits, elapsed)


def test_backchannel_logout_refuses_bad_tokens(kc, hub_url):
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        kc.call(kc.end_user_sessions, name)
    genuine = kc.call(lambda: kc.backchannel_log[-1])["logout_token"]
    claims = jwt.decode(genuine, options={"verify_signature": False})

    def signed(**changes):
        body = {**claims, "jti": str(uuid.uuid4()), "iat": int(time.time()), **changes}
        body = {k: v for k, v in body.items() if v is not None}
        return kc.call(kc.keys.sign, body)

    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {**claims, "jti": str(uuid.uuid4())},
        forged_key,
        algorithm="RS256",
        headers={"kid": jwt.get_unverified_header(genuine)["kid"]},
    )
    cases = {
        "replayed": genuine,
        "garbage": "not-a-jwt",
        "forged signature": forged,
        "wrong audience": signed(aud="another-client"),
        "wrong issuer": signed(iss="http://127.0.0.1:1/realms/valeria"),
        "old": signed(iat=int(time.time()) - 3600),
        "nonce": signed(nonce="abc"),
        "no event": signed(events={"other": {}}),
        "no sid or sub": signed(sid=None, sub=None),
    }
    for label, token in cases.items():
        resp = _post_logout(hub_url, token)
        assert resp.status_code == 400, label
        assert resp.json()["error"] == "invalid_request", label
    assert _post_logout(hub_url, signed()).status_code == 200
    resp = httpx.post(f"{hub_url}/hub/backchannel-logout", data={}, timeout=10)
    assert resp.status_code == 400


def test_hub_refuses_to_start_without_crypt_key(tmp_path, stack):
    kc, _ = stack
    from tests.helpers.auth_hub import hub_config

    hub_url = f"http://127.0.0.1:{free_port()}"
    config = hub_config(kc.issuer, hub_url, tmp_path)
    hub = HubProcess({"JUPYTERHUB_CRYPT_KEY": ""}, tmp_path, config=config, public_url=hub_url)
    with pytest.raises(RuntimeError) as info:
        hub.start(timeout=30)
    hub.stop()
    assert "JUPYTERHUB_CRYPT_KEY" in str(info.value) or "encryption" in str(info.value)


def test_a_backchannel_logout_during_a_refresh_leaves_no_tokens(kc, hub_url):
    """Keycloak ends the session while the hub is refreshing the person's tokens: the
    logout waits for the refresh and then drops its tokens too, so no fresh tokens
    outlive the session."""
    kc.call(kc.set_lifetimes, access_token_lifespan=5)
    name = new_user(kc)
    with hub_client() as c:
        login(c, hub_url, name)
        state = api_user(hub_url, name)["auth_state"]
        claims = jwt.decode(state["id_token"], options={"verify_signature": False})
        time.sleep(2.5)  # the access token is now within the refresh margin
        slow = kc.faults.inject(TOKEN_PATH, delay=2.0, times=1)
        refresh = threading.Thread(target=home, args=(c, hub_url))
        refresh.start()
        deadline = time.monotonic() + 5
        while slow.hits == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.hits == 1  # the refresh is in flight at Keycloak
        logout_token = kc.call(
            kc.keys.sign,
            {
                "iss": kc.issuer,
                "aud": "jupyterhub",
                "iat": int(time.time()),
                "jti": str(uuid.uuid4()),
                "sub": claims["sub"],
                "sid": state["sid"],
                "events": {EVENT: {}},
            },
        )
        assert _post_logout(hub_url, logout_token).status_code == 200
        refresh.join(timeout=30)
    after = api_user(hub_url, name)["auth_state"]
    assert after["access_token"] is None and after["refresh_token"] is None
    assert after["ended_at"] >= state["obtained_at"]


def _callback_url(client: httpx.Client, hub_url: str, name: str) -> str:
    """Start a login (Keycloak's form, or its SSO session); the hub callback URL that
    Keycloak sends the browser to, not yet visited."""
    resp = client.get(
        f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"}, follow_redirects=False
    )
    assert resp.status_code == 302, resp.text
    resp = client.get(resp.headers["location"], follow_redirects=False)
    if resp.status_code == 200:
        action = login_form_action(resp.text)
        assert action is not None
        data = {"username": name, "password": name}
        resp = client.post(action, data=data, follow_redirects=False)
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith(f"{hub_url}/hub/oauth_callback?"), location
    return location


def test_failed_logins_are_clear_4xx_pages_and_leave_no_secrets_in_the_log(stack, kc, hub_url):
    """Replayed, foreign, tampered and incomplete callbacks: each is a 4xx page saying
    what went wrong, and no code, state, token or claim reaches the hub's log."""
    hub = stack[1]
    name = new_user(kc)
    logged_before = len(hub.log_text())
    secrets_seen: list[str] = []
    with hub_client() as c:
        callback = _callback_url(c, hub_url, name)
        query = parse_qs(urlsplit(callback).query)
        secrets_seen += [query["code"][0], query["state"][0], query["session_state"][0]]
        # another browser (no state cookie) brings this answer
        with hub_client() as other:
            resp = other.get(callback)
        assert resp.status_code == 400 and "not started in this browser" in resp.text
        # a state that is not this browser's
        forged = callback.replace(f"state={query['state'][0]}", "state=eyJzdGF0ZV9pZCI6ICJ4In0=")
        resp = c.get(forged)
        assert resp.status_code == 400 and "state mismatch" in resp.text
        # the genuine answer works once ...
        callback = _callback_url(c, hub_url, name)
        query = parse_qs(urlsplit(callback).query)
        secrets_seen += [query["code"][0], query["state"][0]]
        resp = c.get(callback)
        assert resp.status_code == 200 and resp.url.path == "/hub/home"
        state = api_user(hub_url, name)["auth_state"]
        secrets_seen += [state["access_token"], state["refresh_token"], state["id_token"]]
        # ... and a replay of it is refused (the code is spent, the state cookie gone)
        resp = c.get(callback)
        assert resp.status_code == 400, resp.text
        resp = c.get(f"{hub_url}/hub/oauth_callback", params={"state": "x"})
        assert resp.status_code == 400 and "no authorization code" in resp.text
    log = hub.log_text()[logged_before:]
    assert "oauth_callback?state=[removed]" in log  # the refusals were logged, scrubbed
    for secret in secrets_seen:
        assert secret not in log
    for claim_value in (f"{name}@valeria.example", '"sub"', "realm_access"):
        assert claim_value not in log
