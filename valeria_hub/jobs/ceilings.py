"""Per-person ceilings of the shared namespace: what one person's jobs may hold at once. Pure.

In per-user mode each person's namespace has a ResourceQuota; in the shared namespace
every job shares one, so the service keeps each person under ceilings of their own
(``JobsServiceApp.user_ceilings``) before it creates anything. The keys read like a
quota's: ``jobs``, ``cronjobs``, ``pods`` and ``requests.<resource>`` /
``limits.<resource>`` (``requests.cpu``, ``limits.memory``, ``requests.nvidia.com/gpu``).

What a person holds is counted from the workloads themselves, never from their pods, so
a burst of submissions whose pods do not exist yet counts in full:

- an unfinished Job holds one ``jobs``, ``parallelism`` pods, and that many times its
  pod's requests and limits;
- a CronJob holds one ``cronjobs`` and, from its creation to its deletion, one run's
  worth (one ``jobs``, its pods, requests and limits): at most one run is active at a
  time (``concurrencyPolicy`` Forbid or Replace), so a schedule can never take a person
  past a ceiling, whenever it fires. Its runs are therefore not counted again.

A pod's requests (and limits) are what the scheduler counts: the sum over its
containers, or the largest init container's if that is more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ..quantity import parse_quantity

COUNTS = ("jobs", "cronjobs", "pods")
SECTIONS = ("requests", "limits")
_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))

Usage = dict[str, Decimal]


class CeilingExceeded(Exception):
    """A submission that would take its person past a ceiling; the message has the figures."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def parse_ceilings(raw: Mapping[str, Any]) -> dict[str, str]:
    """The operator's ceilings, checked: ValueError naming the key that cannot be one."""
    out = {}
    for key, value in raw.items():
        key = str(key)
        section, dot, resource = key.partition(".")
        if key not in COUNTS and not (section in SECTIONS and dot and resource):
            raise ValueError(
                f"user_ceilings: {key!r} is not jobs, cronjobs, pods, requests.<resource> "
                "or limits.<resource>"
            )
        try:
            amount = parse_quantity(value)
        except ValueError as e:
            raise ValueError(f"user_ceilings: {key}: {e}") from None
        if key in COUNTS and amount != amount.to_integral_value():
            raise ValueError(f"user_ceilings: {key}: {value!r} is not a whole number")
        out[key] = str(value)
    return out


# -- reading workloads (the API's camelCase and the client's snake_case alike) ------------------
def _get(obj: Any, camel: str, snake: str | None = None) -> Any:
    if not isinstance(obj, Mapping):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None and snake else value


def _amounts(containers: Any, section: str) -> Usage:
    """Per resource, the sum of the containers' requests (or limits) in ``section``."""
    total: Usage = {}
    for c in containers or []:
        for key, value in (_get(_get(c, "resources"), section) or {}).items():
            total[key] = total.get(key, Decimal(0)) + parse_quantity(value)
    return total


def pod_footprint(pod_spec: Any) -> Usage:
    """``requests.<r>`` and ``limits.<r>`` of one pod, as the scheduler counts them."""
    containers = _get(pod_spec, "containers")
    inits = _get(pod_spec, "initContainers", "init_containers") or []
    out: Usage = {}
    for section in SECTIONS:
        amounts = _amounts(containers, section)
        for init in inits:
            for key, value in _amounts([init], section).items():
                amounts[key] = max(amounts.get(key, Decimal(0)), value)
        out.update({f"{section}.{key}": value for key, value in amounts.items()})
    return out


def job_footprint(job_spec: Any) -> Usage:
    """One ``jobs``, its pods at once (``parallelism``) and their requests and limits."""
    parallelism = _get(job_spec, "parallelism")
    pods = parallelism if isinstance(parallelism, int) and parallelism >= 0 else 1
    pod = pod_footprint(_get(_get(job_spec, "template"), "spec"))
    out = {key: value * pods for key, value in pod.items()}
    out.update(jobs=Decimal(1), pods=Decimal(pods))
    return out


def cronjob_footprint(cron_spec: Any) -> Usage:
    """One ``cronjobs`` and the one run it may have at a time."""
    template = _get(cron_spec, "jobTemplate", "job_template")
    return {**job_footprint(_get(template, "spec")), "cronjobs": Decimal(1)}


def finished(job: Mapping[str, Any]) -> bool:
    """True once the Job is Complete or Failed: its pods hold nothing any more."""
    conditions = _get(_get(job, "status"), "conditions") or []
    return any(
        _get(c, "type") in ("Complete", "Failed") and _get(c, "status") == "True"
        for c in conditions
    )


def _controller_uid(obj: Mapping[str, Any]) -> str | None:
    refs = _get(_get(obj, "metadata"), "ownerReferences", "owner_references") or []
    for ref in refs:
        if _get(ref, "controller") and _get(ref, "kind") == "CronJob":
            return _get(ref, "uid")
    return None


def _add(total: Usage, more: Mapping[str, Decimal]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, Decimal(0)) + value


def usage(jobs: Iterable[Mapping[str, Any]], cronjobs: Iterable[Mapping[str, Any]]) -> Usage:
    """What one person's workloads hold (see the module's doc): their CronJobs, each
    with one run, and their unfinished Jobs other than those runs."""
    total: Usage = {}
    reserved = set()
    for cj in cronjobs:
        reserved.add(_get(_get(cj, "metadata"), "uid"))
        _add(total, cronjob_footprint(_get(cj, "spec")))
    for job in jobs:
        if finished(job) or _controller_uid(job) in reserved - {None}:
            continue
        _add(total, job_footprint(_get(job, "spec")))
    return total


def demand(manifest: Mapping[str, Any]) -> Usage:
    """What a new Job or CronJob (the service's manifest) would hold."""
    if manifest.get("kind") == "CronJob":
        return cronjob_footprint(manifest.get("spec"))
    return job_footprint(manifest.get("spec"))


# -- the decision -----------------------------------------------------------------------------
def show(key: str, amount: Decimal) -> str:
    """An amount as people write it: ``1500m`` CPU, ``3Gi`` of memory, ``4`` pods."""
    if amount == amount.to_integral_value():
        whole = int(amount)
        if key.endswith(("memory", "storage")):
            for suffix, size in _BINARY:
                if whole and whole % size == 0:
                    return f"{whole // size}{suffix}"
        return str(whole)
    milli = amount * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return format(amount.normalize(), "f")


def check_ceilings(ceilings: Mapping[str, str], used: Usage, wanted: Usage) -> None:
    """Refuse (CeilingExceeded) a submission that would take ``used`` past a ceiling.

    Only ceilings the submission adds to are looked at (like a ResourceQuota), so
    lowering a ceiling below what someone holds stops their new work, not the rest.
    """
    for key, text in ceilings.items():
        want = wanted.get(key, Decimal(0))
        if not want:
            continue
        limit = parse_quantity(text)
        have = used.get(key, Decimal(0))
        if have + want > limit:
            what = "job" if "cronjobs" not in wanted else "cronjob"
            raise CeilingExceeded(
                key,
                f"your ceiling of {key} in the shared namespace is {show(key, limit)}: this "
                f"{what} needs {show(key, want)} and your jobs and cronjobs hold "
                f"{show(key, have)}; wait for a job to finish or delete one",
            )


def missing_limits(
    ceilings: Mapping[str, str], containers: Iterable[Mapping[str, Any]], where: str
) -> str:
    """The field of the first limit a ceiling needs that a container leaves unset ("": none);
    ``where`` is the pod spec's path (``spec.template.spec``).

    A container without a limit is unbounded, so a ceiling on ``limits.cpu`` could not
    hold (a ResourceQuota refuses such pods too).
    """
    needed = [key.partition(".")[2] for key in ceilings if key.startswith("limits.")]
    for i, c in enumerate(containers):
        limits = _get(_get(c, "resources"), "limits") or {}
        for resource in needed:
            if resource not in limits:
                return f"{where}.containers[{i}].resources.limits.{resource}"
    return ""
