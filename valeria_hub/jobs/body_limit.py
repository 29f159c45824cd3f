"""Refusing oversized request bodies before they are read, as plain ASGI middleware.

Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``) runs every request in a
task of its own and passes every response through a memory stream: a cost on each
submission and on each piece of a large list. This does the same check with none of it.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

DRAIN_LIMIT = 64 * 1024 * 1024  # a body up to this is read and dropped before the 413
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def refusal(headers: Headers, limit: int, code_max_bytes: int) -> tuple[int, str] | None:
    """(status, message) for a body that may not be read, or None. Pure."""
    length = headers.get("content-length")
    if length is None:
        if headers.get("transfer-encoding"):
            return 411, "send the body with a Content-Length"
        return None
    if length.isdigit() and int(length) <= limit:
        return None
    return 413, (
        f"the request body is larger than {limit} bytes "
        f"(code uploads may be {code_max_bytes} bytes once decoded)"
    )


class BodyLimit:
    """411 for a chunked body, 413 for one over ``limit`` bytes; chunked bodies need a
    length so that the limit holds before anything is read."""

    def __init__(self, app: ASGIApp, limit: int, code_max_bytes: int) -> None:
        self.app, self.limit, self.code_max_bytes = app, limit, code_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refused = refusal(headers, self.limit, self.code_max_bytes)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, message = refused
        length = headers.get("content-length") or ""
        if status == 413 and length.isdigit() and int(length) <= DRAIN_LIMIT:
            await drain(receive)  # so the client gets the answer, not a reset connection
        await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)


async def drain(receive: Any) -> None:
    """Read the request body and drop it (constant memory)."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return
