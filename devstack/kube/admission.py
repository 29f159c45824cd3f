"""Admission: the plugins a create or update passes through, as the real API server
runs them, and the user they see.

After defaults and validation, every plugin's ``admit`` may change the object (mutating
admission, in order), then every plugin's ``validate`` may refuse it (validating
admission). A plugin refuses by raising the API error the real plugin answers with
(mostly 403 Forbidden with the plugin's message). The requesting user is the caller of
the API request (set by the API layer for the request) or the controller that writes
(set by the controller); writes made through the stand-in's own control surface run as
the cluster admin and skip nothing but authorization.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import rbac
from .resources import Kind
from .store import Store

Obj = dict[str, Any]

_USER: contextvars.ContextVar[rbac.Identity] = contextvars.ContextVar(
    "admission_user", default=rbac.ADMIN
)


@contextlib.contextmanager
def acting_as(identity: rbac.Identity) -> Iterator[None]:
    """Writes inside the block are admitted as ``identity``."""
    token = _USER.set(identity)
    try:
        yield
    finally:
        _USER.reset(token)


def current_user() -> rbac.Identity:
    return _USER.get()


# issue 12: Warning headers from admission (Pod Security ``warn``), collected per API request
_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "admission_warnings", default=None
)


@contextlib.contextmanager
def collecting_warnings(into: list[str]) -> Iterator[list[str]]:
    """Warnings admission gives writes inside the block go to ``into`` (the API layer
    answers them as ``Warning`` headers, as the real server does for create and update)."""
    token = _WARNINGS.set(into)
    try:
        yield into
    finally:
        _WARNINGS.reset(token)


@dataclass
class Request:
    """One write as admission sees it; ``obj`` may be changed by mutating plugins."""

    operation: str  # "CREATE" or "UPDATE"
    kind: Kind
    namespace: str
    name: str
    obj: Obj
    old: Obj | None
    user: rbac.Identity
    subresource: str = ""
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        """A warning for the client (issue 12): kept here and passed to the API request."""
        self.warnings.append(text)
        collected = _WARNINGS.get()
        if collected is not None and text not in collected:
            collected.append(text)


class Plugin(Protocol):
    name: str

    def admit(self, req: Request, chain: Admission) -> None: ...

    def validate(self, req: Request, chain: Admission) -> None: ...


class Authorizes(Protocol):
    def allows(self, identity: rbac.Identity, attrs: rbac.Attributes) -> bool: ...


class Admission:
    """The ordered plugins, and what they may ask: the store and the authorizer."""

    def __init__(self, store: Store, authorizer: Authorizes, plugins: list[Plugin]) -> None:
        self.store = store
        self.authorizer = authorizer
        self.plugins = list(plugins)

    def can(
        self,
        user: rbac.Identity,
        verb: str,
        group: str,
        resource: str,
        *,
        subresource: str = "",
        namespace: str = "",
        name: str = "",
    ) -> bool:
        attrs = rbac.Attributes(verb, group, resource, subresource, namespace, name)
        return self.authorizer.allows(user, attrs)

    def mutate(self, req: Request) -> None:
        """Mutating admission: runs after defaults, before the object is validated."""
        for plugin in self.plugins:
            plugin.admit(req, self)

    def validate(self, req: Request) -> None:
        """Validating admission: runs on the validated object, before it is stored."""
        for plugin in self.plugins:
            plugin.validate(req, self)
