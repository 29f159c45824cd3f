"""API errors and the ``Status`` bodies the real API server answers with.

The store's errors (NotFound, AlreadyExists, Conflict, Gone) share one base class;
the API layer adds the ones only HTTP requests can cause.
"""

from __future__ import annotations

from typing import Any

from .store import AlreadyExists, Conflict, Gone, NotFound, StoreError

__all__ = [
    "AlreadyExists",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "MethodNotAllowed",
    "NotFound",
    "StoreError",
    "Unauthorized",
    "UnsupportedMediaType",
    "status_body",
    "success_status",
]


class BadRequest(StoreError):
    code = 400
    reason = "BadRequest"


class Unauthorized(StoreError):
    code = 401
    reason = "Unauthorized"


class Forbidden(StoreError):
    code = 403
    reason = "Forbidden"


class MethodNotAllowed(StoreError):
    code = 405
    reason = "MethodNotAllowed"


class UnsupportedMediaType(StoreError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(StoreError):
    code = 422
    reason = "Invalid"


def status_body(err: StoreError) -> dict[str, Any]:
    """The ``Status`` object of a failed request, shaped like the real server's."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": err.message,
    }
    # The real server leaves out reason/details when it has none (e.g. JSON patch errors).
    if err.reason:
        body["reason"] = err.reason
    details = {k: v for k, v in err.details.items() if v not in ("", None)}  # omitempty
    if details:
        body["details"] = details
    body["code"] = err.code
    return body


def success_status(name: str, group: str, kind: str, uid: str | None) -> dict[str, Any]:
    """What DELETE answers for kinds whose storage does not return the deleted object."""
    details: dict[str, Any] = {"name": name, "group": group, "kind": kind}
    if uid:
        details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }
