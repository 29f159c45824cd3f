"""The jobs service's settings as plain, frozen data, built once at start.

:class:`~valeria_hub.jobs.config.JobsServiceApp` reads the traits (command line, config
file, the hub's service variables) and hands the routes a :class:`JobsSettings`: no
route reads a trait, and nothing can change a setting while the service runs.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..storage import Layout
from .naming import check_shared_namespace, user_namespace
from .policy import Rules
from .upload import CodeLimits


@dataclass(frozen=True)
class Namespaces:
    """Where each person's jobs go, and what a per-user namespace gets on creation."""

    mode: str = "per-user"  # or "shared"
    prefix: str = "valeria-jobs-"
    shared: str = ""
    quota: Mapping[str, str] = field(default_factory=dict)
    # shared mode: what one person's jobs may hold at once (see .ceilings)
    ceilings: Mapping[str, str] = field(default_factory=dict)
    egress_allow_cidrs: tuple[str, ...] = ()
    egress_deny_cidrs: tuple[str, ...] = ()
    # bound in each per-user namespace: this ClusterRole to the service's own account
    # ("namespace", "name"; none: its rights there come from elsewhere), and the one that
    # grants `use` of the notebook SCC to the pods' account ("": none)
    service_role: str = "valeria-hub-user-namespace"
    service_account: tuple[str, str] | None = None
    pod_scc_role: str = "valeria-notebook-scc"

    @property
    def shared_mode(self) -> bool:
        """True when all jobs share one namespace: names carry the person's tag and
        the service keeps each person under their ceilings."""
        return self.mode == "shared"

    def for_user(self, username: str, fallback: str = "") -> str:
        """The namespace of ``username``'s jobs (InvalidName if none is acceptable)."""
        if self.mode == "per-user":
            return user_namespace(self.prefix, username)
        return check_shared_namespace(self.shared or fallback)


@dataclass(frozen=True)
class JobsSettings:
    """Everything the routes need to know, read once."""

    prefix: str
    service_name: str
    hub_api_url: str
    hub_api_token: str = field(repr=False)
    public_url: str = ""  # the hub's public URL: https means Secure cookies
    oauth_client_id: str = ""
    oauth_callback_url: str = ""
    hub_authorize_url: str = ""
    hub_timeout: float = 10.0
    user_cache_ttl: float = 30.0
    user_cache_size: int = 1000
    token_min_validity: float = 30.0
    vault_profile_ttl: float = 60.0  # a person's Vault profile kept in memory (0: never)
    login_recheck_seconds: float = 30.0  # the hub's answer about a login reused (0: never)
    list_cache_views: int = 200  # lists kept up to date by watches (0: none)
    platform_name: str = "Valeria data-science platform"  # the jobs page's header
    public_profiles: bool = False
    kubeconfig: str = ""
    kube_timeout: float = 10.0
    log_idle_timeout: float = 300.0
    max_log_streams_per_user: int = 4  # followed logs at once, per person
    max_log_streams: int = 64  # followed logs at once, everybody together
    log_stream_max_seconds: float = 3600.0  # a followed log ends after this long
    namespaces: Namespaces = field(default_factory=Namespaces)
    rules: Rules = field(default_factory=Rules)
    # operator templates, parsed: NAME -> (template, secret)
    extra_env: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    code_max_bytes: int = 1_000_000
    code_limits: CodeLimits = field(default_factory=CodeLimits)
    body_limit: int = 1_000_000 * 4 // 3 + 1024 * 1024
    layout: Layout = field(default_factory=Layout)
    # signs the per-session XSRF tokens of the jobs page; new at every start
    xsrf_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
