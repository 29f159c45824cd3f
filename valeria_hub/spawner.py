"""ValeriaSpawner: KubeSpawner with the user's own uid, NFS storage and S3 keys.

Before anything touches Kubernetes the spawner logs in to Vault with the user's own
Keycloak token and reads their uid and S3 keys; a user who is not provisioned, a
rejected token or an unreachable Vault stop the spawn with a message the user can act
on, and nothing is created. The keys reach the notebook through a per-server Secret
referenced by the pod, owned by the pod and deleted when the server stops.

Each person is offered only the flavours and sizes their Keycloak groups and roles
allow (valeria_hub.flavours, valeria_hub.restrictions); a form value for anything else
is refused naming it. Before the notebook starts, an init container checks that the
person's home and scratch directories are usable by their uid; when they are not, the
spawn fails within seconds with a message naming the directory and the problem,
instead of a notebook that dies and a 120-second "didn't respond".
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import secrets
import time
import weakref
from typing import Any

import aiohttp
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client.models import V1Container, V1Volume, V1VolumeMount
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.spawner import EventReflector
from kubespawner.utils import get_k8s_model
from markupsafe import Markup
from tornado import web
from tornado.log import app_log, gen_log
from traitlets import Bool, Dict, Float, Instance, TraitError, Unicode, default, validate

from .auth import state as tokens
from .auth.access import raw_groups, role_names
from .flavours import (
    DEFAULT_FLAVOURS,
    Access,
    check_flavour_config,
    check_resources,
    parse_access,
    usable_flavours,
    validate_user_options,
)
from .kube_session import without_environment_lookups
from .metrics import SPAWN_FAILURES
from .names import dependent_name
from .pod_events import EventsByPod, PodEventReflector, pod_events
from .restrictions import Membership
from .storage import (
    StorageLayout,
    Workload,
    owner_reference,
    s3_secret_manifest,
    storage_check_container,
    storage_check_failure,
)
from .templates import FORM_DIR
from .vault import REFUSALS, UserProfile, VaultError, VaultIdentity, refusal

# Settings objects shared by every spawner of one configuration (see _shared_settings)
_SHARED_SETTINGS: dict[tuple[type, int, str], tuple[Any, Any]] = {}

# Vault's reasons come from valeria_hub.vault.REFUSALS; these are the spawner's own.
STATUS_BY_REASON = {
    "login_expired": 401,
    "kubernetes": 503,
    "invalid_options": 400,
    "flavour_config": 503,
    "storage": 503,
}
STORAGE_HELP = (
    "Your home and scratch directories are created when your account is set up; ask "
    "support to set them up (operators: valeria-hub users onboard --nfs-root)."
)
# The pod's annotation naming the spawn that made it (a random mark per spawn): a pod in
# the way of a creation that carries this spawn's mark was made by its own earlier try.
SPAWN_ANNOTATION = "valeria-hub/spawn"
# API answers worth another try when creating the pod (KubeSpawner itself retries only
# timeouts and 409): an API server or etcd hiccup must not fail the user's spawn.
TRANSIENT_KUBE_STATUSES = frozenset({429, 500, 502, 503, 504})


def _kube_error(e: BaseException) -> str:
    """A short, secret-free description of a failed Kubernetes call."""
    if isinstance(e, ApiException):
        return f"HTTP {e.status}"
    return type(e).__name__


try:  # JupyterHub 6: an expected spawn failure (no traceback, its reason kept for metrics)
    from jupyterhub.spawner import SpawnException as _RefusalBase
except ImportError:  # JupyterHub 5
    _RefusalBase = web.HTTPError

# ``extra`` key marking the spawner's own line about a refusal (RefusalLogFilter keeps it)
REFUSAL_LOG_MARK = "valeria_refusal"


class SpawnRefused(_RefusalBase):
    """A spawn stopped on purpose: the person gets the platform's refusal page with
    ``jupyterhub_message`` (templates/not_running.html), the hub log gets one line.

    ``refusal_reason`` is the reason for the pages: JupyterHub 5 rewrites ``reason`` to
    "error" on every failed spawn, which hid the refusal page. ``detail`` is shown under
    the message; ``log_detail`` (default: the detail, else the message) goes to the log.
    """

    def __init__(
        self, reason: str, message: str, detail: str = "", *, log_detail: str = ""
    ) -> None:
        status = REFUSALS[reason].status if reason in REFUSALS else STATUS_BY_REASON.get(reason)
        # "%s": tornado formats log_message with args, and a message may hold a "%"
        web.HTTPError.__init__(self, status or 500, "%s", message, reason=reason)
        self.refusal_reason = reason
        self.message = message  # SpawnException's fields, read by JupyterHub's error pages
        self.message_html = ""
        self.detail = detail
        self.log_detail = log_detail or detail or message
        self.jupyterhub_message = message
        # the progress stream's message; the class tells the spawn-pending page to reload
        # into the refusal page (templates/spawn_pending.html)
        markup = Markup('<span class="valeria-refusal" data-reason="{}">{}</span>').format(
            reason, message
        )
        if detail:
            markup += Markup(' <span class="valeria-detail">{}</span>').format(detail)
        self.jupyterhub_html_message = str(markup)

    def __str__(self) -> str:
        return self.jupyterhub_message


class RefusalLogFilter(logging.Filter):
    """Keeps JupyterHub's own reports of a SpawnRefused out of the log.

    The spawner logs one line per refusal; JupyterHub adds up to four more for the same
    expected answer (one with a traceback, after a form submission), and one each time
    the spawn-pending page is shown. Records of unexpected errors pass untouched.
    """

    def __init__(self) -> None:
        super().__init__()
        # refusals on their way through JupyterHub, whose f-string lines carry only str(e)
        self.live: weakref.WeakSet[SpawnRefused] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or getattr(record, REFUSAL_LOG_MARK, False):
            return True
        if record.exc_info and isinstance(record.exc_info[1], SpawnRefused):
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        if any(isinstance(a, SpawnRefused) for a in args):
            return False
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to judge
            return True
        return not any(r.jupyterhub_message in text for r in list(self.live))


REFUSAL_LOG_FILTER = RefusalLogFilter()


def quiet_refusals(log: Any) -> None:
    """Put REFUSAL_LOG_FILTER on the loggers JupyterHub reports spawn failures with: the
    app's (handlers, spawners), tornado's (User objects, errors) and asyncio's."""
    loggers = [getattr(log, "logger", log), app_log, gen_log, logging.getLogger("asyncio")]
    for logger in loggers:
        if isinstance(logger, logging.Logger) and REFUSAL_LOG_FILTER not in logger.filters:
            logger.addFilter(REFUSAL_LOG_FILTER)


def apply_workload(pod: Any, volumes: list[dict], mounts: list[dict]) -> Any:
    """Add the workload's volumes to the pod and its mounts to the notebook container."""
    pod.spec.volumes = list(pod.spec.volumes or []) + [get_k8s_model(V1Volume, v) for v in volumes]
    container = pod.spec.containers[0]
    container.volume_mounts = list(container.volume_mounts or []) + [
        get_k8s_model(V1VolumeMount, m) for m in mounts
    ]
    return pod


def attempt_timeout(base: float, attempt: int, left: float) -> float:
    """Seconds to wait for the ``attempt``-th try (0: the first) of a Kubernetes call:
    ``base`` doubled at each try, within the ``left`` seconds of the retry budget, never
    less than ``base``. Pure."""
    return max(base, min(base * 2**attempt, left))


def _shared_settings(cls: type, config: Any) -> Any:
    """One ``cls`` (StorageLayout, VaultIdentity) per configuration, shared by every
    spawner: a traitlets object per spawner cost its config loading and its garbage on
    the hub's loop at every spawn of a rush, and a VaultIdentity of its own each. The
    configuration object is kept with it, so its id is not reused while cached."""
    section = config.get(cls.__name__) if hasattr(config, "get") else None
    key = (cls, id(config), repr(section))
    found = _SHARED_SETTINGS.get(key)
    if found is None:
        found = _SHARED_SETTINGS[key] = (config, cls(config=config))
    return found[1]


def spawn_timings(t0: float, t1: float, secret: float, vault: float) -> dict[str, float]:
    """Milliseconds spent in our own spawn steps (logged, read by the benchmarks).

    t0..t1 options, Vault lookup and namespace; ``secret`` the S3 Secret's creation.
    """
    return {
        "ours_ms": ((t1 - t0) + secret) * 1000,
        "vault_ms": vault * 1000,
        "secret_ms": secret * 1000,
        "other_ms": ((t1 - t0) - vault) * 1000,
    }


class ValeriaSpawner(KubeSpawner):
    """Spawns notebooks that run as the user's POSIX uid with their NFS dirs and S3 keys."""

    vault = Instance(VaultIdentity, help="Vault access (configure as c.VaultIdentity).")
    storage = Instance(StorageLayout, help="Storage layout (configure as c.StorageLayout).")

    s3_secret_prefix = Unicode(
        "s3", config=True, help="Prefix of the per-server Secret that holds the S3 keys."
    )
    token_min_validity = Float(
        30.0,
        config=True,
        help="Seconds the access token must stay valid for the Vault login; JupyterHub's "
        "pre-spawn refresh renews a token closer to expiry than this.",
    )
    resource_caps = Dict(
        {"cpu": "16", "memory": "64Gi"},
        config=True,
        help="Server-side caps that no flavour or form value may exceed, as Kubernetes "
        "quantities ({'cpu': '16', 'memory': '64Gi'}; 'G' is 10^9 bytes, 'Gi' 2^30).",
    )
    flavour_access = Dict(
        config=True,
        help="""Who may see and start which flavours and sizes, by Keycloak group or role.
        {flavour slug: {"allowed_groups": [...], "allowed_roles": [...],
        "options": {option: {choice: {"allowed_groups": [...], "allowed_roles": [...]}}}}};
        the slug "*" means every flavour. Example: {"tensorflow": {"allowed_groups":
        ["/gpu-users"]}, "*": {"options": {"size": {"large": {"allowed_roles":
        ["staff"]}}}}}. A person needs one of the groups or one of the roles; groups match
        with or without Keycloak's leading '/', roles are realm roles and the hub
        client's roles. Empty (the default): everyone sees everything. A flavour or
        choice in profile_list may carry the same allowed_groups/allowed_roles keys;
        both apply. A person sees only what they may use, and a form value for anything
        else is refused with HTTP 400 naming it. An entry naming no flavour, option or
        choice stops every spawn with a configuration error rather than leaving
        something open.""",
    )
    check_storage = Bool(
        True,
        config=True,
        help="""Check before the notebook starts that the person's home and scratch
        directories exist and are writable by their uid (an init container running
        /bin/sh from the notebook image). When they are not, the spawn fails within
        seconds naming the directory and the problem. Turn off only for images without
        /bin/sh.""",
    )

    @validate("flavour_access")
    def _v_flavour_access(self, proposal: dict[str, Any]) -> dict:
        try:
            parse_access(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    @default("vault")
    def _vault_default(self) -> VaultIdentity:
        return _shared_settings(VaultIdentity, self.config)

    @default("storage")
    def _storage_default(self) -> StorageLayout:
        return _shared_settings(StorageLayout, self.config)

    @default("profile_list")
    def _profile_list_default(self) -> list:
        return copy.deepcopy(DEFAULT_FLAVOURS)

    @default("additional_profile_form_template_paths")
    def _flavour_form(self) -> list:
        return [FORM_DIR]

    @default("options_form")
    def _form_for_the_person(self) -> Any:
        """KubeSpawner renders one form for everybody; each person must see only the
        flavours they may use, so the form is rendered per person when asked for."""
        if not self.profile_list:
            return ""
        return self._render_form_for_person

    @default("automount_service_account_token")
    def _no_sa_token(self) -> bool:
        return False

    @default("allow_privilege_escalation")
    def _no_escalation(self) -> bool:
        return False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._profile: UserProfile | None = None
        self._progress_log: list[dict] = []
        self._progress_changed = asyncio.Event()
        self.vault_seconds: float = 0.0
        self.spawn_timings: dict[str, float] = {}
        self._secret_seconds = 0.0
        psc, csc = self.pod_security_context, self.container_security_context
        self._configured_psc = dict(psc) if isinstance(psc, dict) else {}
        self._configured_csc = dict(csc) if isinstance(csc, dict) else {}
        self._creating_pod = False
        self._pod_create_tries = 0
        self._spawn_mark = secrets.token_hex(8)
        self._watching_storage_check = False
        # the spawn's Vault token revocation, awaited at the spawn's end
        self._vault_revoked: Any = None
        # during a spawn: the person's auth state (read once), options already checked
        self._spawn_auth_state: dict | None = None
        self._handed_auth_state: dict | None = None  # by run_auth_state_hook
        self._options_loaded = False
        self._workload: tuple[tuple[UserProfile, str, int], Workload] | None = None
        # the last spawn's refusal, for the page after a form submission (spawn.html)
        self.refusal: SpawnRefused | None = None
        quiet_refusals(self.log)
        api = getattr(self, "api", None)
        if api is not None and not kwargs.get("_mock"):
            without_environment_lookups(api.api_client)

    # -- progress ---------------------------------------------------------------
    def _say(self, message: str, progress: int) -> None:
        self.log.info("%s: %s", self._log_name, message)
        self._progress_log.append({"progress": progress, "message": message})
        self._progress_changed.set()

    async def progress(self):
        """Our own steps first, then KubeSpawner's pod events."""
        sent = 0
        while True:
            while sent < len(self._progress_log):
                event = self._progress_log[sent]
                sent += 1
                yield event
            if self._progress_log and self._progress_log[-1].get("handoff"):
                break
            start = getattr(self, "_start_future", None)
            if start is not None and start.done():
                return
            self._progress_changed.clear()
            try:
                await asyncio.wait_for(self._progress_changed.wait(), timeout=1)
            except TimeoutError:
                pass
        async for event in super().progress():
            yield event

    async def _start_reflector(self, kind: str, reflector_class: type, **kwargs: Any) -> Any:
        """KubeSpawner's, with the event reflector that groups events by pod."""
        if kind == "events" and reflector_class is EventReflector:
            reflector_class = PodEventReflector
        return await super()._start_reflector(kind, reflector_class, **kwargs)

    @property
    def events(self) -> list[dict]:
        """This pod's events since the spawn began, oldest first, as KubeSpawner's
        ``events``, read from the reflector's index by pod (valeria_hub.pod_events):
        KubeSpawner sorts every event of the namespace for each read, once a second
        per progress stream, which stalled the hub's loop for seconds in a rush."""
        reflector = self.event_reflector
        if reflector is None:
            return []
        resources = reflector.resources
        if not isinstance(resources, EventsByPod):  # a reflector KubeSpawner made
            return super().events
        return pod_events(resources.of_pod(self.pod_name), self._last_event)

    # -- identity ---------------------------------------------------------------------
    @property
    def secret_name_s3(self) -> str:
        return dependent_name(self.s3_secret_prefix, self.pod_name)

    async def run_auth_state_hook(self, auth_state: dict | None) -> None:
        """JupyterHub hands the spawn's auth state here just before ``start()``, freshly
        decrypted: it is kept for that start, which would otherwise decrypt it again (a
        worker-thread hop per spawn, after which the spawns of a rush resumed on the
        hub's loop all at once)."""
        self._handed_auth_state = auth_state or {}
        await super().run_auth_state_hook(auth_state)

    async def _take_spawn_auth_state(self) -> dict:
        """The auth state handed for this spawn (once), else read now."""
        handed, self._handed_auth_state = self._handed_auth_state, None
        if handed is not None:
            return handed
        return await self.user.get_auth_state() or {}

    async def _auth_state(self) -> dict:
        """The login's auth state: the spawn's copy (read once per spawn, as decrypting
        it is a worker-thread hop), else read now."""
        if self._spawn_auth_state is not None:
            return self._spawn_auth_state
        return await self.user.get_auth_state() or {}

    async def lookup_profile(self) -> UserProfile:
        """The user's uid and S3 keys from Vault, or SpawnRefused with a clear message."""
        self._say("Checking your identity", 5)
        auth_state = await self._auth_state()
        token = tokens.access_token(auth_state, min_validity=self.token_min_validity)
        if token is None:
            raise SpawnRefused(
                "login_expired",
                "Your login has expired. Log out and log in again, then start your server.",
            )
        self._say("Fetching your storage credentials", 15)
        t0 = time.perf_counter()
        try:
            # the token's revocation goes on during the pod's creation (_start_with_identity
            # awaits it before the spawn ends)
            lookup = await self.vault.lookup(token, self.user.name)
        except VaultError as e:
            raise SpawnRefused(e.reason, refusal(e.reason).message, str(e)) from None
        finally:
            self.vault_seconds = time.perf_counter() - t0
        profile, self._vault_revoked = lookup.profile, lookup.revoked
        self.log.info(
            "%s runs as uid %s gid %s (entity %s)",
            self._log_name,
            profile.uid,
            profile.gid,
            profile.entity_id,
        )
        return profile

    # -- the per-server S3 Secret ---------------------------------------------------
    async def _kube(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """One Kubernetes call, retried on timeouts, dropped connections, 429 and 5xx
        with back-off for up to ``k8s_api_request_retry_timeout``; other errors at once.

        A busy API server (a morning rush) answers slowly; a spawn should wait for it,
        not fail on the first slow answer. Each try waits twice as long as the one
        before (``attempt_timeout``): a creation that timed out was usually made all
        the same, and trying it again at the same pace only adds to the API server's
        load (and meets a 409).
        """
        deadline = time.monotonic() + self.k8s_api_request_retry_timeout
        delay = 0.2
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            timeout = attempt_timeout(self.k8s_api_request_timeout, attempt, left)
            attempt += 1
            try:
                return await asyncio.wait_for(fn(*args, **kwargs), timeout=timeout)
            except ApiException as e:
                if e.status not in TRANSIENT_KUBE_STATUSES or time.monotonic() > deadline:
                    raise
            except (TimeoutError, aiohttp.ClientError):
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def create_s3_secret(self, profile: UserProfile, pod_uid: str) -> None:
        """The per-server Secret, owned by the pod from its creation.

        Made right after the pod (a container that starts first waits for it: the
        kubelet retries), so it goes with the pod whatever happens, and the hub needs
        neither ``patch`` nor ``update`` on Secrets (either answers with the whole
        Secret). A Secret in the way (a crashed spawn's, or made by a try that timed
        out) is deleted and made again.
        """
        manifest = s3_secret_manifest(
            self.secret_name_s3,
            self.namespace,
            profile,
            self.storage.s3_endpoint_url,
            labels={**self._build_common_labels({}), "component": "s3-credentials"},
            owner_references=[owner_reference("v1", "Pod", self.pod_name, pod_uid)],
        )
        create = self.api.create_namespaced_secret
        try:
            for attempt in range(3):
                try:
                    await self._kube(create, self.namespace, manifest)
                    break
                except ApiException as e:
                    if e.status != 409 or attempt == 2:
                        raise
                # in the way: a crashed spawn's, or ours from a try that timed out
                # after the API server had made it (so a 404 here is fine too)
                try:
                    await self._kube(
                        self.api.delete_namespaced_secret, self.secret_name_s3, self.namespace
                    )
                except ApiException as e:
                    if e.status != 404:
                        raise
        except (ApiException, TimeoutError, aiohttp.ClientError) as e:
            raise SpawnRefused(
                "kubernetes",
                "Could not store your S3 credentials for the server; try again.",
                log_detail=f"could not store {self.secret_name_s3}: {_kube_error(e)}",
            ) from None

    async def delete_s3_secret(self) -> None:
        try:
            await self._kube(self.api.delete_namespaced_secret, self.secret_name_s3, self.namespace)
        except ApiException as e:
            if e.status != 404:
                self.log.warning("Could not delete %s: HTTP %s", self.secret_name_s3, e.status)
        except (TimeoutError, aiohttp.ClientError) as e:
            self.log.warning("Could not delete %s: %s", self.secret_name_s3, _kube_error(e))

    # -- flavours and who may use them -------------------------------------------------
    async def _profiles(self) -> list:
        profile_list = self._sorted_dict_values(self.profile_list)
        if callable(profile_list):
            profile_list = await maybe_future(profile_list(self))
        return self._get_initialized_profile_list(profile_list)

    async def _flavours(self) -> tuple[list, Access]:
        """Every flavour (initialized) and the access overlay, checked against each other;
        a configuration that names nothing or is malformed refuses every spawn."""
        profiles = await self._profiles()
        try:
            access = parse_access(self.flavour_access)
            check_flavour_config(access, profiles)
        except ValueError as e:
            self.log.error("Notebook flavours are misconfigured: %s", e)
            raise SpawnRefused(
                "flavour_config",
                "The notebook flavours are misconfigured; contact support.",
                str(e),
            ) from None
        return profiles, access

    async def membership(self) -> Membership:
        """The person's Keycloak groups and roles (from their login's claims) and their
        hub groups: what flavour restrictions are checked against."""
        auth_state = await self._auth_state()
        key = getattr(self.authenticator, "user_auth_state_key", None) or "oauth_user"
        claims = auth_state.get(key) if isinstance(auth_state.get(key), dict) else {}
        client_id = getattr(self.authenticator, "client_id", None) or ""
        hub_groups = [getattr(g, "name", g) for g in getattr(self.user, "groups", None) or []]
        return Membership.of([*raw_groups(claims), *hub_groups], role_names(claims, str(client_id)))

    async def usable_profiles(self) -> list:
        """The flavours and sizes this person may use (what the form shows)."""
        profiles, access = await self._flavours()
        return usable_flavours(profiles, await self.membership(), access)

    async def _render_form_for_person(self, spawner: Any = None) -> str:
        return self._render_options_form(await self.usable_profiles())

    async def run_options_from_form(self, form_data: dict) -> dict:
        """Form values are checked against the flavours this person may use before
        anything is spawned: a value for anything else is a 400 naming it."""
        options = await maybe_future(super().run_options_from_form(form_data))
        profiles, access = await self._flavours()
        try:
            validate_user_options(options, profiles, await self.membership(), access)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        return options

    # -- KubeSpawner hooks ------------------------------------------------------------
    async def load_user_options(self) -> None:
        """KubeSpawner's, over the flavours this person may use: options sent through
        the REST API (no form) are checked the same way, and the default flavour and
        size are the first the person may use. Checked once per spawn: KubeSpawner's
        ``_start`` calls this again, after our own steps."""
        if self._options_loaded:
            return
        profiles, access = await self._flavours()
        who = await self.membership()
        usable = usable_flavours(profiles, who, access)
        try:
            validate_user_options(self.user_options, profiles, who, access, usable)
        except ValueError as e:
            raise SpawnRefused("invalid_options", f"Invalid server options: {e}") from None
        if usable:
            self._load_profile(self.user_options.get("profile"), usable)
        requested = {
            "cpu_limit": self.cpu_limit,
            "cpu_guarantee": self.cpu_guarantee,
            "mem_limit": self.mem_limit,
            "mem_guarantee": self.mem_guarantee,
        }
        try:
            check_resources(requested, self.resource_caps)
        except ValueError as e:
            raise SpawnRefused("invalid_options", f"Invalid server options: {e}") from None

    def workload(self) -> Workload | None:
        """The identity and storage of this server's owner, once Vault has answered;
        made once per profile and Secret name (the pod manifest and its environment
        both need it)."""
        if self._profile is None:
            return None
        key = (self._profile, self.secret_name_s3, id(self.storage))
        if self._workload is None or self._workload[0] != key:
            self._workload = (key, self.storage.workload(self._profile, self.secret_name_s3))
        return self._workload[1]

    def get_env(self) -> dict:
        """KubeSpawner's environment plus the workload's: identity, HOME and the S3
        variables as references to the Secret (never their values)."""
        env = super().get_env()
        work = self.workload()
        if work is not None:
            env.update(work.env_mapping())
        return env

    async def get_pod_manifest(self):
        profile = self._profile
        if profile is None:
            raise SpawnRefused("internal", "The server's identity was not resolved; try again.")
        work = self.workload()
        assert work is not None
        self.uid = profile.uid
        self.gid = profile.gid
        self.fs_gid = work.pod_security_context.get("fsGroup")
        self.supplemental_gids = work.pod_security_context.get("supplementalGroups", [])
        # operator settings first, then what the user's identity demands
        self.pod_security_context = {**self._configured_psc, **work.pod_security_context}
        self.container_security_context = {
            **self._configured_csc,
            **work.container_security_context,
        }
        if not self.working_dir and work.home:
            self.working_dir = work.home
        pod = await super().get_pod_manifest()
        pod = apply_workload(pod, work.volumes, work.volume_mounts)
        pod.metadata.annotations = {
            **(pod.metadata.annotations or {}),
            SPAWN_ANNOTATION: self._spawn_mark,
        }
        if self.check_storage and work.checked_dirs:
            pod.spec.init_containers = [
                self._storage_check(pod, work),
                *(pod.spec.init_containers or []),
            ]
        return pod

    def _storage_check(self, pod: Any, work: Workload) -> Any:
        """The init container that checks the person's directories (storage.py), with the
        notebook's image, pull policy and resources (so it counts for nothing more)."""
        notebook = pod.spec.containers[0]
        held = notebook.resources
        resources = {
            section: dict(values)
            for section in ("requests", "limits")
            if (values := getattr(held, section, None))
        }
        spec = storage_check_container(
            work,
            notebook.image,
            image_pull_policy=notebook.image_pull_policy,
            resources=resources or None,
        )
        return get_k8s_model(V1Container, spec)

    def is_pod_running(self, pod: Any) -> bool:
        """KubeSpawner's readiness test; while starting, a failed storage check ends the
        wait at once with its message (KubeSpawner alone would wait for start_timeout)."""
        if pod is not None and self._watching_storage_check:
            problem = storage_check_failure(pod)
            if problem is not None:
                raise SpawnRefused(
                    "storage",
                    f"Your server cannot start: {problem}.",
                    STORAGE_HELP,
                    log_detail=f"storage check failed: {problem}",
                )
        return super().is_pod_running(pod)

    async def _start(self):
        self.refusal = None
        try:
            return await self._start_with_identity()
        except SpawnRefused as e:
            SPAWN_FAILURES.labels(e.refusal_reason).inc()
            self.refusal = e
            REFUSAL_LOG_FILTER.live.add(e)
            # the one line for an expected refusal: no traceback (RefusalLogFilter)
            self.log.warning(
                "%s: spawn refused (%s, HTTP %s): %s",
                self._log_name,
                e.refusal_reason,
                e.status_code,
                e.log_detail,
                extra={REFUSAL_LOG_MARK: True},
            )
            raise
        except asyncio.CancelledError:
            raise
        except Exception:
            SPAWN_FAILURES.labels("error").inc()
            raise

    async def _start_with_identity(self):
        self._progress_log = []
        self._profile = None
        self._options_loaded = False
        try:
            return await self._start_steps()
        finally:
            self._spawn_auth_state = None
            self._options_loaded = False
            revoked, self._vault_revoked = self._vault_revoked, None
            if revoked is not None:  # VaultIdentity.revoke logs its own failures
                with contextlib.suppress(Exception):
                    await asyncio.shield(revoked)

    async def _start_steps(self):
        t0 = time.perf_counter()
        # read (decrypted in a worker thread) once for the options and Vault
        self._spawn_auth_state = await self._take_spawn_auth_state()
        # the Vault lookup (mostly waiting on Vault) goes on while the options are
        # checked (CPU): a refused option still stops the spawn before anything is
        # created, once the lookup's token is revoked (_start_with_identity)
        lookup = asyncio.ensure_future(self.lookup_profile())
        try:
            await self.load_user_options()
        except BaseException:
            with contextlib.suppress(Exception):
                await lookup
            lookup.cancel()
            raise
        self._options_loaded = True  # KubeSpawner's _start asks again
        profile = await lookup
        self._profile = profile
        if self.enable_user_namespaces:
            await self._ensure_namespace()
        t1 = time.perf_counter()
        self._secret_seconds = 0.0
        self._progress_log.append(
            {"progress": 30, "message": "Starting your server", "handoff": True}
        )
        self._progress_changed.set()
        self._watching_storage_check = True
        self._pod_create_tries = 0
        self._spawn_mark = secrets.token_hex(8)
        try:
            result = await super()._start()
        except BaseException:
            await self.delete_s3_secret()
            raise
        finally:
            self._watching_storage_check = False
        self.spawn_timings = spawn_timings(t0, t1, self._secret_seconds, self.vault_seconds)
        self.log.info(
            "%s: valeria-hub spawn steps took %s",
            self._log_name,
            " ".join(f"{k}={v:.1f}" for k, v in self.spawn_timings.items()),
        )
        return result

    async def _make_create_pod_request(self, pod: Any, request_timeout: float) -> bool:
        """Create the pod, then its S3 Secret owned by it; False asks KubeSpawner's
        back-off to try again. Each try waits twice as long as the one before, as in
        ``_kube`` (KubeSpawner gives every try ``k8s_api_request_timeout``: against a slow
        API server each try timed out after the pod was made, the next met a 409 and
        deleted it, and so on until the retry budget was spent).

        A 409 on a later try usually means the earlier try was made after all, its
        answer late: a pod carrying this spawn's mark (``SPAWN_ANNOTATION``) is kept. Any
        other pod in the way (a leftover of a crashed spawn) is stopped, as KubeSpawner
        does, and the creation tried again; transient API errors and dropped connections
        are tried again too. The Secret needs the new pod's uid, which only the pod's
        creation (or, for a kept pod, a read of it) tells.
        """
        name = pod.metadata.name
        self._creating_pod = True
        timeout = attempt_timeout(
            request_timeout, self._pod_create_tries, self.k8s_api_request_retry_timeout
        )
        self._pod_create_tries += 1
        try:
            self.log.info("Creating pod %s", name)
            created = await asyncio.wait_for(
                self.api.create_namespaced_pod(self.namespace, pod), timeout
            )
            pod_uid = created.metadata.uid
        except TimeoutError:
            return False
        except aiohttp.ClientConnectionError as e:
            self.log.warning("Creating pod %s: %s, retrying", name, type(e).__name__)
            return False
        except ApiException as e:
            if e.status == 409:
                pod_uid = await self._own_pod_uid(name)
                if pod_uid is None:
                    self.log.info("Pod %s exists already: stopping it, then starting again", name)
                    await self.stop(True)
                    return False
                self.log.info("Pod %s was made by an earlier try (late answer): kept", name)
            elif e.status not in TRANSIENT_KUBE_STATUSES:
                self.log.error("Creating pod %s failed: HTTP %s", name, e.status)
                raise
            else:
                self.log.warning("Creating pod %s: HTTP %s, retrying", name, e.status)
                return False
        finally:
            self._creating_pod = False
        started = time.perf_counter()
        try:
            await self.create_s3_secret(self._profile, pod_uid)
        except SpawnRefused:
            await self.stop(True)  # no pod without its keys
            raise
        finally:
            self._secret_seconds = time.perf_counter() - started
        return True

    async def _own_pod_uid(self, name: str) -> str | None:
        """The uid of pod ``name`` if this very spawn made it (its mark), else None."""
        try:
            existing = await self._kube(self.api.read_namespaced_pod, name, self.namespace)
        except (ApiException, TimeoutError, aiohttp.ClientError):
            return None
        meta = existing.metadata
        mine = (meta.annotations or {}).get(SPAWN_ANNOTATION) == self._spawn_mark
        return meta.uid if mine and not meta.deletion_timestamp else None

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        if not self._creating_pod:
            await self.delete_s3_secret()
