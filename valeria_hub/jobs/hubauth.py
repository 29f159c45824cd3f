"""Who is calling: JupyterHub tokens and the hub's OAuth flow, as a FastAPI dependency.

Every route but the service root needs a hub token (``Authorization: token ...`` or
``Bearer ...``) or the cookie set after the hub's OAuth flow. The service asks the
hub who owns the token (``GET {api}/user``, answers cached briefly, failures not at
all) and requires the ``access:services!service=<name>`` scope: kbatch-proxy accepted
any hub token. Browsers without credentials are sent to the hub's authorize page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from .dependencies import Ctx, context_of
from .hubclient import CodeRefused, HubAPI, HubUnavailable, HubUser


def required_scope(service_name: str) -> str:
    return f"access:services!service={service_name}"


def has_access(scopes: frozenset[str] | set[str] | list[str], service_name: str) -> bool:
    return "access:services" in scopes or required_scope(service_name) in scopes


def token_from_headers(authorization: str | None) -> str | None:
    """The token of ``Authorization: token X`` or ``Bearer X``; None otherwise."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


def safe_next(url: str | None, prefix: str) -> str:
    """A same-service path to return to after login, never another site."""
    if url and url.startswith(prefix) and not url.startswith("//") and "\\" not in url:
        return url
    return prefix


class LoginRedirect(Exception):
    """Raised for browsers without credentials; the app answers with a redirect."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def cookie_names(service_name: str) -> tuple[str, str, str]:
    return f"{service_name}-token", f"{service_name}-oauth-state", f"{service_name}-oauth-next"


def wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


XSRF_HEADER = "X-XSRFToken"


def xsrf_token(key: bytes, session_token: str) -> str:
    """The XSRF token of one browser session: only the service (which holds ``key``) can
    make it, and only its own page hands it out (in a meta tag)."""
    return hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest()[:40]


def cross_site(request: Request) -> str | None:
    """Why a cookie-authenticated request looks cross-site, or None.

    Browsers say where a request comes from (``Sec-Fetch-Site``, ``Origin``); another
    site's page must never act with the person's cookie. Same site but another origin
    (another subdomain) is refused too.
    """
    site = request.headers.get("sec-fetch-site")
    if site and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    origin = request.headers.get("origin")
    if origin and origin != "null":
        own = request.headers.get("host", "")
        if urllib.parse.urlsplit(origin).netloc != own:
            return f"Origin {origin!r} is not this site"
    elif origin == "null":
        return "Origin is 'null'"
    return None


def page_load(request: Request) -> bool:
    """A top-level page load (the person opened the page), not a script's request.

    Browsers send ``Sec-Fetch-Mode``/``Sec-Fetch-Dest`` on secure origins; without them
    (plain http, old clients) a GET asking for HTML counts.
    """
    if request.method != "GET":
        return False
    mode, dest = request.headers.get("sec-fetch-mode"), request.headers.get("sec-fetch-dest")
    if mode is not None or dest is not None:
        return mode == "navigate" and dest in ("document", None)
    return wants_html(request)


def secure_cookies(request: Request, public_url: str) -> bool:
    """Cookies carry Secure when the hub's public URL is https, whatever scheme the proxy
    chain reports (an edge route may forward plain http)."""
    return public_url.startswith("https://") or request.url.scheme == "https"


def check_xsrf(request: Request, key: bytes, session_token: str) -> None:
    """403 unless a cookie-authenticated request is a top-level page load (a GET the
    person navigated to: it changes nothing and its answer goes only to them — the hub's
    OAuth redirects through Keycloak make it "same-site" or "cross-site"), or comes from
    this site and carries the session's XSRF token in the X-XSRFToken header."""
    if page_load(request):
        return
    why = cross_site(request)
    if why is not None:
        raise HTTPException(403, f"cross-site request refused ({why})")
    sent = request.headers.get(XSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent, xsrf_token(key, session_token)):
        raise HTTPException(
            403,
            f"a request authenticated by the login cookie needs the {XSRF_HEADER} header "
            "of the jobs page; reload the page (scripts and tools use a token instead)",
        )


async def token_owner(hub: HubAPI, token: str, cached: bool = True) -> dict[str, Any] | None:
    """The hub's model of the token's owner, None if refused; 503 if the hub is down."""
    try:
        return await hub.user_for_token(token, cached=cached)
    except HubUnavailable as e:
        raise HTTPException(503, f"cannot check the token: {e}") from None


async def current_user(request: Request, ctx: Ctx) -> HubUser:
    """The dependency on every protected route: 401, 403 or the caller."""
    settings, hub = ctx.settings, ctx.hub
    token_cookie = cookie_names(settings.service_name)[0]
    token = token_from_headers(request.headers.get("authorization"))
    from_cookie = False
    if token is None and request.cookies.get(token_cookie):
        token, from_cookie = request.cookies[token_cookie], True
    if from_cookie:
        check_xsrf(request, settings.xsrf_key, token)
    if token is None:
        if wants_html(request):
            raise LoginRedirect(str(request.url.path))
        raise HTTPException(
            401,
            "a JupyterHub API token is required (Authorization: token ...)",
            headers={"WWW-Authenticate": "token"},
        )
    # a login cookie's token is checked with the hub every time: logout ends it at once
    model = await token_owner(hub, token, cached=not from_cookie)
    if model is None:
        if from_cookie and wants_html(request):
            raise LoginRedirect(str(request.url.path))
        raise HTTPException(401, "the token is invalid or has expired; log in to the hub again")
    if model.get("kind", "user") != "user":
        raise HTTPException(403, "only user tokens may use the jobs service")
    scopes = frozenset(model.get("scopes") or ())
    if not has_access(scopes, settings.service_name):
        raise HTTPException(
            403,
            f"the token lacks the {required_scope(settings.service_name)!r} scope",
        )
    return HubUser(
        name=model["name"],
        groups=tuple(model.get("groups") or ()),
        admin=bool(model.get("admin")),
        scopes=scopes,
        token=token,
    )


def authorize_redirect(request: Request, next_url: str) -> RedirectResponse:
    """Send a browser to the hub's authorize URL, remembering state and where to return."""
    settings = context_of(request).settings
    _, state_cookie, next_cookie = cookie_names(settings.service_name)
    state = secrets.token_urlsafe(24)
    query = urllib.parse.urlencode(
        {
            "client_id": settings.oauth_client_id,
            "redirect_uri": settings.oauth_callback_url,
            "response_type": "code",
            "state": state,
        }
    )
    resp = RedirectResponse(f"{settings.hub_authorize_url}?{query}", status_code=302)
    secure = secure_cookies(request, settings.public_url)
    prefix = settings.prefix
    for name, value in ((state_cookie, state), (next_cookie, safe_next(next_url, prefix))):
        resp.set_cookie(
            name, value, max_age=600, path=prefix, httponly=True, secure=secure, samesite="lax"
        )
    return resp


oauth_router = APIRouter(tags=["auth"])


@oauth_router.get("/oauth_callback", include_in_schema=False)
async def oauth_callback(
    request: Request, ctx: Ctx, code: str = "", state: str = ""
) -> RedirectResponse:
    """The hub sends the browser here with a code; we check state and set our cookie."""
    settings, hub = ctx.settings, ctx.hub
    token_cookie, state_cookie, next_cookie = cookie_names(settings.service_name)
    expected = request.cookies.get(state_cookie, "")
    if not code or not state or not expected or not secrets.compare_digest(state, expected):
        raise HTTPException(400, "OAuth state mismatch: start the login again")
    try:
        token = await hub.exchange_code(code, settings.oauth_client_id, settings.oauth_callback_url)
    except CodeRefused as e:
        raise HTTPException(403, str(e)) from None
    except HubUnavailable as e:
        raise HTTPException(503, f"cannot complete the login: {e}") from None
    target = safe_next(request.cookies.get(next_cookie), settings.prefix)
    resp = RedirectResponse(target, status_code=302)
    secure = secure_cookies(request, settings.public_url)
    resp.set_cookie(
        token_cookie, token, path=settings.prefix, httponly=True, secure=secure, samesite="lax"
    )
    resp.delete_cookie(state_cookie, path=settings.prefix)
    resp.delete_cookie(next_cookie, path=settings.prefix)
    return resp


CurrentUser = Annotated[HubUser, Depends(current_user)]


async def metrics_reader(request: Request, ctx: Ctx) -> None:
    """Allow a hub token (user or service) that holds ``read:metrics``; 401/403 otherwise."""
    hub = ctx.hub
    token = token_from_headers(request.headers.get("authorization"))
    if token is None:
        raise HTTPException(
            401,
            "a JupyterHub API token with read:metrics is required",
            headers={"WWW-Authenticate": "token"},
        )
    model = await token_owner(hub, token)
    if model is None:
        raise HTTPException(401, "the token is invalid or has expired")
    if "read:metrics" not in (model.get("scopes") or ()):
        raise HTTPException(403, "the token lacks the 'read:metrics' scope")
