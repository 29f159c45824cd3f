"""The jobs web page: ``{prefix}ui/`` for browsers (the service root redirects there).

The page is static HTML and plain JavaScript that call the JSON API with the cookie the
hub's OAuth flow set; a browser without it is sent through the hub's login first. The
hub's own stylesheet is linked relative to the service prefix, so the page sits inside
the hub's look without any external resource.
"""

from __future__ import annotations

import html
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from ..dependencies import Ctx
from ..hubauth import CurrentUser, xsrf_token

ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
# only our own origin: no inline script, no external resource, never in a frame (a page
# that frames it could read its XSRF token)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
# the page carries the session's XSRF token: never kept by a cache
PAGE_HEADERS = {**HEADERS, "Cache-Control": "no-store"}

router = APIRouter(tags=["ui"], include_in_schema=False)


def _asset(name: str) -> str:
    return resources.files("valeria_hub.jobs").joinpath("web", name).read_text(encoding="utf-8")


def hub_base(service_prefix: str) -> str:
    """The hub's base URL: the service prefix is ``{base}services/{name}/``."""
    parts = service_prefix.rstrip("/").split("/")
    return "/".join(parts[:-2]) + "/" if len(parts) >= 3 else "/"


def render_page(username: str, service_prefix: str, xsrf: str = "") -> str:
    base = hub_base(service_prefix)
    return (
        _asset("index.html")
        .replace("{hub_static}", html.escape(base + "hub/static/"))
        .replace("{hub_home}", html.escape(base + "hub/home"))
        .replace("{username}", html.escape(username))
        .replace("{xsrf}", html.escape(xsrf))
    )


@router.get("/ui/", response_class=HTMLResponse)
async def page(ctx: Ctx, user: CurrentUser) -> HTMLResponse:
    """The page, with the session's XSRF token its scripts send back (X-XSRFToken)."""
    xsrf = xsrf_token(ctx.settings.xsrf_key, user.token)
    return HTMLResponse(render_page(user.name, ctx.settings.prefix, xsrf), headers=PAGE_HEADERS)


@router.get("/ui/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response('{"detail":"Not Found"}', 404, media_type="application/json")
    return Response(_asset(name), media_type=ASSETS[name], headers=HEADERS)
