"""The Vault stand-in's route table: which handler serves a logical path.

``Routes.resolve(path)`` returns a Route (handlers per operation, existence check,
unauthenticated/sudo flags). The dispatcher in vault.py authenticates, runs the ACL
check with create-vs-update decided by the existence check, then calls the handler.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import UNSUPPORTED_PATH, VaultError, bad_request
from .params import parse_duration, str_list
from .replies import Ctx, no_content, ok

if TYPE_CHECKING:
    from .model import Mount, VaultModel

Handler = Callable[[Ctx], Awaitable[web.Response] | web.Response]


@dataclass
class Route:
    ops: dict[str, Handler] = field(default_factory=dict)  # read/list/write/delete/patch
    exists: Callable[[], bool] | None = None
    unauth: bool = False
    sudo: bool = False
    params: dict[str, str] = field(default_factory=dict)
    missing: str | None = None  # a 404 message when no handler serves the path


KV_V1_PATH = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate "
    "API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."
)


def _keys(keys: list[str], **extra: Any) -> web.Response:
    if not keys:
        raise VaultError(404, [])
    return ok({"keys": keys, **extra})


class Routes:
    """Path -> Route, over the model (and the stand-in for seal control)."""

    def __init__(self, model: VaultModel, seal: Callable[[], None]) -> None:
        self.model = model
        self._seal = seal
        m = model
        self.static: list[tuple[re.Pattern[str], Callable[[dict[str, str]], Route]]] = [
            (re.compile(p), f)
            for p, f in [
                (r"sys/seal-status", lambda _: Route({"read": self.seal_status}, unauth=True)),
                (r"sys/seal", lambda _: Route({"write": self.seal}, sudo=True)),
                (r"sys/mounts", lambda _: Route({"read": self.list_mounts})),
                (
                    r"sys/mounts/(?P<p>.+)",
                    lambda _: Route(
                        {
                            "read": self.read_mount,
                            "write": self.enable_mount,
                            "delete": self.disable_mount,
                        }
                    ),
                ),
                (r"sys/auth", lambda _: Route({"read": self.list_auth})),
                (
                    r"sys/auth/(?P<p>.+)",
                    lambda _: Route(
                        {
                            "read": self.read_auth,
                            "write": self.enable_auth,
                            "delete": self.disable_auth,
                        },
                        sudo=True,
                    ),
                ),
                (
                    r"sys/policy",
                    lambda _: Route({"read": self.legacy_policies, "list": self.legacy_policies}),
                ),
                (
                    r"sys/policy/(?P<n>[^/]+)",
                    lambda _: Route(
                        {
                            "read": self.read_legacy_policy,
                            "write": self.write_policy,
                            "delete": self.delete_policy,
                        }
                    ),
                ),
                (r"sys/policies/acl", lambda _: Route({"list": self.list_acl})),
                (
                    r"sys/policies/acl/(?P<n>[^/]+)",
                    lambda _: Route(
                        {
                            "read": self.read_acl,
                            "write": self.write_policy,
                            "delete": self.delete_policy,
                        }
                    ),
                ),
                (r"sys/capabilities-self", lambda _: Route({"write": self.capabilities_self})),
                (r"auth/token/lookup-self", lambda _: Route({"read": self.lookup_self})),
                (r"auth/token/renew-self", lambda _: Route({"write": self.renew_self})),
                (r"auth/token/revoke-self", lambda _: Route({"write": self.revoke_self})),
                (r"auth/token/lookup", lambda _: Route({"write": self.lookup})),
                (r"auth/token/lookup-accessor", lambda _: Route({"write": self.lookup_accessor})),
                (r"auth/token/revoke", lambda _: Route({"write": self.revoke})),
                (r"auth/token/revoke-accessor", lambda _: Route({"write": self.revoke_accessor})),
                (r"auth/token/renew", lambda _: Route({"write": self.renew})),
                (r"auth/token/create", lambda _: Route({"write": self.create_token})),
                (r"auth/token/create-orphan", lambda _: Route({"write": self.create_orphan})),
                (r"auth/token/accessors", lambda _: Route({"list": self.accessors}, sudo=True)),
                (r"identity/entity", lambda _: Route({"write": self.write_entity})),
                (r"identity/entity/id", lambda _: Route({"list": self.list_entity_ids})),
                (
                    r"identity/entity/id/(?P<id>[^/]+)",
                    lambda _: Route(
                        {
                            "read": self.read_entity,
                            "write": self.update_entity_by_id,
                            "delete": self.delete_entity,
                        }
                    ),
                ),
                (r"identity/entity/name", lambda _: Route({"list": self.list_entity_names})),
                (
                    r"identity/entity/name/(?P<n>[^/]+)",
                    lambda _: Route(
                        {
                            "read": self.read_entity_by_name,
                            "write": self.write_entity_by_name,
                            "delete": self.delete_entity_by_name,
                        }
                    ),
                ),
                (r"identity/entity-alias", lambda _: Route({"write": self.write_alias})),
                (r"identity/entity-alias/id", lambda _: Route({"list": self.list_aliases})),
                (
                    r"identity/entity-alias/id/(?P<id>[^/]+)",
                    lambda _: Route(
                        {
                            "read": self.read_alias,
                            "write": self.update_alias,
                            "delete": self.delete_alias,
                        }
                    ),
                ),
                (r"identity/lookup/entity", lambda _: Route({"write": self.lookup_entity})),
            ]
        ]
        self._m = m

    # -- resolution -------------------------------------------------------------------
    def resolve(self, path: str) -> Route | None:
        path = path.strip("/")
        for pattern, build in self.static:
            match = pattern.fullmatch(path)
            if match:
                route = build(match.groupdict())
                route.params = match.groupdict()
                return route
        found = self.model.auth_mount(path)
        if found is not None:
            return self._auth_route(*found)
        found_kv = self.model.kv_mount(path)
        if found_kv is not None:
            return self._kv_route(*found_kv)
        first = path.split("/")[0]
        if first in ("sys", "identity", "cubbyhole") or path.startswith("auth/token"):
            return Route(missing=UNSUPPORTED_PATH)
        return None

    # -- sys ------------------------------------------------------------------------
    def seal_status(self, ctx: Ctx) -> web.Response:
        return ok(
            top={
                "type": "shamir",
                "initialized": True,
                "sealed": self.model.sealed,
                "t": 1,
                "n": 1,
                "progress": 0,
                "nonce": "",
                "version": "1.17.0",
                "build_date": "2024-06-10T00:00:00Z",
                "migration": False,
                "recovery_seal": False,
                "storage_type": "inmem",
            }
        )

    def seal(self, ctx: Ctx) -> web.Response:
        self._seal()
        return no_content()

    def list_mounts(self, ctx: Ctx) -> web.Response:
        mounts = {k: v.describe() for k, v in sorted(self.model.mounts.items())}
        return ok(mounts, top=mounts)

    def read_mount(self, ctx: Ctx) -> web.Response:
        key = ctx.params["p"].strip("/") + "/"
        mount = self.model.mounts.get(key)
        if mount is None:
            raise bad_request(f"No secret engine mount at {key}")
        return ok(mount.describe(), top=mount.describe())

    def enable_mount(self, ctx: Ctx) -> web.Response:
        body = ctx.json()
        typ = body.get("type")
        if not typ:
            raise bad_request("backend type must be specified as a string")
        self.model.enable_mount(
            ctx.params["p"],
            str(typ),
            body.get("options"),
            str(body.get("description") or ""),
            body.get("config"),
        )
        return no_content()

    def disable_mount(self, ctx: Ctx) -> web.Response:
        self.model.disable_mount(ctx.params["p"])
        return no_content()

    def list_auth(self, ctx: Ctx) -> web.Response:
        mounts = {k: v.describe() for k, v in sorted(self.model.auth.items())}
        return ok(mounts, top=mounts)

    def read_auth(self, ctx: Ctx) -> web.Response:
        key = ctx.params["p"].strip("/") + "/"
        mount = self.model.auth.get(key)
        if mount is None:
            raise bad_request(f"No auth engine at {key}")
        return ok(mount.describe(), top=mount.describe())

    def enable_auth(self, ctx: Ctx) -> web.Response:
        body = ctx.json()
        typ = body.get("type")
        if not typ:
            raise bad_request("backend type must be specified as a string")
        self.model.enable_auth(
            ctx.params["p"], str(typ), str(body.get("description") or ""), body.get("config")
        )
        return no_content()

    def disable_auth(self, ctx: Ctx) -> web.Response:
        self.model.disable_auth(ctx.params["p"])
        return no_content()

    def legacy_policies(self, ctx: Ctx) -> web.Response:
        names = self.model.policy_names()
        return ok({"keys": names, "policies": names}, top={"keys": names, "policies": names})

    def read_legacy_policy(self, ctx: Ctx) -> web.Response:
        policy = self.model.get_policy(ctx.params["n"])
        data = {"name": policy.name, "rules": policy.raw}
        return ok(data, top=data)

    def list_acl(self, ctx: Ctx) -> web.Response:
        return _keys(self.model.policy_names())

    def read_acl(self, ctx: Ctx) -> web.Response:
        policy = self.model.get_policy(ctx.params["n"])
        return ok({"name": policy.name, "policy": policy.raw})

    def write_policy(self, ctx: Ctx) -> web.Response:
        body = ctx.json()
        text = body.get("policy", body.get("rules"))
        self.model.put_policy(ctx.params["n"], text)
        return no_content()

    def delete_policy(self, ctx: Ctx) -> web.Response:
        self.model.delete_policy(ctx.params["n"])
        return no_content()

    def capabilities_self(self, ctx: Ctx) -> web.Response:
        body = ctx.json()
        paths = str_list(body.get("paths", body.get("path")))
        acl = self.model.acl_for(ctx.token)
        out: dict[str, Any] = {}
        for p in paths:
            caps = ["root"] if acl.root else sorted(acl.capabilities(p)) or ["deny"]
            out[p] = caps
        if len(paths) == 1:
            out["capabilities"] = out[paths[0]]
        return ok(out, top=out)

    # -- tokens -------------------------------------------------------------------------
    def lookup_self(self, ctx: Ctx) -> web.Response:
        return ok(self.model.token_data(ctx.token))

    def renew_self(self, ctx: Ctx) -> web.Response:
        inc = parse_duration(ctx.json().get("increment"), "increment")
        tok = self.model.renew(ctx.token, inc)
        return ok(None, auth=self.model.auth_block(tok))

    def revoke_self(self, ctx: Ctx) -> web.Response:
        self.model.revoke(ctx.token, children=True)
        return no_content()

    def _target(self, ctx: Ctx, key: str = "token"):
        value = ctx.json().get(key)
        if not value:
            raise bad_request(f"missing {key}" if key != "token" else "missing token")
        tok = (
            self.model.lookup_token(str(value))
            if key == "token"
            else self.model.token_by_accessor(str(value))
        )
        if tok is None:
            raise VaultError(403, ["bad token"] if key == "token" else ["invalid accessor"])
        return tok

    def lookup(self, ctx: Ctx) -> web.Response:
        return ok(self.model.token_data(self._target(ctx)))

    def lookup_accessor(self, ctx: Ctx) -> web.Response:
        data = self.model.token_data(self._target(ctx, "accessor"))
        data["id"] = ""  # Vault never returns the token id through its accessor
        return ok(data)

    def revoke(self, ctx: Ctx) -> web.Response:
        tok = self.model.lookup_token(str(ctx.json().get("token") or ""))
        if tok is not None:
            self.model.revoke(tok, children=True)
        return no_content()

    def revoke_accessor(self, ctx: Ctx) -> web.Response:
        self.model.revoke(self._target(ctx, "accessor"), children=True)
        return no_content()

    def renew(self, ctx: Ctx) -> web.Response:
        tok = self._target(ctx)
        inc = parse_duration(ctx.json().get("increment"), "increment")
        return ok(None, auth=self.model.auth_block(self.model.renew(tok, inc)))

    def accessors(self, ctx: Ctx) -> web.Response:
        return _keys(sorted(t.accessor for t in self.model.tokens.values()))

    def create_orphan(self, ctx: Ctx) -> web.Response:
        return self._create(ctx, orphan=True)

    def create_token(self, ctx: Ctx) -> web.Response:
        return self._create(ctx, orphan=bool(ctx.json().get("no_parent")))

    def _create(self, ctx: Ctx, orphan: bool) -> web.Response:
        body = ctx.json()
        parent = ctx.token
        is_root = "root" in parent.policies
        requested = str_list(body.get("policies")) or [
            p for p in parent.policies if p != "default" or not body.get("no_default_policy")
        ]
        if not is_root:
            if not set(requested) - {"default"} <= set(parent.policies):
                raise bad_request("child policies must be subset of parent")
            if body.get("no_parent") and not ctx.path.endswith("create-orphan"):
                raise bad_request("root or sudo privileges required to create orphan token")
            if body.get("id"):
                raise bad_request("root or sudo privileges required to specify token id")
        ttl = parse_duration(body.get("ttl"), "ttl") or None
        tok = self.model.create_token(
            policies=requested,
            path="auth/token/create",
            display_name="token-" + str(body["display_name"])
            if body.get("display_name")
            else "token",
            ttl=ttl,
            explicit_max_ttl=parse_duration(body.get("explicit_max_ttl"), "explicit_max_ttl"),
            renewable=body.get("renewable", True) is not False,
            meta={str(k): str(v) for k, v in (body.get("meta") or {}).items()} or None,
            entity_id=parent.entity_id,
            num_uses=int(body.get("num_uses") or 0),
            orphan=orphan,
            parent=None if orphan else parent.id,
            no_default_policy=bool(body.get("no_default_policy")),
            token_id=str(body["id"]) if body.get("id") else None,
        )
        return ok(None, auth=self.model.auth_block(tok))

    # -- identity --------------------------------------------------------------------------
    def _entity(self, entity_id: str):
        entity = self.model.entities.get(entity_id)
        if entity is None:
            raise VaultError(404, [])
        return entity

    @staticmethod
    def _created(entity) -> web.Response:
        return ok({"id": entity.id, "name": entity.name, "aliases": entity.alias_ids or None})

    def write_entity(self, ctx: Ctx) -> web.Response:
        body = ctx.json()
        if body.get("id"):
            entity = self.model.entities.get(str(body["id"]))
            if entity is None:
                raise bad_request("entity not found from id")
            self.model.update_entity(entity, body)
            return no_content()
        name = body.get("name")
        existing = self.model.entity_by_name(str(name)) if name else None
        if existing is not None:
            self.model.update_entity(existing, body)
            return no_content()
        entity = self.model.create_entity(str(name) if name else None)
        self.model.update_entity(entity, body)
        return self._created(entity)

    def list_entity_ids(self, ctx: Ctx) -> web.Response:
        ents = self.model.entities.values()
        return _keys(sorted(e.id for e in ents), key_info={e.id: {"name": e.name} for e in ents})

    def read_entity(self, ctx: Ctx) -> web.Response:
        return ok(self.model.entity_data(self._entity(ctx.params["id"])))

    def update_entity_by_id(self, ctx: Ctx) -> web.Response:
        entity = self.model.entities.get(ctx.params["id"])
        if entity is None:
            raise bad_request("entity not found from id")
        self.model.update_entity(entity, ctx.json())
        return no_content()

    def delete_entity(self, ctx: Ctx) -> web.Response:
        self.model.delete_entity(ctx.params["id"])
        return no_content()

    def list_entity_names(self, ctx: Ctx) -> web.Response:
        return _keys(sorted(e.name for e in self.model.entities.values()))

    def read_entity_by_name(self, ctx: Ctx) -> web.Response:
        entity = self.model.entity_by_name(ctx.params["n"])
        if entity is None:
            raise VaultError(404, [])
        return ok(self.model.entity_data(entity))

    def write_entity_by_name(self, ctx: Ctx) -> web.Response:
        body = dict(ctx.json())
        existing = self.model.entity_by_name(ctx.params["n"])
        body.pop("name", None)
        if existing is not None:
            self.model.update_entity(existing, body)
            return no_content()
        entity = self.model.create_entity(ctx.params["n"])
        self.model.update_entity(entity, body)
        return self._created(entity)

    def delete_entity_by_name(self, ctx: Ctx) -> web.Response:
        entity = self.model.entity_by_name(ctx.params["n"])
        if entity is not None:
            self.model.delete_entity(entity.id)
        return no_content()

    def write_alias(self, ctx: Ctx) -> web.Response:
        body = ctx.json()
        if body.get("id"):
            return self._update_alias(str(body["id"]), body)
        for key in ("name", "mount_accessor", "canonical_id"):
            if not body.get(key):
                raise bad_request(f"missing {key}" if key != "name" else "missing alias name")
        alias = self.model.create_alias(
            str(body["name"]),
            str(body["canonical_id"]),
            str(body["mount_accessor"]),
            custom_metadata=body.get("custom_metadata"),
        )
        return ok({"canonical_id": alias.canonical_id, "id": alias.id})

    def _update_alias(self, alias_id: str, body: dict[str, Any]) -> web.Response:
        alias = self.model.aliases.get(alias_id)
        if alias is None:
            raise bad_request("invalid alias ID provided")
        if body.get("name"):
            alias.name = str(body["name"])
        if body.get("custom_metadata") is not None:
            alias.custom_metadata = {str(k): str(v) for k, v in body["custom_metadata"].items()}
        canonical = body.get("canonical_id")
        if canonical and canonical != alias.canonical_id:
            target = self.model.entities.get(str(canonical))
            if target is None:
                raise bad_request("invalid canonical ID")
            old = self.model.entities.get(alias.canonical_id)
            if old is not None and alias.id in old.alias_ids:
                old.alias_ids.remove(alias.id)
            target.alias_ids.append(alias.id)
            alias.canonical_id = target.id
        alias.last_update_time = self.model.clock()
        return ok({"canonical_id": alias.canonical_id, "id": alias.id})

    def list_aliases(self, ctx: Ctx) -> web.Response:
        aliases = self.model.aliases.values()
        info = {
            a.id: {
                "canonical_id": a.canonical_id,
                "mount_accessor": a.mount_accessor,
                "mount_type": a.mount_type,
                "name": a.name,
            }
            for a in aliases
        }
        return _keys(sorted(info), key_info=info)

    def read_alias(self, ctx: Ctx) -> web.Response:
        alias = self.model.aliases.get(ctx.params["id"])
        if alias is None:
            raise VaultError(404, [])
        return ok(self.model.alias_data(alias))

    def update_alias(self, ctx: Ctx) -> web.Response:
        return self._update_alias(ctx.params["id"], ctx.json())

    def delete_alias(self, ctx: Ctx) -> web.Response:
        self.model.delete_alias(ctx.params["id"])
        return no_content()

    def lookup_entity(self, ctx: Ctx) -> web.Response:
        body = ctx.json()
        criteria = [k for k in ("name", "id", "alias_id", "alias_name") if body.get(k)]
        if not criteria:
            raise bad_request("none of the query parameters are supplied")
        if len(criteria) > 1:
            raise bad_request("query parameters are mutually exclusive")
        m = self.model
        entity = None
        if body.get("name"):
            entity = m.entity_by_name(str(body["name"]))
        elif body.get("id"):
            entity = m.entities.get(str(body["id"]))
        elif body.get("alias_id"):
            alias = m.aliases.get(str(body["alias_id"]))
            entity = m.entities.get(alias.canonical_id) if alias else None
        else:
            if not body.get("alias_mount_accessor"):
                raise bad_request("missing alias_mount_accessor")
            alias = m.find_alias(str(body["alias_name"]), str(body["alias_mount_accessor"]))
            entity = m.entities.get(alias.canonical_id) if alias else None
        if entity is None:
            return no_content()
        return ok(m.entity_data(entity))

    # -- auth methods -------------------------------------------------------------------------
    def _auth_route(self, mount: Mount, rest: str) -> Route:
        be = mount.engine
        m = self.model
        if mount.type in ("jwt", "oidc"):
            if rest == "login":
                return Route(
                    {"write": lambda c: self._login(c, be.login(m, mount, c.body))}, unauth=True
                )
            if rest == "config":
                return Route(
                    {
                        "read": lambda c: ok(be.read_config()),
                        "write": lambda c: self._after(be.write_config(c.json())),
                    }
                )
            if rest == "role":
                return Route({"list": lambda c: _keys(sorted(be.roles))})
            if rest.startswith("role/") and "/" not in rest[5:]:
                name = rest[5:]
                return Route(
                    {
                        "read": lambda c: ok(be.read_role(name)),
                        "write": lambda c: (be.write_role(name, c.json()), no_content())[1],
                        "delete": lambda c: (be.roles.pop(name.lower(), None), no_content())[1],
                    },
                    exists=lambda: name.lower() in be.roles,
                )
        if mount.type == "approle":
            if rest == "login":
                return Route(
                    {"write": lambda c: self._login_now(be.login(m, mount, c.body))}, unauth=True
                )
            if rest == "role":
                return Route({"list": lambda c: _keys(sorted(be.roles))})
            parts = rest.split("/")
            if parts[0] == "role" and len(parts) == 2:
                name = parts[1]
                return Route(
                    {
                        "read": lambda c: ok(be.role(name).describe()),
                        "write": lambda c: (be.write_role(name, c.json()), no_content())[1],
                        "delete": lambda c: (be.roles.pop(name.lower(), None), no_content())[1],
                    },
                    exists=lambda: name.lower() in be.roles,
                )
            if parts[0] == "role" and len(parts) == 3 and parts[2] == "role-id":
                name = parts[1]
                return Route(
                    {
                        "read": lambda c: ok({"role_id": be.role(name).role_id}),
                        "write": lambda c: (be.set_role_id(name, c.json()), no_content())[1],
                    }
                )
            if parts[0] == "role" and len(parts) == 3 and parts[2] == "secret-id":
                name = parts[1]
                return Route(
                    {
                        "write": lambda c: ok(be.generate_secret_id(name, c.json(), m.clock())),
                        "list": lambda c: _keys(
                            sorted(s.accessor for s in be.role(name).secret_ids.values())
                        ),
                    }
                )
        return Route(missing=UNSUPPORTED_PATH)

    async def _after(self, coro: Awaitable[Any]) -> web.Response:
        await coro
        return no_content()

    async def _login(self, ctx: Ctx, coro: Awaitable[Any]) -> web.Response:
        tok = await coro
        return ok(None, auth=self.model.auth_block(tok))

    def _login_now(self, tok: Any) -> web.Response:
        return ok(None, auth=self.model.auth_block(tok))

    # -- kv v2 ---------------------------------------------------------------------------------
    def _kv_route(self, mount: Mount, rest: str) -> Route:
        kv = mount.engine
        kind, _, sub = rest.partition("/")

        def mt(data: Any) -> web.Response:
            return ok(data, mount_type="kv")

        if kind == "data" and sub:

            def read(c: Ctx) -> web.Response:
                raw = c.request.query.get("version")
                version = int(raw) if raw and raw.isdigit() else None
                return mt(kv.read(sub, version))

            def patch(c: Ctx) -> web.Response:
                ctype = c.request.headers.get("Content-Type", "")
                if not ctype.startswith("application/merge-patch+json"):
                    raise VaultError(
                        415, ["PATCH requires Content-Type application/merge-patch+json"]
                    )
                body = c.json()
                return mt(kv.patch(sub, body.get("data"), body.get("options")))

            return Route(
                {
                    "read": read,
                    "write": lambda c: mt(
                        kv.write(sub, c.json().get("data"), c.json().get("options"))
                    ),
                    "delete": lambda c: (kv.delete_latest(sub), no_content())[1],
                    "patch": patch,
                },
                exists=lambda: kv.exists(sub),
            )
        if kind == "metadata":
            ops: dict[str, Handler] = {"list": lambda c: mt({"keys": kv.list(sub)})}
            if sub:
                ops.update(
                    {
                        "read": lambda c: mt(kv.read_metadata(sub)),
                        "write": lambda c: (kv.write_metadata(sub, c.json()), no_content())[1],
                        "delete": lambda c: (kv.delete_metadata(sub), no_content())[1],
                    }
                )
            return Route(ops, exists=lambda: kv.exists(sub))
        if kind in ("delete", "undelete", "destroy") and sub:
            action = {
                "delete": kv.delete_versions,
                "undelete": kv.undelete_versions,
                "destroy": kv.destroy_versions,
            }[kind]
            return Route({"write": lambda c: (action(sub, c.json()), no_content())[1]})
        if kind == "config" and not sub:
            return Route(
                {
                    "read": lambda c: mt(kv.read_config()),
                    "write": lambda c: (kv.write_config(c.json()), no_content())[1],
                }
            )
        return Route(missing=KV_V1_PATH)
