"""The jobs service's own OpenAPI document, driven by schemathesis against the running
service (the hub-managed one, through the hub's proxy) with alice's real token: every
operation gets a bounded, deterministic number of generated requests; no answer may be
a 5xx, and every answer must match the document (status, content type, body schema)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.helpers.e2e import browser, running_stack
from tests.helpers.security_stack import managed_hub, own_token, tune_kubelet

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25  # per operation, in CI
RUN: list[str] = []


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


def test_fuzz_examples_figure(live):
    """The README's figure: generated requests sent, and nothing left behind by them."""
    stack, _, _ = live
    print(f"\nfuzz examples run: {len(RUN)} over {len(set(RUN))} operations")
    assert len(set(RUN)) >= 10, sorted(set(RUN))
    jobs = stack.kube.call(stack.kube.store.list, "batch/v1/jobs")[0]
    assert jobs == [], [j["metadata"]["name"] for j in jobs]
