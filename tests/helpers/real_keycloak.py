"""Helpers for the tests against Keycloak's own server (tests/keycloak/).

Keycloak's login page is its real theme, not the stand-in's: the form's action carries
``session_code``, ``execution``, ``tab_id`` and ``client_data`` and must be read from the
page, and its cookies (``AUTH_SESSION_ID``, ``KC_RESTART``...) are marked ``Secure;
SameSite=None`` even over plain http. Browsers send Secure cookies to http://127.0.0.1
(a loopback origin counts as secure); httpx does not, so ``browser_client`` applies the
browsers' rule to loopback hosts.

The admin helpers act as an administrator would, through Keycloak's admin REST API
(users, sessions, client settings, mappers, events); every change is made for a
``with`` block and put back after it, since one server serves the whole test session.
"""

from __future__ import annotations

import copy
import http.cookiejar
import time
import urllib.request
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import TypeVar

import httpx

from devstack.keycloak.real import KeycloakServer
from tests.helpers.auth_hub import api_user

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# 5 s access tokens for the hub client; with the test hub's 3 s refresh margin (capped at
# half the lifetime) a refresh is due 2.5 s after login.
SHORT_TOKENS = {"access.token.lifespan": "5"}
T = TypeVar("T")


class _Forms(HTMLParser):
    """Every form of a page: its attributes and the named inputs with their values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"attrs": attributes, "inputs": {}})
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1]["inputs"][attributes["name"]] = attributes.get("value", "")


def page_form(page: str, form_id: str = "kc-form-login") -> tuple[str, dict[str, str]] | None:
    """The action URL and the inputs of the form ``form_id``, or None if the page has none."""
    parser = _Forms()
    parser.feed(page)
    for form in parser.forms:
        if form["attrs"].get("id") == form_id:
            return form["attrs"].get("action", ""), dict(form["inputs"])
    return None


def browser_client(**kwargs: object) -> httpx.Client:
    """An httpx client that keeps cookies as a browser does on a loopback origin.

    httpx copies the client's cookies into a jar with the default policy for every
    request, which withholds Secure cookies from http URLs: a request hook puts the
    Cookie header back from the client's own jar under a loopback-aware policy.
    """
    policy = http.cookiejar.DefaultCookiePolicy(secure_protocols=("https", "wss", "http"))
    jar = http.cookiejar.CookieJar(policy=policy)

    def cookies(request: httpx.Request) -> None:
        if request.url.host not in LOOPBACK:
            return
        compat = urllib.request.Request(str(request.url), method=request.method)
        jar.add_cookie_header(compat)
        header = compat.get_header("Cookie")
        if header:
            request.headers["Cookie"] = header

    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("follow_redirects", True)
    return httpx.Client(cookies=jar, event_hooks={"request": [cookies]}, **kwargs)


def login(
    client: httpx.Client, hub_url: str, username: str, password: str | None = None
) -> httpx.Response:
    """Log in through /hub/oauth_login and Keycloak's own login form; the final response.

    When Keycloak already has an SSO session it sends the browser straight back, and
    the answer of that redirect chain is returned as it is.
    """
    resp = client.get(f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"})
    form = page_form(resp.text)
    if form is None:
        return resp
    action, fields = form
    fields.update(username=username, password=password if password is not None else username)
    return client.post(action, data=fields)


def admin_token(server: KeycloakServer) -> str:
    """An access token of the bootstrap admin (master realm, admin-cli; lives 60 s)."""
    return _admin_grant(server)["access_token"]


def _admin_grant(server: KeycloakServer) -> dict:
    resp = httpx.post(
        f"{server.base_url}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": server.admin_user,
            "password": server.admin_password,
        },
        timeout=30,
    )
    resp.raise_for_status()
    return resp.json()


class AdminAuth(httpx.Auth):
    """The bootstrap admin's bearer token, fetched again before its 60 s run out: a
    test that waits for tokens to expire outlives one admin token."""

    def __init__(self, server: KeycloakServer) -> None:
        self.server = server
        self._token = ""
        self._expires = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if time.monotonic() > self._expires - 15:
            grant = _admin_grant(self.server)
            self._token = grant["access_token"]
            self._expires = time.monotonic() + float(grant.get("expires_in", 60))
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def admin_client(server: KeycloakServer) -> httpx.Client:
    """httpx on the valeria realm's admin API, as the bootstrap admin."""
    return httpx.Client(base_url=server.admin_url, auth=AdminAuth(server), timeout=30)


def checked(resp: httpx.Response) -> httpx.Response:
    """``resp`` if it succeeded; else fail with what the admin API said."""
    if resp.status_code >= 400:
        raise AssertionError(
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
        )
    return resp


def wait_for(condition: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Poll ``condition`` every 0.1 s until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def new_user(
    admin: httpx.Client,
    roles: Iterable[str] = ("hub-user",),
    groups: Iterable[str] = ("/researchers",),
) -> tuple[str, str]:
    """A fresh realm user (password = username) with realm ``roles`` and ``groups``;
    returns (username, id). Each test makes its own, so tests never share sessions."""
    name = f"u{uuid.uuid4().hex[:8]}"
    resp = checked(
        admin.post(
            "/users",
            json={
                "username": name,
                "enabled": True,
                "email": f"{name}@valeria.example",
                "emailVerified": True,
                "firstName": "Test",
                "lastName": name,
                "credentials": [{"type": "password", "value": name, "temporary": False}],
                "groups": list(groups),
            },
        )
    )
    user_id = resp.headers["location"].rsplit("/", 1)[1]
    wanted = [checked(admin.get(f"/roles/{role}")).json() for role in roles]
    if wanted:
        checked(admin.post(f"/users/{user_id}/role-mappings/realm", json=wanted))
    return name, user_id


def hub_client_representation(admin: httpx.Client, client_id: str = "jupyterhub") -> dict:
    """The server's own ClientRepresentation of ``client_id``."""
    [client] = checked(admin.get("/clients", params={"clientId": client_id})).json()
    return client


@contextmanager
def client_changed(
    admin: httpx.Client,
    attributes: dict[str, str] | None = None,
    client_id: str = "jupyterhub",
    **fields: object,
) -> Iterator[dict]:
    """The client with some attributes (and top-level ``fields``) changed for the
    block, then put back as it was.

    Keycloak merges the attributes of an update into the stored ones and drops those
    given as "": an attribute the client did not have is put back as ""."""
    attributes = attributes or {}
    before = hub_client_representation(admin, client_id)
    changed = copy.deepcopy(before)
    changed["attributes"].update(attributes)
    changed.update(fields)
    checked(admin.put(f"/clients/{before['id']}", json=changed))
    try:
        yield changed
    finally:
        restore = copy.deepcopy(before)
        restore["attributes"] = {**{k: "" for k in attributes}, **before["attributes"]}
        checked(admin.put(f"/clients/{before['id']}", json=restore))
        after = hub_client_representation(admin, client_id)
        assert after["attributes"] == before["attributes"], "attributes were not put back"
        assert {k: after.get(k) for k in fields} == {k: before.get(k) for k in fields}


@contextmanager
def hub_url_allowed(
    admin: httpx.Client, hub_url: str, client_id: str = "jupyterhub"
) -> Iterator[dict]:
    """Another hub's URL among the client's redirect URIs for the block (post-logout
    redirects follow them: the realm's "+"), then the client as it was. The back-channel
    logout URL, a single one, keeps naming the session's hub."""
    uris = hub_client_representation(admin, client_id)["redirectUris"]
    with client_changed(admin, client_id=client_id, redirectUris=[*uris, f"{hub_url}/*"]) as c:
        yield c


def user_id_of(admin: httpx.Client, username: str) -> str:
    """The realm user's id: the ``sub`` of their tokens."""
    found = checked(admin.get("/users", params={"username": username, "exact": "true"})).json()
    assert len(found) == 1, f"{username}: {found}"
    return found[0]["id"]


@contextmanager
def realm_changed(admin: httpx.Client, **settings: object) -> Iterator[dict]:
    """The realm with some top-level settings (RealmRepresentation fields) changed for
    the block, then put back."""
    before = checked(admin.get("")).json()
    checked(admin.put("", json=settings))  # Keycloak updates the fields given, only
    try:
        yield {**before, **settings}
    finally:
        checked(admin.put("", json={k: before.get(k) for k in settings}))


@contextmanager
def client_mapper(
    admin: httpx.Client, mapper: dict, client_id: str = "jupyterhub"
) -> Iterator[None]:
    """A protocol mapper on the client for the block."""
    client = hub_client_representation(admin, client_id)
    base = f"/clients/{client['id']}/protocol-mappers/models"
    resp = checked(admin.post(base, json=mapper))
    mapper_id = resp.headers["location"].rsplit("/", 1)[1]
    try:
        yield
    finally:
        checked(admin.delete(f"{base}/{mapper_id}"))


@contextmanager
def mapper_changed(
    admin: httpx.Client, kind: str, config: dict[str, str], client_id: str = "jupyterhub"
) -> Iterator[None]:
    """The client's protocol mapper of type ``kind`` with some config changed for the
    block, then put back."""
    client = hub_client_representation(admin, client_id)
    [before] = [m for m in client["protocolMappers"] if m["protocolMapper"] == kind]
    url = f"/clients/{client['id']}/protocol-mappers/models/{before['id']}"
    checked(admin.put(url, json={**before, "config": {**before["config"], **config}}))
    try:
        yield
    finally:
        checked(admin.put(url, json=before))


@contextmanager
def scope_mapper_removed(admin: httpx.Client, scope: str, mapper: str) -> Iterator[dict]:
    """A realm client scope without one of its protocol mappers for the block (e.g. the
    profile scope without "username": tokens without preferred_username), then the
    mapper is created again as it was."""
    [found] = [s for s in checked(admin.get("/client-scopes")).json() if s["name"] == scope]
    base = f"/client-scopes/{found['id']}/protocol-mappers/models"
    [removed] = [m for m in checked(admin.get(base)).json() if m["name"] == mapper]
    checked(admin.delete(f"{base}/{removed['id']}"))
    try:
        yield removed
    finally:
        checked(admin.post(base, json={k: v for k, v in removed.items() if k != "id"}))


@contextmanager
def refresh_events(admin: httpx.Client) -> Iterator[Callable[[str], dict[str, int]]]:
    """Keycloak's own record of refreshes for the block: a function giving, for a user
    id, ``{"REFRESH_TOKEN": n, "REFRESH_TOKEN_ERROR": m}``. Error events carry no user
    id; they are matched on the refresh token's subject."""
    before = checked(admin.get("/events/config")).json()
    config = {**before, "eventsEnabled": True, "eventsExpiration": 3600,
              "enabledEventTypes": ["REFRESH_TOKEN", "REFRESH_TOKEN_ERROR"]}  # fmt: skip
    checked(admin.put("/events/config", json=config))

    def counts(user_id: str) -> dict[str, int]:
        ok = checked(admin.get("/events", params={"type": "REFRESH_TOKEN", "user": user_id}))
        errors = checked(admin.get("/events", params={"type": "REFRESH_TOKEN_ERROR"}))
        mine = [
            e for e in errors.json() if (e.get("details") or {}).get("refresh_token_sub") == user_id
        ]
        return {"REFRESH_TOKEN": len(ok.json()), "REFRESH_TOKEN_ERROR": len(mine)}

    try:
        yield counts
    finally:
        checked(admin.put("/events/config", json=before))


def sessions_of(admin: httpx.Client, user_id: str) -> list[dict]:
    """The user's sessions as Keycloak's admin API lists them."""
    return checked(admin.get(f"/users/{user_id}/sessions")).json()


# -- the hub, as a browser sees it --------------------------------------------------------


def signed_in(browser: httpx.Client, hub_url: str, name: str) -> dict:
    """Log ``name`` in through Keycloak's page; the hub's auth_state of them."""
    resp = login(browser, hub_url, name)
    assert resp.status_code == 200 and resp.url.path == "/hub/home", resp.text[:500]
    return api_user(hub_url, name)["auth_state"]


def home(browser: httpx.Client, hub_url: str) -> httpx.Response:
    """The hub's home page: an authenticated request, so the hub may refresh first."""
    return browser.get(f"{hub_url}/hub/home")


def until_refresh_due(state: dict, expired: bool = False) -> None:
    """Sleep until the stored access token is inside the hub's refresh margin (3 s,
    capped at half the lifetime), or has expired."""
    lifetime = state["access_token_expires_at"] - state["obtained_at"]
    due = state["access_token_expires_at"] - (0 if expired else min(3, lifetime / 2))
    time.sleep(max(0.0, due - time.time()) + 0.3)


def tokens_gone(hub_url: str, name: str) -> bool:
    """True when the hub holds no tokens of ``name`` any more (session ended)."""
    state = api_user(hub_url, name)["auth_state"]
    return state["access_token"] is None and state["refresh_token"] is None
