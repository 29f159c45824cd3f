"""Job, CronJob and garbage-collector controllers of the devstack, driven through the store."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.kube.controllers import Controllers
from devstack.kube.cronjob import (
    ScheduleError,
    most_recent_time,
    next_time,
    parse_schedule,
    zone,
)
from devstack.kube.events import record_event
from devstack.kube.kubelet import Kubelet
from devstack.kube.store import NotFound, Store

JOBS, PODS, CRONJOBS = "batch/v1/jobs", "v1/pods", "batch/v1/cronjobs"


async def wait_for(fn, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except NotFound:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def job(
    name: str, script: str, ns: str = "default", restart: str = "Never", **spec: object
) -> dict:
    """A Job as the API stores it (no server defaults: the controller must cope)."""
    body = {
        "template": {
            "metadata": {"labels": {"app": "batch"}},
            "spec": {
                "restartPolicy": restart,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": "job", "image": "busybox", "command": ["sh", "-c", script]}
                ],
            },
        }
    }
    body.update(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
    }


def condition(obj: dict, kind: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == kind and c["status"] == "True":
            return c
    return None


def job_pods(store: Store, name: str, ns: str = "default") -> list[dict]:
    return [p for p in store.list(PODS, ns)[0] if p["metadata"]["labels"].get("job-name") == name]


def event_reasons(store: Store, name: str) -> list[str]:
    return [e["reason"] for e in store.list("v1/events")[0] if e["involvedObject"]["name"] == name]


@pytest.fixture
async def cluster(store: Store, tmp_path: Path):
    kubelet = Kubelet(store, root=tmp_path / "node", backoff_base=0.05, config_retry=0.1)
    controllers = Controllers(store, pod_backoff=0.0)
    await kubelet.start()
    await controllers.start()
    yield controllers
    await controllers.stop()
    await kubelet.stop()


@pytest.fixture
async def controllers(store: Store):
    c = Controllers(store, pod_backoff=0.0, cron_interval=None)
    await c.start()
    yield c
    await c.stop()


# -- Job ---------------------------------------------------------------------------
async def test_job_runs_to_complete(store: Store, cluster: Controllers) -> None:
    created = store.create(JOBS, "default", job("ok", "echo done"))
    done = await wait_for(
        lambda: (
            condition(store.get(JOBS, "default", "ok"), "Complete")
            and store.get(JOBS, "default", "ok")
        )
    )
    status = done["status"]
    assert status["succeeded"] == 1 and "failed" not in status
    assert status["completionTime"] and status["startTime"]
    assert condition(done, "SuccessCriteriaMet")["reason"] == "CompletionsReached"
    (pod,) = job_pods(store, "ok")
    meta = pod["metadata"]
    assert meta["name"].startswith("ok-") and len(meta["name"]) == len("ok-") + 5
    uid = created["metadata"]["uid"]
    assert meta["labels"] == {
        "app": "batch",
        "controller-uid": uid,
        "batch.kubernetes.io/controller-uid": uid,
        "job-name": "ok",
        "batch.kubernetes.io/job-name": "ok",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "ok",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["status"]["phase"] == "Succeeded"
    reasons = event_reasons(store, "ok")
    assert "SuccessfulCreate" in reasons and "Completed" in reasons
    create_event = next(e for e in store.list("v1/events")[0] if e["reason"] == "SuccessfulCreate")
    assert create_event["source"]["component"] == "job-controller"
    assert create_event["message"] == f"Created pod: {meta['name']}"


async def test_job_backoff_limit_exceeded(store: Store, cluster: Controllers) -> None:
    store.create(JOBS, "default", job("flaky", "exit 1", backoffLimit=1))
    failed = await wait_for(lambda: condition(store.get(JOBS, "default", "flaky"), "Failed"))
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    j = store.get(JOBS, "default", "flaky")
    assert j["status"]["failed"] == 2
    assert condition(j, "FailureTarget") and not condition(j, "Complete")
    assert len(job_pods(store, "flaky")) == 2
    ev = next(e for e in store.list("v1/events")[0] if e["reason"] == "BackoffLimitExceeded")
    assert ev["type"] == "Warning"


async def test_job_active_deadline_kills_running_pod(store: Store, cluster: Controllers) -> None:
    store.create(JOBS, "default", job("slow", "sleep 30", activeDeadlineSeconds=1))
    await wait_for(
        lambda: any(p["status"].get("phase") == "Running" for p in job_pods(store, "slow"))
    )
    failed = await wait_for(
        lambda: condition(store.get(JOBS, "default", "slow"), "Failed"), timeout=10
    )
    assert failed["reason"] == "DeadlineExceeded"
    await wait_for(lambda: not job_pods(store, "slow"), timeout=10)  # killed and deleted
    assert "DeadlineExceeded" in event_reasons(store, "slow")
    assert "Killing" in [e["reason"] for e in store.list("v1/events")[0]]


async def test_job_ttl_after_finished_deletes_job_and_pods(
    store: Store, cluster: Controllers
) -> None:
    store.create(JOBS, "default", job("brief", "true", ttlSecondsAfterFinished=0))
    await wait_for(lambda: not store.exists(JOBS, "default", "brief"))
    await wait_for(lambda: not job_pods(store, "brief"))
    history = store.events_since(0, JOBS)
    assert [e.type for e in history] == ["ADDED", *["MODIFIED"] * (len(history) - 2), "DELETED"]
    assert condition(history[-1].obj, "Complete")  # it finished before it was deleted
    pods = [
        e for e in store.events_since(0, PODS) if e.obj["metadata"]["labels"]["job-name"] == "brief"
    ]
    assert pods[0].type == "ADDED" and pods[-1].type == "DELETED"


async def test_job_restart_on_failure_counts_restarts(store: Store, cluster: Controllers) -> None:
    store.create(JOBS, "default", job("loop", "exit 1", restart="OnFailure", backoffLimit=2))
    failed = await wait_for(lambda: condition(store.get(JOBS, "default", "loop"), "Failed"))
    assert failed["reason"] == "BackoffLimitExceeded"
    assert len(store.list(PODS)[0]) <= 1


async def test_job_suspend_and_resume(store: Store, controllers: Controllers) -> None:
    store.create(JOBS, "default", job("later", "true", suspend=True))
    await wait_for(lambda: condition(store.get(JOBS, "default", "later"), "Suspended"))
    assert not job_pods(store, "later")
    j = store.get(JOBS, "default", "later")
    j["spec"]["suspend"] = False
    store.update(JOBS, "default", j)
    await wait_for(lambda: job_pods(store, "later"))
    j = store.get(JOBS, "default", "later")
    assert j["status"]["active"] == 1 and not condition(j, "Suspended")
    # pods of this test are never scheduled: complete one by hand like a kubelet would
    (pod,) = job_pods(store, "later")
    store.mutate(
        PODS, "default", pod["metadata"]["name"], lambda p: p["status"].update(phase="Succeeded")
    )
    await wait_for(lambda: condition(store.get(JOBS, "default", "later"), "Complete"))


# -- garbage collection ------------------------------------------------------------
async def test_gc_deletes_job_pods_and_pod_owned_secret(
    store: Store, controllers: Controllers
) -> None:
    j = store.create(JOBS, "default", job("owner", "true"))
    pod = await wait_for(lambda: (job_pods(store, "owner") or [None])[0])
    secret = {
        "metadata": {
            "name": "pod-secret",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                }
            ],
        },
        "data": {},
    }
    store.create("v1/secrets", "default", secret)
    store.delete(JOBS, "default", "owner")
    await wait_for(lambda: not job_pods(store, "owner"))  # unscheduled pod: deleted at once
    await wait_for(lambda: not store.exists("v1/secrets", "default", "pod-secret"))
    assert j["metadata"]["uid"]


async def test_gc_running_pod_goes_through_graceful_delete(
    store: Store, cluster: Controllers
) -> None:
    store.create(JOBS, "default", job("runner", "sleep 30"))
    pod = await wait_for(
        lambda: next(
            (p for p in job_pods(store, "runner") if p["status"].get("phase") == "Running"), None
        )
    )
    store.delete(JOBS, "default", "runner")
    await wait_for(lambda: not store.exists(PODS, "default", pod["metadata"]["name"]), timeout=10)
    killing = [e for e in store.list("v1/events")[0] if e["reason"] == "Killing"]
    assert killing and killing[0]["involvedObject"]["name"] == pod["metadata"]["name"]


async def test_gc_collects_orphans_and_keeps_objects_with_a_live_owner(
    store: Store, controllers: Controllers
) -> None:
    ghost = {"apiVersion": "v1", "kind": "Pod", "name": "ghost", "uid": "00000000-dead"}
    store.create(
        "v1/configmaps", "default", {"metadata": {"name": "orphan", "ownerReferences": [ghost]}}
    )
    await wait_for(lambda: not store.exists("v1/configmaps", "default", "orphan"))

    a = store.create("v1/configmaps", "default", {"metadata": {"name": "a"}})
    b = store.create("v1/configmaps", "default", {"metadata": {"name": "b"}})
    refs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"],
        }
        for o in (a, b)
    ]
    store.create(
        "v1/configmaps", "default", {"metadata": {"name": "shared", "ownerReferences": refs}}
    )
    store.delete("v1/configmaps", "default", "a")
    await wait_for(
        lambda: (
            len(store.get("v1/configmaps", "default", "shared")["metadata"]["ownerReferences"]) == 1
        )
    )
    store.delete("v1/configmaps", "default", "b")
    await wait_for(lambda: not store.exists("v1/configmaps", "default", "shared"))


async def test_gc_foreground_and_orphan_finalizers(store: Store, controllers: Controllers) -> None:
    owner = store.create("v1/configmaps", "default", {"metadata": {"name": "fg"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "fg", "uid": owner["metadata"]["uid"]}
    store.create("v1/secrets", "default", {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    owner["metadata"].update(
        deletionTimestamp="2030-01-01T00:00:00Z", finalizers=["foregroundDeletion"]
    )
    store.update("v1/configmaps", "default", owner)
    await wait_for(lambda: not store.exists("v1/configmaps", "default", "fg"))
    assert not store.exists("v1/secrets", "default", "dep")

    keeper = store.create("v1/configmaps", "default", {"metadata": {"name": "keep"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "keep",
        "uid": keeper["metadata"]["uid"],
    }
    store.create("v1/secrets", "default", {"metadata": {"name": "kept", "ownerReferences": [ref]}})
    keeper["metadata"].update(deletionTimestamp="2030-01-01T00:00:00Z", finalizers=["orphan"])
    store.update("v1/configmaps", "default", keeper)
    await wait_for(lambda: not store.exists("v1/configmaps", "default", "keep"))
    await asyncio.sleep(0.1)
    kept = store.get("v1/secrets", "default", "kept")
    assert not kept["metadata"].get("ownerReferences")


# -- CronJob -----------------------------------------------------------------------
def test_cron_parser() -> None:
    s = parse_schedule("*/15 9-17 * * mon-fri")
    assert s.minutes == frozenset({0, 15, 30, 45})
    assert s.hours == frozenset(range(9, 18)) and s.weekdays == frozenset(range(1, 6))
    assert parse_schedule("@hourly") == parse_schedule("0 * * * *")
    assert parse_schedule("0 0 * * 7").weekdays == frozenset({0})
    assert parse_schedule("0 0 1,15 jan,jul *").months == frozenset({1, 7})
    sat = datetime(2024, 6, 1, 12, 7, tzinfo=UTC)  # a Saturday
    assert next_time(s, sat, zone(None)) == datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
    # both day fields restricted: either matches (the 13th, or a Friday)
    either = parse_schedule("0 0 13 * fri")
    assert next_time(either, datetime(2024, 6, 1, tzinfo=UTC), zone(None)) == datetime(
        2024, 6, 7, tzinfo=UTC
    )
    daily = parse_schedule("30 2 * * *")
    berlin = zone("Europe/Berlin")
    assert next_time(daily, datetime(2024, 1, 1, tzinfo=UTC), berlin) == datetime(
        2024, 1, 1, 1, 30, tzinfo=UTC
    )
    assert most_recent_time(
        daily, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, 5, tzinfo=UTC), zone(None)
    ) == datetime(2024, 1, 3, 2, 30, tzinfo=UTC)
    for bad in (
        "* * * *",
        "61 * * * *",
        "*/0 * * * *",
        "@every 1h",
        "TZ=UTC * * * * *",
        "0 0 * foo *",
    ):
        with pytest.raises(ScheduleError):
            parse_schedule(bad)
    with pytest.raises(ScheduleError):
        zone("Mars/Olympus")


def cronjob(name: str, schedule: str, **spec: object) -> dict:
    body = {
        "schedule": schedule,
        "jobTemplate": {
            "metadata": {"labels": {"kind": "nightly"}},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                    }
                }
            },
        },
    }
    body.update(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": "2024-06-01T12:00:30Z",
        },
        "spec": body,
    }


def complete(store: Store, name: str, at: str) -> None:
    def mark(j: dict) -> None:
        j["status"] = {
            "startTime": at,
            "completionTime": at,
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at}],
        }

    store.mutate(JOBS, "default", name, mark)


async def test_cronjob_schedules_jobs_on_the_test_clock(store: Store) -> None:
    now = [datetime(2024, 6, 1, 12, 3, tzinfo=UTC)]
    c = Controllers(store, clock=lambda: now[0], pod_backoff=0.0, cron_interval=None)
    await c.start()
    try:
        cj = store.create(
            CRONJOBS,
            "default",
            cronjob(
                "nightly", "*/5 * * * *", concurrencyPolicy="Forbid", successfulJobsHistoryLimit=1
            ),
        )
        c.check_cronjobs()
        assert store.list(JOBS)[0] == []
        now[0] = datetime(2024, 6, 1, 12, 5, 10, tzinfo=UTC)
        c.check_cronjobs()
        first_name = f"nightly-{int(datetime(2024, 6, 1, 12, 5, tzinfo=UTC).timestamp() // 60)}"
        (first,) = store.list(JOBS)[0]
        assert first["metadata"]["name"] == first_name
        assert first["metadata"]["labels"] == {"kind": "nightly"}
        assert first["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
        status = store.get(CRONJOBS, "default", "nightly")["status"]
        assert status["lastScheduleTime"] == "2024-06-01T12:05:00Z"
        assert [r["name"] for r in status["active"]] == [first_name]
        c.check_cronjobs()
        assert len(store.list(JOBS)[0]) == 1  # same slot: no second job
        # the job controller starts it (no kubelet here: pods stay pending)
        await wait_for(
            lambda: store.get(JOBS, "default", first_name).get("status", {}).get("active")
        )
        now[0] = datetime(2024, 6, 1, 12, 10, 5, tzinfo=UTC)
        c.check_cronjobs()
        assert len(store.list(JOBS)[0]) == 1  # Forbid: still running
        assert "JobAlreadyActive" in event_reasons(store, "nightly")
        complete(store, first_name, "2024-06-01T12:10:30Z")
        # the run that Forbid held back starts now, late, like the real controller does
        second_name = f"nightly-{int(datetime(2024, 6, 1, 12, 10, tzinfo=UTC).timestamp() // 60)}"
        await wait_for(lambda: store.exists(JOBS, "default", second_name))
        status = store.get(CRONJOBS, "default", "nightly")["status"]
        assert status["lastSuccessfulTime"] == "2024-06-01T12:10:30Z"
        assert [r["name"] for r in status["active"]] == [second_name]
        complete(store, second_name, "2024-06-01T12:11:30Z")
        # history limit 1: the older successful job goes, with its pods (garbage collector)
        await wait_for(lambda: not store.exists(JOBS, "default", first_name))
        await wait_for(
            lambda: (
                not [
                    p
                    for p in store.list(PODS)[0]
                    if p["metadata"]["labels"]["job-name"] == first_name
                ]
            )
        )
        assert store.exists(JOBS, "default", second_name)
        await wait_for(lambda: "active" not in store.get(CRONJOBS, "default", "nightly")["status"])
        reasons = event_reasons(store, "nightly")
        assert {"SuccessfulCreate", "SawCompletedJob", "SuccessfulDelete"} <= set(reasons)
        # suspend stops scheduling
        store.mutate(CRONJOBS, "default", "nightly", lambda o: o["spec"].update(suspend=True))
        now[0] = datetime(2024, 6, 1, 12, 20, 1, tzinfo=UTC)
        c.check_cronjobs()
        assert len(store.list(JOBS)[0]) == 1
    finally:
        await c.stop()


async def test_cronjob_replace_policy(store: Store, controllers: Controllers) -> None:
    store.create(CRONJOBS, "default", cronjob("rep", "@hourly", concurrencyPolicy="Replace"))
    controllers.check_cronjobs(datetime(2024, 6, 1, 13, 0, 5, tzinfo=UTC))
    (first,) = store.list(JOBS)[0]
    controllers.check_cronjobs(datetime(2024, 6, 1, 14, 0, 5, tzinfo=UTC))
    await wait_for(lambda: not store.exists(JOBS, "default", first["metadata"]["name"]))
    (second,) = store.list(JOBS)[0]
    assert (
        second["metadata"]["name"]
        == f"rep-{int(datetime(2024, 6, 1, 14, tzinfo=UTC).timestamp() // 60)}"
    )


# -- events ------------------------------------------------------------------------
def test_record_event_shape(store: Store) -> None:
    pod = store.create(
        PODS, "team", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    )
    ev = record_event(
        store, pod, "Started", "Started container c", host="node-1", field_path="spec.containers{c}"
    )
    assert ev["metadata"]["name"].startswith("p.") and ev["metadata"]["namespace"] == "team"
    assert ev["involvedObject"] == {
        "kind": "Pod",
        "apiVersion": "v1",
        "name": "p",
        "namespace": "team",
        "uid": pod["metadata"]["uid"],
        "resourceVersion": pod["metadata"]["resourceVersion"],
        "fieldPath": "spec.containers{c}",
    }
    assert ev["source"] == {"component": "kubelet", "host": "node-1"}
    assert ev["count"] == 1 and ev["eventTime"] is None and ev["type"] == "Normal"
    assert ev["firstTimestamp"] == ev["lastTimestamp"] and ev["reportingComponent"] == "kubelet"
    second = record_event(store, pod, "Killing", "Stopping container c")
    assert second["metadata"]["name"] != ev["metadata"]["name"]
