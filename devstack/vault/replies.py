"""Small HTTP helpers shared by the Vault stand-in's handlers.

Vault answers JSON with ``Content-Type: application/json`` exactly (hvac parses error
lists only then), wraps data in its response envelope, and uses 204 for empty
successes.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import http_parser, web, web_protocol

from .errors import VaultError, bad_request


def vjson(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )


def envelope(
    data: Any = None,
    *,
    auth: Any = None,
    warnings: list[str] | None = None,
    mount_type: str = "",
    top: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Vault's response envelope; ``top`` repeats keys at top level as sys/ endpoints do."""
    body = dict(top or {})
    body.update(
        {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": warnings,
            "auth": auth,
            "mount_type": mount_type,
        }
    )
    return body


def ok(data: Any = None, **kw: Any) -> web.Response:
    return vjson(envelope(data, **kw))


def no_content() -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


def error_response(err: VaultError) -> web.Response:
    if err.errors is None:
        return vjson(envelope(err.data), status=err.status)
    return vjson({"errors": err.errors}, status=err.status)


def operation(method: str, query: Any) -> str | None:
    """Vault's logical operation for an HTTP method (None: 405)."""
    method = method.upper()
    if method == "GET":
        return "list" if str(query.get("list", "")).lower() in ("true", "1") else "read"
    if method == "LIST":
        return "list"
    if method in ("POST", "PUT"):
        return "write"
    if method == "DELETE":
        return "delete"
    if method == "PATCH":
        return "patch"
    return None


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as e:
        raise bad_request(f"failed to parse JSON input: {type(e).__name__}") from None


def client_token(request: web.Request) -> str | None:
    """X-Vault-Token, else ``Authorization: Bearer`` (as Vault accepts both)."""
    tok = request.headers.get("X-Vault-Token")
    if tok:
        return tok.strip()
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return None


@dataclass
class Ctx:
    """One request as handlers see it."""

    request: web.Request
    path: str
    op: str
    body: Any
    token: Any = None
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise bad_request("invalid request body: expected a JSON object")
        return self.body


_PARSER_SWAP = threading.Lock()


class _PythonParserServer(web.Server):
    """aiohttp's C parser (llhttp) knows a fixed list of methods, without Vault's LIST.

    Connections of this server are parsed by aiohttp's pure-Python parser, which accepts
    any token as method. The module attribute is swapped only while one handler is built.
    """

    def __call__(self):  # type: ignore[override]
        with _PARSER_SWAP:
            saved = web_protocol.HttpRequestParser
            web_protocol.HttpRequestParser = http_parser.HttpRequestParserPy  # type: ignore[misc]
            try:
                return super().__call__()
            finally:
                web_protocol.HttpRequestParser = saved  # type: ignore[misc]


def accept_any_method(server: web.Server | None) -> None:
    """Make a running aiohttp server accept methods such as ``LIST``."""
    if server is not None and type(server) is web.Server:
        server.__class__ = _PythonParserServer
