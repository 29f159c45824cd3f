"""HashiCorp Vault stand-in: Vault's HTTP API v1, so that hvac works unchanged.

A dev-mode Vault in memory: root token given at construction, ``root`` and
``default`` policies, kv v2 at ``secret/``, token auth. Every request goes through
the real checks: token lookup (403 "permission denied" / "invalid token"), ACL with
Vault's path matching and create-vs-update rule, then the handler (vault_routes.py).

Control surface for tests, in process and under ``/_control/vault/``: provision_user,
configure_valeria, seal/unseal, request counters, live tokens.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..faults import CONTROL_PREFIX
from ..server import StandIn
from .errors import SEALED, VaultError, acl_denied, missing_token
from .model import Token, VaultModel
from .replies import (
    Ctx,
    accept_any_method,
    client_token,
    error_response,
    operation,
    read_body,
    vjson,
)
from .routes import Routes

log = logging.getLogger(__name__)

VERSION = "1.17.0"
CONTROL = CONTROL_PREFIX + "/vault"


def valeria_user_policy(mount: str) -> str:
    """Seed 003's per-user policy, made read-only, with its metadata path fixed.

    Seed 003 let users create, update and delete their own entries: a user could then
    write someone else's uid into their own ``uid`` secret and get that person's NFS
    files in their next notebook. Only onboarding writes; users read.
    """
    return f"""\
# Each user reads their own uid and S3 keys, and only theirs; onboarding writes them.
path "{mount}/data/users/{{{{identity.entity.id}}}}/*" {{
  capabilities = ["read"]
}}

path "{mount}/metadata/users/{{{{identity.entity.id}}}}/*" {{
  capabilities = ["list"]
}}
"""


def valeria_app_policy(mount: str) -> str:
    """Seed 003's onboarding policy: create/update user secrets, never read them."""
    return f"""\
path "identity/lookup/entity" {{
  capabilities = ["create", "update"]
}}

path "identity/*" {{
  capabilities = ["create", "update"]
}}

path "{mount}/data/users/*" {{
  capabilities = ["create", "update"]
}}

# Find the jwt mount accessor for entity aliases (no secret in there).
path "sys/auth" {{
  capabilities = ["read"]
}}
"""


def _on_loop(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a control method on the stand-in's loop when called from another thread."""

    def wrapper(self: VaultStandIn, *args: Any, **kwargs: Any) -> Any:
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                return self.call(method, self, *args, **kwargs)
        return method(self, *args, **kwargs)

    wrapper.__doc__ = method.__doc__
    wrapper.__name__ = method.__name__
    return wrapper


class VaultStandIn(StandIn):
    """The Vault stand-in. ``root_token`` defaults to a random ``hvs.`` token."""

    name = "vault"

    def __init__(self, root_token: str | None = None, clock: Callable[[], float] = time.time):
        super().__init__()
        self.model = VaultModel(root_token, clock)
        self.routes = Routes(self.model, self._seal_now)
        self.counts: Counter[tuple[str, str]] = Counter()

    @property
    def root_token(self) -> str:
        return self.model.root_token

    # -- aiohttp wiring ---------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/v1/{tail:.*}", self._dispatch)
        app.router.add_post(CONTROL + "/provision_user", self._c_provision)
        app.router.add_post(CONTROL + "/configure_valeria", self._c_configure)
        app.router.add_post(CONTROL + "/seal", self._c_seal)
        app.router.add_post(CONTROL + "/unseal", self._c_unseal)
        app.router.add_get(CONTROL + "/counters", self._c_counters)
        app.router.add_delete(CONTROL + "/counters", self._c_reset)
        app.router.add_get(CONTROL + "/tokens", self._c_tokens)

    def middlewares(self) -> list:
        return [self._count]

    async def on_start(self) -> None:
        # hvac lists with the HTTP verb LIST, which aiohttp's C parser refuses.
        accept_any_method(self._runner.server if self._runner is not None else None)

    @web.middleware
    async def _count(self, request: web.Request, handler):
        if request.path.startswith("/v1/"):
            self.counts[(request.method.upper(), request.path[4:].strip("/"))] += 1
        return await handler(request)

    # -- request handling -----------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["tail"]
        try:
            return await self._handle(request, path)
        except VaultError as e:
            return error_response(e)

    async def _handle(self, request: web.Request, path: str) -> web.StreamResponse:
        method = request.method.upper()
        logical = path.strip("/")
        if logical == "sys/health":
            if method not in ("GET", "HEAD"):
                raise VaultError(405, [])
            return self._health(request)
        if self.model.sealed and logical != "sys/seal-status":
            raise VaultError(503, [SEALED])
        op = operation(method, request.query)
        if op is None:
            raise VaultError(405, [])
        body = await read_body(request) if method in ("POST", "PUT", "PATCH") else {}
        route = self.routes.resolve(logical)
        token: Token | None = None
        if route is not None and route.unauth:
            raw = client_token(request)
            token = self.model.lookup_token(raw) if raw else None
        else:
            raw = client_token(request)
            if not raw:
                raise missing_token()
            token = self.model.authenticate(raw)
        if op == "write":
            exists = route.exists if route is not None else None
            op = "update" if exists is None or exists() else "create"
        acl_path = logical + "/" if op == "list" else logical
        if route is None or not route.unauth:
            assert token is not None
            acl = self.model.acl_for(token)
            if not acl.allows(op, acl_path, sudo=bool(route and route.sudo)):
                raise acl_denied()
            self.model.use_token(token)
        try:
            if route is None:
                raise VaultError(404, [f'no handler for route "{logical}". route entry not found.'])
            if route.missing is not None:
                raise VaultError(404, [route.missing])
            handler = route.ops.get("write" if op in ("create", "update") else op)
            if handler is None:
                raise VaultError(405, ["1 error occurred:\n\t* unsupported operation\n\n"])
            ctx = Ctx(request, logical, op, body, token, route.params)
            result = handler(ctx)
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            if token is not None and not (route is not None and route.unauth):
                self.model.finish_use(token)

    def _health(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        sealed = self.model.sealed

        def code(name: str, default: int) -> int:
            try:
                return int(q.get(name, default))
            except ValueError:
                return default

        status = code("sealedcode", 503) if sealed else code("activecode", 200)
        body = {
            "initialized": True,
            "sealed": sealed,
            "standby": sealed,
            "performance_standby": False,
            "replication_performance_mode": "unknown" if sealed else "disabled",
            "replication_dr_mode": "unknown" if sealed else "disabled",
            "server_time_utc": int(self.model.clock()),
            "version": VERSION,
        }
        if not sealed:
            body.update(
                {
                    "enterprise": False,
                    "cluster_name": "vault-cluster-devstack",
                    "cluster_id": "00000000-0000-4000-8000-000000000000",
                    "echo_duration_ms": 0,
                    "clock_skew_ms": 0,
                }
            )
        if request.method.upper() == "HEAD":
            return web.Response(status=status, headers={"Content-Type": "application/json"})
        return vjson(body, status=status)

    def _seal_now(self) -> None:
        self.model.sealed = True

    # -- control surface (in process) ---------------------------------------------
    @_on_loop
    def seal(self) -> None:
        """Seal: every API call but health/seal-status answers 503 like a sealed Vault."""
        self.model.sealed = True

    @_on_loop
    def unseal(self) -> None:
        self.model.sealed = False

    def request_count(self, path: str, method: str | None = None) -> int:
        """How many requests reached ``path`` (``auth/jwt/login`` or ``/v1/auth/jwt/login``)."""
        key = path.removeprefix("/v1/").strip("/")
        return sum(
            n
            for (m, p), n in list(self.counts.items())
            if p == key and (method is None or m == method.upper())
        )

    def counters(self) -> dict[str, int]:
        return {f"{m} {p}": n for (m, p), n in sorted(self.counts.items())}

    def reset_counters(self) -> None:
        self.counts.clear()

    @_on_loop
    def live_tokens(self) -> list[dict[str, Any]]:
        """Live tokens without their ids (accessor, policies, entity, expiry)."""
        out = []
        for tok in list(self.model.tokens.values()):
            if self.model.lookup_token(tok.id) is None:
                continue
            out.append(
                {
                    "accessor": tok.accessor,
                    "policies": tok.policies,
                    "entity_id": tok.entity_id,
                    "display_name": tok.display_name,
                    "path": tok.path,
                    "meta": tok.meta,
                    "ttl": self.model.remaining_ttl(tok),
                    "root": tok.id == self.model.root_token,
                }
            )
        return out

    @_on_loop
    def create_token(
        self, policies: list[str], ttl: int | None = None, entity_id: str = "", **kw: Any
    ) -> str:
        """Mint a token directly (tests); returns its id."""
        return self.model.create_token(policies=policies, ttl=ttl, entity_id=entity_id, **kw).id

    @_on_loop
    def provision_user(
        self,
        sub: str,
        username: str,
        uid: int | str,
        gid: int | str | None = None,
        s3_access_key: str = "",
        s3_secret_key: str = "",
        mount: str = "valeria",
        jwt_path: str = "jwt",
    ) -> str:
        """Entity + alias (name = ``sub``) on the jwt mount, and the user's KV secrets.

        Writes ``<mount>/data/users/<entity_id>/uid`` ``{"uid": ...}`` (``gid`` too when
        given) and ``.../ceph`` ``{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}``.
        Returns the entity id.
        """
        m = self.model
        jwt_mount = m.auth.get(jwt_path.strip("/") + "/")
        if jwt_mount is None:
            raise ValueError(f"no jwt auth method at auth/{jwt_path}: configure it first")
        found = m.kv_mount(f"{mount.strip('/')}/data")
        if found is None:
            raise ValueError(f"no kv v2 mount at {mount}/")
        kv = found[0].engine
        alias = m.find_alias(sub, jwt_mount.accessor)
        if alias is not None:
            entity = m.entities[alias.canonical_id]
        else:
            entity = m.entity_by_name(username) or m.create_entity(username)
            m.create_alias(sub, entity.id, jwt_mount.accessor)
        uid_data = {"uid": str(uid)}
        if gid is not None:
            uid_data["gid"] = str(gid)
        kv.write(f"users/{entity.id}/uid", uid_data, None)
        kv.write(
            f"users/{entity.id}/ceph",
            {"AWS_ACCESS_KEY_ID": s3_access_key, "AWS_SECRET_ACCESS_KEY": s3_secret_key},
            None,
        )
        return entity.id

    async def configure_valeria(
        self,
        discovery_url: str,
        audience: str = "vault-valeria",
        role: str = "valeria",
        mount: str = "valeria",
        jwt_path: str = "jwt",
        approle_path: str = "approle",
        token_ttl: str = "1h",
    ) -> dict[str, Any]:
        """Set up Vault the way seed 003 describes (with its policy bug fixed).

        kv v2 at ``mount``; jwt auth (discovery URL, role_type jwt, user_claim sub,
        bound_audiences) whose role gives policy ``<mount>``; the approle ``<role>`` with
        the onboarding policy ``<mount>_app``. Idempotent. From another thread use
        ``s.call(s.configure_valeria, url)``. Returns accessors and the approle role_id.
        """
        m = self.model
        if f"{mount.strip('/')}/" not in m.mounts:
            m.enable_mount(mount, "kv", {"version": "2"}, "Valeria user secrets")
        m.put_policy(mount, valeria_user_policy(mount))
        m.put_policy(f"{mount}_app", valeria_app_policy(mount))
        jwt_key = jwt_path.strip("/") + "/"
        if jwt_key not in m.auth:
            m.enable_auth(jwt_path, "jwt")
        jwt_mount = m.auth[jwt_key]
        await jwt_mount.engine.write_config(
            {
                "oidc_discovery_url": discovery_url,
                "bound_issuer": discovery_url,
                "default_role": role,
            }
        )
        jwt_mount.engine.write_role(
            role,
            {
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": [audience],
                "token_policies": [mount],
                "token_ttl": token_ttl,
            },
        )
        app_key = approle_path.strip("/") + "/"
        if app_key not in m.auth:
            m.enable_auth(approle_path, "approle")
        app_mount = m.auth[app_key]
        app_mount.engine.write_role(
            role, {"bind_secret_id": True, "token_policies": [f"{mount}_app"], "token_ttl": "5m"}
        )
        return {
            "mount": mount,
            "jwt_accessor": jwt_mount.accessor,
            "approle_accessor": app_mount.accessor,
            "approle_role": role,
            "approle_role_id": app_mount.engine.role(role).role_id,
            "user_policy": mount,
            "app_policy": f"{mount}_app",
        }

    # -- control surface (HTTP) -------------------------------------------------------
    async def _c_provision(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            allowed = {
                "sub",
                "username",
                "uid",
                "gid",
                "s3_access_key",
                "s3_secret_key",
                "mount",
                "jwt_path",
            }
            unknown = set(spec) - allowed
            if unknown:
                raise ValueError(f"unknown fields: {sorted(unknown)}")
            entity_id = self.provision_user(**spec)
        except (ValueError, TypeError, VaultError) as e:
            return web.json_response({"error": _safe(e)}, status=400)
        return web.json_response({"entity_id": entity_id})

    async def _c_configure(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            result = await self.configure_valeria(**spec)
        except VaultError as e:
            return web.json_response({"error": _safe(e)}, status=400)
        except (ValueError, TypeError) as e:
            return web.json_response({"error": _safe(e)}, status=400)
        return web.json_response(result)

    async def _c_seal(self, request: web.Request) -> web.Response:
        self.seal()
        return web.json_response({"sealed": True})

    async def _c_unseal(self, request: web.Request) -> web.Response:
        self.unseal()
        return web.json_response({"sealed": False})

    async def _c_counters(self, request: web.Request) -> web.Response:
        return web.json_response({"counters": self.counters()})

    async def _c_reset(self, request: web.Request) -> web.Response:
        self.reset_counters()
        return web.json_response({"counters": {}})

    async def _c_tokens(self, request: web.Request) -> web.Response:
        return web.json_response({"tokens": self.live_tokens()})


def _safe(e: Exception) -> str:
    """An error message for the control API: Vault errors by their list, others by type."""
    if isinstance(e, VaultError):
        return "; ".join(e.errors or []) or f"HTTP {e.status}"
    if isinstance(e, TypeError):
        return "bad arguments"
    return str(e)
