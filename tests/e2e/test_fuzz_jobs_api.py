"""The jobs service's own OpenAPI document, driven by schemathesis against the running
service (the hub-managed one, through the hub's proxy) with alice's real token: every
operation gets a bounded, deterministic number of generated requests; no answer may be
a 5xx, and every answer must match the document (status, content type, body schema).

The document says only that ``job`` is an object, so schemathesis alone rarely reaches
the numbers inside a job spec: the submit operations also get jobs and cronjobs whose
integer and quantity fields hold generated malformed values (bools, floats, strings,
NaN and infinities, huge and negative numbers, exponents Kubernetes would misread),
sent as JSON text that may carry NaN; each must be a 422 naming that field."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers.e2e import browser, running_stack
from tests.helpers.security_stack import job_body, managed_hub, own_token, tune_kubelet

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25  # per operation, in CI
MALFORMED_EXAMPLES = 60  # per submit operation, besides the explicit examples
RUN: list[str] = []
MALFORMED_RUN: list[str] = []


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    with running_stack(tmp) as stack:
        tune_kubelet(stack)
        with managed_hub(stack, tmp / "hub") as hub:
            client = browser(hub, "alice")
            token = own_token(client, hub.public_url, "alice")
            client.close()
            yield stack, hub, token


@pytest.fixture(scope="module")
def api_schema(live):
    _, hub, token = live
    resp = httpx.get(
        f"{hub.public_url}/services/jobs/openapi.json",
        headers={"Authorization": f"token {token}"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    return schemathesis.openapi.from_dict(resp.json())


def fuzz(operation, base_url: str, token: str) -> None:
    """MAX_EXAMPLES generated requests to one operation; raises what schemathesis finds."""

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same examples on every run
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy())
    def run(case) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"token {token}"},
            timeout=30,
            # `job` is a free-form object in the document; the allow-list refuses most
            # schema-valid ones with a 422 that names the field (test_hostile_inputs)
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )
        RUN.append(operation.label)

    run()


def test_every_operation_answers_within_its_schema(api_schema, live):
    """Every operation of the document (schemathesis's pytest plugin does not load under
    pytest 9, so hypothesis drives schemathesis's strategies directly)."""
    _, hub, token = live
    failures = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        try:
            fuzz(operation, hub.public_url, token)
        except Exception as e:  # noqa: BLE001 - collected, reported together below
            failures[operation.label] = str(e)[:2000]
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


# -- malformed numbers inside job specs ------------------------------------------------------
POD = "spec.template.spec"
# (path, the largest value the default rules allow): everything above is refused too
JOB_INTEGERS = {
    "spec.activeDeadlineSeconds": 24 * 3600,
    "spec.ttlSecondsAfterFinished": 30 * 24 * 3600,
    "spec.backoffLimit": 6,
    "spec.parallelism": 4,
    "spec.completions": 4,
    f"{POD}.terminationGracePeriodSeconds": 300,
}
CRON_INTEGERS = {
    "spec.startingDeadlineSeconds": 24 * 3600,
    "spec.successfulJobsHistoryLimit": 10,
    "spec.failedJobsHistoryLimit": 10,
    **{f"spec.jobTemplate.{k}": v for k, v in JOB_INTEGERS.items()},
}
QUANTITIES = [
    f"{POD}.containers.0.resources.{section}.{resource}"
    for section in ("requests", "limits")
    for resource in ("cpu", "memory", "ephemeral-storage")
]
SUFFIX = st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ei"])
DIGITS = st.from_regex(r"[0-9]{1,6}(\.[0-9]{0,3})?", fullmatch=True)
NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
ODD_TYPES = st.one_of(
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.sampled_from(["value", "amount"]), st.integers(0, 9), max_size=1),
)


def bad_integer(high: int) -> st.SearchStrategy[Any]:
    """Never a valid value for an integer field whose range ends at ``high``."""
    return st.one_of(
        ODD_TYPES,
        NOT_FINITE,
        st.floats(allow_nan=False, allow_infinity=False),  # 60.0 is no integer either
        st.integers(max_value=-1),
        st.integers(min_value=high + 1, max_value=10**4000),
        st.integers(-(10**6), 10**6).map(str),
        st.text(max_size=8),
    )


def bad_quantity() -> st.SearchStrategy[Any]:
    """Never a valid value for cpu, memory or ephemeral-storage under the default caps."""
    return st.one_of(
        ODD_TYPES,
        NOT_FINITE,
        st.integers(max_value=-1),
        st.floats(max_value=-1e-9, allow_infinity=False),
        st.tuples(DIGITS, SUFFIX).map(lambda t: f"-{t[0]}{t[1]}"),  # negative sizes
        st.integers(min_value=10**19, max_value=10**4000),  # above every cap
        st.integers(19, 1000).map(lambda e: f"1e{e}"),
        st.integers(1001, 10**30).map(lambda e: f"1e{e}"),  # exponents out of range
        st.integers(1001, 10**30).map(lambda e: f"1e-{e}"),
        st.integers(101, 20_000).map(lambda n: "9" * n),  # longer than any quantity
        st.sampled_from(["NaN", "Infinity", "-Infinity", "inf", "1e", "1.5e3Gi", "0x10", "١"]),
        st.text(max_size=8).map(lambda t: "x" + t),
    )


def field_name(path: str) -> str:
    """``spec.template.spec.containers.0.resources`` -> ``...containers[0].resources``."""
    return path.replace(".containers.0.", ".containers[0].")


def put(body: dict, path: str, value: Any) -> dict:
    body = copy.deepcopy(body)
    obj = body
    *parts, last = path.split(".")
    for p in parts:
        obj = obj[int(p)] if p.isdigit() else obj.setdefault(p, {})
    obj[last] = value
    return body


def spec_for(kind: str) -> dict:
    job = job_body("true", "fuzzed")["job"]
    if kind == "Job":
        return job
    spec = {"schedule": "0 3 * * *", "jobTemplate": {"spec": job["spec"]}}
    return {**job, "kind": "CronJob", "spec": spec}


def malformed(kind: str) -> st.SearchStrategy[tuple[str, Any]]:
    """(path, value): one malformed number in an otherwise valid spec of ``kind``."""
    integers = JOB_INTEGERS if kind == "Job" else CRON_INTEGERS
    quantities = QUANTITIES if kind == "Job" else [f"spec.jobTemplate.{q}" for q in QUANTITIES]
    return st.one_of(
        st.sampled_from(sorted(integers)).flatmap(
            lambda p: st.tuples(st.just(p), bad_integer(integers[p]))
        ),
        st.sampled_from(quantities).flatmap(lambda p: st.tuples(st.just(p), bad_quantity())),
    )


def fuzz_malformed(operation, kind: str, base_url: str, token: str) -> None:
    """MALFORMED_EXAMPLES generated (and a few explicit) malformed numbers, one per request."""
    first = sorted(JOB_INTEGERS if kind == "Job" else CRON_INTEGERS)[0]

    @settings(
        max_examples=MALFORMED_EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(bad=malformed(kind))
    @example(bad=(first, math.nan))
    @example(bad=(first, 10**4000))
    @example(
        bad=(QUANTITIES[0] if kind == "Job" else f"spec.jobTemplate.{QUANTITIES[0]}", "1e999999")
    )
    @example(
        bad=(QUANTITIES[-1] if kind == "Job" else f"spec.jobTemplate.{QUANTITIES[-1]}", "-1Gi")
    )
    def run(bad: tuple[str, Any]) -> None:
        path, value = bad
        raw = json.dumps({"job": put(spec_for(kind), path, value)}, allow_nan=True).encode()
        case = operation.Case(body=raw, media_type="application/json")
        response = case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"token {token}"},
            timeout=30,
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )
        assert response.status_code == 422, (path, value, response.text[:300])
        detail = response.json()["detail"]
        where = field_name(path)
        assert isinstance(detail, str) and detail.startswith(f"{where}: "), (where, detail)
        MALFORMED_RUN.append(f"{operation.label} {path}")

    run()


def test_malformed_numbers_in_job_specs_are_422_naming_the_field(api_schema, live):
    _, hub, token = live
    operations = {r.ok().label: r.ok() for r in api_schema.get_all_operations()}
    submit = {k: v for k, v in operations.items() if k.startswith("POST")}
    kinds = {"Job": "jobs/", "CronJob": "cronjobs/"}
    for kind, path in kinds.items():
        operation = next(op for label, op in submit.items() if label.endswith("/" + path))
        fuzz_malformed(operation, kind, hub.public_url, token)
    assert len(MALFORMED_RUN) >= 2 * MALFORMED_EXAMPLES, len(MALFORMED_RUN)


def test_fuzz_examples_figure(live):
    """The README's figure: generated requests sent, and nothing left behind by them."""
    stack, _, _ = live
    print(
        f"\nfuzz examples run: {len(RUN) + len(MALFORMED_RUN)} ({len(RUN)} over "
        f"{len(set(RUN))} operations, {len(MALFORMED_RUN)} malformed numbers in job specs)"
    )
    assert len(set(RUN)) >= 10, sorted(set(RUN))
    jobs = stack.kube.call(stack.kube.store.list, "batch/v1/jobs")[0]
    assert jobs == [], [j["metadata"]["name"] for j in jobs]
