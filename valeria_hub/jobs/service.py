"""What the routes do: submit with roll-back, and owner-checked reads and deletes.

Errors leave as ``ServiceError(status, message)``; the app turns them into JSON
``{"detail": message}``. A name that exists but belongs to someone else is reported
exactly like a name that does not exist (404), so names do not leak.

In the shared namespace every name the service makes ends with its person's tag (see
:func:`.naming.personal_name`), so a name someone else holds is as free as any other,
and each person's submissions pass their ceilings (:mod:`.ceilings`) one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..auth import state as tokens
from ..metrics import JOB_SUBMISSIONS, submission_result
from ..names import dependent_name
from ..restrictions import Membership
from ..storage import owner_reference
from ..vault import UserProfile, VaultError, VaultIdentity, refusal
from . import isolation
from .cache import WorkloadCache
from .ceilings import CeilingExceeded, check_ceilings, demand, missing_limits, usage
from .hubclient import HubAPI, HubUnavailable, HubUser
from .kube import Kube, KubeError
from .labels import OWNER_LABEL, Owner, owned_by
from .listbody import Piece, deflated_list_chunks, list_chunks
from .manifests import (
    Target,
    build_code_configmap,
    build_manifest,
    build_secret,
    render_extra_env,
)
from .naming import (
    MAX_CRONJOB_NAME,
    MAX_JOB_NAME,
    TAG_LENGTH,
    InvalidName,
    generated_name,
    owner_label,
    personal_name,
    random_suffix,
)
from .policy import CheckedJob, PolicyError, check_submission
from .settings import JobsSettings
from .upload import UploadError, check_code

log = logging.getLogger("valeria_hub.jobs")

LOGIN_AGAIN = "Your login has expired: log in to the hub again, then retry."
RBAC_SETTLE_SECONDS = 5.0  # how long a just-made RoleBinding may take to be honoured
# A person's namespace, once set up, is taken as ready for this long before its objects
# are looked at again (a NetworkPolicy or quota deleted by hand comes back within it).
NAMESPACE_RECHECK_SECONDS = 300.0
# Names made from generateName tried before a 409 is the person's answer: the API server
# itself tries again when a generated name is taken (Kubernetes 1.32's RetryGenerateName)
GENERATE_TRIES = 8


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NamespaceGone(Exception):
    """The namespace a submission was to go to does not exist (any more)."""


class NameTaken(ServiceError):
    """The workload's name is taken (409): nothing was made."""


def namespace_gone(e: KubeError) -> bool:
    """What a create answers when its namespace, or the service's rights there, went:
    404, or 403 (the RoleBinding went with the namespace, and authorization comes before
    the namespace is looked up) but not a quota's refusal."""
    return e.status == 404 or (e.status == 403 and "exceeded quota" not in e.message)


def kube_failure(e: KubeError, what: str) -> ServiceError:
    """Kubernetes errors as the service reports them (never a 500).

    A ResourceQuota's refusal (a per-user namespace's) is the person's limit, not the
    cluster failing: 403 with the quota's figures, as a ceiling of the shared namespace
    reads; any other 403 is the service's own rights, hence 503.
    """
    if e.status in (404, 409, 422):
        return ServiceError(e.status, f"{what}: {e.message}")
    if e.status == 403 and "exceeded quota" in e.message:
        return ServiceError(403, f"{what}: {e.message}")
    return ServiceError(503, f"{what}: the cluster answered {e.status or 'nothing'} ({e.message})")


@dataclass(frozen=True)
class Context:
    """What the routes share: the settings (frozen data) and the clients that do I/O."""

    settings: JobsSettings
    hub: HubAPI
    kube: Kube
    vault: VaultIdentity
    # one lock per person submitting right now (a lock nobody holds or waits for goes)
    locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary, compare=False, repr=False
    )
    # people's Vault profiles: username -> (loop time read, profile); memory only
    profiles: dict[str, tuple[float, UserProfile]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # the people's lists, kept by watches (None: every list asks the API server)
    cache: WorkloadCache | None = field(default=None, compare=False, repr=False)
    # people's logins as the hub last confirmed them: username -> (loop time, the access
    # token and its expiry); memory only, dropped when the hub says the login ended
    logins: dict[str, tuple[float, dict[str, Any]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # per-user namespaces this process set up (loop time), and the set-ups under way
    ready: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    setups: dict[str, asyncio.Future[None]] = field(default_factory=dict, compare=False, repr=False)

    def submissions_of(self, username: str) -> asyncio.Lock:
        """The lock that makes one person's submissions count and create one at a time,
        so two at once cannot both pass a ceiling that only one fits under."""
        lock = self.locks.get(username)
        if lock is None:
            lock = self.locks[username] = asyncio.Lock()
        return lock

    def namespace(self, user: HubUser) -> str:
        try:
            return self.settings.namespaces.for_user(user.name, self.kube.default_namespace)
        except InvalidName as e:
            raise ServiceError(503, f"no usable namespace: {e}") from None

    def selector(self, user: HubUser, extra: str = "") -> str:
        sel = f"{OWNER_LABEL}={owner_label(user.name)}"
        return f"{sel},{extra}" if extra else sel


# -- submitting ------------------------------------------------------------------------------
async def user_access_token(ctx: Context, user: HubUser) -> str:
    """The person's Keycloak access token, valid for ``token_min_validity`` more seconds.

    A token closer to expiry is refreshed by the hub first (never a spurious "log in
    again" while the person's Keycloak session is alive); 401 only when the session is
    over. The hub's answer serves the person's next submissions for
    ``login_recheck_seconds`` (it was a third of a submission's time); the hub tells the
    service at once when the login ends (:func:`forget_login`).
    """
    minimum = ctx.settings.token_min_validity
    now = asyncio.get_running_loop().time()
    kept = ctx.logins.get(user.name)
    if kept is not None and now - kept[0] < ctx.settings.login_recheck_seconds:
        token = tokens.access_token(kept[1], min_validity=minimum)
        if token is not None:
            return token
    try:
        model = await ctx.hub.user_model(user.name)
        state = model.get("auth_state")
        token = tokens.access_token(state, min_validity=minimum)
        if token is None:
            state = await ctx.hub.fresh_tokens(user.name, minimum)
            token = tokens.access_token(state, min_validity=minimum) if state else None
    except HubUnavailable as e:
        raise ServiceError(503, f"cannot read your login from the hub: {e}") from None
    if token is None:
        forget_login(ctx, user.name)  # the login ended: nothing of theirs stays
        raise ServiceError(401, LOGIN_AGAIN)
    if ctx.settings.login_recheck_seconds > 0:
        recheck = ctx.settings.login_recheck_seconds
        for name in [n for n, (at, _) in ctx.logins.items() if now - at >= recheck]:
            del ctx.logins[name]  # the old ones go, so memory follows active people
        expires = tokens.access_token_expires_at(state)
        ctx.logins[user.name] = (now, {"access_token": token, "access_token_expires_at": expires})
    return token


def forget_login(ctx: Context, username: str) -> None:
    """Drop what this process keeps about a person's login: the access token the hub
    gave and the Vault profile read with it (the login ended)."""
    ctx.logins.pop(username, None)
    ctx.profiles.pop(username, None)


async def storage_profile(ctx: Context, user: HubUser, access: str) -> UserProfile:
    """The person's uid, gid and S3 keys: from Vault, logging in with their own access
    token, or from this process's memory if read less than ``vault_profile_ttl`` ago.

    Vault's three calls were the larger part of a submission; the profile is kept only
    after a successful read, only in memory, and goes when the person's login is found
    ended (:func:`user_access_token`, which every submission passes first).
    """
    ttl = ctx.settings.vault_profile_ttl
    now = asyncio.get_running_loop().time()
    kept = ctx.profiles.get(user.name)
    if kept is not None and now - kept[0] < ttl:
        return kept[1]
    try:
        profile, _ = await ctx.vault.fetch_profile(access, user.name)
    except VaultError as e:
        forget_login(ctx, user.name)  # a refused token is asked for again next time
        log.warning("Vault lookup for %s failed: %s", user.name, e.reason)
        answer = refusal(e.reason)
        raise ServiceError(answer.status, answer.message) from None
    if ttl > 0:
        for name in [n for n, (at, _) in ctx.profiles.items() if now - at >= ttl]:
            del ctx.profiles[name]  # the expired ones go, so memory follows active people
        ctx.profiles[user.name] = (now, profile)
    return profile


async def ensure_namespace(ctx: Context, namespace: str, username: str) -> None:
    """Per-user mode: the namespace set up once, then known to be ready.

    A submission costs no call for its namespace as long as this process set it up less
    than NAMESPACE_RECHECK_SECONDS ago; concurrent first submissions share one set-up. A
    namespace deleted meanwhile shows as a 404 on the create, which sets it up again
    (:func:`_submit`).
    """
    if ctx.settings.namespaces.mode != "per-user":
        return
    loop = asyncio.get_running_loop()
    ready_at = ctx.ready.get(namespace)
    if ready_at is not None and loop.time() - ready_at < NAMESPACE_RECHECK_SECONDS:
        return
    setup = ctx.setups.get(namespace)
    if setup is None:
        setup = ctx.setups[namespace] = asyncio.ensure_future(
            set_up_namespace(ctx, namespace, username)
        )
        setup.add_done_callback(lambda _: ctx.setups.pop(namespace, None))
    await asyncio.shield(setup)  # one caller going away does not cancel the others'
    ctx.ready[namespace] = loop.time()


async def set_up_namespace(ctx: Context, namespace: str, username: str) -> None:
    """The namespace with everything its jobs need.

    In this order: the namespace (or the check that an existing one was made for this very
    person); the RoleBinding of the service's own role there (creating a namespace gives
    its creator no rights in it); the RoleBinding that lets the pods' account use the
    notebook SCC; then, with the service's new rights, the NetworkPolicy and the quota.
    Each step is idempotent (409 is fine), so a crash half-way is mended by the next
    submission.
    """
    namespaces = ctx.settings.namespaces
    existing = await ctx.kube.read_namespace(namespace)
    if existing is None:
        try:
            await ctx.kube.create_namespace(isolation.namespace_manifest(namespace, username))
        except KubeError as e:
            if e.status != 409:
                raise
        existing = await ctx.kube.read_namespace(namespace)
    if existing is None or not isolation.namespace_is_users(existing["metadata"], username):
        raise ServiceError(503, f"namespace {namespace} exists but was not made for you")
    if namespaces.service_account is not None:
        account_namespace, account = namespaces.service_account
        binding = isolation.service_binding_manifest(
            namespace,
            namespaces.service_role,
            account_namespace or ctx.kube.default_namespace,
            account,
        )
        await ctx.kube.create_if_missing("RoleBinding", namespace, binding)
    if namespaces.pod_scc_role:
        scc = isolation.pod_scc_binding_manifest(namespace, namespaces.pod_scc_role)
        await ctx.kube.create_if_missing("RoleBinding", namespace, scc)
    policy = isolation.network_policy_manifest(
        namespace, list(namespaces.egress_allow_cidrs), list(namespaces.egress_deny_cidrs)
    )
    # A new RoleBinding reaches the API server's authorizer through its cache, moments
    # later: a 403 right after it is tried again for a few seconds, never longer.
    deadline = asyncio.get_running_loop().time() + RBAC_SETTLE_SECONDS
    while True:
        try:
            await ctx.kube.create_if_missing("NetworkPolicy", namespace, policy)
            break
        except KubeError as e:
            if e.status != 403 or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
    if namespaces.quota:
        await ctx.kube.create_if_missing(
            "ResourceQuota",
            namespace,
            isolation.quota_manifest(namespace, dict(namespaces.quota)),
        )


def job_name(checked: CheckedJob, owner: str | None = None) -> str:
    """The name to create: the requested one, or one made from ``generateName``.

    With ``owner`` (the shared namespace) it ends with the owner's tag, so it can be
    nobody else's; InvalidName when it does not fit.
    """
    limit = MAX_CRONJOB_NAME if checked.kind == "CronJob" else MAX_JOB_NAME
    if owner is None:
        if checked.name:
            return checked.name
        return generated_name(checked.generate_name or "job-", random_suffix(), limit)
    if checked.name:
        return personal_name(checked.name, owner, limit)
    room = limit - TAG_LENGTH - 1
    base = generated_name(checked.generate_name or "job-", random_suffix(), room)
    return personal_name(base, owner, limit, "generated name")


async def enforce_ceilings(
    ctx: Context, user: HubUser, namespace: str, manifest: dict[str, Any]
) -> None:
    """Shared namespace: refuse (403, with the figures) what would take the person past
    a ceiling. Called with the person's submission lock held, right before the create."""
    ceilings = ctx.settings.namespaces.ceilings
    if not ceilings:
        return
    selector = ctx.selector(user)
    try:
        jobs = await ctx.kube.list_workloads("Job", namespace, selector)
        cronjobs = await ctx.kube.list_workloads("CronJob", namespace, selector)
    except KubeError as e:
        raise kube_failure(e, "could not count your jobs") from None
    mine = [
        [i for i in found.get("items") or [] if owned_by(i["metadata"], user.name, namespace)]
        for found in (jobs, cronjobs)
    ]
    try:
        check_ceilings(ceilings, usage(*mine), demand(manifest))
    except CeilingExceeded as e:
        raise ServiceError(403, e.message) from None
    except ValueError as e:  # a quantity the API server would never hand out
        raise ServiceError(503, f"could not count your jobs: {e}") from None


async def submit(
    ctx: Context, user: HubUser, kind: str, job: Any, code: Any, profile: str | None
) -> dict[str, Any]:
    """Check, look up the identity, create Secret, ConfigMap and Job; undo on failure."""
    try:
        result = await _submit(ctx, user, kind, job, code, profile)
    except ServiceError as e:
        JOB_SUBMISSIONS.labels(kind, submission_result(e.status)).inc()
        raise
    except Exception:
        JOB_SUBMISSIONS.labels(kind, "error").inc()
        raise
    JOB_SUBMISSIONS.labels(kind, "created").inc()
    return result


async def _submit(
    ctx: Context, user: HubUser, kind: str, job: Any, code: Any, profile: str | None
) -> dict[str, Any]:
    settings = ctx.settings
    namespace = ctx.namespace(user)
    rules = settings.rules
    shared = settings.namespaces.shared_mode
    try:
        checked = check_submission(
            job, kind, rules, namespace, profile, caller=Membership.of(user.groups)
        )
        # a taken name: the create answers 409 (nothing is made); in the shared
        # namespace that can only be one's own
        name = job_name(checked, user.name if shared else None)
        if shared:
            where = "spec.jobTemplate.spec" if kind == "CronJob" else "spec"
            unset = missing_limits(
                settings.namespaces.ceilings, checked.containers, f"{where}.template.spec"
            )
            if unset:
                resource = unset.rsplit(".limits.", 1)[1]
                raise PolicyError(
                    unset, f"required in the shared namespace (a ceiling on limits.{resource})"
                )
        data = await check_code(code, settings.code_limits)  # in a process of its own
    except InvalidName as e:
        raise ServiceError(422, str(e)) from None
    except PolicyError as e:
        raise ServiceError(422, str(e)) from None
    except UploadError as e:
        raise ServiceError(e.status, str(e)) from None
    access = await user_access_token(ctx, user)
    vault_profile = await storage_profile(ctx, user, access)
    try:
        await ensure_namespace(ctx, namespace, user.name)
    except KubeError as e:
        raise kube_failure(e, "could not prepare your namespace") from None

    async def place(name: str) -> tuple[str, dict[str, Any]]:
        secret = dependent_name("s3", name)
        image = checked.containers[0]["image"]
        fill = {"username": user.name, "job_name": name, "image": image, "namespace": namespace}
        target = Target(
            username=user.name,
            namespace=namespace,
            name=name,
            secret_name=secret,
            configmap_name=dependent_name("code", name) if data is not None else None,
            workload=settings.layout.workload(vault_profile, secret),
            extra_env=tuple(render_extra_env(dict(settings.extra_env), **fill)),
            job_env=(("VALERIA_JOB_NAME", name),),
        )
        manifest = build_manifest(checked, target, rules)
        guard = ctx.submissions_of(user.name) if shared and settings.namespaces.ceilings else None
        async with guard or contextlib.nullcontext():
            if shared:
                await enforce_ceilings(ctx, user, namespace, manifest)
            secret_of = functools.partial(
                build_secret, target, vault_profile, settings.layout.s3_endpoint_url
            )
            try:
                return name, await create_all(
                    ctx, kind, target, manifest, secret_of, data, retry=not shared
                )
            except NamespaceGone:  # deleted since it was set up: once more, from the start
                ctx.ready.pop(namespace, None)
                try:
                    await ensure_namespace(ctx, namespace, user.name)
                except KubeError as e:
                    raise kube_failure(e, "could not prepare your namespace") from None
                return name, await create_all(
                    ctx, kind, target, manifest, secret_of, data, retry=False
                )

    # a generated name that is taken is made again, as the API server does
    tries = 1 if checked.name else GENERATE_TRIES
    for attempt in range(tries):
        try:
            name, result = await place(name)
            break
        except NameTaken:
            if attempt + 1 == tries:
                raise
            name = job_name(checked, user.name if shared else None)
    if ctx.cache is not None:  # a list right after this shows it, whatever the watch's delay
        ctx.cache.note(kind, namespace, ctx.selector(user), result)
    log.info("%s %s/%s created for %s", kind, namespace, name, user.name)
    return result


async def create_all(
    ctx: Context,
    kind: str,
    target: Target,
    manifest: dict[str, Any],
    secret_of: Callable[[dict[str, Any]], dict[str, Any]],
    data: bytes | None,
    *,
    retry: bool = True,
) -> dict[str, Any]:
    """The workload first, then what it uses, owned by it from the start: no PATCH of a
    Secret, and whatever happens later the garbage collector removes them with it. A
    pod that starts before its Secret exists waits for it (the kubelet retries). On any
    failure what was made is deleted again. With ``retry``, a refusal of the workload
    itself that a lost namespace explains is NamespaceGone."""
    namespace, name = target.namespace, target.name
    created: list[tuple[str, str]] = []
    step = kind
    try:
        result = await ctx.kube.create_workload(kind, namespace, manifest)
        created.append((kind, name))
        owner = owner_reference("batch/v1", kind, name, result["metadata"]["uid"])
        step = "Secret"
        await ctx.kube.create_secret(namespace, secret_of(owner))
        created.append(("Secret", target.secret_name))
        if data is not None:
            step = "ConfigMap"
            await ctx.kube.create_configmap(namespace, build_code_configmap(target, data, owner))
            created.append(("ConfigMap", target.configmap_name or ""))
    except BaseException as e:
        await asyncio.shield(roll_back(ctx, namespace, created))
        if isinstance(e, KubeError):
            if step == kind and retry and namespace_gone(e):
                raise NamespaceGone(namespace) from None
            if e.status == 409 and step == kind:
                raise NameTaken(
                    409, f"a {kind} named {name!r} already exists; pick another name"
                ) from None
            if e.status == 409:  # a leftover of an earlier submission: ours, not the user's
                raise ServiceError(503, f"could not create the {kind}'s {step}: one is left "
                                   "over from an earlier attempt; retry") from None  # fmt: skip
            raise kube_failure(e, f"could not create the {kind}") from None
        raise
    return result


async def roll_back(ctx: Context, namespace: str, created: list[tuple[str, str]]) -> None:
    """Delete what a failed submission made, newest first; log what could not go."""
    for kind, name in reversed(created):
        try:
            await ctx.kube.delete(kind, namespace, name)
        except KubeError as e:
            log.error("could not roll back %s %s/%s: %s", kind, namespace, name, e.status)


# -- reading and deleting -----------------------------------------------------------------------
def not_found(kind: str, name: str) -> ServiceError:
    return ServiceError(404, f"{kind} {name!r} not found")


async def get_owned(ctx: Context, user: HubUser, kind: str, name: str) -> dict[str, Any]:
    namespace = ctx.namespace(user)
    try:
        obj = await ctx.kube.read_workload(kind, namespace, name)
    except KubeError as e:
        raise kube_failure(e, f"could not read the {kind}") from None
    if obj is None or not owned_by(obj["metadata"], user.name, namespace):
        raise not_found(kind, name)
    return obj


async def list_owned(ctx: Context, user: HubUser, kind: str) -> dict[str, Any]:
    namespace = ctx.namespace(user)
    try:
        result = await ctx.kube.list_workloads(kind, namespace, ctx.selector(user))
    except KubeError as e:
        if e.status == 404:
            result = {"api_version": "batch/v1", "kind": f"{kind}List", "items": []}
        else:
            raise kube_failure(e, f"could not list {kind}s") from None
    result["items"] = [
        i for i in result.get("items") or [] if owned_by(i["metadata"], user.name, namespace)
    ]
    return result


async def list_owned_chunks(
    ctx: Context, user: HubUser, kind: str, *, deflate: bool = False, summary: bool = False
) -> tuple[int, list[bytes]]:
    """The caller's list as JSON, its length and pieces (see :mod:`.listbody`), deflated
    when ``deflate``, each item cut to its :func:`.listbody.summary` when ``summary``:
    from the list cache's view (items encoded and deflated once, when they arrived; the
    same pieces again while nothing changed), else as :func:`list_owned` gives it."""
    namespace = ctx.namespace(user)
    cached = None
    if ctx.cache is not None:
        try:
            owner = Owner(user.name, namespace)
            cached = await ctx.cache.owned(
                kind, namespace, ctx.selector(user), owner, summary=summary
            )
        except KubeError as e:
            if e.status != 404:
                raise kube_failure(e, f"could not list {kind}s") from None
            cached = ({}, ())  # no namespace yet: nothing of theirs
    if cached is None:
        result = await list_owned(ctx, user, kind)
        metadata = result.get("metadata") or {}
        shape = functools.partial(Piece.summary_of, kind) if summary else Piece.of
        pieces: Sequence[Piece] = [shape(i) for i in result["items"]]
    else:
        metadata, pieces = cached
    if deflate:
        return deflated_list_chunks(kind, metadata, pieces, keep=cached is not None)
    return list_chunks(kind, metadata, pieces)


async def delete_owned(ctx: Context, user: HubUser, kind: str, name: str) -> dict[str, Any]:
    obj = await get_owned(ctx, user, kind, name)
    try:
        status = await ctx.kube.delete_workload(kind, obj["metadata"]["namespace"], name)
    except KubeError as e:
        if e.status == 404:
            raise not_found(kind, name) from None
        raise kube_failure(e, f"could not delete the {kind}") from None
    if ctx.cache is not None:  # a list right after this does not show it
        meta = obj["metadata"]
        ctx.cache.forget(kind, meta["namespace"], ctx.selector(user), name, meta.get("uid") or "")
    log.info("%s %s deleted by %s", kind, name, user.name)
    return status


async def list_pods(ctx: Context, user: HubUser, job_name: str | None) -> dict[str, Any]:
    namespace = ctx.namespace(user)
    extra = f"job-name={job_name}" if job_name else ""
    if job_name and not isinstance(job_name, str):
        raise ServiceError(422, "job_name must be a string")
    try:
        result = await ctx.kube.list_pods(namespace, ctx.selector(user, extra))
    except KubeError as e:
        if e.status == 404:
            return {"api_version": "v1", "kind": "PodList", "items": []}
        if e.status == 400:
            raise ServiceError(422, f"job_name: {e.message}") from None
        raise kube_failure(e, "could not list pods") from None
    result["items"] = [
        i for i in result.get("items") or [] if owned_by(i["metadata"], user.name, namespace)
    ]
    return result


async def get_pod(ctx: Context, user: HubUser, name: str) -> dict[str, Any]:
    namespace = ctx.namespace(user)
    try:
        pod = await ctx.kube.read_pod(namespace, name)
    except KubeError as e:
        raise kube_failure(e, "could not read the pod") from None
    if pod is None or not owned_by(pod["metadata"], user.name, namespace):
        raise not_found("pod", name)
    return pod


async def pod_for_logs(ctx: Context, user: HubUser, name: str) -> dict[str, Any]:
    """``name`` is a job (0.5 layout: its newest pod) or a pod (0.4 layout)."""
    namespace = ctx.namespace(user)
    try:
        job = await ctx.kube.read_workload("Job", namespace, name)
    except KubeError as e:
        raise kube_failure(e, "could not read the job") from None
    if job is not None and owned_by(job["metadata"], user.name, namespace):
        pods = (await list_pods(ctx, user, name))["items"]
        if not pods:
            raise ServiceError(404, f"job {name!r} has no pods yet; try again shortly")
        return max(pods, key=lambda p: str(p["metadata"].get("creation_timestamp") or ""))
    try:
        return await get_pod(ctx, user, name)
    except ServiceError as e:
        if e.status == 404:
            raise not_found("job or pod", name) from None
        raise


def log_container(pod: dict[str, Any]) -> str:
    return pod["spec"]["containers"][0]["name"]


async def read_log(ctx: Context, pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    try:
        return await ctx.kube.read_log(meta["namespace"], meta["name"], log_container(pod))
    except KubeError as e:
        raise log_failure(e) from None


def log_failure(e: KubeError) -> ServiceError:
    if e.status == 400:  # "container ... is waiting to start"
        return ServiceError(409, f"no log yet: {e.message}")
    return kube_failure(e, "could not read the log")
