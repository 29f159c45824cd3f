"""The jobs web page: ``{prefix}ui/`` for browsers (the service root redirects there).

The page is static HTML and plain JavaScript that call the same JSON API as the CLI
(submit, list, details, logs, delete, cronjobs) with the cookie the hub's OAuth flow
set; a browser without it is sent through the hub's login first. The hub's own
stylesheet is linked relative to the service prefix, so the page sits inside the hub's
look without any external resource. Everything a person or a job supplies (names,
images, commands, messages) is written into the page as text by the script, never as
HTML; the few values the server fills into the page are escaped here.
"""

from __future__ import annotations

import html
import re
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from ...envconfig import Settings as HubSettings
from ..dependencies import Ctx
from ..hubauth import CurrentUser, xsrf_token
from ..settings import JobsSettings

ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
# only our own origin: no inline script or style, no external resource, never in a frame
# (a page that frames it could read its XSRF token)
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
# the hub's own default (PLATFORM_NAME unset), for a service that is not told the name
DEFAULT_PLATFORM_NAME = HubSettings.platform_name

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

router = APIRouter(tags=["ui"], include_in_schema=False)


def _asset(name: str) -> str:
    return resources.files("valeria_hub.jobs").joinpath("web", name).read_text(encoding="utf-8")


def hub_base(service_prefix: str) -> str:
    """The hub's base URL: the service prefix is ``{base}services/{name}/``."""
    parts = service_prefix.rstrip("/").split("/")
    return "/".join(parts[:-2]) + "/" if len(parts) >= 3 else "/"


def platform_name(settings: JobsSettings) -> str:
    """The platform's name for the page's header: the service's setting (the hub's
    PLATFORM_NAME), else the hub's own default, so the header never goes blank."""
    name = settings.platform_name.strip()
    return name or DEFAULT_PLATFORM_NAME


def render_page(
    username: str,
    service_prefix: str,
    xsrf: str = "",
    *,
    platform: str = DEFAULT_PLATFORM_NAME,
    default_profile: str = "",
    code_max_bytes: int = 0,
) -> str:
    """The page with its few server-filled values, each HTML-escaped (attribute-safe)."""
    base = hub_base(service_prefix)
    values = {
        "hub_static": base + "hub/static/",
        "hub_home": base + "hub/home",
        "hub_logo": base + "hub/logo",
        "platform_name": platform,
        "username": username,
        "xsrf": xsrf,
        "default_profile": default_profile,
        "code_max_bytes": str(code_max_bytes),
    }
    # one pass, so a value holding "{xsrf}" or the like is never filled in again
    return PLACEHOLDER.sub(
        lambda m: html.escape(values[m[1]], quote=True) if m[1] in values else m[0],
        _asset("index.html"),
    )


@router.get("/ui/", response_class=HTMLResponse)
async def page(ctx: Ctx, user: CurrentUser) -> HTMLResponse:
    """The page, with the session's XSRF token its scripts send back (X-XSRFToken)."""
    settings = ctx.settings
    text = render_page(
        user.name,
        settings.prefix,
        xsrf_token(settings.xsrf_key, user.token),
        platform=platform_name(settings),
        default_profile=settings.rules.default_profile,
        code_max_bytes=settings.code_max_bytes,
    )
    return HTMLResponse(text, headers=PAGE_HEADERS)


@router.get("/ui/{name}")
async def asset(name: str) -> Response:
    """The page's script and stylesheet (nothing else: no path from the request is read)."""
    if name not in ASSETS:
        return Response('{"detail":"Not Found"}', 404, media_type="application/json")
    return Response(_asset(name), media_type=ASSETS[name], headers=HEADERS)
