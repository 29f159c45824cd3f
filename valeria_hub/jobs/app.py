"""create_app(settings): the FastAPI application of the jobs service.

Every route lives under the service prefix (the hub's proxy keeps it), answers JSON
errors as ``{"detail": ...}``, and never shows a stack trace: Kubernetes and hub
failures become 503 with a message. Browsers asking for the root get the jobs page
(``ui/``, see routers.ui).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..vault import VaultIdentity
from .body_limit import BodyLimit
from .cache import WorkloadCache
from .dependencies import Ctx
from .hubauth import (
    CurrentUser,
    LoginRedirect,
    authorize_redirect,
    metrics_reader,
    oauth_router,
    wants_html,
)
from .hubclient import HubAPI
from .kube import Kube, KubeError
from .models import ServiceInfo, UserOut
from .routers import cronjobs, hub_events, jobs, logs, pods, profiles, ui
from .service import Context, ServiceError
from .settings import JobsSettings

log = logging.getLogger("valeria_hub.jobs")


def _version() -> str:
    try:
        return metadata.version("valeria-hub")
    except metadata.PackageNotFoundError:
        return "0"


def create_app(
    settings: JobsSettings, *, vault: VaultIdentity, kube: Kube | None = None
) -> FastAPI:
    """The app; ``kube`` may be given (tests), else it is connected at start-up."""
    prefix = settings.prefix
    base = prefix.rstrip("/")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_kube = kube is None
        k = kube or await Kube.connect(settings.kubeconfig, settings.kube_timeout)
        hub = HubAPI(
            settings.hub_api_url,
            settings.hub_api_token,
            timeout=settings.hub_timeout,
            cache_ttl=settings.user_cache_ttl,
            cache_size=settings.user_cache_size,
        )
        cache = WorkloadCache(k, max_views=settings.list_cache_views)
        app.state.ctx = Context(settings, hub, k, vault, cache=cache)
        try:
            yield
        finally:
            await cache.close()
            await hub.aclose()
            if own_kube:
                await k.close()

    app = FastAPI(
        title="valeria-hub batch jobs",
        version=_version(),
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    app.add_middleware(BodyLimit, limit=settings.body_limit, code_max_bytes=settings.code_max_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming the fields, without echoing the input (a NaN in it cannot be
        written as JSON, and an echo is no use to anyone)."""
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(KubeError)
    async def _kube_error(request: Request, exc: KubeError) -> JSONResponse:
        return JSONResponse({"detail": f"the cluster failed: {exc.message}"}, status_code=503)

    @app.exception_handler(LoginRedirect)
    async def _login(request: Request, exc: LoginRedirect) -> RedirectResponse:
        return authorize_redirect(request, exc.next_url)

    info = {"message": "kbatch", "service": "valeria-jobs", "version": _version()}

    @app.get(prefix, response_model=ServiceInfo, tags=["service"])
    async def root(request: Request) -> Any:
        """Service information (no authentication); browsers go to the jobs page."""
        if wants_html(request):
            return RedirectResponse(prefix + "ui/", status_code=302)
        return info

    if base:

        @app.get("/", include_in_schema=False)
        async def bare_root() -> dict:
            return info

    @app.get(base + "/authorized", response_model=UserOut, tags=["service"])
    async def authorized(user: CurrentUser) -> dict:
        """Whether the token may use the service (kbatch's ``configure`` calls this)."""
        return {"name": user.name, "groups": list(user.groups)}

    @app.get(base + "/metrics", include_in_schema=False)
    async def metrics(request: Request, ctx: Ctx) -> Response:
        """Prometheus metrics, for a hub token with the ``read:metrics`` scope."""
        await metrics_reader(request, ctx)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get(base + "/openapi.json", include_in_schema=False)
    async def openapi(user: CurrentUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    app.include_router(oauth_router, prefix=base)
    app.include_router(ui.router, prefix=base)
    app.include_router(logs.router, prefix=base)
    app.include_router(jobs.router, prefix=base)
    app.include_router(cronjobs.router, prefix=base)
    app.include_router(pods.router, prefix=base)
    app.include_router(hub_events.router, prefix=base)
    app.include_router(profiles.make_router(settings.public_profiles), prefix=base)
    return app
