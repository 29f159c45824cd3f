"""JobsServiceApp: the jobs service's configuration and its ``python -m`` entry point.

Run by the hub as a managed service: the hub passes the documented service variables
(JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL, JUPYTERHUB_SERVICE_PREFIX,
JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_NAME, JUPYTERHUB_CLIENT_ID,
JUPYTERHUB_OAUTH_CALLBACK_URL, JUPYTERHUB_HOST, JUPYTERHUB_BASE_URL), which become
trait defaults, and the hub's own ``VaultIdentity`` and ``StorageLayout`` configuration
(VALERIA_SHARED_CONFIG, see :mod:`.hub_service`), which is applied last, so a notebook
and a job of the same person can never be configured apart. The service's own traits
are set on the command line (``--JobsServiceApp.namespace_mode=shared``) or in a
``--config`` file. :meth:`JobsServiceApp.settings` turns them into frozen data once.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import urllib.parse
from typing import Any

from traitlets import (
    Bool,
    Dict,
    Enum,
    Float,
    Instance,
    Integer,
    List,
    TraitError,
    Unicode,
    default,
    validate,
)
from traitlets.config import Application, Config

from ..envconfig import Settings as HubSettings
from ..names import DNS_LABEL
from ..storage import StorageLayout
from ..vault import VaultIdentity
from .ceilings import parse_ceilings
from .hub_service import HUB_SET, SHARED_CONFIG_VARIABLE, SHARED_SECTIONS
from .manifests import parse_extra_env
from .naming import InvalidName, check_shared_namespace, user_namespace
from .policy import Rules
from .profiles import parse_profiles
from .settings import JobsSettings, Namespaces
from .upload import CodeLimits, unpack_command

# ephemeral-storage (the container's writable layer, logs and emptyDirs, the code
# directory among them) is requested so the scheduler counts it, and limited so one job
# cannot fill a node's disk; requests stay at or under limits, as a ResourceQuota on
# ephemeral storage would require
DEFAULT_PROFILES = {
    "small": {
        "description": "1 CPU, 2 GiB, 2 GiB disk",
        "resources": {
            "requests": {"cpu": "250m", "memory": "2Gi", "ephemeral-storage": "1Gi"},
            "limits": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "2Gi"},
        },
    },
    "medium": {
        "description": "2 CPU, 8 GiB, 10 GiB disk",
        "resources": {
            "requests": {"cpu": "1", "memory": "8Gi", "ephemeral-storage": "2Gi"},
            "limits": {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "10Gi"},
        },
    },
}


def _env(name: str, fallback: str = "") -> str:
    return os.environ.get(name, fallback)


class JobsServiceApp(Application):
    """The batch jobs service (a JupyterHub service running Kubernetes Jobs)."""

    name = "valeria-jobs"
    description = __doc__
    classes = [VaultIdentity, StorageLayout]
    aliases = {
        "config": "JobsServiceApp.config_file",
        "bind-url": "JobsServiceApp.bind_url",
        "log-level": "Application.log_level",
    }

    config_file = Unicode("", config=True, help="A Python config file (c.JobsServiceApp...).")
    shared_config = Unicode(
        "",
        config=True,
        help="JSON of the hub's VaultIdentity and StorageLayout configuration, handed over "
        f"by the hub ({SHARED_CONFIG_VARIABLE}); applied after the command line and the "
        "config file, so those sections are the hub's, whatever else says.",
    )

    # -- the hub's service contract ---------------------------------------------------
    hub_api_url = Unicode(config=True, help="The hub's API URL (JUPYTERHUB_API_URL).")
    hub_api_token = Unicode(
        config=True, help="The service's own hub token (JUPYTERHUB_API_TOKEN); never logged."
    )
    service_name = Unicode(config=True, help="The service's name (JUPYTERHUB_SERVICE_NAME).")
    service_prefix = Unicode(
        config=True, help="URL prefix the proxy routes to us (JUPYTERHUB_SERVICE_PREFIX)."
    )
    bind_url = Unicode(config=True, help="Where to listen (JUPYTERHUB_SERVICE_URL).")
    oauth_client_id = Unicode(config=True, help="OAuth client id (JUPYTERHUB_CLIENT_ID).")
    oauth_callback_url = Unicode(
        config=True, help="OAuth redirect URI (JUPYTERHUB_OAUTH_CALLBACK_URL)."
    )
    hub_authorize_url = Unicode(
        config=True,
        help="The hub's OAuth authorize URL as a browser reaches it; default "
        "JUPYTERHUB_HOST + JUPYTERHUB_BASE_URL + 'hub/api/oauth2/authorize'.",
    )
    public_url = Unicode(
        "",
        config=True,
        help="The hub's public URL (JUPYTERHUB_PUBLIC_URL of the hub); when it is https the "
        "service's cookies carry Secure whatever scheme the proxies report.",
    )
    hub_timeout = Float(10.0, config=True, help="Seconds allowed for each hub API call.")
    user_cache_ttl = Float(
        30.0, config=True, help="Seconds a token's owner is cached (failures never are)."
    )
    user_cache_size = Integer(1000, config=True, help="Most tokens kept in the cache.")
    token_min_validity = Float(
        30.0,
        config=True,
        help="Seconds the user's Keycloak access token must stay valid for the Vault login; "
        "an older login gets 401 'log in to the hub again' (the hub refreshes tokens).",
    )
    platform_name = Unicode(
        HubSettings.platform_name,
        config=True,
        help="The platform's name in the jobs page's header and title (the hub gives "
        "its PLATFORM_NAME).",
    )
    list_cache_views = Integer(
        200,
        config=True,
        help="How many (kind, namespace, person) lists the service keeps in memory, each "
        "up to date through a watch of its own (one connection each); a list beyond that "
        "asks the API server. A view nobody listed for 5 minutes goes. 0: no cache.",
    )
    vault_profile_ttl = Float(
        60.0,
        config=True,
        help="Seconds a person's uid, gid and S3 keys read from Vault stay in this "
        "process's memory (never on disk, never logged) for their next submissions; "
        "dropped as soon as their login is found ended. 0: read Vault at every submission.",
    )
    login_recheck_seconds = Float(
        30.0,
        config=True,
        help="Seconds the hub's answer about a person's login (their current Keycloak "
        "access token) serves their next submissions without asking the hub again; the "
        "token must still be valid for token_min_validity. The hub tells the service at "
        "once when a login ends (logout, back-channel logout), which drops it and the "
        "Vault profile; this bounds how long an ending it could not tell goes unnoticed "
        "(as the token-owner cache bounds a deleted hub token). 0: ask at every submission.",
    )
    public_profiles = Bool(
        False,
        config=True,
        help="Serve GET /profiles/ without a token. The kbatch client fetches profiles "
        "without sending its token; turn this on for `kbatch ... --profile`.",
    )

    # -- Kubernetes ----------------------------------------------------------------------
    kubeconfig = Unicode(
        config=True, help="kubeconfig file (default KUBECONFIG; in-cluster config when unset)."
    )
    kube_timeout = Float(10.0, config=True, help="Seconds allowed for each Kubernetes call.")
    log_idle_timeout = Float(
        300.0, config=True, help="A followed log stream ends after this many silent seconds."
    )
    max_log_streams_per_user = Integer(
        4,
        min=1,
        config=True,
        help="Most logs one person may follow (stream) at once; one more gets 429 with "
        "Retry-After, so nobody can take the service's streams for themselves.",
    )
    max_log_streams = Integer(
        64,
        min=1,
        config=True,
        help="Most logs the service follows at once, everybody together; one more gets "
        "429. Streams have their own connection pool to Kubernetes, so they never take "
        "the connections of the service's other calls.",
    )
    log_stream_max_seconds = Float(
        3600.0,
        min=1.0,
        config=True,
        help="A followed log ends after this many seconds with a last line saying so (the "
        "client may follow again), so no stream holds a slot for ever.",
    )
    namespace_mode = Enum(
        ["per-user", "shared"],
        "per-user",
        config=True,
        help="'per-user': one namespace per user (prefix + name + hash), created on first "
        "use with a NetworkPolicy and a ResourceQuota; 'shared': every job in "
        "shared_namespace, isolated by owner labels.",
    )
    namespace_prefix = Unicode(
        "valeria-jobs-", config=True, help="Prefix of per-user namespaces (DNS-1123)."
    )
    shared_namespace = Unicode(
        "",
        config=True,
        help="The namespace of 'shared' mode; default: the service's own (in-cluster or "
        "the kubeconfig context's). System namespaces are refused.",
    )
    namespace_quota = Dict(
        {
            "requests.cpu": "16",
            "requests.memory": "64Gi",
            "limits.cpu": "32",
            "limits.memory": "128Gi",
            "count/jobs.batch": "100",
            "count/cronjobs.batch": "20",
        },
        config=True,
        help="ResourceQuota 'hard' limits of each per-user namespace.",
    )
    user_ceilings = Dict(
        {
            "jobs": "50",
            "cronjobs": "20",
            "pods": "50",
            "requests.cpu": "16",
            "requests.memory": "64Gi",
            "limits.cpu": "32",
            "limits.memory": "128Gi",
        },
        config=True,
        help="'shared' mode: what one person's jobs may hold at once, enforced by the "
        "service before it creates anything (the shared namespace has no quota per "
        "person). Keys: jobs (unfinished Jobs), cronjobs, pods (parallelism), "
        "requests.<resource> and limits.<resource> (parallelism x the pod's). A CronJob "
        "holds one run's worth from its creation on. Beyond a ceiling: 403 with the "
        "figures. Empty: no ceilings.",
    )
    egress_allow_cidrs = List(
        Unicode(),
        config=True,
        help="Private CIDRs jobs may still reach (e.g. the S3 endpoint); the rest of the "
        "private ranges are closed by the per-user NetworkPolicy.",
    )
    egress_deny_cidrs = List(
        Unicode(),
        config=True,
        help="CIDRs closed to jobs beside the private ranges: the NFS server (the kubelet "
        "mounts it from the node, pods never need it) and internal networks on public "
        "addresses.",
    )
    namespace_role = Unicode(
        "valeria-hub-user-namespace",
        config=True,
        help="ClusterRole the service binds to its own service_account in each per-user "
        "namespace it makes (openshift/rbac-user-namespaces.yaml).",
    )
    service_account = Unicode(
        "",
        config=True,
        help="The service's own ServiceAccount, NAMESPACE:NAME or NAME (in the service's "
        "namespace); per-user namespaces bind namespace_role to it. Empty: bind nothing "
        "(the service's rights there come from elsewhere).",
    )
    pod_scc_role = Unicode(
        "valeria-notebook-scc",
        config=True,
        help="ClusterRole granting `use` of the notebook SCC (openshift/scc-notebook.yaml), "
        "bound in each per-user namespace to the 'default' account job pods run under; "
        "empty: none.",
    )

    # -- what jobs may be -------------------------------------------------------------------
    profiles = Dict(
        DEFAULT_PROFILES,
        config=True,
        help="Job profiles in kbatch's format: {name: {description, image, resources: "
        "{requests, limits}, tolerations, node_affinity_required, node_selector, "
        "allowed_groups}}. allowed_groups (hub groups, i.e. the person's Keycloak "
        "groups, with or without the leading '/'; empty: everyone) restricts who may "
        "submit with the profile: anyone else is refused with 422 naming it. Roles are "
        "not known to the service: allowed_roles is refused.",
    )
    default_profile = Unicode("", config=True, help="Profile of jobs that name none.")
    max_resources = Dict(
        {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "50Gi"},
        config=True,
        help="Server-side caps on any container's requests and limits.",
    )
    min_requests = Dict(
        {"cpu": "10m", "memory": "32Mi"},
        config=True,
        help="Least a container may request (cpu, memory, ephemeral-storage): a missing "
        "request becomes the container's limit, or this minimum; less is refused (422). "
        "Profiles must request at least this.",
    )
    max_active_deadline_seconds = Integer(
        24 * 3600, config=True, help="Cap (and default) of activeDeadlineSeconds."
    )
    default_ttl_seconds_after_finished = Integer(
        7 * 24 * 3600, config=True, help="ttlSecondsAfterFinished when the job sets none."
    )
    max_ttl_seconds_after_finished = Integer(
        30 * 24 * 3600, config=True, help="Cap of ttlSecondsAfterFinished."
    )
    max_backoff_limit = Integer(6, config=True, help="Cap of backoffLimit (default 0).")
    max_parallelism = Integer(4, config=True, help="Cap of parallelism and completions.")
    max_containers = Integer(4, config=True, help="Most containers in a job's pod.")
    allowed_images = List(
        Unicode(), config=True, help="Glob patterns of allowed images; empty: any image."
    )
    code_max_bytes = Integer(
        1_000_000,
        config=True,
        help="Largest uploaded zip (decoded bytes); a ConfigMap holds at most 1 MiB.",
    )
    code_max_unpacked_bytes = Integer(
        64 * 1024 * 1024,
        config=True,
        help="Most bytes an uploaded zip may unpack to, counted as its members are really "
        "inflated (never from its headers), by the service and again by the init container; "
        "also the sizeLimit of the code volume.",
    )
    code_max_members = Integer(
        2000, config=True, help="Most members (files and directories) in an uploaded zip."
    )
    code_check_seconds = Float(
        5.0,
        config=True,
        help="CPU seconds the service may spend checking an uploaded zip, in a separate "
        "process (killed if it has not answered after twice this time plus 2 s); a slower "
        "archive is refused.",
    )
    max_body_bytes = Integer(
        0,
        config=True,
        help="Largest request body; larger ones get 413 before they are read. "
        "0: room for the largest code upload (base64) plus 1 MiB of job spec.",
    )

    def body_limit(self) -> int:
        return self.max_body_bytes or self.code_max_bytes * 4 // 3 + 1024 * 1024

    code_dir = Unicode("/code", config=True, help="Working directory the code is unpacked into.")
    unpack_command = List(
        Unicode(),
        [],
        config=True,
        help="Init container command that unpacks the zip; ZIP and DEST are appended. "
        "Empty: python3 running the built-in script, which enforces code_max_unpacked_bytes "
        "and code_max_members, refuses links, '..' and compression other than deflate.",
    )
    unpack_image = Unicode(
        "", config=True, help="Image of the unpacking init container; default: the job's."
    )
    extra_env = Dict(
        {"JUPYTER_IMAGE": "{image}", "JUPYTER_IMAGE_SPEC": "{image}"},
        config=True,
        help="Extra job environment: NAME: 'template' or NAME: {value: 'template', "
        "secret: true}; placeholders {username}, {job_name}, {image}, {namespace}. "
        "Secret entries go through the job's Secret, never into the Job spec.",
    )

    vault = Instance(VaultIdentity)
    storage = Instance(StorageLayout)

    # -- defaults from the hub's service environment -----------------------------------------
    @default("shared_config")
    def _d_shared(self) -> str:
        return _env(SHARED_CONFIG_VARIABLE)

    @default("hub_api_url")
    def _d_api_url(self) -> str:
        return _env("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    @default("hub_api_token")
    def _d_api_token(self) -> str:
        return _env("JUPYTERHUB_API_TOKEN")

    @default("service_name")
    def _d_name(self) -> str:
        return _env("JUPYTERHUB_SERVICE_NAME", "jobs")

    @default("service_prefix")
    def _d_prefix(self) -> str:
        return _env("JUPYTERHUB_SERVICE_PREFIX", f"/services/{self.service_name}/")

    @default("bind_url")
    def _d_bind(self) -> str:
        return _env("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")

    @default("oauth_client_id")
    def _d_client(self) -> str:
        return _env("JUPYTERHUB_CLIENT_ID", f"service-{self.service_name}")

    @default("oauth_callback_url")
    def _d_callback(self) -> str:
        return _env("JUPYTERHUB_OAUTH_CALLBACK_URL", self.prefix + "oauth_callback")

    @default("hub_authorize_url")
    def _d_authorize(self) -> str:
        host = _env("JUPYTERHUB_HOST")
        base = _env("JUPYTERHUB_BASE_URL", "/")
        return f"{host}{base.rstrip('/')}/hub/api/oauth2/authorize"

    @default("kubeconfig")
    def _d_kubeconfig(self) -> str:
        return _env("KUBECONFIG")

    @default("vault")
    def _d_vault(self) -> VaultIdentity:
        return VaultIdentity(parent=self)

    @default("storage")
    def _d_storage(self) -> StorageLayout:
        return StorageLayout(parent=self)

    @validate("namespace_prefix")
    def _v_prefix(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        try:
            user_namespace(value, "probe")
        except InvalidName as e:
            raise TraitError(str(e)) from None
        return value

    @validate("profiles")
    def _v_profiles(self, proposal: dict[str, Any]) -> dict:
        try:
            parse_profiles(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    @validate("user_ceilings")
    def _v_ceilings(self, proposal: dict[str, Any]) -> dict:
        try:
            parse_ceilings(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    @validate("code_max_unpacked_bytes", "code_max_members", "code_check_seconds")
    def _v_code_limits(self, proposal: dict[str, Any]) -> float:
        if not 0 < proposal["value"] < float("inf"):  # NaN too
            raise TraitError(f"{proposal['trait'].name} must be a positive finite number")
        return proposal["value"]

    @validate("list_cache_views")
    def _v_list_cache_views(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 0:
            raise TraitError("list_cache_views must be 0 (no cache) or more")
        return proposal["value"]

    @validate("vault_profile_ttl", "login_recheck_seconds")
    def _v_profile_ttl(self, proposal: dict[str, Any]) -> float:
        if not 0 <= proposal["value"] < float("inf"):  # NaN too
            name = proposal["trait"].name
            raise TraitError(f"{name} must be a finite number of seconds, 0 or more")
        return proposal["value"]

    @validate("egress_allow_cidrs", "egress_deny_cidrs")
    def _v_cidrs(self, proposal: dict[str, Any]) -> list:
        for value in proposal["value"]:
            try:
                ipaddress.ip_network(value)
            except ValueError:
                raise TraitError(f"{proposal['trait'].name}: {value!r} is not a CIDR") from None
        return proposal["value"]

    @validate("service_account")
    def _v_service_account(self, proposal: dict[str, Any]) -> str:
        try:
            service_account(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    @validate("extra_env")
    def _v_extra_env(self, proposal: dict[str, Any]) -> dict:
        try:
            parse_extra_env(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    # -- derived --------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return "/" + self.service_prefix.strip("/") + "/" if self.service_prefix.strip("/") else "/"

    def rules(self) -> Rules:
        profiles = parse_profiles(self.profiles)
        if self.default_profile and self.default_profile not in profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not a profile")
        return Rules(
            profiles=profiles,
            default_profile=self.default_profile,
            max_resources={k: str(v) for k, v in self.max_resources.items()},
            min_requests={k: str(v) for k, v in self.min_requests.items()},
            max_active_deadline_seconds=self.max_active_deadline_seconds,
            default_ttl_seconds_after_finished=self.default_ttl_seconds_after_finished,
            max_ttl_seconds_after_finished=self.max_ttl_seconds_after_finished,
            max_backoff_limit=self.max_backoff_limit,
            max_parallelism=self.max_parallelism,
            max_containers=self.max_containers,
            allowed_images=tuple(self.allowed_images),
            code_dir=self.code_dir,
            code_max_unpacked_bytes=self.code_max_unpacked_bytes,
            unpack_command=tuple(self.unpack_command) or unpack_command(self.code_limits()),
            unpack_image=self.unpack_image,
        )

    def code_limits(self) -> CodeLimits:
        return CodeLimits(
            max_bytes=self.code_max_bytes,
            max_unpacked_bytes=self.code_max_unpacked_bytes,
            max_members=self.code_max_members,
            check_seconds=self.code_check_seconds,
        )

    def settings(self) -> JobsSettings:
        """The traits as frozen data (ValueError naming the trait if they do not fit)."""
        namespaces = Namespaces(
            mode=self.namespace_mode,
            prefix=self.namespace_prefix,
            shared=self.shared_namespace,
            quota={k: str(v) for k, v in self.namespace_quota.items()},
            ceilings=parse_ceilings(self.user_ceilings),
            egress_allow_cidrs=tuple(self.egress_allow_cidrs),
            egress_deny_cidrs=tuple(self.egress_deny_cidrs),
            service_role=self.namespace_role,
            service_account=service_account(self.service_account),
            pod_scc_role=self.pod_scc_role,
        )
        if namespaces.mode == "shared" and namespaces.shared:
            check_shared_namespace(namespaces.shared)
        return JobsSettings(
            prefix=self.prefix,
            service_name=self.service_name,
            hub_api_url=self.hub_api_url,
            hub_api_token=self.hub_api_token,
            public_url=self.public_url,
            oauth_client_id=self.oauth_client_id,
            oauth_callback_url=self.oauth_callback_url,
            hub_authorize_url=self.hub_authorize_url,
            hub_timeout=self.hub_timeout,
            user_cache_ttl=self.user_cache_ttl,
            user_cache_size=self.user_cache_size,
            token_min_validity=self.token_min_validity,
            vault_profile_ttl=self.vault_profile_ttl,
            login_recheck_seconds=self.login_recheck_seconds,
            list_cache_views=self.list_cache_views,
            platform_name=self.platform_name.strip() or HubSettings.platform_name,
            public_profiles=self.public_profiles,
            kubeconfig=self.kubeconfig,
            kube_timeout=self.kube_timeout,
            log_idle_timeout=self.log_idle_timeout,
            max_log_streams_per_user=self.max_log_streams_per_user,
            max_log_streams=self.max_log_streams,
            log_stream_max_seconds=self.log_stream_max_seconds,
            namespaces=namespaces,
            rules=self.rules(),
            extra_env=parse_extra_env(self.extra_env),
            code_max_bytes=self.code_max_bytes,
            code_limits=self.code_limits(),
            body_limit=self.body_limit(),
            layout=self.storage.layout(),
        )

    # -- running -------------------------------------------------------------------------------
    def initialize(self, argv: list[str] | None = None) -> None:
        self.parse_command_line(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
            self.parse_command_line(argv)  # the command line wins over the file
        if self.shared_config:
            self.update_config(shared_sections_config(self.shared_config))

    def start(self) -> None:
        import uvicorn

        from .app import create_app

        url = urllib.parse.urlparse(self.bind_url)
        settings = self.settings()  # fail at start, not at the first request
        uvicorn.run(
            create_app(settings, vault=self.vault),
            host=url.hostname or "127.0.0.1",
            port=url.port or 10101,
            log_level=logging.getLevelName(self.log.getEffectiveLevel()).lower(),
            proxy_headers=True,
        )


def service_account(value: str) -> tuple[str, str] | None:
    """``NAMESPACE:NAME``, ``system:serviceaccount:NAMESPACE:NAME`` or ``NAME`` (namespace
    "": the service's own) -> the pair; None for ""; ValueError for anything that cannot
    name a ServiceAccount."""
    value = value.strip().removeprefix("system:serviceaccount:")
    if not value:
        return None
    namespace, colon, name = value.rpartition(":")
    for part in (namespace, name) if colon else (name,):
        if len(part) > 63 or not DNS_LABEL.fullmatch(part):
            raise ValueError(f"service_account {value!r} is not NAMESPACE:NAME or NAME")
    return namespace, name


def shared_sections_config(text: str) -> Config:
    """The hub's hand-over (JSON) as a traitlets Config of the shared sections only."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{SHARED_CONFIG_VARIABLE} is not JSON: {e}") from None
    if not isinstance(data, dict) or set(data) - set(SHARED_SECTIONS):
        raise ValueError(f"{SHARED_CONFIG_VARIABLE} may hold only {', '.join(SHARED_SECTIONS)}")
    if not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{SHARED_CONFIG_VARIABLE}: each section must be a JSON object")
    own = set(data.get("JobsServiceApp", {})) & HUB_SET
    if own:
        raise ValueError(f"{SHARED_CONFIG_VARIABLE} may not set {', '.join(sorted(own))}")
    return Config({section: dict(values) for section, values in data.items()})


def main(argv: list[str] | None = None) -> None:
    JobsServiceApp.launch_instance(argv)
