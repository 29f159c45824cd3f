"""The jobs policy (pure) against hostile metadata and numbers: labels and annotations only
under user.valeria.io/ wherever a spec carries them, and every malformed number or
quantity a PolicyError naming its field (the service answers it with a 422)."""

from __future__ import annotations

import copy
import math
import re

import kubernetes.client as k8s
import kubernetes_validate
import pytest

from tests.unit.test_jobs_policy import K8S_VERSION, NS, RULES, C, job, set_path, target
from valeria_hub.jobs.labels import OWNER_LABEL, USERNAME_ANNOTATION
from valeria_hub.jobs.manifests import build_manifest
from valeria_hub.jobs.naming import owner_label
from valeria_hub.jobs.policy import PolicyError, Rules, check_submission
from valeria_hub.jobs.profiles import parse_profiles


def cronjob() -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": job()["spec"]}},
    }


def refused(body: dict, kind: str = "Job", rules: Rules = RULES) -> str:
    with pytest.raises(PolicyError) as err:
        check_submission(body, kind, rules, NS)
    return str(err.value)


# -- labels and annotations -------------------------------------------------------------------
# (kind, path of the metadata in the spec)
METADATA = [
    ("Job", "metadata"),
    ("Job", "spec.template.metadata"),
    ("CronJob", "metadata"),
    ("CronJob", "spec.jobTemplate.metadata"),
    ("CronJob", "spec.jobTemplate.spec.template.metadata"),
]
# keys something else reads: selectors, the Job controller, CNIs, meshes, security profiles
NOT_USER_KEYS = [
    "component",  # the template's NetworkPolicies select singleuser-server pods on it
    "app",
    "team",  # a plain key no one reads today, but an operator's policy may tomorrow
    "app.kubernetes.io/component",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    OWNER_LABEL,
    USERNAME_ANNOTATION,
    "valeria.io/job",
    "job-name",
    "controller-uid",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/controller-uid",
    "k8s.v1.cni.cncf.io/networks",
    "sidecar.istio.io/inject",
    "container.apparmor.security.beta.kubernetes.io/job",
    "seccomp.security.alpha.kubernetes.io/pod",
    "hub.jupyter.org/network-access-hub",
    "pod-security.kubernetes.io/enforce",
    "openshift.io/scc",
    "USER.valeria.io/x",
    "xuser.valeria.io/x",
    "user.valeria.io",
    "user.valeria.io/",
    "user.valeria.io/a/b",
    "user.valeria.io/-x",
    "user.valeria.io/x y",
    "user.valeria.io/" + "x" * 64,
    "user.valeria.io/\u202ex",
]


@pytest.mark.parametrize(("kind", "where"), METADATA)
@pytest.mark.parametrize("section", ["labels", "annotations"])
@pytest.mark.parametrize("key", NOT_USER_KEYS)
def test_only_user_keys_may_be_set(kind, where, section, key):
    body = cronjob() if kind == "CronJob" else job()
    set_path(body, f"{where}.{section}", {key: "x"})
    message = refused(body, kind)
    shown = key if len(key) <= 80 else key[:77] + "..."
    assert message.startswith(f"{where}.{section}["), message
    if key.isascii():
        assert f'{section}["{shown}"]' in message, message
    assert "user.valeria.io/" in message


def test_refusals_say_what_to_use_instead():
    body = job(**{"spec.template.metadata.labels": {"component": "singleuser-server"}})
    assert refused(body) == (
        'spec.template.metadata.labels["component"]: only keys under user.valeria.io/ may be '
        "set (e.g. user.valeria.io/component): other keys are read by selectors, admission, "
        "the network or a service mesh"
    )
    body = job(**{"metadata.labels": {OWNER_LABEL: "bob-1234"}})
    assert refused(body) == (
        'metadata.labels["valeria.io/owner"]: set by the platform; use a key under user.valeria.io/'
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (1, "must be a string"),
        (True, "must be a string"),
        ({"a": "b"}, "must be a string"),
        ("x" * 64, "at most 63"),
        ("two words", "at most 63"),
        ("-lead", "at most 63"),
        ("ünï", "at most 63"),
        ("a\n", "at most 63"),
    ],
)
def test_label_values_the_api_server_would_refuse(value, why):
    body = job(**{"spec.template.metadata.labels": {"user.valeria.io/team": value}})
    message = refused(body)
    assert message.startswith('spec.template.metadata.labels["user.valeria.io/team"]: ')
    assert why in message


def test_annotations_are_free_text_within_the_api_servers_total():
    body = job(**{"metadata.annotations": {"user.valeria.io/note": "any text, even ünï\n"}})
    assert check_submission(body, "Job", RULES, NS).annotations
    body = job(**{"metadata.annotations": {"user.valeria.io/note": "x" * 300_000}})
    assert refused(body).startswith("metadata.annotations: may hold at most 262144 bytes")


@pytest.mark.parametrize("bad", [[], "labels", 5])
def test_a_label_map_must_be_a_map(bad):
    assert refused(job(**{"metadata.labels": bad})).startswith("metadata.labels: ")


def test_user_keys_go_everywhere_and_the_platforms_labels_still_go_on():
    mine = {"user.valeria.io/team": "a", "user.valeria.io/run": "r-1"}
    note = {"user.valeria.io/note": "hello"}
    body = cronjob()
    for _, where in METADATA[2:]:
        set_path(body, f"{where}.labels", dict(mine))
        set_path(body, f"{where}.annotations", dict(note))
    checked = check_submission(body, "CronJob", RULES, NS)
    manifest = build_manifest(checked, target("nightly"), RULES)
    jt = manifest["spec"]["jobTemplate"]
    platform = {OWNER_LABEL: owner_label("alice"), "app.kubernetes.io/managed-by": "valeria-jobs"}
    for meta in (manifest["metadata"], jt["metadata"], jt["spec"]["template"]["metadata"]):
        assert meta["labels"] == {**mine, **platform}
        assert meta["annotations"] == {**note, USERNAME_ANNOTATION: "alice"}
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_kbatch_to_dict_metadata_with_nones_and_user_keys():
    """kbatch sends V1ObjectMeta.to_dict(): every field, None where unset."""
    meta = k8s.V1ObjectMeta(generate_name="hello-", labels=None, annotations=None).to_dict()
    body = job()
    body["metadata"] = meta
    body["spec"]["template"]["metadata"] = k8s.V1ObjectMeta(
        name="hello-pod", labels={"user.valeria.io/team": "a"}, annotations={}
    ).to_dict()
    checked = check_submission(body, "Job", RULES, NS)
    assert checked.labels == {} and checked.template_labels == {"user.valeria.io/team": "a"}
    body["spec"]["template"]["metadata"]["labels"] = {"app": "x", "user.valeria.io/b": None}
    assert refused(body).startswith('spec.template.metadata.labels["app"]')


# -- numbers ----------------------------------------------------------------------------------
NOT_INTEGERS = [
    True,
    False,
    1.0,
    1.5,
    math.nan,
    math.inf,
    -math.inf,
    1e999,  # what JSON's 1e999 becomes
    "1",
    "3600",
    "",
    [1],
    {"value": 1},
]
OUT_OF_RANGE = [-1, -(10**30), 10**30, 10**4000, 2**63, 2**31]
JOB_INTEGERS = [
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "backoffLimit",
    "parallelism",
    "completions",
    "template.spec.terminationGracePeriodSeconds",
]
CRON_INTEGERS = ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"]


@pytest.mark.parametrize("value", NOT_INTEGERS + OUT_OF_RANGE, ids=repr)
@pytest.mark.parametrize("name", JOB_INTEGERS)
def test_job_integers_are_checked_by_name(name, value):
    message = refused(job(**{f"spec.{name}": value}))
    assert message.startswith(f"spec.{name}: must be "), message
    cron = cronjob()
    set_path(cron, f"spec.jobTemplate.spec.{name}", value)
    assert refused(cron, "CronJob").startswith(f"spec.jobTemplate.spec.{name}: must be ")


@pytest.mark.parametrize("value", NOT_INTEGERS + OUT_OF_RANGE, ids=repr)
@pytest.mark.parametrize("name", CRON_INTEGERS)
def test_cron_integers_are_checked_by_name(name, value):
    cron = cronjob()
    set_path(cron, f"spec.{name}", value)
    assert refused(cron, "CronJob").startswith(f"spec.{name}: must be ")


def test_integers_in_range_pass():
    body = job(
        **{
            "spec.activeDeadlineSeconds": 60,
            "spec.backoffLimit": 2,
            "spec.parallelism": 2,
            "spec.completions": 4,
            "spec.ttlSecondsAfterFinished": 0,
            "spec.template.spec.terminationGracePeriodSeconds": 0,
        }
    )
    spec = check_submission(body, "Job", RULES, NS).job_spec
    assert spec["activeDeadlineSeconds"] == 60 and spec["ttlSecondsAfterFinished"] == 0


MALFORMED_QUANTITIES = [
    "-1",
    "-500m",
    -1,
    -0.5,
    "NaN",
    "Infinity",
    math.nan,
    math.inf,
    1e999,
    "1e999999",
    "1e-999999999999",
    "50e999999",
    "9" * 10_000,
    "1e" + "9" * 90,
    "1e19",
    10**30,
    "8Ei",
    True,
    [],
    {"amount": 1},
    "",
    "lots",
    "1.5e3Gi",
    "١٢",
]
RESOURCE_FIELDS = [
    f"{s}.{r}" for s in ("requests", "limits") for r in ("cpu", "memory", "ephemeral-storage")
]


@pytest.mark.parametrize("value", MALFORMED_QUANTITIES, ids=lambda v: repr(v)[:24])
@pytest.mark.parametrize("name", RESOURCE_FIELDS)
def test_malformed_quantities_are_refused_by_field(name, value):
    section, resource = name.split(".", 1)
    body = job(**{f"{C}.resources": {section: {resource: value}}})
    message = refused(body)
    assert message.startswith(f"spec.template.spec.containers[0].resources.{name}: "), message
    assert len(message) < 200


def test_gpus_come_whole_and_requested_as_limited():
    """Extended resources: the API server refuses fractions and requests below limits."""
    body = job(**{f"{C}.resources": {"limits": {"nvidia.com/gpu": "0.5"}}})
    with pytest.raises(PolicyError, match=r"limits\.nvidia\.com/gpu: 0\.5 is not a whole"):
        check_submission(body, "Job", RULES, NS, "gpu")
    body = job(**{f"{C}.resources": {"requests": {"nvidia.com/gpu": "0"}}})
    with pytest.raises(PolicyError, match=r"requests\.nvidia\.com/gpu: must equal the limit"):
        check_submission(body, "Job", RULES, NS, "gpu")


def test_a_resources_section_must_be_a_map():
    for bad in ([], "1", 0):
        body = job(**{f"{C}.resources": {"limits": bad}})
        assert refused(body).startswith("spec.template.spec.containers[0].resources.limits: ")
    assert refused(job(**{f"{C}.resources": 0})).startswith(
        "spec.template.spec.containers[0].resources: "
    )


def test_operator_caps_that_are_no_quantity_fail_at_start():
    with pytest.raises(ValueError, match="max_resources: cpu: not a quantity"):
        Rules(max_resources={"cpu": "lots"})


# -- minimum requests and bounded cronjobs -----------------------------------------------------
BARE = Rules(profiles=parse_profiles({"bare": {"description": "no resources"}}))


def test_a_container_without_requests_gets_its_limit_or_the_minimum():
    body = job(**{f"{C}.resources": {"limits": {"cpu": "2"}}})
    resources = check_submission(body, "Job", BARE, NS).containers[0]["resources"]
    assert resources == {"requests": {"cpu": "2", "memory": "32Mi"}, "limits": {"cpu": "2"}}
    resources = check_submission(job(), "Job", BARE, NS).containers[0]["resources"]
    assert resources == {"requests": {"cpu": "10m", "memory": "32Mi"}}
    # a profile's requests stay as they are
    profile = check_submission(job(), "Job", RULES, NS).containers[0]["resources"]
    assert profile["requests"] == {"cpu": "250m", "memory": "1Gi"}


@pytest.mark.parametrize(
    "resources, field",
    [
        ({"requests": {"cpu": "1m"}}, "requests.cpu: 1m is below the minimum of 10m"),
        ({"requests": {"cpu": "0"}}, "requests.cpu: 0 is below the minimum of 10m"),
        ({"requests": {"memory": "1Mi"}}, "requests.memory: 1Mi is below the minimum of 32Mi"),
        (
            {"limits": {"memory": "16Mi"}},
            "limits.memory: 16Mi is below the minimum request of 32Mi",
        ),
        ({"limits": {"cpu": "5m"}}, "limits.cpu: 5m is below the minimum request of 10m"),
    ],
)
def test_requests_below_the_minimum_are_refused_by_field(resources, field):
    for rules in (BARE, RULES):
        body = job(**{f"{C}.resources": resources})
        assert refused(body, rules=rules) == f"spec.template.spec.containers[0].resources.{field}"


def test_minimums_and_profiles_that_do_not_fit_fail_at_start():
    with pytest.raises(ValueError, match="min_requests: 'gpu'"):
        Rules(min_requests={"gpu": "1"})
    with pytest.raises(ValueError, match="min_requests: cpu: not a quantity"):
        Rules(min_requests={"cpu": "some"})
    with pytest.raises(ValueError, match="above max_resources"):
        Rules(min_requests={"cpu": "9"})
    tiny = parse_profiles({"tiny": {"resources": {"requests": {"cpu": "1m"}}}})
    with pytest.raises(ValueError, match="profile 'tiny': requests.cpu 1m is below min_requests"):
        Rules(profiles=tiny)
    assert Rules(profiles=tiny, min_requests={}).profile("tiny").requests == {"cpu": "1m"}


def test_a_cronjob_runs_one_at_a_time():
    assert check_submission(cronjob(), "CronJob", RULES, NS).cron_spec["concurrencyPolicy"] == (
        "Forbid"
    )
    for policy in ("Forbid", "Replace"):
        cron = cronjob()
        cron["spec"]["concurrencyPolicy"] = policy
        checked = check_submission(cron, "CronJob", RULES, NS)
        assert checked.cron_spec["concurrencyPolicy"] == policy
    for policy in ("Allow", "allow", None, 1):
        cron = cronjob()
        cron["spec"]["concurrencyPolicy"] = policy
        if policy is None:  # kbatch's to_dict() None: unset, the default
            continue
        assert refused(cron, "CronJob").startswith("spec.concurrencyPolicy: must be Forbid or")
    cron = cronjob()
    cron["spec"]["successfulJobsHistoryLimit"] = 11
    assert refused(cron, "CronJob") == "spec.successfulJobsHistoryLimit: must be between 0 and 10"


# -- env valueFrom ----------------------------------------------------------------------------
ENV = f"{C}.env"
WHERE = "spec.template.spec.containers[0].env[0].valueFrom"


def env_from(source) -> dict:
    return job(**{ENV: [{"name": "X", "valueFrom": source}]})


def rf(**ref) -> dict:
    return {"resourceFieldRef": {"resource": "limits.cpu", **ref}}


@pytest.mark.parametrize(
    ("source", "field"),
    [
        (rf(divisor="1e999999"), ".resourceFieldRef.divisor"),
        (rf(divisor="-1"), ".resourceFieldRef.divisor"),
        (rf(divisor=math.nan), ".resourceFieldRef.divisor"),
        (rf(divisor="0"), ".resourceFieldRef.divisor"),
        (rf(divisor="1Ki"), ".resourceFieldRef.divisor"),
        (rf(resource="limits.memory", divisor="3"), ".resourceFieldRef.divisor"),
        (rf(resource="limits.nvidia.com/gpu"), ".resourceFieldRef.resource"),
        (rf(resource=5), ".resourceFieldRef.resource"),
        (rf(containerName=1), ".resourceFieldRef.containerName"),
        (rf(x=1), ".resourceFieldRef.x"),
        ({"fieldRef": {"fieldPath": 5}}, ".fieldRef.fieldPath"),
        ({"fieldRef": {}}, ".fieldRef.fieldPath"),
        ({"fieldRef": {"fieldPath": "metadata.name", "extra": 1}}, ".fieldRef.extra"),
        ({"fieldRef": {"fieldPath": "a"}, **rf()}, ""),
        ({}, ""),
        ("x", ""),
    ],
)
def test_env_sources_are_checked_by_field(source, field):
    message = refused(env_from(source))
    assert message.startswith(f"{WHERE}{field}: "), message


def test_env_sources_that_kubernetes_takes_pass_and_are_schema_valid():
    env = [
        {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "B",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}},
        },
        {
            "name": "C",
            "value": "",
            "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}},
        },
    ]
    checked = check_submission(job(**{ENV: copy.deepcopy(env)}), "Job", RULES, NS)
    assert [e["name"] for e in checked.containers[0]["env"]] == ["A", "B", "C"]
    manifest = build_manifest(checked, target(), RULES)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    both = [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    assert refused(job(**{ENV: both})).startswith("spec.template.spec.containers[0].env[0].value: ")


@pytest.mark.parametrize(
    ("resources", "why"),
    [
        ({"limits": {"cpu": "1e999999"}}, "limits.cpu: quantity '1e999999'"),
        ({"requests": {"memory": math.nan}}, "requests.memory: quantity nan"),
        ({"requests": {"memory": True}}, "requests.memory: not a quantity"),
        ({"limits": ["cpu"]}, "resources.limits must be a mapping"),
        (["requests"], "resources may only hold requests and limits"),
    ],
)
def test_operator_profiles_with_malformed_quantities_fail_at_start(resources, why):
    with pytest.raises(ValueError, match=re.escape(f"profile 'p': {why}")):
        parse_profiles({"p": {"resources": resources}})
