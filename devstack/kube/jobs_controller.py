"""Job controller: creates a Job's pods and keeps its status, like kube-controller-manager's.

Supported: parallelism, completions (NonIndexed), backoffLimit (failed pods, and
container restarts for restartPolicy OnFailure), activeDeadlineSeconds, suspend,
ttlSecondsAfterFinished, a pod-failure back-off (``pod_backoff`` seconds, doubling).
Conditions as in Kubernetes 1.31: SuccessCriteriaMet + Complete, FailureTarget + Failed.
Counting: terminal pods are counted once per controller run (by pod uid); a job whose
status already has counts when first seen is assumed to include its terminal pods.

Given the API server's Registry, pods are created through it (defaults, validation,
admission) as ``system:serviceaccount:kube-system:job-controller``, like the real
controller's API requests: a refused pod (an OpenShift SCC, Pod Security) leaves the Job
without pods and a ``FailedCreate`` Warning on it, retried with back-off (1 s doubling to
60 s). Without one (unit tests of the controllers alone) pods go straight to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import rbac
from .admission import acting_as
from .events import record_event
from .gc import controller_uid, delete_pod, iso, parse_time
from .resources import kind_of
from .store import AlreadyExists, Event, NotFound, Store, StoreError, now_iso

log = logging.getLogger(__name__)

JOBS, PODS = "batch/v1/jobs", "v1/pods"
# who the controller is to the API server (kube-controller-manager's per-controller account)
IDENTITY = rbac.Identity(rbac.service_account_user("kube-system", "job-controller"))
CREATE_BACKOFF, MAX_CREATE_BACKOFF = 1.0, 60.0  # DefaultJobApiBackOff, MaxJobApiBackOff
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated names
TERMINAL = ("Succeeded", "Failed")


def bootstrap_rbac() -> list[dict[str, Any]]:
    """The bootstrap policy's role for this controller and its binding, as every cluster has
    them (``system:controller:job-controller``): admission plugins that ask about the writer
    (OpenShift's OwnerReferencesPermissionEnforcement, SCC) see what the real one sees."""
    name = "system:controller:job-controller"
    rules = [
        (["batch"], ["jobs"], ["get", "list", "watch", "update", "patch"]),
        (["batch"], ["jobs/status"], ["update"]),
        (["batch"], ["jobs/finalizers"], ["update"]),
        ([""], ["pods"], ["list", "watch", "create", "delete", "patch"]),
        (["", "events.k8s.io"], ["events"], ["create", "update", "patch"]),
    ]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": g, "resources": r, "verbs": v} for g, r, v in rules],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [
            {"kind": "ServiceAccount", "name": "job-controller", "namespace": "kube-system"}
        ],
    }
    return [role, binding]


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def condition_true(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def set_condition(
    status: dict[str, Any], kind: str, value: bool, reason: str, message: str, now: str
) -> None:
    conds = status.setdefault("conditions", [])
    want = "True" if value else "False"
    for c in conds:
        if c.get("type") == kind:
            if c.get("status") != want:
                c.update(status=want, lastTransitionTime=now)
            c.update(reason=reason, message=message, lastProbeTime=now)
            return
    conds.append(
        {
            "type": kind,
            "status": want,
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
    )


def pod_for_job(job: dict[str, Any]) -> dict[str, Any]:
    """A pod from the job's template with the labels and owner reference the controller sets."""
    meta = job["metadata"]
    name, uid = meta["name"], meta["uid"]
    template = copy.deepcopy(job.get("spec", {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels.update(
        {
            "controller-uid": uid,
            "batch.kubernetes.io/controller-uid": uid,
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
        }
    )
    spec = template.get("spec") or {}
    spec.setdefault("restartPolicy", "Never")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{random_suffix()}",
            "generateName": f"{name}-",
            "labels": labels,
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _restarts(pod: dict[str, Any]) -> int:
    return sum(
        int(s.get("restartCount") or 0)
        for s in pod.get("status", {}).get("containerStatuses") or []
    )


class JobController:
    """Event-driven reconcile loop over Jobs (and their pods)."""

    def __init__(
        self,
        store: Store,
        *,
        pod_backoff: float = 10.0,
        now: Callable[[], float] = time.time,
        registry: Any = None,
    ) -> None:
        self.store = store
        self.registry = registry  # the API server's Registry: pods go through admission
        # per job: (failed pod creations in a row, no new attempt before this time)
        self._create_backoff: dict[tuple[str, str], tuple[int, float]] = {}
        self.pod_backoff = pod_backoff
        self.now = now
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._pending: set[tuple[str, str]] = set()
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._counted: dict[str, tuple[set[str], set[str]]] = {}
        self._jobs_by_uid: dict[str, tuple[str, str]] = {}

    def enqueue(self, key: tuple[str, str]) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self.queue.put_nowait(key)

    def enqueue_after(self, key: tuple[str, str], delay: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(delay, 0.0) + 0.05, self.enqueue, key)

    def on_change(self, event: Event) -> None:
        """Store listener: queue the job a change concerns."""
        if event.resource == JOBS:
            meta = event.obj["metadata"]
            key = (event.namespace, meta["name"])
            if event.type == "DELETED":
                self._counted.pop(meta.get("uid", ""), None)
                self._create_backoff.pop(key, None)
                timer = self._timers.pop(key, None)
                if timer:
                    timer.cancel()
            self.enqueue(key)
        elif event.resource == PODS:
            for ref in event.obj["metadata"].get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "Job":
                    self.enqueue((event.namespace, ref.get("name", "")))

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def run(self) -> None:
        for job in self.store.list(JOBS)[0]:
            self.enqueue((job["metadata"].get("namespace", ""), job["metadata"]["name"]))
        while True:
            key = await self.queue.get()
            self._pending.discard(key)
            try:
                self.sync(*key)
            except Exception:  # noqa: BLE001 - one broken job must not stop the others
                log.exception("devstack job controller: syncing %s/%s failed", *key)

    # -- reconcile ------------------------------------------------------------------------
    def _event(self, job: dict[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        record_event(
            self.store, job, reason, message, type=type_, component="job-controller",
            kind="Job", api_version="batch/v1",
        )  # fmt: skip

    def _delete_pods(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            delete_pod(self.store, pod)
            self._event(job, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def sync(self, ns: str, name: str) -> None:
        try:
            job = self.store.get(JOBS, ns, name)
        except NotFound:
            return
        meta, spec = job["metadata"], job.get("spec", {})
        if meta.get("deletionTimestamp"):
            return
        uid, key = meta["uid"], (ns, name)
        now, now_s = self.now(), iso(datetime.fromtimestamp(self.now(), UTC))
        status = copy.deepcopy(job.get("status") or {})
        pods = [p for p in self.store.list(PODS, ns)[0] if controller_uid(p) == uid]
        active = [
            p for p in pods
            if p.get("status", {}).get("phase") not in TERMINAL
            and not p["metadata"].get("deletionTimestamp")
        ]  # fmt: skip
        terminating = [
            p for p in pods
            if p.get("status", {}).get("phase") not in TERMINAL
            and p["metadata"].get("deletionTimestamp")
        ]  # fmt: skip
        succeeded, failed = self._count(uid, status, pods)
        status["succeeded"], status["failed"] = succeeded, failed
        finished = condition_true(status, "Complete") or condition_true(status, "Failed")
        if finished:
            if active:
                self._delete_pods(job, active)
                active = []
            self._ttl(job, status, key, now)
            self._write(job, status, active, terminating)
            return

        parallelism = spec.get("parallelism", 1)
        parallelism = 1 if parallelism is None else int(parallelism)
        completions = int(spec.get("completions") or 1)
        backoff_limit = spec.get("backoffLimit", 6)
        backoff_limit = 6 if backoff_limit is None else int(backoff_limit)
        if spec.get("suspend"):
            if active:
                self._delete_pods(job, active)
                active = []
            if not condition_true(status, "Suspended"):
                set_condition(status, "Suspended", True, "JobSuspended", "Job suspended", now_s)
                self._event(job, "Suspended", "Job suspended")
            status.pop("startTime", None)
            self._write(job, status, active, terminating)
            return
        if condition_true(status, "Suspended"):
            set_condition(status, "Suspended", False, "JobResumed", "Job resumed", now_s)
            self._event(job, "Resumed", "Job resumed")
        status.setdefault("startTime", now_s)
        started = parse_time(status["startTime"])
        assert started is not None
        deadline = spec.get("activeDeadlineSeconds")
        restarts = sum(_restarts(p) for p in active) if self._on_failure(job) else 0

        failure = None
        if failed + restarts > backoff_limit:
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and now >= started.timestamp() + int(deadline):
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if failure:
            reason, message = failure
            self._delete_pods(job, active)
            terminating += active
            active = []
            set_condition(status, "FailureTarget", True, reason, message, now_s)
            set_condition(status, "Failed", True, reason, message, now_s)
            self._event(job, reason, message, "Warning")
            self._write(job, status, active, terminating)
            self._ttl(job, status, key, now)
            return
        if succeeded >= completions:
            self._delete_pods(job, active)
            active = []
            msg = "Reached expected number of succeeded pods"
            set_condition(status, "SuccessCriteriaMet", True, "CompletionsReached", msg, now_s)
            set_condition(status, "Complete", True, "CompletionsReached", msg, now_s)
            status["completionTime"] = now_s
            self._event(job, "Completed", "Job completed")
            self._write(job, status, active, terminating)
            self._ttl(job, status, key, now)
            return

        to_create = min(parallelism, completions - succeeded) - len(active)
        if to_create > 0:
            wait = self._failure_backoff(pods, failed, now)
            if wait > 0:
                self.enqueue_after(key, wait)
                to_create = 0
        retry = None
        if to_create > 0 and key in self._create_backoff:
            not_before = self._create_backoff[key][1]
            if now < not_before:  # the last creation was refused: wait out the back-off
                retry, to_create = not_before - now, 0
        for _ in range(max(to_create, 0)):
            try:
                pod = self._create_pod(job)
            except StoreError as err:
                retry = self._creation_refused(job, key, err, now)
                break
            self._create_backoff.pop(key, None)
            if pod is not None:
                active.append(pod)
                self._event(job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        if deadline is not None:
            until_deadline = started.timestamp() + int(deadline) - now
            retry = until_deadline if retry is None else min(retry, until_deadline)
        if retry is not None:
            self.enqueue_after(key, retry)
        self._write(job, status, active, terminating)

    @staticmethod
    def _on_failure(job: dict[str, Any]) -> bool:
        tspec = (job.get("spec", {}).get("template") or {}).get("spec") or {}
        return tspec.get("restartPolicy") == "OnFailure"

    def _count(
        self, uid: str, status: dict[str, Any], pods: list[dict[str, Any]]
    ) -> tuple[int, int]:
        if uid not in self._counted:
            ok = {
                p["metadata"]["uid"]
                for p in pods
                if p.get("status", {}).get("phase") == "Succeeded"
            }
            bad = {
                p["metadata"]["uid"] for p in pods if p.get("status", {}).get("phase") == "Failed"
            }
            self._counted[uid] = (
                ok if "succeeded" in status else set(),
                bad if "failed" in status else set(),
            )
        ok, bad = self._counted[uid]
        succeeded, failed = int(status.get("succeeded") or 0), int(status.get("failed") or 0)
        for p in pods:
            phase, puid = p.get("status", {}).get("phase"), p["metadata"]["uid"]
            if phase == "Succeeded" and puid not in ok:
                ok.add(puid)
                succeeded += 1
            elif phase == "Failed" and puid not in bad:
                bad.add(puid)
                failed += 1
        return succeeded, failed

    def _failure_backoff(self, pods: list[dict[str, Any]], failed: int, now: float) -> float:
        if failed <= 0 or self.pod_backoff <= 0:
            return 0.0
        last = 0.0
        for p in pods:
            if p.get("status", {}).get("phase") != "Failed":
                continue
            for s in p.get("status", {}).get("containerStatuses") or []:
                t = parse_time((s.get("state") or {}).get("terminated", {}).get("finishedAt"))
                if t:
                    last = max(last, t.timestamp())
        delay = min(self.pod_backoff * 2 ** (failed - 1), 360.0)
        return max(0.0, last + delay - now)

    def _create_pod(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """Create one pod for the job; the API server's refusal (a StoreError) is raised."""
        ns = job["metadata"]["namespace"]
        if self.registry is not None:
            pod = pod_for_job(job)
            del pod["metadata"]["name"]  # the real controller sends generateName only
            with acting_as(IDENTITY):
                return self.registry.create(kind_of(PODS), ns, pod)
        for _ in range(5):
            pod = pod_for_job(job)
            try:
                return self.store.create(PODS, ns, pod)
            except AlreadyExists:
                continue
        return None

    def _creation_refused(
        self, job: dict[str, Any], key: tuple[str, str], err: StoreError, now: float
    ) -> float:
        """Record the refusal as the real controller does and return the back-off."""
        failures = self._create_backoff.get(key, (0, 0.0))[0] + 1
        delay = min(CREATE_BACKOFF * 2 ** (failures - 1), MAX_CREATE_BACKOFF)
        self._create_backoff[key] = (failures, now + delay)
        causes = (err.details or {}).get("causes") or []
        if not any(c.get("reason") == "NamespaceTerminating" for c in causes):
            self._warn_once(job, "FailedCreate", f"Error creating: {err.message}")
        return delay

    def _warn_once(self, job: dict[str, Any], reason: str, message: str) -> None:
        """A Warning event; a repeat of the same one bumps its count, as the recorder's
        event correlator does, instead of piling up copies."""
        meta = job["metadata"]
        for event in self.store.list("v1/events", meta["namespace"])[0]:
            involved = event.get("involvedObject") or {}
            if (
                involved.get("uid") == meta["uid"]
                and event.get("reason") == reason
                and event.get("message") == message
            ):

                def bump(e: dict[str, Any]) -> None:
                    e["count"] = int(e.get("count") or 1) + 1
                    e["lastTimestamp"] = now_iso()

                with contextlib.suppress(NotFound):
                    name = event["metadata"]["name"]
                    self.store.mutate("v1/events", meta["namespace"], name, bump)
                    return
        self._event(job, reason, message, "Warning")

    def _ttl(
        self, job: dict[str, Any], status: dict[str, Any], key: tuple[str, str], now: float
    ) -> None:
        ttl = job.get("spec", {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        done = status.get("completionTime")
        if not done:
            failed = condition_true(status, "Failed")
            done = failed.get("lastTransitionTime") if failed else None
        finished = parse_time(done)
        if finished is None:
            return
        expire = finished.timestamp() + int(ttl)
        if now >= expire:
            with contextlib.suppress(NotFound):
                # Background propagation: the garbage collector takes the pods
                self.store.delete(JOBS, *key)
        else:
            self.enqueue_after(key, expire - now)

    def _write(
        self,
        job: dict[str, Any],
        status: dict[str, Any],
        active: list[dict[str, Any]],
        terminating: list[dict[str, Any]],
    ) -> None:
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if _ready(p))
        status["terminating"] = len(terminating)
        status.setdefault("uncountedTerminatedPods", {})
        for k in ("active", "succeeded", "failed"):
            if not status.get(k):
                status.pop(k, None)  # the API omits zero counts
        meta = job["metadata"]
        if status == (job.get("status") or {}):
            return
        try:
            current = self.store.get(JOBS, meta["namespace"], meta["name"])
        except NotFound:
            return
        if current["metadata"].get("uid") != meta["uid"]:
            return
        current["status"] = status
        self.store.update(JOBS, meta["namespace"], current, check_rv=False, bump_generation=False)
