"""KeycloakAuthenticator's pure parts, and its token logic against the Keycloak stand-in
over real HTTP (in this test's event loop)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from tornado import web

from devstack.keycloak import KeycloakStandIn
from valeria_hub.auth import KeycloakAuthenticator
from valeria_hub.auth.access import AccessRules, decide, hub_group_name
from valeria_hub.auth.handlers import PROBLEM_ATTR, end_session_url
from valeria_hub.auth.oidc import (
    BACKCHANNEL_EVENT,
    KeycloakUnavailable,
    KeyedLocks,
    RealmClient,
    ReplayCache,
    TokenInvalid,
    TokenRejected,
    at_hash,
    body_excerpt,
    check_logout_claims,
)
from valeria_hub.auth.state import (
    auth_state_layout,
    needs_refresh,
    refresh_token_usable,
    without_tokens,
)

# -- roles and groups ------------------------------------------------------------------


def claims(realm=(), client=None, groups=None) -> dict:
    out: dict = {"realm_access": {"roles": list(realm)}}
    if client:
        out["resource_access"] = {"jupyterhub": {"roles": list(client)}}
    if groups is not None:
        out["groups"] = groups
    return out


RULES = AccessRules(
    client_id="jupyterhub",
    admin_roles=frozenset({"hub-admin"}),
    allowed_roles=frozenset({"hub-user", "jupyterhub:notebook"}),
    allowed_groups=frozenset({"team-a"}),
)


def test_realm_role_allows_and_client_role_in_qualified_form():
    assert decide(claims(["hub-user"]), RULES).allowed
    assert decide(claims(client=["notebook"]), RULES).allowed
    # a realm role called "notebook" is not the client role
    assert not decide(claims(["notebook"]), RULES).allowed


def test_groups_match_with_or_without_leading_slash():
    assert decide(claims(groups=["/team-a"]), RULES).allowed
    rules = AccessRules(client_id="jupyterhub", allowed_groups=frozenset({"/team-a"}))
    assert decide(claims(groups=["team-a"]), rules).allowed
    refused = decide(claims(["other"], groups=["/team-b"]), RULES)
    assert not refused.allowed and "hub-user" in refused.reason


def test_admin_from_role_or_group_and_none_when_unconfigured():
    assert decide(claims(["hub-admin"]), RULES).admin is True
    assert decide(claims(["hub-admin"]), RULES).allowed  # admins are always allowed
    assert decide(claims(["hub-user"]), RULES).admin is False
    groups_rule = AccessRules(client_id="c", admin_groups=frozenset({"ops"}))
    assert decide(claims(groups=["/ops"]), groups_rule).admin is True
    assert decide(claims(["hub-admin"]), AccessRules(client_id="c")).admin is None


def test_empty_allow_rules_let_every_realm_user_in():
    access = decide({}, AccessRules(client_id="c"))
    assert access.allowed and access.groups == []


def test_hub_group_names():
    rules = AccessRules(client_id="c")
    assert decide(claims(groups=["/b", "/a/x", "/a"]), rules).groups == ["a", "a/x", "b"]
    keep = AccessRules(client_id="c", strip_group_slash=False)
    assert decide(claims(groups="/solo"), keep).groups == ["/solo"]
    assert hub_group_name("plain", True) == "plain"
    assert decide({"groups": [None, "/", 3]}, rules).groups == []


# -- token state -----------------------------------------------------------------------


def test_needs_refresh_only_within_margin():
    now = 1000.0
    state = {"access_token": "t", "access_token_expires_at": now + 120}
    assert not needs_refresh(state, 60, now)
    assert needs_refresh(state, 120, now)
    assert needs_refresh({"access_token": "t"}, 60, now)
    assert needs_refresh({"access_token_expires_at": now + 500}, 60, now)
    # a margin longer than the token's lifetime is capped at half of it
    short = {"access_token": "t", "obtained_at": now - 10, "access_token_expires_at": now + 20}
    assert not needs_refresh(short, 60, now)
    assert needs_refresh(short, 60, now + 5)


def test_refresh_token_usable():
    assert refresh_token_usable({"refresh_token": "r", "refresh_token_expires_at": 11}, 10)
    assert not refresh_token_usable({"refresh_token": "r", "refresh_token_expires_at": 9}, 10)
    assert refresh_token_usable({"refresh_token": "r"}, 10)
    assert not refresh_token_usable({}, 10)


def test_auth_state_layout_and_forgetting_tokens():
    info = {
        "access_token": "a",
        "refresh_token": "r",
        "id_token": "i",
        "expires_in": 300,
        "refresh_expires_in": 0,
        "scope": "openid email",
        "session_state": "s1",
    }
    state = auth_state_layout(info, {"sub": "u1", "sid": "s1"}, 100.0)
    assert state["access_token_expires_at"] == 400.0
    assert state["refresh_token_expires_at"] is None  # 0: no expiry (offline token)
    assert state["scope"] == ["openid", "email"] and state["sid"] == "s1"
    assert state["token_response"] == info and state["oauth_user"]["sub"] == "u1"
    gone = without_tokens(state)
    assert gone["access_token"] is None and gone["refresh_token"] is None
    assert gone["oauth_user"] == state["oauth_user"]
    # ids that are not strings are never used to look sessions up (a dict key, a query)
    odd = auth_state_layout(info, {"sub": ["u1"], "sid": {"x": 1}}, 100.0)
    assert odd["sid"] == "s1" and odd["sub"] is None


def test_end_session_url():
    url = end_session_url(
        "https://sso/realms/v/protocol/openid-connect/logout",
        client_id="jupyterhub",
        post_logout_redirect_uri="https://hub/hub/login",
        id_token="idt",
    )
    q = parse_qs(urlsplit(url).query)
    assert q == {
        "id_token_hint": ["idt"],
        "client_id": ["jupyterhub"],
        "post_logout_redirect_uri": ["https://hub/hub/login"],
    }


def logout_claims(**changes) -> dict:
    base = {
        "iss": "https://sso/realms/v",
        "aud": "jupyterhub",
        "iat": 1000,
        "exp": 1120,
        "jti": "j1",
        "sid": "s1",
        "events": {BACKCHANNEL_EVENT: {}},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"iss": "https://evil/realms/v"}, "logout token has the wrong issuer (iss)"),
        ({"aud": "other"}, "logout token is not for client jupyterhub (aud)"),
        ({"iat": 500}, "logout token is not recent (iat)"),
        ({"iat": 2000}, "logout token is not recent (iat)"),
        ({"exp": 900}, "logout token has expired (exp)"),
        ({"events": {"x": {}}}, "logout token has no back-channel logout event (events)"),
        ({"events": {BACKCHANNEL_EVENT: "yes"}}, "logout token has no back-channel logout event"),
        ({"sid": None}, "logout token has neither a sid nor a sub claim"),
        ({"nonce": "n"}, "logout token contains a nonce"),
        ({"jti": None}, "logout token has no jti claim"),
        ({"iat": None}, "logout token has no iat claim"),
    ],
)
def test_logout_claims_refused(changes, message):
    c = logout_claims(**changes)
    with pytest.raises(TokenInvalid) as info:
        check_logout_claims(
            c, issuer="https://sso/realms/v", client_id="jupyterhub", now=1010, max_age=120
        )
    assert str(info.value).startswith(message)


def test_logout_claims_accepted_with_sub_only_and_aud_list():
    c = logout_claims(sid=None, sub="u1", aud=["x", "jupyterhub"])
    check_logout_claims(
        c, issuer="https://sso/realms/v", client_id="jupyterhub", now=1010, max_age=120
    )


def test_replay_cache():
    cache = ReplayCache(ttl=10)
    assert cache.check_and_add("a", 0)
    assert not cache.check_and_add("a", 5)
    assert cache.check_and_add("a", 11)


async def test_keyed_locks_serialise_one_key_and_clean_up():
    locks = KeyedLocks()
    running, peak = {"a": 0, "b": 0}, {"a": 0, "b": 0}

    async def work(key):
        async with locks.hold(key):
            running[key] += 1
            peak[key] = max(peak[key], running[key])
            await asyncio.sleep(0.01)
            running[key] -= 1

    await asyncio.gather(*(work(k) for k in "aaaabbbb"))
    assert peak == {"a": 1, "b": 1}
    assert len(locks) == 0


# -- against the Keycloak stand-in ------------------------------------------------------


@pytest.fixture
async def legacy_kc():
    async with KeycloakStandIn(legacy_prefix=True) as s:
        yield s


@pytest.fixture
async def realm(kc):
    client = RealmClient(kc.issuer, timeout=2)
    yield client
    await client.aclose()


async def test_discovery_with_legacy_prefix(legacy_kc):
    client = RealmClient(legacy_kc.issuer + "/", timeout=2)
    try:
        meta = await client.metadata()
        assert "/auth/realms/valeria" in meta.issuer
        assert meta.token_endpoint == legacy_kc.endpoint("token")
        assert meta.end_session_endpoint == legacy_kc.endpoint("logout")
        claims = await client.validate_tokens(legacy_kc.issue_tokens("alice"), "jupyterhub")
        assert claims["preferred_username"] == "alice"
    finally:
        await client.aclose()


async def test_discovery_failure_is_not_cached(kc, realm):
    kc.faults.inject("/realms/valeria/.well-known", status=503, times=1)
    with pytest.raises(KeycloakUnavailable):
        await realm.metadata()
    assert (await realm.metadata()).issuer == kc.issuer
    kc.faults.inject("/realms/valeria/.well-known", status=500)
    assert (await realm.metadata()).issuer == kc.issuer  # cached now


async def test_discovery_timeout(kc):
    kc.faults.inject("/realms/valeria/.well-known", delay=2)
    client = RealmClient(kc.issuer, timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(KeycloakUnavailable):
            await client.metadata()
        assert time.monotonic() - started < 1.5
    finally:
        await client.aclose()


async def test_validation_and_key_rotation(kc):
    realm = RealmClient(kc.issuer, jwks_min_interval=30)
    try:
        claims = await realm.validate_tokens(kc.issue_tokens("alice"), "jupyterhub")
        assert claims["azp"] == "jupyterhub" and "vault-valeria" in claims["aud"]
        kc.rotate_key(keep_old=False)
        fetches = kc.faults.inject("/realms/valeria/protocol/openid-connect/certs", delay=0.001)
        # right after a fetch, an unknown kid does not make us fetch again (anyone can
        # send one), however often it comes
        for _ in range(20):
            with pytest.raises(TokenInvalid, match="signed with a key the realm does not list"):
                await realm.validate_tokens(kc.issue_tokens("bob"), "jupyterhub")
        assert fetches.hits == 0
        realm._keys_fetched_at -= 31  # the interval has passed (no sleep: load-proof)
        await realm.validate_tokens(kc.issue_tokens("bob"), "jupyterhub")
        await realm.validate_tokens(kc.issue_tokens("bob"), "jupyterhub")
        assert fetches.hits == 1  # one refetch for the new kid, then cached
    finally:
        await realm.aclose()


def signed_like(kc, token: str, **changes) -> str:
    """``token`` re-signed by the realm's key with claims changed (None drops one)."""
    import jwt

    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    return kc.keys.sign({k: v for k, v in claims.items() if v is not None})


async def test_validation_refusals_name_the_token_and_the_check(kc, realm):
    tokens = kc.issue_tokens("alice")
    access, id_token = tokens["access_token"], tokens["id_token"]
    head, body, sig = access.split(".")
    cases = {
        # the token as issued, checked for another client
        "access token was issued to client 'jupyterhub', not 'other-client'": (
            tokens,
            "other-client",
        ),
        "access token has no azp claim": ({"access_token": signed_like(kc, access, azp=None)},),
        "access token has a signature that does not verify": (
            {**tokens, "access_token": f"{head}.{body}.{sig[:-4]}AAAA"},
        ),
        # a refresh token (HS512) offered as the access token
        "access token is not signed with RS256 (alg)": ({"access_token": tokens["refresh_token"]},),
        "access token is not a well-formed JWT": ({"access_token": "not-a-jwt"},),
        "access token has the wrong issuer (iss)": (
            {"access_token": signed_like(kc, access, iss="http://127.0.0.1:1/realms/valeria")},
        ),
        "access token has no exp claim": ({"access_token": signed_like(kc, access, exp=None)},),
        "access token has typ 'ID', not Bearer": (
            {"access_token": signed_like(kc, access, typ="ID")},
        ),
        "ID token and access token name different users (sub)": (
            {**tokens, "id_token": kc.issue_tokens("bob")["id_token"]},
        ),
        "ID token is not for client jupyterhub (aud)": (
            {**tokens, "id_token": signed_like(kc, id_token, aud="another-client")},
        ),
        "ID token has expired (exp)": (
            {**tokens, "id_token": signed_like(kc, id_token, exp=int(time.time()) - 3600)},
        ),
        # alice's ID token of another answer: same person, not bound to this access token
        "ID token's at_hash does not match the access token": (
            {**tokens, "id_token": kc.issue_tokens("alice")["id_token"]},
        ),
        "access token has no sub claim and the answer no ID token": (
            {"access_token": signed_like(kc, access, sub=None)},
        ),
    }
    for message, (token_info, *client) in cases.items():
        with pytest.raises(TokenInvalid) as info:
            await realm.validate_tokens(token_info, client[0] if client else "jupyterhub")
        assert str(info.value) == message
    assert (await realm.validate_tokens(tokens, "jupyterhub"))["sub"] == kc.realm.users["alice"].id


async def test_lightweight_access_token_takes_the_person_from_the_id_token(kc, realm):
    """Keycloak's "Always use lightweight access token": the access token keeps only
    exp, iat, jti, iss, typ, azp, sid and scope (as Keycloak 26.7 issues it); the ID
    token of the same answer names the person."""
    tokens = kc.issue_tokens("alice")
    full = jwt_claims(tokens["access_token"])
    light = {k: full[k] for k in ("exp", "iat", "jti", "iss", "typ", "azp", "sid", "scope")}
    access = kc.keys.sign(light)
    id_token = signed_like(
        kc, tokens["id_token"], at_hash=at_hash(access), realm_access=full["realm_access"]
    )
    claims = await realm.validate_tokens(
        {**tokens, "access_token": access, "id_token": id_token}, "jupyterhub"
    )
    assert claims["sub"] == full["sub"] and claims["preferred_username"] == "alice"
    assert claims["groups"] == ["/researchers", "/team-a"]
    assert "hub-user" in claims["realm_access"]["roles"]
    # the token's own claims are the access token's, never the ID token's
    assert claims["typ"] == "Bearer" and "aud" not in claims and "at_hash" not in claims
    assert decide(claims, RULES).allowed


def jwt_claims(token: str) -> dict:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})


async def test_expired_token_refused(kc):
    kc.set_lifetimes(access_token_lifespan=1)
    client = RealmClient(kc.issuer, timeout=2, leeway=0)
    try:
        tokens = kc.issue_tokens("alice")
        await asyncio.sleep(2.1)
        with pytest.raises(TokenInvalid):
            await client.validate_tokens(tokens, "jupyterhub")
    finally:
        await client.aclose()


async def test_token_endpoint_errors_sorted(kc, realm):
    form = {
        "grant_type": "refresh_token",
        "refresh_token": kc.issue_tokens("alice")["refresh_token"],
        "client_id": "jupyterhub",
        "client_secret": "demo-jupyterhub-secret",
    }
    assert (await realm.token_request(form, {}))["access_token"]
    with pytest.raises(TokenRejected) as rejected:  # reuse of a rotated refresh token
        await realm.token_request(form, {})
    assert rejected.value.error == "invalid_grant"
    assert "reuse" in rejected.value.description
    with pytest.raises(TokenRejected) as bad_client:
        await realm.token_request({**form, "client_secret": "wrong"}, {})
    assert bad_client.value.status == 401
    path = "/realms/valeria/protocol/openid-connect/token"
    kc.faults.inject(path, status=503, times=1)
    with pytest.raises(KeycloakUnavailable):
        await realm.token_request(form, {})
    kc.faults.inject(path, drop=True, times=1)
    with pytest.raises(KeycloakUnavailable):
        await realm.token_request(form, {})


# -- refresh_user with an in-memory user --------------------------------------------------


class MemoryUser:
    """The two auth_state methods of JupyterHub's User, in memory."""

    def __init__(self, name: str, state: dict | None) -> None:
        self.name = name
        self.state = state

    async def get_auth_state(self):
        await asyncio.sleep(0)
        return None if self.state is None else dict(self.state)

    async def save_auth_state(self, state):
        await asyncio.sleep(0)
        self.state = state


class IdentifyingHandler:
    """A request still being identified: scopes are not resolved yet."""

    parsed_scopes = None

    def get_argument(self, name, default=None):
        return "/hub/home"


@pytest.fixture
async def authenticator(kc):
    auth = KeycloakAuthenticator(
        realm_url=kc.issuer,
        client_id="jupyterhub",
        client_secret="demo-jupyterhub-secret",
        refresh_margin=60,
        allowed_roles={"hub-user"},
        http_timeout=2,
    )
    yield auth
    await auth.realm.aclose()


async def logged_in(kc, auth, username="alice") -> MemoryUser:
    info = kc.issue_tokens(username)
    model = await auth._token_to_auth_model(info)
    return MemoryUser(model["name"], model["auth_state"])


def due(user: MemoryUser) -> None:
    """Make the stored access token a 300 s token with 30 s left: inside the 60 s margin."""
    user.state["obtained_at"] = time.time() - 270
    user.state["access_token_expires_at"] = time.time() + 30


def refresh_count(kc) -> int:
    return kc.token_counts().get("refresh_token", {}).get("jupyterhub", 0)


async def test_fresh_token_is_not_refreshed(kc, authenticator):
    user = await logged_in(kc, authenticator)
    assert await authenticator.refresh_user(user) is True
    assert refresh_count(kc) == 0


async def test_concurrent_refreshes_become_one(kc, authenticator):
    user = await logged_in(kc, authenticator)
    due(user)
    kc.faults.inject("/realms/valeria/protocol/openid-connect/token", delay=0.2)
    results = await asyncio.gather(*(authenticator.refresh_user(user) for _ in range(20)))
    assert refresh_count(kc) == 1
    models = [r for r in results if isinstance(r, dict)]
    assert len(models) == 1 and results.count(True) == 19
    assert user.state["access_token"] == models[0]["auth_state"]["access_token"]
    assert models[0]["groups"] == ["researchers", "team-a"] and models[0]["admin"] is None


async def test_rejected_refresh_forces_login(kc, authenticator):
    user = await logged_in(kc, authenticator)
    due(user)
    await kc.end_user_sessions("alice")
    assert await authenticator.refresh_user(user) is False
    assert user.state["refresh_token"] is None  # not tried again
    assert await authenticator.refresh_user(user) is False
    assert refresh_count(kc) == 1


async def test_unavailable_keeps_valid_session_then_503(kc, authenticator):
    user = await logged_in(kc, authenticator)
    due(user)
    kc.faults.inject("/realms/valeria/protocol/openid-connect/token", status=503)
    assert await authenticator.refresh_user(user) is True  # 30 s left: keep it
    user.state["access_token_expires_at"] = time.time() - 1
    with pytest.raises(web.HTTPError) as info:  # e.g. the pre-spawn refresh
        await authenticator.refresh_user(user, handler=None)
    assert info.value.status_code == 503
    handler = IdentifyingHandler()
    assert await authenticator.refresh_user(user, handler=handler) is False
    assert getattr(handler, PROBLEM_ATTR).status_code == 503


async def test_lost_role_refused_but_new_tokens_kept(kc, authenticator):
    user = await logged_in(kc, authenticator, "bob")
    due(user)
    old_refresh = user.state["refresh_token"]
    kc.update_user("bob", realm_roles=[])
    handler = IdentifyingHandler()
    assert await authenticator.refresh_user(user, handler=handler) is False
    assert user.state["refresh_token"] != old_refresh
    assert getattr(handler, PROBLEM_ATTR).status_code == 403


async def test_username_claim_and_no_userinfo(kc, authenticator):
    kc.faults.inject("/realms/valeria/protocol/openid-connect/userinfo", status=500)
    authenticator.username_claim = "email"
    model = await authenticator._token_to_auth_model(kc.issue_tokens("carol"))
    assert model["name"] == "carol@valeria.example"


def test_auth_state_cannot_be_disabled():
    with pytest.raises(Exception, match="enable_auth_state"):
        KeycloakAuthenticator(enable_auth_state=False)


def test_tokens_obtained_before_the_session_ended_are_never_stored_again():
    from types import SimpleNamespace

    from valeria_hub.auth.state import keep_ended_session

    refreshed = {"access_token": "new", "refresh_token": "r2", "obtained_at": 100.0}
    ended = {"access_token": None, "refresh_token": None, "ended_at": 105.0}
    auth = SimpleNamespace(session_ended_at={})
    model = {"name": "alice", "auth_state": refreshed}
    kept = keep_ended_session(auth, model, ended)
    assert kept["access_token"] is None and kept["refresh_token"] is None
    # JupyterHub read "existing" before the logout saved: the authenticator's record decides
    auth.session_ended_at["alice"] = 105.0
    kept = keep_ended_session(auth, model, dict(refreshed))
    assert kept["access_token"] is None and kept["ended_at"] == 105.0
    # a new login after the logout wins
    login = {"access_token": "login", "obtained_at": 110.0}
    assert keep_ended_session(auth, {"name": "alice", "auth_state": login}, ended) == login
    assert keep_ended_session(SimpleNamespace(), {"name": "bob", "auth_state": None}, None) is None


# -- malformed logins and what reaches the log ---------------------------------------------


def test_body_excerpt_keeps_the_words_and_drops_tokens():
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
    body = (
        f'{{"message": "blocked by policy {jwt_like}", "access_token": "at-123",'
        f' "session": "{"x" * 64}"}}'
    )
    out = body_excerpt(body)
    assert "blocked by policy" in out and '"access_token": "[removed]"' in out
    assert jwt_like not in out and "at-123" not in out and "x" * 40 not in out
    assert body_excerpt("<html>\n<h1>403  Forbidden</h1>" + "y " * 300, limit=50).startswith(
        "<html> <h1>403 Forbidden</h1>"
    )
    assert len(body_excerpt("z " * 300, limit=50)) == 50


async def test_a_refusal_without_an_oauth_error_is_logged_with_status_and_body(
    kc, authenticator, caplog
):
    """A gateway in front of Keycloak answers the refresh with its own JSON: the log
    says what came back (today: "(unknown: )"), without the tokens in it."""
    user = await logged_in(kc, authenticator)
    due(user)
    refresh_token = user.state["refresh_token"]
    kc.faults.inject(
        "/realms/valeria/protocol/openid-connect/token",
        status=403,
        body={"message": "request blocked by gateway policy 7", "echo": refresh_token},
    )
    caplog.set_level("INFO")
    assert await authenticator.refresh_user(user) is False
    [line] = [r.getMessage() for r in caplog.records if "refused to refresh" in r.getMessage()]
    assert "HTTP 403 without an OAuth error" in line
    assert "request blocked by gateway policy 7" in line
    assert refresh_token not in caplog.text
    assert user.state["refresh_token"] is None


async def test_an_oauth_refusal_is_logged_with_its_error(kc, authenticator, caplog):
    user = await logged_in(kc, authenticator)
    due(user)
    await kc.end_user_sessions("alice")
    caplog.set_level("INFO")
    assert await authenticator.refresh_user(user) is False
    assert "(HTTP 400 invalid_grant: Session not active): login required" in caplog.text


async def test_a_non_json_refusal_counts_as_unavailable_and_shows_the_page(kc, realm):
    kc.faults.inject(
        "/realms/valeria/protocol/openid-connect/token", status=404, body="<h1>Not found</h1>"
    )
    with pytest.raises(KeycloakUnavailable) as info:
        await realm.token_request({"grant_type": "refresh_token"}, {})
    assert str(info.value) == "token endpoint: HTTP 404, not JSON: <h1>Not found</h1>"


@pytest.mark.parametrize(
    "username_claim, problem",
    [
        ("nickname", "it did not send your username (the 'nickname' claim is missing)"),
        (lambda claims: claims["groups"], "your username (the username_claim callable) is not"),
        (lambda claims: claims["nope"], "but the username_claim callable failed"),
        (lambda claims: "/team-a", "is not a valid hub username"),
        (lambda claims: "", "it did not send your username"),
    ],
)
async def test_an_unusable_username_claim_is_a_400_naming_it_and_logs_no_claims(
    kc, authenticator, caplog, username_claim, problem
):
    authenticator.username_claim = username_claim
    caplog.set_level("DEBUG")
    tokens = kc.issue_tokens("alice")
    with pytest.raises(web.HTTPError) as info:
        await authenticator._token_to_auth_model(tokens)
    assert info.value.status_code == 400
    assert problem in info.value.jupyterhub_message
    assert "support team" in info.value.jupyterhub_message
    for secret in ("alice@valeria.example", "Tremblay", "/team-a", tokens["access_token"]):
        assert secret not in caplog.text, secret
    assert "Login refused" in caplog.text


async def test_refreshed_tokens_without_a_username_end_the_session(kc, authenticator):
    user = await logged_in(kc, authenticator)
    due(user)
    authenticator.username_claim = "nickname"
    assert await authenticator.refresh_user(user) is False
    assert user.state["access_token"] is None and user.state["refresh_token"] is None


async def test_refreshed_tokens_naming_another_hub_user_end_the_session(kc, authenticator):
    """E.g. renamed in Keycloak while signed in: the new tokens are not this hub user's
    (here the username claim changes from preferred_username to email)."""
    user = await logged_in(kc, authenticator, "bob")
    due(user)
    authenticator.username_claim = "email"
    assert await authenticator.refresh_user(user) is False
    assert user.state["refresh_token"] is None


def test_scrub_uri_keeps_only_harmless_parameters():
    from valeria_hub.auth.handlers import scrub_uri

    uri = "/hub/oauth_callback?state=s3cr3t&session_state=sid&iss=x&code=c0de&error=access_denied"
    assert scrub_uri(uri) == (
        "/hub/oauth_callback?state=[removed]&session_state=[removed]&iss=[removed]"
        "&code=[removed]&error=access_denied"
    )
    assert scrub_uri("/hub/login?next=/hub/home") == "/hub/login?next=/hub/home"
    assert scrub_uri("/hub/home") == "/hub/home"
