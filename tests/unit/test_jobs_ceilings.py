"""Per-person ceilings of the shared namespace (ceilings.py, pure), and the service's
edges around them: the per-person submission lock, names, quota refusals."""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal

import pytest
from traitlets import TraitError

from valeria_hub.jobs.ceilings import (
    CeilingExceeded,
    check_ceilings,
    demand,
    finished,
    job_footprint,
    missing_limits,
    parse_ceilings,
    pod_footprint,
    show,
    usage,
)
from valeria_hub.jobs.config import JobsServiceApp
from valeria_hub.jobs.kube import KubeError
from valeria_hub.jobs.manifests import Target, build_manifest
from valeria_hub.jobs.naming import name_tag
from valeria_hub.jobs.policy import Rules, check_submission
from valeria_hub.jobs.profiles import parse_profiles
from valeria_hub.jobs.service import Context, ServiceError, job_name, kube_failure
from valeria_hub.jobs.settings import JobsSettings
from valeria_hub.storage import StorageLayout
from valeria_hub.vault import UserProfile

D = Decimal
NS = "hub-jobs"
SMALL = {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
RULES = Rules(profiles=parse_profiles({"small": {"resources": SMALL}}), default_profile="small")


def pod(*containers: dict, init: tuple[dict, ...] = (), snake: bool = False) -> dict:
    key = "init_containers" if snake else "initContainers"
    return {"containers": list(containers), key: list(init)}


def res(requests: dict | None = None, limits: dict | None = None) -> dict:
    return {"name": "c", "resources": {"requests": requests or {}, "limits": limits or {}}}


def job(parallelism: int | None = 1, *, done: str = "", uid: str = "j", owner: str = "") -> dict:
    """A Job as the service lists it (the client's snake_case shape)."""
    conditions = [{"type": done, "status": "True"}] if done else None
    refs = [{"kind": "CronJob", "controller": True, "uid": owner}] if owner else None
    return {
        "metadata": {"uid": uid, "owner_references": refs},
        "spec": {
            "parallelism": parallelism,
            "template": {"spec": pod(res({"cpu": "250m"}, {"memory": "2Gi"}), snake=True)},
        },
        "status": {"conditions": conditions},
    }


def cronjob(uid: str) -> dict:
    template = {"spec": {"template": {"spec": pod(res({"cpu": "500m"}), snake=True)}}}
    return {"metadata": {"uid": uid}, "spec": {"job_template": template}}


# -- the operator's ceilings --------------------------------------------------------------------
def test_the_default_ceilings_are_valid_and_bad_ones_are_refused_by_name():
    defaults = JobsServiceApp().settings().namespaces.ceilings
    assert {"jobs", "cronjobs", "pods", "requests.cpu", "limits.memory"} <= set(defaults)
    assert parse_ceilings({"requests.nvidia.com/gpu": 2, "pods": "4"}) == {
        "requests.nvidia.com/gpu": "2",
        "pods": "4",
    }
    for bad, named in [
        ({"cpu": "4"}, "'cpu'"),
        ({"requests.": "1"}, "'requests.'"),
        ({"requests.cpu": "lots"}, "requests.cpu"),
        ({"jobs": "1.5"}, "jobs"),
        ({"pods": "-1"}, "pods"),
    ]:
        with pytest.raises(ValueError, match=named):
            parse_ceilings(bad)


def test_the_traits_are_checked_when_set_or_at_start():
    with pytest.raises(TraitError, match="user_ceilings: 'cpu'"):
        JobsServiceApp(user_ceilings={"cpu": "4"})
    app = JobsServiceApp(namespace_mode="shared", user_ceilings={"pods": 2})
    assert app.settings().namespaces.ceilings == {"pods": "2"}
    assert app.settings().namespaces.shared_mode
    assert not JobsServiceApp().settings().namespaces.shared_mode
    assert JobsServiceApp().settings().rules.min_requests == {"cpu": "10m", "memory": "32Mi"}
    with pytest.raises(ValueError, match="profile 'small': requests.cpu 250m is below"):
        JobsServiceApp(min_requests={"cpu": "500m"}).settings()
    for trait in ("user_ceilings", "min_requests"):
        assert JobsServiceApp.class_traits()[trait].help


# -- what workloads hold ----------------------------------------------------------------------
def test_a_pod_holds_its_containers_sum_or_its_largest_init_container():
    spec = pod(
        res({"cpu": "250m", "memory": "1Gi"}, {"cpu": "1"}),
        res({"cpu": "250m"}, {"cpu": "1"}),
        init=(res({"cpu": "2"}, {"memory": "3Gi"}),),
    )
    assert pod_footprint(spec) == {
        "requests.cpu": D(2),
        "requests.memory": D(2**30),
        "limits.cpu": D(2),
        "limits.memory": D(3 * 2**30),
    }
    assert pod_footprint(pod(res({"cpu": "1"}), init=(res({"cpu": "1"}),), snake=True)) == {
        "requests.cpu": D(1)
    }


def test_a_job_holds_parallelism_pods_and_a_cronjob_one_run():
    assert job_footprint(job(3)["spec"]) == {
        "jobs": D(1),
        "pods": D(3),
        "requests.cpu": D("0.750"),
        "limits.memory": D(6 * 2**30),
    }
    assert job_footprint(job(None)["spec"])["pods"] == 1  # the API's default
    cj = usage([], [cronjob("c1")])
    assert cj == {"cronjobs": D(1), "jobs": D(1), "pods": D(1), "requests.cpu": D("0.5")}


def test_usage_skips_finished_jobs_and_counts_a_cronjobs_runs_once():
    runs = [job(uid="r1", owner="c1"), job(uid="r2", owner="c1", done="Complete")]
    others = [job(2, uid="a"), job(uid="b", done="Failed"), job(uid="orphan", owner="gone")]
    assert finished(job(done="Complete")) and not finished(job())
    assert not finished({"status": {"conditions": [{"type": "Complete", "status": "False"}]}})
    total = usage(runs + others, [cronjob("c1")])
    # the cronjob (one run reserved) + job a (2 pods) + the orphaned run (1 pod)
    assert total["jobs"] == 3 and total["cronjobs"] == 1 and total["pods"] == 4
    assert total["requests.cpu"] == D("0.5") + D("0.750")


def test_demand_reads_the_services_own_manifests_with_the_unpack_container():
    body = {
        "metadata": {"name": "x"},
        "spec": {
            "parallelism": 2,
            "template": {"spec": {"containers": [{"name": "c", "image": "i", "command": ["t"]}]}},
        },
    }
    checked = check_submission(body, "Job", RULES, NS)
    layout = StorageLayout(nfs_server="nfs", nfs_path="/export")
    profile = UserProfile("alice", "e", 20001, 30001, "AK", "SK")
    target = Target("alice", NS, "x", "x-s3", "x-code", layout.workload(profile, "x-s3"))
    manifest = build_manifest(checked, target, RULES)
    assert manifest["spec"]["template"]["spec"]["initContainers"]  # unpacks the code
    assert demand(manifest) == {
        "jobs": D(1),
        "pods": D(2),
        "requests.cpu": D("0.500"),
        "requests.memory": D(2 * 2**30),
        "limits.cpu": D(2),
        "limits.memory": D(4 * 2**30),
    }
    cron = {
        "metadata": {"name": "x"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": body["spec"]}},
    }
    cron_manifest = build_manifest(check_submission(cron, "CronJob", RULES, NS), target, RULES)
    assert demand(cron_manifest) == {**demand(manifest), "cronjobs": D(1)}


# -- the decision ---------------------------------------------------------------------------------
CEILINGS = {"cronjobs": "1", "jobs": "3", "pods": "4", "requests.cpu": "1", "limits.memory": "6Gi"}


def test_up_to_a_ceiling_passes_and_past_it_is_refused_with_the_figures():
    used = {"jobs": D(2), "pods": D(2), "requests.cpu": D("0.5"), "limits.memory": D(2**32)}
    check_ceilings(CEILINGS, used, {"jobs": D(1), "pods": D(2), "requests.cpu": D("0.5")})
    with pytest.raises(CeilingExceeded) as err:
        check_ceilings(CEILINGS, used, {"jobs": D(1), "pods": D(3)})
    assert err.value.key == "pods"
    assert "ceiling of pods" in err.value.message
    assert "is 4: this job needs 3" in err.value.message and "hold 2" in err.value.message
    with pytest.raises(CeilingExceeded) as err:
        check_ceilings(CEILINGS, used, {"limits.memory": D(3 * 2**30), "cronjobs": D(1)})
    assert err.value.key == "limits.memory"
    assert "is 6Gi: this cronjob needs 3Gi" in err.value.message and "hold 4Gi" in err.value.message


def test_only_what_a_submission_adds_to_is_looked_at():
    over = {"cronjobs": D(5), "jobs": D(3)}  # an operator lowered the ceilings since
    check_ceilings(CEILINGS, over, {"pods": D(1)})
    with pytest.raises(CeilingExceeded, match="ceiling of cronjobs"):
        check_ceilings(CEILINGS, over, {"cronjobs": D(1)})
    check_ceilings({}, over, {"jobs": D(100)})  # no ceilings: nothing is refused


def test_amounts_read_as_people_write_them():
    assert show("requests.cpu", D("1.5")) == "1500m"
    assert show("requests.cpu", D(2)) == "2"
    assert show("limits.memory", D(3 * 2**30)) == "3Gi"
    assert show("limits.memory", D(1536 * 2**20)) == "1536Mi"
    assert show("requests.memory", D(1000)) == "1000"
    assert show("pods", D(4)) == "4"
    assert show("requests.cpu", D("0.0001")) == "0.0001"


def test_a_limit_a_ceiling_needs_is_required():
    containers = [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, {"resources": {}}]
    where = "spec.template.spec"
    assert missing_limits({"limits.cpu": "4"}, containers[:1], where) == ""
    assert (
        missing_limits({"requests.cpu": "4", "limits.memory": "4Gi"}, containers, where)
        == "spec.template.spec.containers[1].resources.limits.memory"
    )
    assert missing_limits({"requests.cpu": "4"}, containers, where) == ""


# -- the service's edges -------------------------------------------------------------------------
def context() -> Context:
    settings = JobsSettings(prefix="/", service_name="jobs", hub_api_url="", hub_api_token="")
    return Context(settings=settings, hub=None, kube=None, vault=None)  # type: ignore[arg-type]


def test_one_lock_per_person_that_goes_when_nobody_holds_it():
    ctx = context()

    async def run() -> None:
        alice = ctx.submissions_of("alice")
        assert ctx.submissions_of("alice") is alice
        assert ctx.submissions_of("bob") is not alice
        order = []

        async def submit(n: int) -> None:
            async with ctx.submissions_of("alice"):
                order.append(("in", n))
                await asyncio.sleep(0.01)
                order.append(("out", n))

        await asyncio.gather(*(submit(n) for n in range(3)))
        assert order == [(s, n) for n in range(3) for s in ("in", "out")]  # never overlapping

    asyncio.run(run())
    gc.collect()
    assert len(ctx.locks) == 0


def test_shared_names_carry_the_tag_and_per_user_names_do_not():
    body = {
        "metadata": {"generateName": "run-"},
        "spec": {"template": {"spec": {"containers": [{"image": "i", "command": ["t"]}]}}},
    }
    checked = check_submission(body, "Job", RULES, NS)
    generated = job_name(checked, "alice")
    assert generated.startswith("run-") and generated.endswith(f"-{name_tag('alice')}")
    assert not job_name(checked).endswith(name_tag("alice"))
    named = check_submission({**body, "metadata": {"name": "x"}}, "Job", RULES, NS)
    assert job_name(named) == "x" and job_name(named, "bob") == f"x-{name_tag('bob')}"


def test_a_quota_refusal_is_the_persons_403_and_other_403s_the_services_503():
    quota = KubeError(
        403,
        'jobs.batch "x" is forbidden: exceeded quota: valeria-jobs-quota, requested: '
        "count/jobs.batch=1, used: count/jobs.batch=100, limited: count/jobs.batch=100",
    )
    answer = kube_failure(quota, "could not create the Job")
    assert isinstance(answer, ServiceError) and answer.status == 403
    assert "limited: count/jobs.batch=100" in answer.message
    rbac = KubeError(403, 'jobs.batch is forbidden: User "x" cannot create resource "jobs"')
    assert kube_failure(rbac, "could not create the Job").status == 503
