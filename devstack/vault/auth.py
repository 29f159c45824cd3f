"""Auth methods of the Vault stand-in: jwt (and its oidc twin) and approle.

Each backend keeps its own config and roles and turns a login body into a token via
the model (which also creates the identity entity and alias, as Vault does). Error
texts follow vault-plugin-auth-jwt and the approle backend; a rejected credential is
never echoed back.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import jwt_login as vault_jwt
from .errors import VaultError, bad_request
from .jwt_login import Expected, JwtError, KeySet
from .params import parse_duration, str_list

if TYPE_CHECKING:
    from .model import Mount, Token, VaultModel


@dataclass
class TokenParams:
    """The ``token_*`` fields every role carries (with their legacy spellings)."""

    token_policies: list[str] = field(default_factory=list)
    token_ttl: int = 0
    token_max_ttl: int = 0
    token_explicit_max_ttl: int = 0
    token_num_uses: int = 0
    token_no_default_policy: bool = False
    token_type: str = "default"
    token_period: int = 0
    token_bound_cidrs: list[str] = field(default_factory=list)

    def update(self, body: dict[str, Any]) -> None:
        legacy = {
            "policies": "token_policies",
            "ttl": "token_ttl",
            "max_ttl": "token_max_ttl",
            "num_uses": "token_num_uses",
            "period": "token_period",
            "bound_cidrs": "token_bound_cidrs",
        }
        merged = {legacy.get(k, k): v for k, v in body.items() if k in legacy}
        merged.update({k: v for k, v in body.items() if k.startswith("token_")})
        if "token_policies" in merged:
            self.token_policies = str_list(merged["token_policies"])
        for name in ("token_ttl", "token_max_ttl", "token_explicit_max_ttl", "token_period"):
            if name in merged:
                setattr(self, name, parse_duration(merged[name], name))
        if "token_num_uses" in merged:
            self.token_num_uses = int(merged["token_num_uses"] or 0)
        if "token_no_default_policy" in merged:
            self.token_no_default_policy = bool(merged["token_no_default_policy"])
        if "token_type" in merged:
            self.token_type = str(merged["token_type"] or "default")
        if "token_bound_cidrs" in merged:
            self.token_bound_cidrs = str_list(merged["token_bound_cidrs"])
        if self.token_max_ttl and self.token_ttl > self.token_max_ttl:
            raise bad_request("ttl should not be greater than max ttl")

    def describe(self) -> dict[str, Any]:
        return {
            "token_policies": self.token_policies,
            "policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "max_ttl": self.token_max_ttl,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_num_uses": self.token_num_uses,
            "num_uses": self.token_num_uses,
            "token_no_default_policy": self.token_no_default_policy,
            "token_type": self.token_type,
            "token_period": self.token_period,
            "period": self.token_period,
            "token_bound_cidrs": self.token_bound_cidrs,
        }


def new_backend(typ: str) -> Any:
    if typ in ("jwt", "oidc"):
        return JwtBackend()
    if typ == "approle":
        return AppRoleBackend()
    return None


def _require_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("invalid request body: expected a JSON object")
    return body


# ---------------------------------------------------------------------------- jwt
@dataclass
class JwtRole:
    role_type: str = "oidc"
    user_claim: str = ""
    user_claim_json_pointer: bool = False
    bound_audiences: list[str] = field(default_factory=list)
    bound_subject: str = ""
    bound_claims: dict[str, Any] = field(default_factory=dict)
    bound_claims_type: str = "string"
    claim_mappings: dict[str, str] = field(default_factory=dict)
    groups_claim: str = ""
    allowed_redirect_uris: list[str] = field(default_factory=list)
    oidc_scopes: list[str] = field(default_factory=list)
    clock_skew_leeway: int = 60
    expiration_leeway: int = 150
    not_before_leeway: int = 150
    verbose_oidc_logging: bool = False
    token: TokenParams = field(default_factory=TokenParams)

    def describe(self) -> dict[str, Any]:
        return {
            "role_type": self.role_type,
            "user_claim": self.user_claim,
            "user_claim_json_pointer": self.user_claim_json_pointer,
            "bound_audiences": self.bound_audiences,
            "bound_subject": self.bound_subject,
            "bound_claims": self.bound_claims or None,
            "bound_claims_type": self.bound_claims_type,
            "claim_mappings": self.claim_mappings or None,
            "groups_claim": self.groups_claim,
            "allowed_redirect_uris": self.allowed_redirect_uris,
            "oidc_scopes": self.oidc_scopes or None,
            "clock_skew_leeway": self.clock_skew_leeway,
            "expiration_leeway": self.expiration_leeway,
            "not_before_leeway": self.not_before_leeway,
            "verbose_oidc_logging": self.verbose_oidc_logging,
            **self.token.describe(),
        }


_CONFIG_FIELDS = (
    "oidc_discovery_url",
    "oidc_discovery_ca_pem",
    "oidc_client_id",
    "oidc_response_mode",
    "oidc_response_types",
    "jwks_url",
    "jwks_ca_pem",
    "jwt_validation_pubkeys",
    "jwt_supported_algs",
    "bound_issuer",
    "default_role",
    "provider_config",
    "namespace_in_state",
)


class JwtBackend:
    """The jwt/oidc auth method: config, roles and direct JWT login."""

    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None
        self.roles: dict[str, JwtRole] = {}
        self._jwks_uri: str | None = None
        self._keys: KeySet | None = None

    async def write_config(self, body: dict[str, Any]) -> None:
        body = _require_dict(body)
        config = {k: body.get(k, "") for k in _CONFIG_FIELDS}
        config["jwt_validation_pubkeys"] = str_list(body.get("jwt_validation_pubkeys"))
        config["jwt_supported_algs"] = str_list(body.get("jwt_supported_algs"))
        client_secret = body.get("oidc_client_secret") or ""
        methods = sum(
            bool(x)
            for x in (
                config["oidc_discovery_url"],
                config["jwt_validation_pubkeys"],
                config["jwks_url"],
            )
        )
        if methods != 1:
            raise bad_request(
                "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' "
                "must be set"
            )
        if bool(config["oidc_client_id"]) != bool(client_secret):
            raise bad_request("both 'oidc_client_id' and 'oidc_client_secret' must be set for OIDC")
        for alg in config["jwt_supported_algs"]:
            if alg not in vault_jwt.SUPPORTED_ALGS:
                raise bad_request(
                    f"invalid jwt_supported_algs: unsupported signing algorithm {alg!r}"
                )
        jwks_uri = None
        keys = None
        try:
            if config["oidc_discovery_url"]:
                try:
                    jwks_uri = await vault_jwt.discover(config["oidc_discovery_url"])
                except JwtError as e:
                    raise bad_request(f"error checking oidc discovery URL: {e}") from None
            elif config["jwks_url"]:
                try:
                    keys = await vault_jwt.fetch_jwks(config["jwks_url"])
                except JwtError as e:
                    raise bad_request(f"error checking jwks URL: {e}") from None
                jwks_uri = config["jwks_url"]
            else:
                keys = vault_jwt.parse_pem_keys(config["jwt_validation_pubkeys"])
        except JwtError as e:
            raise bad_request(f"error parsing public key: {e}") from None
        config["has_client_secret"] = bool(client_secret)  # the secret itself is not kept
        self.config = config
        self._jwks_uri = jwks_uri
        self._keys = keys

    def read_config(self) -> dict[str, Any]:
        if self.config is None:
            raise VaultError(404, [])
        out = {k: v for k, v in self.config.items() if k != "has_client_secret"}
        return out

    def write_role(self, name: str, body: dict[str, Any]) -> None:
        body = _require_dict(body)
        name = name.lower()
        role = self.roles.get(name) or JwtRole()
        role_type = body.get("role_type", role.role_type) or "oidc"
        if role_type not in ("oidc", "jwt"):
            raise bad_request("invalid 'role_type': " + str(role_type))
        role.role_type = role_type
        for key in ("user_claim", "bound_subject", "groups_claim", "bound_claims_type"):
            if key in body:
                setattr(role, key, str(body[key] or ""))
        if role.bound_claims_type not in ("string", "glob"):
            raise bad_request(f"invalid 'bound_claims_type': {role.bound_claims_type}")
        for key in ("bound_audiences", "allowed_redirect_uris", "oidc_scopes"):
            if key in body:
                setattr(role, key, str_list(body[key]))
        for key in ("clock_skew_leeway", "expiration_leeway", "not_before_leeway"):
            if key in body:
                setattr(role, key, parse_duration(body[key], key))
        if "user_claim_json_pointer" in body:
            role.user_claim_json_pointer = bool(body["user_claim_json_pointer"])
        if "verbose_oidc_logging" in body:
            role.verbose_oidc_logging = bool(body["verbose_oidc_logging"])
        if "bound_claims" in body:
            bc = body["bound_claims"] or {}
            if not isinstance(bc, dict):
                raise bad_request("bound_claims must be a map")
            role.bound_claims = bc
        if "claim_mappings" in body:
            cm = body["claim_mappings"] or {}
            if not isinstance(cm, dict):
                raise bad_request("claim_mappings must be a map")
            targets: set[str] = set()
            for meta_key in cm.values():
                if meta_key == "role":
                    raise bad_request(
                        'metadata key "role" is reserved and may not be a mapping destination'
                    )
                if meta_key in targets:
                    raise bad_request(f'multiple keys are mapped to metadata key "{meta_key}"')
                targets.add(meta_key)
            role.claim_mappings = {str(k): str(v) for k, v in cm.items()}
        role.token.update(body)
        if not role.user_claim:
            raise bad_request("a user claim must be defined on the role")
        if role.role_type == "oidc" and not role.allowed_redirect_uris:
            raise bad_request(
                "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified."
            )
        if role.role_type != "oidc" and not (
            role.bound_audiences
            or role.token.token_bound_cidrs
            or role.bound_subject
            or role.bound_claims
        ):
            raise bad_request(
                "must have at least one bound constraint when creating/updating a role"
            )
        self.roles[name] = role

    def read_role(self, name: str) -> dict[str, Any]:
        role = self.roles.get(name.lower())
        if role is None:
            raise VaultError(404, [])
        return role.describe()

    async def _keyset(self, token: str, refresh: bool) -> KeySet:
        assert self.config is not None
        if self._keys is not None and (self._keys.static or not refresh):
            return self._keys
        if self._jwks_uri is None or (refresh and self.config["oidc_discovery_url"]):
            self._jwks_uri = await vault_jwt.discover(self.config["oidc_discovery_url"])
        self._keys = await vault_jwt.fetch_jwks(self._jwks_uri)
        return self._keys

    async def login(self, model: VaultModel, mount: Mount, body: Any) -> Token:
        body = _require_dict(body)
        if self.config is None:
            raise bad_request("could not load configuration")
        role_name = str(body.get("role") or self.config.get("default_role") or "").lower()
        if not role_name:
            raise bad_request("missing role")
        role = self.roles.get(role_name)
        if role is None:
            raise bad_request(f'role "{role_name}" could not be found')
        if role.role_type == "oidc":
            raise bad_request("role with oidc role_type is not allowed")
        token = body.get("jwt")
        if not isinstance(token, str) or not token:
            raise bad_request("missing token")
        expected = Expected(
            issuer=self.config.get("bound_issuer") or "",
            subject=role.bound_subject,
            audiences=role.bound_audiences,
            algorithms=self.config.get("jwt_supported_algs") or [],
            not_before_leeway=role.not_before_leeway,
            expiration_leeway=role.expiration_leeway,
            clock_skew_leeway=role.clock_skew_leeway,
        )
        claims = await self._validate(token, expected, model.clock())
        aud = claims.get("aud")
        if aud and not role.bound_audiences:
            raise bad_request("audience claim found in JWT but no audiences bound to the role")
        user_name = vault_jwt.claim(claims, role.user_claim)
        if user_name is None:
            raise bad_request(f'claim "{role.user_claim}" not found in token')
        if not isinstance(user_name, str):
            raise bad_request(f'claim "{role.user_claim}" could not be converted to string')
        metadata = {}
        for claim_name, meta_key in role.claim_mappings.items():
            value = vault_jwt.claim(claims, claim_name)
            if value is None:
                continue
            if not isinstance(value, str | int | float | bool):
                raise bad_request(f"error converting claim '{claim_name}' to string")
            metadata[meta_key] = str(value)
        if role.groups_claim:
            groups = vault_jwt.claim(claims, role.groups_claim)
            if groups is None:
                raise bad_request(f'"{role.groups_claim}" claim not found in token')
            if not isinstance(groups, list | str):
                raise bad_request(
                    f'"{role.groups_claim}" claim could not be converted to string list'
                )
        try:
            vault_jwt.validate_bound_claims(role.bound_claims, claims, role.bound_claims_type)
        except JwtError as e:
            raise bad_request(f"error validating claims: {e}") from None
        return model.login_token(
            mount,
            alias_name=user_name,
            alias_metadata=metadata,
            params=role.token,
            meta={"role": role_name, **metadata},
            display_name=user_name,
            role=role_name,
        )

    async def _validate(self, token: str, expected: Expected, now: float) -> dict[str, Any]:
        last: JwtError | None = None
        for refresh in (False, True):
            try:
                keys = await self._keyset(token, refresh)
            except JwtError as e:
                raise bad_request(f"error configuring token validator: {e}") from None
            try:
                return vault_jwt.validate_jwt(token, keys, expected, now)
            except JwtError as e:
                last = e
                # Only a signature failure with remote keys is worth a key refresh.
                if keys.static or "signature" not in str(e) or refresh:
                    break
        raise bad_request(f"error validating token: {last}")


# ------------------------------------------------------------------------ approle
@dataclass
class SecretId:
    accessor: str
    created: float
    ttl: int
    num_uses: int
    metadata: dict[str, str]


@dataclass
class AppRole:
    role_id: str
    bind_secret_id: bool = True
    secret_id_ttl: int = 0
    secret_id_num_uses: int = 0
    secret_id_bound_cidrs: list[str] = field(default_factory=list)
    token: TokenParams = field(default_factory=TokenParams)
    secret_ids: dict[str, SecretId] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "bind_secret_id": self.bind_secret_id,
            "local_secret_ids": False,
            "secret_id_bound_cidrs": self.secret_id_bound_cidrs or None,
            "secret_id_num_uses": self.secret_id_num_uses,
            "secret_id_ttl": self.secret_id_ttl,
            **self.token.describe(),
        }


class AppRoleBackend:
    """The approle auth method."""

    def __init__(self) -> None:
        self.roles: dict[str, AppRole] = {}

    def write_role(self, name: str, body: dict[str, Any]) -> None:
        body = _require_dict(body)
        name = name.lower()
        role = self.roles.get(name) or AppRole(role_id=str(uuid.uuid4()))
        if "role_id" in body and body["role_id"]:
            role.role_id = str(body["role_id"])
        if "bind_secret_id" in body:
            role.bind_secret_id = bool(body["bind_secret_id"])
        if "secret_id_ttl" in body:
            role.secret_id_ttl = parse_duration(body["secret_id_ttl"], "secret_id_ttl")
        if "secret_id_num_uses" in body:
            role.secret_id_num_uses = int(body["secret_id_num_uses"] or 0)
        if "secret_id_bound_cidrs" in body:
            role.secret_id_bound_cidrs = str_list(body["secret_id_bound_cidrs"])
        role.token.update(body)
        if not role.bind_secret_id and not (
            role.secret_id_bound_cidrs or role.token.token_bound_cidrs
        ):
            raise bad_request("at least one constraint should be enabled on the role")
        self.roles[name] = role

    def role(self, name: str) -> AppRole:
        role = self.roles.get(name.lower())
        if role is None:
            raise VaultError(404, [])
        return role

    def set_role_id(self, name: str, body: dict[str, Any]) -> None:
        role = self.roles.get(name.lower())
        if role is None:
            raise bad_request(f"role {name} does not exist")
        new = _require_dict(body).get("role_id")
        if not new:
            raise bad_request("missing role_id")
        role.role_id = str(new)

    def generate_secret_id(self, name: str, body: dict[str, Any], now: float) -> dict[str, Any]:
        role = self.roles.get(name.lower())
        if role is None:
            raise bad_request(f'role "{name}" does not exist')
        body = _require_dict(body or {})
        ttl = parse_duration(body.get("ttl"), "ttl") or role.secret_id_ttl
        num_uses = int(body.get("num_uses") or role.secret_id_num_uses or 0)
        metadata = body.get("metadata") or {}
        if isinstance(metadata, str):
            import json

            try:
                metadata = json.loads(metadata)
            except ValueError:
                raise bad_request("failed to parse metadata") from None
        secret = str(uuid.uuid4())
        entry = SecretId(
            str(uuid.uuid4()),
            now,
            ttl,
            num_uses,
            {str(k): str(v) for k, v in dict(metadata).items()},
        )
        role.secret_ids[secret] = entry
        return {
            "secret_id": secret,
            "secret_id_accessor": entry.accessor,
            "secret_id_num_uses": num_uses,
            "secret_id_ttl": ttl,
        }

    def login(self, model: VaultModel, mount: Mount, body: Any) -> Token:
        body = _require_dict(body)
        role_id = body.get("role_id")
        if not role_id:
            raise bad_request("missing role_id")
        found = [
            (n, r) for n, r in self.roles.items() if secrets.compare_digest(r.role_id, str(role_id))
        ]
        if not found:
            raise bad_request("invalid role or secret ID")
        name, role = found[0]
        metadata: dict[str, str] = {}
        if role.bind_secret_id:
            secret = body.get("secret_id")
            if not secret:
                raise bad_request("missing secret_id")
            entry = role.secret_ids.get(str(secret))
            now = model.clock()
            if entry is None or (entry.ttl and now >= entry.created + entry.ttl):
                if entry is not None:
                    role.secret_ids.pop(str(secret), None)
                raise bad_request("invalid role or secret ID")
            if entry.num_uses:
                entry.num_uses -= 1
                if entry.num_uses == 0:
                    role.secret_ids.pop(str(secret), None)
            metadata = dict(entry.metadata)
        return model.login_token(
            mount,
            alias_name=role.role_id,
            alias_metadata={},
            params=role.token,
            meta={"role_name": name, **metadata},
            display_name="",
            role=name,
        )
