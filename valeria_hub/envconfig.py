"""Settings read from the environment by ``jupyterhub_config.py``.

Only the config file reads the environment; it hands ``os.environ`` to
:func:`read_settings`, a pure function that returns every setting or raises one
:class:`ConfigError` listing *every* missing or malformed variable, so an operator
fixes the deployment in one round instead of one variable per restart.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os.path
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit


class ConfigError(Exception):
    """The environment does not describe a working deployment."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"valeria-hub cannot start; fix these environment variables:\n{lines}")


@dataclass(frozen=True)
class Settings:
    public_url: str
    bind_url: str
    hub_bind_url: str
    proxy_api_url: str
    keycloak_realm_url: str
    oauth_client_id: str
    oauth_client_secret: str
    vault_url: str
    vault_jwt_mount: str
    vault_jwt_role: str
    vault_kv_mount: str
    nfs_server: str
    nfs_path: str
    s3_endpoint_url: str
    crypt_keys: tuple[bytes, ...] = field(repr=False)
    cookie_secret: bytes = field(repr=False)
    db_url: str | None
    notebook_image: str
    namespace: str | None
    admin_roles: list[str] = field(default_factory=list)
    allowed_roles: list[str] = field(default_factory=list)
    allowed_groups: list[str] = field(default_factory=list)
    singleuser_cmd: list[str] = field(default_factory=list)
    hub_connect_ip: str | None = None
    idle_timeout: int = 3600
    institution: str = "your institution"
    platform_name: str = "Valeria data-science platform"
    support_contact: str = ""
    metrics_token: str = ""
    devstack: bool = False
    jobs_service_port: int = 10101
    jobs_namespace_mode: str = "per-user"
    jobs_public_profiles: bool = False
    # per-user job namespaces: what the jobs service binds there, and their egress
    service_account: str | None = None
    jobs_namespace_role: str | None = None
    jobs_pod_scc_role: str | None = None
    jobs_egress_allow_cidrs: tuple[str, ...] = ()
    jobs_egress_deny_cidrs: tuple[str, ...] = ()
    kube_environment: dict[str, str] = field(default_factory=dict)
    extra_config: str | None = None


# What the Kubernetes client of a hub-managed service needs from the hub's environment
# (JupyterHub passes managed services only a few variables of its own).
KUBE_ENVIRONMENT = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")


KEY_FORMAT = "must be 32 bytes, hex (openssl rand -hex 32) or base64 (openssl rand -base64 32)"


def decode_key(text: str) -> bytes | None:
    """A 32-byte key written in hex or in base64 (standard or URL-safe), else None.

    The one reader of key formats: what the checks accept is exactly what
    ``jupyterhub_config.py`` hands to JupyterHub, so an accepted key never fails later.
    """
    text = text.strip()
    raw: bytes | None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        padded = text.encode() + b"=" * (-len(text) % 4)
        try:
            raw = base64.b64decode(padded.replace(b"-", b"+").replace(b"_", b"/"), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    return raw if raw is not None and len(raw) == 32 else None


def decode_keys(value: str) -> tuple[bytes, ...] | None:
    """One or more ';'-separated keys (JupyterHub's rotation format), or None."""
    keys = [decode_key(k) for k in value.split(";") if k.strip()]
    if not keys or any(k is None for k in keys):
        return None
    return tuple(k for k in keys if k is not None)


def _url_problem(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"must be an http(s) URL, got {value!r}"
    return None


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]


def _cidr_problem(value: str) -> str | None:
    bad = []
    for item in _split(value):
        try:
            ipaddress.ip_network(item)
        except ValueError:
            bad.append(item)
    return f"must be comma-separated CIDRs (bad: {', '.join(bad)})" if bad else None


def database_url(env: Mapping[str, str]) -> str | None:
    """A SQLAlchemy URL for PostgreSQL with credentials escaped, or None for SQLite."""
    host = env.get("JUPYTERHUB_DATABASE_HOST", "").strip()
    if not host:
        return None
    user = quote(env.get("JUPYTERHUB_DATABASE_USER", ""), safe="")
    password = quote(env.get("JUPYTERHUB_DATABASE_PASSWORD", ""), safe="")
    port = env.get("JUPYTERHUB_DATABASE_PORT", "5432").strip() or "5432"
    name = quote(env.get("JUPYTERHUB_DATABASE_NAME", "jupyterhub"), safe="")
    auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
    return f"postgresql+psycopg2://{auth}{host}:{port}/{name}"


def read_settings(env: Mapping[str, str]) -> Settings:
    """Every setting from ``env``; raise ConfigError naming every problem at once."""
    problems: list[str] = []

    def need(name: str, check=None) -> str:
        value = env.get(name, "").strip()
        if not value:
            problems.append(f"{name} is not set")
            return ""
        if check and (why := check(value)):
            problems.append(f"{name} {why}")
        return value

    realm_url = env.get("KEYCLOAK_REALM_URL", "").strip()
    if not realm_url and env.get("KEYCLOAK_HOSTNAME") and env.get("KEYCLOAK_REALM"):
        host = env["KEYCLOAK_HOSTNAME"].strip().rstrip("/")
        if "://" not in host:
            host = "https://" + host
        realm_url = f"{host}/realms/{env['KEYCLOAK_REALM'].strip()}"
    if not realm_url:
        problems.append("KEYCLOAK_REALM_URL is not set (or KEYCLOAK_HOSTNAME and KEYCLOAK_REALM)")
    elif why := _url_problem(realm_url):
        problems.append(f"KEYCLOAK_REALM_URL {why}")

    public_url = need("JUPYTERHUB_PUBLIC_URL", _url_problem)
    client_id = need("OAUTH_CLIENT_ID")
    client_secret = need("OAUTH_CLIENT_SECRET")
    vault_url = need("VAULT_URL", _url_problem)
    nfs_server = need("NFS_SERVER")
    nfs_path = need("NFS_PATH", lambda v: None if v.startswith("/") else "must be an absolute path")
    s3 = need("S3_ENDPOINT_URL", _url_problem)
    crypt_key = need("JUPYTERHUB_CRYPT_KEY", lambda v: None if decode_keys(v) else KEY_FORMAT)
    cookie_secret = need(
        "JUPYTERHUB_COOKIE_SECRET", lambda v: None if decode_key(v) else KEY_FORMAT
    )
    idle = env.get("JUPYTERHUB_IDLE_TIMEOUT", "3600").strip()
    if not idle.isdigit():
        problems.append(f"JUPYTERHUB_IDLE_TIMEOUT must be a number of seconds, got {idle!r}")
        idle = "3600"
    jobs_port = env.get("JOBS_SERVICE_PORT", "10101").strip()
    if not jobs_port.isdigit() or not 0 < int(jobs_port) < 65536:
        problems.append(f"JOBS_SERVICE_PORT must be a port number, got {jobs_port!r}")
        jobs_port = "10101"
    jobs_mode = env.get("JOBS_NAMESPACE_MODE", "per-user").strip()
    if jobs_mode not in ("per-user", "shared"):
        problems.append(f"JOBS_NAMESPACE_MODE must be 'per-user' or 'shared', got {jobs_mode!r}")
    for var in ("JOBS_EGRESS_ALLOW_CIDRS", "JOBS_EGRESS_DENY_CIDRS"):
        if why := _cidr_problem(env.get(var, "")):
            problems.append(f"{var} {why}")
    extra_config = env.get("JUPYTERHUB_EXTRA_CONFIG", "").strip() or None
    if extra_config and not os.path.isfile(extra_config):
        problems.append(f"JUPYTERHUB_EXTRA_CONFIG {extra_config!r} is not a file")
    if env.get("JUPYTERHUB_DATABASE_HOST", "").strip():
        for var in ("JUPYTERHUB_DATABASE_USER", "JUPYTERHUB_DATABASE_PASSWORD"):
            if not env.get(var, "").strip():
                problems.append(f"{var} is not set (needed with JUPYTERHUB_DATABASE_HOST)")
        port = env.get("JUPYTERHUB_DATABASE_PORT", "5432").strip()
        if port and not port.isdigit():
            problems.append(f"JUPYTERHUB_DATABASE_PORT must be a port number, got {port!r}")
    if problems:
        raise ConfigError(problems)
    return Settings(
        public_url=public_url.rstrip("/"),
        bind_url=env.get("JUPYTERHUB_BIND_URL", "http://:8080").strip(),
        hub_bind_url=env.get("JUPYTERHUB_HUB_BIND_URL", "http://:8081").strip(),
        proxy_api_url=env.get("JUPYTERHUB_PROXY_API_URL", "http://127.0.0.1:8001").strip(),
        keycloak_realm_url=realm_url.rstrip("/"),
        oauth_client_id=client_id,
        oauth_client_secret=client_secret,
        vault_url=vault_url.rstrip("/"),
        vault_jwt_mount=env.get("VAULT_JWT_MOUNT", "jwt").strip("/ "),
        vault_jwt_role=env.get("VAULT_JWT_ROLE", "valeria").strip(),
        vault_kv_mount=env.get("VAULT_KV_MOUNT", "valeria").strip("/ "),
        nfs_server=nfs_server,
        nfs_path=nfs_path,
        s3_endpoint_url=s3,
        crypt_keys=decode_keys(crypt_key) or (),
        cookie_secret=decode_key(cookie_secret) or b"",
        db_url=database_url(env),
        notebook_image=env.get("NOTEBOOK_IMAGE", "quay.io/jupyter/minimal-notebook:latest"),
        namespace=env.get("KUBERNETES_NAMESPACE", "").strip() or None,
        admin_roles=_split(env.get("KEYCLOAK_ADMIN_ROLES", "hub-admin")),
        allowed_roles=_split(env.get("KEYCLOAK_ALLOWED_ROLES", "")),
        allowed_groups=_split(env.get("KEYCLOAK_ALLOWED_GROUPS", "")),
        singleuser_cmd=env.get("NOTEBOOK_CMD", "jupyterhub-singleuser").split(),
        hub_connect_ip=env.get("JUPYTERHUB_HUB_CONNECT_IP", "").strip() or None,
        idle_timeout=int(idle),
        devstack=env.get("VALERIA_DEVSTACK", "") in ("1", "true", "yes"),
        institution=env.get("INSTITUTION_NAME", "").strip() or "your institution",
        platform_name=env.get("PLATFORM_NAME", "").strip() or "Valeria data-science platform",
        support_contact=env.get("SUPPORT_CONTACT", "").strip(),
        metrics_token=env.get("JUPYTERHUB_METRICS_TOKEN", "").strip(),
        jobs_service_port=int(jobs_port),
        jobs_namespace_mode=jobs_mode,
        jobs_public_profiles=env.get("JOBS_PUBLIC_PROFILES", "") in ("1", "true", "yes"),
        service_account=env.get("KUBERNETES_SERVICE_ACCOUNT", "").strip() or None,
        jobs_namespace_role=env.get("JOBS_NAMESPACE_ROLE", "").strip() or None,
        jobs_pod_scc_role=env.get("JOBS_POD_SCC_ROLE", "").strip() or None,
        jobs_egress_allow_cidrs=tuple(_split(env.get("JOBS_EGRESS_ALLOW_CIDRS", ""))),
        jobs_egress_deny_cidrs=tuple(_split(env.get("JOBS_EGRESS_DENY_CIDRS", ""))),
        kube_environment={k: env[k] for k in KUBE_ENVIRONMENT if env.get(k)},
        extra_config=extra_config,
    )
