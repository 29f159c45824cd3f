"""``?view=summary``: each item of a list cut to what our clients' tables show, under the
to_dict() keys (valeria_hub/jobs/listbody.py ``summary``). The same table comes out of a
summary as out of the whole object; its deflated list decodes to exactly its plain list.
The cache's side (summaries kept current by the watch) is in test_jobs_cache.py."""

from __future__ import annotations

import datetime as dt
import json
import zlib
from typing import Any

import httpx
import pytest

from valeria_hub.jobs.listbody import (
    Piece,
    deflated_list_chunks,
    list_body,
    list_chunks,
    summary,
)
from valeria_hub.jobs.shapes import client_shape
from valeria_hub.jobs_client.tables import cronjobs_table, jobs_table

CONTAINER = {
    "name": "job",
    "image": "python:3.11",
    "command": ["/bin/sh", "-c", "echo hi"],
    "env": [{"name": "GREETING", "value": "hello"}],
    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
}


def raw_job(i: int, *, done: bool = True) -> dict[str, Any]:
    """A Job as the API server gives it (camelCase), finished or running."""
    status: dict[str, Any] = {"startTime": "2026-03-01T10:00:05Z", "ready": 0}
    if done:
        status |= {
            "succeeded": 1,
            "completionTime": "2026-03-01T10:01:10Z",
            "conditions": [
                {
                    "type": "Complete",
                    "status": "True",
                    "lastProbeTime": "2026-03-01T10:01:10Z",
                    "lastTransitionTime": "2026-03-01T10:01:10Z",
                }
            ],
        }
    else:
        status["active"] = 1
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"job-{i:04d}",
            "namespace": "valeria-jobs-alice-1234",
            "uid": f"uid-{i:04d}",
            "resourceVersion": str(100 + i),
            "creationTimestamp": "2026-03-01T10:00:00Z",
            "labels": {"valeria.io/owner": "alice-abc"},
            "annotations": {"valeria.io/username": "alice"},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [CONTAINER]}},
        },
        "status": status,
    }


def raw_cronjob(i: int, *, running: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"lastScheduleTime": "2026-03-01T03:00:00Z"}
    if running:
        status["active"] = [
            {"kind": "Job", "name": f"nightly-{i}-29012", "namespace": "ns", "uid": "u-run"}
        ]
    return {
        "metadata": {
            "name": f"nightly-{i}",
            "namespace": "ns",
            "uid": f"cuid-{i}",
            "creationTimestamp": "2026-02-01T00:00:00Z",
        },
        "spec": {
            "schedule": "0 3 * * *",
            "suspend": i % 2 == 1,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [CONTAINER]}}}},
        },
        "status": status,
    }


def job(i: int, **kw: Any) -> dict[str, Any]:
    return client_shape(raw_job(i, **kw), "V1Job")


def cronjob(i: int, **kw: Any) -> dict[str, Any]:
    return client_shape(raw_cronjob(i, **kw), "V1CronJob")


def test_a_jobs_summary_is_its_names_times_counts_and_conditions():
    assert summary("Job", job(7)) == {
        "api_version": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "job-0007",
            "namespace": "valeria-jobs-alice-1234",
            "uid": "uid-0007",
            "creation_timestamp": "2026-03-01T10:00:00+00:00",
        },
        "status": {
            "active": None,
            "succeeded": 1,
            "failed": None,
            "start_time": "2026-03-01T10:00:05+00:00",
            "completion_time": "2026-03-01T10:01:10+00:00",
            "conditions": [
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": None,
                    "message": None,
                    "last_transition_time": "2026-03-01T10:01:10+00:00",
                }
            ],
        },
    }


def test_a_cronjobs_summary_is_its_schedule_suspension_runs_and_last_run():
    assert summary("CronJob", cronjob(1, running=True)) == {
        "api_version": None,
        "kind": None,
        "metadata": {
            "name": "nightly-1",
            "namespace": "ns",
            "uid": "cuid-1",
            "creation_timestamp": "2026-02-01T00:00:00+00:00",
        },
        "spec": {"schedule": "0 3 * * *", "suspend": True},
        "status": {
            "active": [{"name": "nightly-1-29012", "namespace": "ns", "uid": "u-run"}],
            "last_schedule_time": "2026-03-01T03:00:00+00:00",
        },
    }


@pytest.mark.parametrize("kind", ["Job", "CronJob"])
def test_an_item_with_nothing_set_has_every_key_of_its_summary(kind):
    """As to_dict() does: a reader indexing a key never meets a KeyError."""
    empty = summary(kind, {"metadata": {"name": "x"}})
    full = summary(kind, job(1) if kind == "Job" else cronjob(1, running=True))
    assert empty["metadata"]["name"] == "x"

    def keys(value: Any, path: str = "") -> set[str]:
        if isinstance(value, dict):
            return {f"{path}.{k}" for k in value} | {
                key for k, v in value.items() for key in keys(v, f"{path}.{k}")
            }
        return set()

    assert keys(empty) == {k for k in keys(full) if k.count(".") <= 2}  # lists: None


def test_the_tables_read_the_same_from_summaries_as_from_whole_objects():
    now = dt.datetime(2026, 3, 1, 10, 5, tzinfo=dt.UTC)
    jobs = [job(1), job(2, done=False)]
    assert jobs_table([summary("Job", j) for j in jobs], now) == jobs_table(jobs, now)
    crons = [cronjob(1, running=True), cronjob(2)]
    assert cronjobs_table([summary("CronJob", c) for c in crons]) == cronjobs_table(crons)


def test_a_summary_is_a_small_part_of_the_item():
    whole, small = len(Piece.of(job(1)).raw), len(Piece.summary_of("Job", job(1)).raw)
    assert small < whole / 4, (small, whole)


@pytest.mark.parametrize("count", [0, 1, 2, 300])
def test_the_deflated_summary_list_decodes_to_exactly_the_plain_summary_list(count):
    items = [job(i, done=i % 3 != 0) for i in range(count)]
    pieces = [Piece.summary_of("Job", i) for i in items]
    plain = b"".join(list_chunks("Job", {"resource_version": "5"}, pieces, size=1000)[1])
    assert plain == list_body("Job", {"resource_version": "5"}, [p.raw for p in pieces])
    assert json.loads(plain)["items"] == [summary("Job", i) for i in items]
    stream = b"".join(deflated_list_chunks("Job", {"resource_version": "5"}, pieces, size=1000)[1])
    assert zlib.decompress(stream) == plain  # the zlib header and the Adler-32 checked
    decoded = httpx.Response(200, headers={"Content-Encoding": "deflate"}, content=stream).read()
    assert decoded == plain
