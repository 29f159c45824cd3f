"""CronJob controller: creates Jobs on schedule and keeps the CronJob's status.

Job names are ``<cronjob>-<scheduled time in unix minutes>`` like the real controller's,
so a schedule is never run twice. The clock is injectable: tests call
``sync_all(now)`` with the time they want.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from typing import Any

from .cronjob import ScheduleError, most_recent_time, parse_schedule, zone
from .events import record_event
from .gc import controller_uid, delete_object, iso, parse_time
from .jobs_controller import condition_true
from .store import AlreadyExists, NotFound, Store

log = logging.getLogger(__name__)

CRONJOBS, JOBS = "batch/v1/cronjobs", "batch/v1/jobs"


def job_for(cj: dict[str, Any], scheduled: datetime) -> dict[str, Any]:
    """The Job a CronJob creates for one scheduled time."""
    meta = cj["metadata"]
    template = copy.deepcopy(cj.get("spec", {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = iso(scheduled)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{meta['name']}-{int(scheduled.timestamp() // 60)}",
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template.get("spec") or {},
        "status": {},
    }


def _finished(job: dict[str, Any]) -> str | None:
    status = job.get("status") or {}
    if condition_true(status, "Complete"):
        return "Complete"
    if condition_true(status, "Failed"):
        return "Failed"
    return None


def _ref(job: dict[str, Any]) -> dict[str, Any]:
    m = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": m["name"],
        "namespace": m.get("namespace", ""),
        "uid": m["uid"],
        "resourceVersion": m.get("resourceVersion", ""),
    }


class CronJobController:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._bad_schedule: set[str] = set()

    def _event(self, cj: dict[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        record_event(
            self.store, cj, reason, message, type=type_, component="cronjob-controller",
            kind="CronJob", api_version="batch/v1",
        )  # fmt: skip

    def sync_all(self, now: datetime) -> None:
        for cj in self.store.list(CRONJOBS)[0]:
            try:
                self.sync(cj, now)
            except Exception:  # noqa: BLE001 - one broken cronjob must not stop the others
                log.exception("devstack cronjob controller: %s failed", cj["metadata"]["name"])

    def sync(self, cj: dict[str, Any], now: datetime) -> None:
        meta, spec = cj["metadata"], cj.get("spec", {})
        if meta.get("deletionTimestamp"):
            return
        ns, uid = meta.get("namespace", ""), meta["uid"]
        status = copy.deepcopy(cj.get("status") or {})
        children = [j for j in self.store.list(JOBS, ns)[0] if controller_uid(j) == uid]
        running = [j for j in children if not _finished(j)]
        for j in children:
            outcome = _finished(j)
            if outcome is None:
                continue
            if any(r.get("uid") == j["metadata"]["uid"] for r in status.get("active") or []):
                self._event(
                    cj,
                    "SawCompletedJob",
                    f"Saw completed job: {j['metadata']['name']}, status: {outcome}",
                )
            if outcome == "Complete":
                done = (j.get("status") or {}).get("completionTime")
                if done and (
                    not status.get("lastSuccessfulTime") or done > status["lastSuccessfulTime"]
                ):
                    status["lastSuccessfulTime"] = done
        status["active"] = [_ref(j) for j in running]
        self._cleanup_history(cj, spec, children)
        try:
            self._schedule(cj, spec, status, running, now)
        finally:
            if not status.get("active"):
                status.pop("active", None)
            self._write(cj, status)

    def _cleanup_history(self, cj: dict[str, Any], spec: dict[str, Any], children: list) -> None:
        for outcome, key, default in (
            ("Complete", "successfulJobsHistoryLimit", 3),
            ("Failed", "failedJobsHistoryLimit", 1),
        ):
            limit = spec.get(key, default)
            limit = default if limit is None else int(limit)
            done = [j for j in children if _finished(j) == outcome]
            done.sort(
                key=lambda j: (
                    (j.get("status") or {}).get("startTime") or "",
                    j["metadata"]["name"],
                )
            )
            for j in done[: max(len(done) - limit, 0)]:
                delete_object(self.store, JOBS, j["metadata"]["namespace"], j["metadata"]["name"])
                self._event(cj, "SuccessfulDelete", f"Deleted job {j['metadata']['name']}")

    def _schedule(
        self,
        cj: dict[str, Any],
        spec: dict[str, Any],
        status: dict[str, Any],
        running: list,
        now: datetime,
    ) -> None:
        if spec.get("suspend"):
            return
        name = cj["metadata"]["name"]
        try:
            schedule = parse_schedule(spec.get("schedule", ""))
            tz = zone(spec.get("timeZone"))
        except ScheduleError as e:
            if name not in self._bad_schedule:
                self._bad_schedule.add(name)
                self._event(cj, "UnparseableSchedule", f"unparseable schedule: {e}", "Warning")
            return
        earliest = parse_time(status.get("lastScheduleTime")) or parse_time(
            cj["metadata"].get("creationTimestamp")
        )
        assert earliest is not None
        scheduled = most_recent_time(schedule, earliest, now, tz)
        if scheduled is None:
            return
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and (now - scheduled).total_seconds() > int(deadline):
            self._event(
                cj, "MissSchedule",
                f"Missed scheduled time to start a job: {iso(scheduled)}", "Warning",
            )  # fmt: skip
            return
        policy = spec.get("concurrencyPolicy") or "Allow"
        if running and policy == "Forbid":
            self._event(
                cj, "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency "
                "policy is Forbid",
            )  # fmt: skip
            return
        if running and policy == "Replace":
            for j in running:
                delete_object(self.store, JOBS, j["metadata"]["namespace"], j["metadata"]["name"])
                self._event(cj, "SuccessfulDelete", f"Deleted job {j['metadata']['name']}")
            status["active"] = []
        job = job_for(cj, scheduled)
        try:
            created = self.store.create(JOBS, cj["metadata"]["namespace"], job)
        except AlreadyExists:
            status["lastScheduleTime"] = iso(scheduled)
            return
        self._event(cj, "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        status.setdefault("active", []).append(_ref(created))
        status["lastScheduleTime"] = iso(scheduled)

    def _write(self, cj: dict[str, Any], status: dict[str, Any]) -> None:
        if status == (cj.get("status") or {}):
            return
        meta = cj["metadata"]
        try:
            current = self.store.get(CRONJOBS, meta["namespace"], meta["name"])
        except NotFound:
            return
        if current["metadata"].get("uid") != meta["uid"]:
            return
        current["status"] = status
        self.store.update(
            CRONJOBS, meta["namespace"], current, check_rv=False, bump_generation=False
        )
