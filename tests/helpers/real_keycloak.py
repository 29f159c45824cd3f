"""Helpers for the tests against Keycloak's own server (tests/keycloak/).

Keycloak's login page is its real theme, not the stand-in's: the form's action carries
``session_code``, ``execution``, ``tab_id`` and ``client_data`` and must be read from the
page, and its cookies (``AUTH_SESSION_ID``, ``KC_RESTART``...) are marked ``Secure;
SameSite=None`` even over plain http. Browsers send Secure cookies to http://127.0.0.1
(a loopback origin counts as secure); httpx does not, so ``browser_client`` applies the
browsers' rule to loopback hosts.
"""

from __future__ import annotations

import http.cookiejar
import urllib.request
from html.parser import HTMLParser

import httpx

from devstack.keycloak.real import KeycloakServer

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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


def browser_client(**kwargs) -> httpx.Client:
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
    return resp.json()["access_token"]


def admin_client(server: KeycloakServer) -> httpx.Client:
    """httpx on the valeria realm's admin API, as the bootstrap admin."""
    return httpx.Client(
        base_url=server.admin_url,
        headers={"Authorization": f"Bearer {admin_token(server)}"},
        timeout=30,
    )
