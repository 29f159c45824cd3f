"""The plain model behind the Vault stand-in: mounts, policies, tokens, identity.

No HTTP here. Methods raise VaultError with Vault's status and wording; the HTTP
layer only translates. Auth-method specifics (jwt, approle) live in vault_auth.py.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import VaultError, bad_request, invalid_token
from .identity import Alias, Entity, IdentityStore
from .kv import KvV2, rfc3339
from .policy import (
    DEFAULT_POLICY,
    Acl,
    Identity,
    Policy,
    PolicyError,
    build_acl,
    parse_policy,
)

DEFAULT_TTL = 768 * 3600  # Vault's system default lease TTL (32 days)
MAX_TTL = 768 * 3600
_ALNUM = string.ascii_letters + string.digits


def random_id(n: int = 24) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


@dataclass
class Mount:
    """A secrets engine or auth method mount."""

    path: str  # with trailing "/"
    type: str
    accessor: str
    description: str = ""
    options: dict[str, str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    engine: Any = None  # KvV2 for kv mounts, auth backend state for auth mounts

    def describe(self) -> dict[str, Any]:
        return {
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": self.config.get("default_lease_ttl", 0),
                "force_no_cache": False,
                "max_lease_ttl": self.config.get("max_lease_ttl", 0),
            },
            "description": self.description,
            "external_entropy_access": False,
            "local": False,
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
            "seal_wrap": False,
            "type": self.type,
            "uuid": self.uuid,
        }


@dataclass
class Token:
    id: str
    accessor: str
    policies: list[str]
    path: str
    display_name: str
    creation_time: float
    ttl: int  # creation TTL in seconds; 0 = never expires (root)
    expire_at: float | None
    max_expire_at: float | None
    renewable: bool
    meta: dict[str, str] | None = None
    entity_id: str = ""
    num_uses: int = 0
    orphan: bool = False
    parent: str | None = None
    explicit_max_ttl: int = 0
    role: str = ""


class VaultModel(IdentityStore):
    """Everything a dev-mode Vault holds in memory."""

    def __init__(self, root_token: str | None = None, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.sealed = False
        self.policies: dict[str, Policy] = {
            "default": parse_policy("default", DEFAULT_POLICY),
            "root": Policy("root", [], ""),
        }
        self.mounts: dict[str, Mount] = {}
        self.auth: dict[str, Mount] = {}
        self.tokens: dict[str, Token] = {}
        self.entities: dict[str, Entity] = {}
        self.aliases: dict[str, Alias] = {}
        for path, typ in (
            ("cubbyhole/", "cubbyhole"),
            ("identity/", "identity"),
            ("sys/", "system"),
        ):
            self.mounts[path] = Mount(path, typ, self._accessor(typ))
        self.enable_mount("secret", "kv", {"version": "2"}, "key/value secret storage")
        self.auth["token/"] = Mount(
            "token/", "token", self._accessor("auth_token"), "token based credentials"
        )
        root = self.create_token(
            policies=["root"],
            path="auth/token/root",
            display_name="root",
            ttl=0,
            token_id=root_token,
            orphan=True,
            renewable=False,
        )
        self.root_token = root.id

    # -- helpers ------------------------------------------------------------
    @staticmethod
    def _accessor(prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(4)}"

    # -- policies ---------------------------------------------------------------
    def put_policy(self, name: str, text: Any) -> None:
        name = name.lower()
        if name == "root":
            raise bad_request('cannot update "root" policy')
        if not isinstance(text, str) or not text.strip():
            raise bad_request("'policy' parameter not supplied or empty")
        try:
            self.policies[name] = parse_policy(name, text)
        except PolicyError as e:
            raise bad_request(f"failed to parse policy: {e}") from None

    def get_policy(self, name: str) -> Policy:
        policy = self.policies.get(name.lower())
        if policy is None:
            raise VaultError(404, [])
        return policy

    def delete_policy(self, name: str) -> None:
        name = name.lower()
        if name in ("root", "default"):
            raise bad_request(f'cannot delete "{name}" policy')
        self.policies.pop(name, None)

    def policy_names(self) -> list[str]:
        return sorted(self.policies)

    # -- mounts ------------------------------------------------------------------
    def enable_mount(
        self,
        path: str,
        typ: str,
        options: dict[str, Any] | None = None,
        description: str = "",
        config: dict[str, Any] | None = None,
    ) -> Mount:
        key = path.strip("/") + "/"
        if key == "/":
            raise bad_request("missing path")
        for existing in self.mounts:
            if key.startswith(existing) or existing.startswith(key):
                raise bad_request(f"path is already in use at {existing}")
        options = {str(k): str(v) for k, v in (options or {}).items()}
        if typ == "kv-v2":
            typ, options["version"] = "kv", "2"
        if typ != "kv":
            raise bad_request(f"plugin not found in the catalog: {typ}")
        if options.get("version") != "2":
            raise bad_request("this stand-in serves kv version 2 only (options.version=2)")
        mount = Mount(key, "kv", self._accessor("kv"), description, options, dict(config or {}))
        mount.engine = KvV2(self.clock)
        self.mounts[key] = mount
        return mount

    def disable_mount(self, path: str) -> None:
        key = path.strip("/") + "/"
        if key in ("sys/", "identity/", "cubbyhole/"):
            raise bad_request(f"cannot unmount {key!r}")
        self.mounts.pop(key, None)

    def kv_mount(self, request_path: str) -> tuple[Mount, str] | None:
        """The KV mount serving a request path and the path inside it."""
        best = None
        for key, mount in self.mounts.items():
            if mount.type == "kv" and (request_path + "/").startswith(key):
                if best is None or len(key) > len(best.path):
                    best = mount
        if best is None:
            return None
        return best, request_path[len(best.path) :]

    def enable_auth(self, path: str, typ: str, description: str = "", config: dict | None = None):
        from .auth import new_backend  # local import: vault_auth imports this module

        key = path.strip("/") + "/"
        if key == "/":
            raise bad_request("missing path")
        if typ == "token":
            raise bad_request("token credential backend cannot be instantiated")
        for existing in self.auth:
            if key.startswith(existing) or existing.startswith(key):
                raise bad_request(f"path is already in use at auth/{existing}")
        backend = new_backend(typ)
        if backend is None:
            raise bad_request(f"plugin not found in the catalog: {typ}")
        mount = Mount(
            key, typ, self._accessor(f"auth_{typ}"), description, None, dict(config or {})
        )
        mount.engine = backend
        self.auth[key] = mount
        return mount

    def disable_auth(self, path: str) -> None:
        key = path.strip("/") + "/"
        if key == "token/":
            raise bad_request("token credential backend cannot be disabled")
        mount = self.auth.pop(key, None)
        if mount is None:
            return
        for tok in list(self.tokens.values()):
            if tok.path.startswith(f"auth/{key}"):
                self.revoke(tok, children=True)
        for alias in list(self.aliases.values()):
            if alias.mount_accessor == mount.accessor:
                self.delete_alias(alias.id)

    def auth_mount(self, request_path: str) -> tuple[Mount, str] | None:
        """For ``auth/<mount>/<rest>``: the mount and ``rest``."""
        if not request_path.startswith("auth/"):
            return None
        inner = request_path[len("auth/") :]
        best = None
        for key, mount in self.auth.items():
            if (inner + "/").startswith(key) and (best is None or len(key) > len(best.path)):
                best = mount
        if best is None:
            return None
        return best, inner[len(best.path) :].strip("/")

    def mount_by_accessor(self, accessor: str) -> Mount | None:
        for mount in self.auth.values():
            if mount.accessor == accessor:
                return mount
        return None

    # -- tokens --------------------------------------------------------------------
    def create_token(
        self,
        *,
        policies: list[str],
        path: str = "auth/token/create",
        display_name: str = "token",
        ttl: int | None = None,
        max_ttl: int | None = None,
        explicit_max_ttl: int = 0,
        renewable: bool = True,
        meta: dict[str, str] | None = None,
        entity_id: str = "",
        num_uses: int = 0,
        orphan: bool = False,
        parent: str | None = None,
        no_default_policy: bool = False,
        token_id: str | None = None,
        role: str = "",
    ) -> Token:
        pols = sorted(set(policies))
        if "root" in pols:
            pols = ["root"]
        elif not no_default_policy and "default" not in pols:
            pols = sorted([*pols, "default"])
        now = self.clock()
        if ttl is None:
            ttl = 0 if pols == ["root"] else DEFAULT_TTL
        limit = max_ttl or MAX_TTL
        if explicit_max_ttl:
            limit = min(limit, explicit_max_ttl)
        if ttl and pols != ["root"]:
            ttl = min(ttl, limit)
        tok = Token(
            id=token_id or f"hvs.{random_id(24)}",
            accessor=random_id(24),
            policies=pols,
            path=path,
            display_name=display_name,
            creation_time=now,
            ttl=ttl,
            expire_at=now + ttl if ttl else None,
            max_expire_at=now + limit if ttl else None,
            renewable=renewable and ttl > 0,
            meta=meta,
            entity_id=entity_id,
            num_uses=num_uses,
            orphan=orphan,
            parent=parent,
            explicit_max_ttl=explicit_max_ttl,
            role=role,
        )
        if tok.id in self.tokens:
            raise bad_request("cannot create a token with a duplicate ID")
        self.tokens[tok.id] = tok
        return tok

    def lookup_token(self, token_id: str) -> Token | None:
        """The live token with this id, or None (expired tokens are dropped)."""
        tok = self.tokens.get(token_id)
        if tok is None:
            return None
        if tok.expire_at is not None and self.clock() >= tok.expire_at:
            self.revoke(tok, children=True)
            return None
        return tok

    def authenticate(self, token_id: str) -> Token:
        tok = self.lookup_token(token_id)
        if tok is None:
            raise invalid_token()
        return tok

    def use_token(self, tok: Token) -> None:
        """Count one use of a limited-use token; the last use revokes it."""
        if tok.num_uses > 0:
            tok.num_uses -= 1
            if tok.num_uses == 0:
                tok.num_uses = -1  # spent: revoked once the request completes

    def finish_use(self, tok: Token) -> None:
        if tok.num_uses == -1:
            self.revoke(tok, children=True)

    def revoke(self, tok: Token, children: bool = True) -> None:
        self.tokens.pop(tok.id, None)
        if children:
            for child in [t for t in self.tokens.values() if t.parent == tok.id]:
                self.revoke(child, children=True)

    def token_by_accessor(self, accessor: str) -> Token | None:
        for tok in self.tokens.values():
            if tok.accessor == accessor:
                return self.lookup_token(tok.id)
        return None

    def renew(self, tok: Token, increment: int = 0) -> Token:
        if not tok.renewable:
            raise bad_request("lease is not renewable")
        now = self.clock()
        want = increment or tok.ttl
        new_expiry = now + want
        if tok.max_expire_at is not None:
            new_expiry = min(new_expiry, tok.max_expire_at)
        tok.expire_at = new_expiry
        return tok

    def remaining_ttl(self, tok: Token) -> int:
        if tok.expire_at is None:
            return 0
        return max(0, int(tok.expire_at - self.clock()))

    def token_data(self, tok: Token) -> dict[str, Any]:
        """The ``data`` of auth/token/lookup(-self)."""
        entity = self.entities.get(tok.entity_id)
        data = {
            "accessor": tok.accessor,
            "creation_time": int(tok.creation_time),
            "creation_ttl": tok.ttl,
            "display_name": tok.display_name,
            "entity_id": tok.entity_id,
            "expire_time": rfc3339(tok.expire_at) if tok.expire_at else None,
            "explicit_max_ttl": tok.explicit_max_ttl,
            "id": tok.id,
            "issue_time": rfc3339(tok.creation_time),
            "meta": tok.meta,
            "num_uses": max(tok.num_uses, 0),
            "orphan": tok.orphan,
            "path": tok.path,
            "policies": tok.policies,
            "renewable": tok.renewable,
            "ttl": self.remaining_ttl(tok),
            "type": "service",
        }
        if entity is not None and entity.policies:
            data["identity_policies"] = sorted(entity.policies)
        return data

    def auth_block(self, tok: Token) -> dict[str, Any]:
        """The ``auth`` object of a login, create or renew answer."""
        entity = self.entities.get(tok.entity_id)
        identity = sorted(entity.policies) if entity is not None else []
        block = {
            "client_token": tok.id,
            "accessor": tok.accessor,
            "policies": sorted(set(tok.policies) | set(identity)),
            "token_policies": tok.policies,
            "metadata": tok.meta,
            "lease_duration": self.remaining_ttl(tok),
            "renewable": tok.renewable,
            "entity_id": tok.entity_id,
            "token_type": "service",
            "orphan": tok.orphan,
            "mfa_requirement": None,
            "num_uses": max(tok.num_uses, 0),
        }
        if identity:
            block["identity_policies"] = identity
        return block

    # -- ACL --------------------------------------------------------------------------
    def identity_of(self, entity_id: str) -> Identity | None:
        entity = self.entities.get(entity_id)
        if entity is None:
            return None
        aliases: dict[str, dict[str, Any]] = {}
        for alias_id in entity.alias_ids:
            alias = self.aliases.get(alias_id)
            if alias is not None:
                aliases[alias.mount_accessor] = {
                    "id": alias.id,
                    "name": alias.name,
                    "metadata": alias.metadata,
                }
        return Identity(entity.id, entity.name, dict(entity.metadata or {}), aliases)

    def acl_for(self, tok: Token) -> Acl:
        """ACL from the token's policies plus its entity's (identity) policies."""
        names = list(tok.policies)
        entity = self.entities.get(tok.entity_id)
        if entity is not None and entity.disabled:
            return Acl()
        if entity is not None:
            names += entity.policies
        policies = [self.policies[n] for n in dict.fromkeys(names) if n in self.policies]
        return build_acl(policies, self.identity_of(tok.entity_id))

    def login_token(
        self,
        mount: Mount,
        *,
        alias_name: str,
        alias_metadata: dict[str, str],
        params: Any,
        meta: dict[str, str],
        display_name: str,
        role: str,
    ) -> Token:
        """Issue the token of a successful auth-method login (with its entity)."""
        entity = self.entity_for_login(alias_name, mount, alias_metadata)
        if entity.disabled:
            raise VaultError(403, ["permission denied"])
        ttl = params.token_ttl or mount.config.get("default_lease_ttl") or DEFAULT_TTL
        return self.create_token(
            policies=params.token_policies,
            path=f"auth/{mount.path}login",
            display_name=f"{mount.type}-{display_name}" if display_name else mount.type,
            ttl=ttl,
            max_ttl=params.token_max_ttl or None,
            explicit_max_ttl=params.token_explicit_max_ttl,
            meta=meta,
            entity_id=entity.id,
            num_uses=params.token_num_uses,
            orphan=True,
            no_default_policy=params.token_no_default_policy,
            role=role,
        )
