"""HTTP handlers of the Kubernetes API stand-in: one generic handler for every kind.

Authentication (bearer tokens), authorization (RBAC rules), discovery, CRUD,
watch streams and the pod log subresource. What each request does to the objects
lives in registry.py; this module only speaks HTTP the way the real server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import rbac, resources
from .admission import acting_as, collecting_warnings
from .authorizer import Authorizer
from .errors import (
    BadRequest,
    Forbidden,
    Gone,
    MethodNotAllowed,
    NotFound,
    StoreError,
    Unauthorized,
    status_body,
)
from .registry import DeleteOptions, Registry, present
from .resources import Kind, Target
from .selectors import compile_selectors
from .store import Event

Obj = dict[str, Any]

TRUE = {"1", "t", "T", "TRUE", "true", "True"}
PUBLIC_PATHS = {"/healthz", "/readyz", "/livez", "/version"}


def watch_event_type(event: Event, predicate: Callable[[Obj], bool]) -> str | None:
    """What a filtered watcher sees of a change (as the real watch cache decides)."""
    now = predicate(event.obj)
    if event.type == "ADDED":
        return "ADDED" if now else None
    if event.type == "DELETED":
        return "DELETED" if predicate(event.prev or event.obj) else None
    before = predicate(event.prev) if event.prev is not None else now
    if before and now:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None


class WatchGate:
    """A fault: while stalled, watches stay open but send nothing."""

    def __init__(self) -> None:
        self.stalled = False
        self._open: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._open is None:
            self._open = asyncio.Event()
            if not self.stalled:
                self._open.set()
        return self._open

    def stall(self) -> None:
        self.stalled = True
        if self._open is not None:
            self._open.clear()

    def release(self) -> None:
        self.stalled = False
        if self._open is not None:
            self._open.set()

    async def wait_open(self) -> None:
        if self.stalled:
            await self._event().wait()


def warning_header(text: str) -> str:
    """``299 - "text"`` with the text quoted as the apiserver quotes it (issue 12)."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def with_warnings(resp: web.StreamResponse, warnings: list[str]) -> web.StreamResponse:
    """One ``Warning`` header per text, as the real server adds them (issue 12)."""
    if not resp.prepared:
        for text in warnings:
            resp.headers.add("Warning", warning_header(text))
    return resp


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = [("Warning", warning_header(text)) for text in warnings or []]
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(err: StoreError) -> web.Response:
    return json_response(status_body(err), status=err.code)


def _bool(query: Any, key: str) -> bool:
    return query.get(key, "") in TRUE


def _int(query: Any, key: str) -> int | None:
    if key not in query or query[key] == "":
        return None
    try:
        return int(query[key])
    except ValueError:
        raise BadRequest(f'invalid value for {key}: "{query[key]}"') from None


class KubeAPI:
    """The request handlers; state shared with the stand-in is passed in."""

    def __init__(self, registry: Registry, *, bookmark_interval: float = 60.0) -> None:
        self.registry = registry
        self.store = registry.store
        self.identities: dict[str, rbac.Identity] | None = None
        self.authorizer = Authorizer(self.store)
        # when a list: every authorization decision (user, attributes, allowed), for
        # tests that prove a Role grants exactly what a client uses
        self.audit: list[tuple[str, rbac.Attributes, bool]] | None = None
        self.kubelet: Any = None
        self.gate = WatchGate()
        self.bookmark_interval = bookmark_interval
        self.server_address = "127.0.0.1:0"

    def add_routes(self, app: web.Application) -> None:
        for path in ("/healthz", "/readyz", "/livez"):
            app.router.add_get(path, self._ok)
        app.router.add_get("/version", self._version)
        app.router.add_get("/version/", self._version)
        for path in ("/api", "/apis", "/api/{tail:.*}", "/apis/{tail:.*}"):
            app.router.add_route("*", path, self.handle)

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def _version(self, request: web.Request) -> web.Response:
        return json_response(dict(resources.SERVER_VERSION))

    # -- authentication and authorization -------------------------------------------
    def authenticate(self, request: web.Request) -> rbac.Identity:
        if self.identities is None:
            return rbac.ADMIN
        header = request.headers.get("Authorization", "")
        if not header:
            return rbac.Identity(rbac.ANONYMOUS)
        scheme, _, token = header.partition(" ")
        identity = self.identities.get(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            raise Unauthorized("Unauthorized")
        return identity

    def authorize(self, identity: rbac.Identity, kind: Kind, verb: str, target: Target) -> None:
        namespace = target.namespace or ""
        if kind.kind == "Namespace" and target.name:
            namespace = target.name  # the request info names a namespace by itself
        attrs = rbac.Attributes(
            verb, kind.group, kind.plural, target.subresource or "", namespace, target.name or ""
        )
        allowed = self.authorizer.allows(identity, attrs)
        if self.audit is not None:
            self.audit.append((identity.user, attrs, allowed))
        if not allowed:
            raise Forbidden(
                rbac.forbidden_message(identity.user, attrs, kind.qualified),
                details={"name": target.name, "group": kind.group, "kind": kind.plural}
                if target.name
                else {"group": kind.group, "kind": kind.plural},
            )

    # -- dispatch ------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        warnings: list[str] = []  # what admission warns of (issue 12)
        try:
            identity = self.authenticate(request)
            target = resources.parse_resource_path(request.path)
            if target is None:
                return self._discovery(request, identity)
            verb = self._verb(request, target)
            self.authorize(identity, target.kind, verb, target)
            with acting_as(identity), collecting_warnings(warnings):
                return with_warnings(await self._serve(request, target, verb), warnings)
        except StoreError as err:
            return with_warnings(error_response(err), warnings)

    def _verb(self, request: web.Request, target: Target) -> str:
        method = request.method
        if method == "GET":
            if target.legacy_watch or (_bool(request.query, "watch") and target.name is None):
                return "watch"
            return "list" if target.name is None else "get"
        if method == "POST":
            if target.name is None:
                return "create"
        elif method == "PUT" and target.name:
            return "update"
        elif method == "PATCH" and target.name:
            return "patch"
        elif method == "DELETE":
            return "delete" if target.name else "deletecollection"
        raise MethodNotAllowed("the server does not allow this method on the requested resource")

    async def _serve(self, request: web.Request, target: Target, verb: str) -> web.StreamResponse:
        kind, sub = target.kind, target.subresource
        ns = target.namespace or ""
        query = request.query
        if sub == "finalize" or (sub == "log" and verb != "get"):
            raise MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        if verb == "get":
            if sub == "log":
                return await self._log(request, target)
            return json_response(self.registry.get(kind, ns, target.name or ""))
        if verb in ("list", "watch"):
            predicate = self._predicate(kind, query, target.name)
            if verb == "watch":
                return await self._watch(
                    request, kind, target.namespace if kind.namespaced else None, predicate
                )
            items, rv = self.registry.list(
                kind,
                target.namespace if kind.namespaced else None,
                predicate,
                query.get("resourceVersion") or None,
                query.get("resourceVersionMatch") or None,
            )
            return json_response(
                {
                    "kind": kind.list_kind,
                    "apiVersion": kind.api_version,
                    "metadata": {"resourceVersion": str(rv)},
                    "items": items,
                }
            )
        strict = query.get("fieldValidation") == "Strict"
        if verb == "create":
            if kind.namespaced and target.namespace is None:
                raise MethodNotAllowed(
                    "the server does not allow this method on the requested resource"
                )
            body = await self._json(request)
            obj = self.registry.create(
                kind,
                target.namespace,
                body,
                dry_run="All" in query.getall("dryRun", []),
                strict=strict,
            )
            return json_response(obj, status=201)
        if verb == "update":
            body = await self._json(request)
            return json_response(
                self.registry.replace(
                    kind, ns, target.name or "", body, subresource=sub, strict=strict
                )
            )
        if verb == "patch":
            raw = await request.read()
            ctype = request.headers.get("Content-Type", "")
            return json_response(
                self.registry.patch(
                    kind, ns, target.name or "", ctype, raw, subresource=sub, strict=strict
                )
            )
        body = await self._json(request, optional=True)
        opts = DeleteOptions.parse(dict(query), body)
        if verb == "delete":
            result, warnings = self.registry.delete(kind, ns, target.name or "", opts)
            return json_response(result, warnings=warnings)
        predicate = self._predicate(kind, query, None)
        items, rv = self.registry.delete_collection(
            kind, target.namespace if kind.namespaced else None, predicate, opts
        )
        return json_response(
            {
                "kind": kind.list_kind,
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        )

    async def _json(self, request: web.Request, *, optional: bool = False) -> Any:
        raw = await request.read()
        if not raw.strip():
            if optional:
                return None
            raise BadRequest("the body of the request was empty")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise BadRequest(f"error decoding request body: {e}") from None

    def _predicate(self, kind: Kind, query: Any, name: str | None) -> Callable[[Obj], bool]:
        try:
            predicate = compile_selectors(
                query.get("labelSelector"), query.get("fieldSelector"), kind.kind
            )
        except ValueError as e:
            raise BadRequest(str(e)) from None
        if name is None:
            return predicate
        return lambda obj: obj["metadata"].get("name") == name and predicate(obj)

    # -- discovery ---------------------------------------------------------------------
    def _discovery(self, request: web.Request, identity: rbac.Identity) -> web.Response:
        if request.method != "GET":
            raise MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        if self.identities is not None and identity.user == rbac.ANONYMOUS:
            raise Forbidden(f'forbidden: User "{rbac.ANONYMOUS}" cannot get path "{request.path}"')
        parts = [p for p in request.path.split("/") if p]
        doc: Obj | None = None
        if parts == ["api"]:
            doc = resources.api_versions(self.server_address)
        elif parts == ["apis"]:
            doc = resources.api_group_list()
        elif len(parts) == 2 and parts[0] == "api":
            doc = resources.api_resource_list(parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            doc = resources.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = resources.api_resource_list(f"{parts[1]}/{parts[2]}")
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        return json_response(doc)

    # -- watch -----------------------------------------------------------------------------
    async def _watch(
        self,
        request: web.Request,
        kind: Kind,
        namespace: str | None,
        predicate: Callable[[Obj], bool],
    ) -> web.StreamResponse:
        query = request.query
        timeout = _int(query, "timeoutSeconds")
        bookmarks = _bool(query, "allowWatchBookmarks")
        rv_param = query.get("resourceVersion") or ""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        initial: list[Obj] = []
        expired: StoreError | None = None
        # list (or replay) and subscribe with no await in between: nothing is missed
        if rv_param in ("", "0"):
            initial, _ = self.store.list(kind.resource, namespace, predicate)
        else:
            rv = _int(query, "resourceVersion")
            assert rv is not None
            try:
                for event in self.store.events_since(rv, kind.resource, namespace):
                    queue.put_nowait(event)
            except Gone as e:
                expired = e

        def listener(event: Event) -> None:
            if event.resource == kind.resource and (
                namespace is None or event.namespace == namespace
            ):
                queue.put_nowait(event)

        unsubscribe = self.store.add_listener(listener)
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
        )
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if expired is not None:
                await self._send(resp, "ERROR", status_body(expired))
                return resp
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else math.inf
            for obj in initial:
                await self.gate.wait_open()
                await self._send(resp, "ADDED", present(kind, obj))
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                await self.gate.wait_open()
                now = loop.time()
                if now >= deadline:
                    break
                wait = min(deadline - now, 1.0, max(next_bookmark - now, 0.0) if bookmarks else 1.0)
                try:
                    event = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    if bookmarks and loop.time() >= next_bookmark and not self.gate.stalled:
                        mark = {
                            "kind": kind.kind,
                            "apiVersion": kind.api_version,
                            "metadata": {"resourceVersion": str(self.store.resource_version)},
                        }
                        await self._send(resp, "BOOKMARK", mark)
                        next_bookmark = loop.time() + self.bookmark_interval
                    continue
                await self.gate.wait_open()
                type_ = watch_event_type(event, predicate)
                if type_ is not None:
                    await self._send(resp, type_, present(kind, event.obj))
        except ConnectionError:
            pass
        finally:
            unsubscribe()
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp

    @staticmethod
    async def _send(resp: web.StreamResponse, type_: str, obj: Obj) -> None:
        await resp.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

    # -- logs -------------------------------------------------------------------------------
    async def _log(self, request: web.Request, target: Target) -> web.StreamResponse:
        ns, name = target.namespace or "", target.name or ""
        pod = self.store.get("v1/pods", ns, name)
        query = request.query
        spec = pod.get("spec") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        all_names = names + [c.get("name") for c in spec.get("initContainers") or []]
        container = query.get("container") or None
        if container is None:
            if len(names) != 1:
                raise BadRequest(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(names)}]"
                )
            container = names[0]
        elif container not in all_names:
            raise BadRequest(f"container {container} is not valid for pod {name}")
        tail = _int(query, "tailLines")
        waiting = BadRequest(
            f'container "{container}" in pod "{name}" is waiting to start: '
            f"{_waiting_reason(pod, container)}"
        )
        if self.kubelet is None:
            raise waiting
        if not _bool(query, "follow"):
            try:
                data = self.kubelet.read_log(ns, name, container, tail)
            except KeyError:
                raise waiting from None
            return web.Response(body=data, content_type="text/plain")
        stream = self.kubelet.follow_log(ns, name, container, tail).__aiter__()
        try:
            first = await stream.__anext__()
        except KeyError:
            raise waiting from None
        except StopAsyncIteration:
            first = None
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if first is not None:
                await resp.write(first)
                async for chunk in stream:
                    await resp.write(chunk)
            await resp.write_eof()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        return resp


def _waiting_reason(pod: Obj, container: str) -> str:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            if cs.get("name") == container:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason"):
                    return waiting["reason"]
    return "ContainerCreating"
