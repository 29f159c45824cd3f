"""The jobs policy (pure): every forbidden field refused by name; the built manifest hardened
and valid against the Kubernetes schema (kubernetes-validate, strict)."""

from __future__ import annotations

import base64
import copy
import io
import zipfile

import kubernetes.client as k8s
import kubernetes_validate
import pytest

from valeria_hub.jobs.labels import OWNER_LABEL, owned_by
from valeria_hub.jobs.manifests import (
    Target,
    build_code_configmap,
    build_manifest,
    build_secret,
    parse_extra_env,
    render_extra_env,
)
from valeria_hub.jobs.naming import owner_label
from valeria_hub.jobs.policy import PolicyError, Rules, check_submission
from valeria_hub.jobs.profiles import parse_profiles
from valeria_hub.jobs.shapes import normalize
from valeria_hub.jobs.upload import UploadError, decode_code
from valeria_hub.storage import StorageLayout
from valeria_hub.vault import UserProfile

NS = "valeria-jobs-alice-12345678"
K8S_VERSION = "1.33.0"
PROFILES = parse_profiles(
    {
        "small": {
            "description": "small",
            "resources": {
                "requests": {"cpu": "250m", "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "2Gi"},
            },
        },
        "gpu": {
            "description": "one GPU",
            "image": "registry.example/gpu:1",
            "resources": {
                "requests": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"},
                "limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"},
            },
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "node_affinity_required": [
                {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}
            ],
        },
    }
)
RULES = Rules(profiles=PROFILES, default_profile="small")
PROFILE = UserProfile("alice", "ent-1", 20001, 30001, "AKIAALICE", "alice-secret-key")


def job(**spec_overrides) -> dict:
    container = {"name": "job", "image": "python:3.11", "command": ["python", "-c", "print(1)"]}
    pod = {"restartPolicy": "Never", "containers": [container]}
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": "hello-"},
        "spec": {"template": {"spec": pod}},
    }
    for path, value in spec_overrides.items():
        set_path(body, path, value)
    return body


def set_path(obj: dict, path: str, value) -> None:
    parts = path.split(".")
    for p in parts[:-1]:
        if p.isdigit():
            obj = obj[int(p)]
        else:
            obj = obj.setdefault(p, {})
    obj[parts[-1]] = value


def target(name: str = "hello-abcde", code: bool = False, extra=()) -> Target:
    storage = StorageLayout(nfs_server="nfs.example", nfs_path="/export")
    secret = f"{name}-s3"
    return Target(
        username="alice",
        namespace=NS,
        name=name,
        secret_name=secret,
        configmap_name=f"{name}-code" if code else None,
        workload=storage.workload(PROFILE, secret),
        extra_env=tuple(extra),
        job_env=(("VALERIA_JOB_NAME", name),),
    )


C = "spec.template.spec.containers.0"
REFUSED = [
    ("spec.template.spec.hostNetwork", True, "spec.template.spec.hostNetwork"),
    ("spec.template.spec.hostPID", True, "spec.template.spec.hostPID"),
    ("spec.template.spec.hostIPC", True, "spec.template.spec.hostIPC"),
    ("spec.template.spec.nodeName", "node-1", "spec.template.spec.nodeName"),
    ("spec.template.spec.serviceAccountName", "admin", "spec.template.spec.serviceAccountName"),
    ("spec.template.spec.automountServiceAccountToken", True, "automountServiceAccountToken"),
    ("spec.template.spec.volumes", [{"name": "h", "hostPath": {"path": "/"}}], ".volumes"),
    ("spec.template.spec.initContainers", [{"name": "i", "image": "x"}], ".initContainers"),
    ("spec.template.spec.imagePullSecrets", [{"name": "regcred"}], ".imagePullSecrets"),
    ("spec.template.spec.nodeSelector", {"node": "special"}, ".nodeSelector"),
    ("spec.template.spec.tolerations", [{"operator": "Exists"}], ".tolerations"),
    ("spec.template.spec.affinity", {"podAffinity": {"x": [{"topologyKey": "h"}]}}, ".affinity"),
    ("spec.template.spec.priorityClassName", "system-node-critical", ".priorityClassName"),
    ("spec.template.spec.restartPolicy", "Always", ".restartPolicy"),
    ("spec.template.spec.securityContext", {"runAsUser": 0}, "securityContext.runAsUser"),
    ("spec.template.spec.securityContext", {"runAsGroup": 0}, "securityContext.runAsGroup"),
    ("spec.template.spec.securityContext", {"fsGroup": 0}, "securityContext.fsGroup"),
    ("spec.template.spec.securityContext", {"runAsNonRoot": False}, ".runAsNonRoot"),
    ("spec.template.spec.securityContext", {"sysctls": []}, "securityContext.sysctls"),
    (f"{C}.securityContext", {"privileged": True}, "securityContext.privileged"),
    (f"{C}.securityContext", {"allowPrivilegeEscalation": True}, ".allowPrivilegeEscalation"),
    (f"{C}.securityContext", {"capabilities": {"add": ["SYS_ADMIN"]}}, "capabilities.add"),
    (f"{C}.securityContext", {"runAsUser": 0}, "securityContext.runAsUser"),
    (f"{C}.securityContext", {"seccompProfile": {"type": "Unconfined"}}, ".seccompProfile"),
    (f"{C}.securityContext", {"procMount": "Unmasked"}, "securityContext.procMount"),
    (f"{C}.volumeMounts", [{"name": "x", "mountPath": "/x"}], "containers[0].volumeMounts"),
    (f"{C}.envFrom", [{"secretRef": {"name": "other"}}], "containers[0].envFrom"),
    (
        f"{C}.env",
        [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "bob-s3", "key": "k"}}}],
        "env[0].valueFrom.secretKeyRef",
    ),
    (
        f"{C}.env",
        [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}],
        "env[0].valueFrom.configMapKeyRef",
    ),
    (f"{C}.ports", [{"containerPort": 80}], "containers[0].ports"),
    (f"{C}.resources", {"limits": {"cpu": "64"}}, "resources.limits.cpu"),
    (f"{C}.resources", {"requests": {"memory": "1Ti"}}, "resources.requests.memory"),
    (f"{C}.resources", {"limits": {"nvidia.com/gpu": "1"}}, "resources.limits.nvidia.com/gpu"),
    (f"{C}.resources", {"requests": {"cpu": "2"}}, "resources.requests.cpu"),
    (f"{C}.image", "", "containers[0].image"),
    (f"{C}.command", "echo hi", "containers[0].command"),
    (f"{C}.workingDir", "../etc", "containers[0].workingDir"),
    ("metadata.namespace", "kube-system", "metadata.namespace"),
    ("metadata.ownerReferences", [{"name": "x"}], "metadata.ownerReferences"),
    ("metadata.labels", {OWNER_LABEL: "bob-0000"}, 'metadata.labels["valeria.io/owner"]'),
    ("metadata.labels", {"job-name": "x"}, 'metadata.labels["job-name"]'),
    ("spec.template.metadata.labels", {OWNER_LABEL: "bob"}, "template.metadata.labels["),
    ("spec.template.metadata.labels", {"component": "x"}, 'labels["component"]'),
    ("metadata.name", "Not_A_Name", "metadata.name"),
    ("spec.activeDeadlineSeconds", 10**7, "spec.activeDeadlineSeconds"),
    ("spec.ttlSecondsAfterFinished", 10**9, "spec.ttlSecondsAfterFinished"),
    ("spec.backoffLimit", 100, "spec.backoffLimit"),
    ("spec.parallelism", 1000, "spec.parallelism"),
    ("spec.selector", {"matchLabels": {"a": "b"}}, "spec.selector"),
    ("spec.podFailurePolicy", {"rules": []}, "spec.podFailurePolicy"),
    ("status", {"succeeded": 1}, "status"),
    ("surprise", 1, "surprise"),
    ("kind", "Pod", "kind"),
    ("apiVersion", "batch/v2", "apiVersion"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"), REFUSED, ids=[r[0] + "=" + str(r[1])[:20] for r in REFUSED]
)
def test_forbidden_fields_are_refused_by_name(path, value, field):
    body = job()
    set_path(body, path, value)
    with pytest.raises(PolicyError) as err:
        check_submission(body, "Job", RULES, NS)
    assert field in str(err.value)


def test_more_containers_than_allowed_and_duplicate_names():
    body = job()
    c = body["spec"]["template"]["spec"]["containers"][0]
    body["spec"]["template"]["spec"]["containers"] = [dict(c, name=f"c{i}") for i in range(5)]
    with pytest.raises(PolicyError, match="containers"):
        check_submission(body, "Job", RULES, NS)
    body["spec"]["template"]["spec"]["containers"] = [c, dict(c)]
    with pytest.raises(PolicyError, match="unique"):
        check_submission(body, "Job", RULES, NS)


def test_allowed_images_patterns():
    rules = Rules(profiles=PROFILES, default_profile="small", allowed_images=("quay.io/jupyter/*",))
    with pytest.raises(PolicyError, match="not in the list of allowed images"):
        check_submission(job(), "Job", rules, NS)
    ok = job(**{f"{C}.image": "quay.io/jupyter/scipy-notebook:2024"})
    assert check_submission(ok, "Job", rules, NS).containers[0]["image"].startswith("quay.io")


def hardened_checks(manifest: dict, *, uid: int = 20001, gid: int = 30001) -> None:
    pod = manifest["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsGroup"] == gid
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["runAsUser"] == uid and sc["runAsNonRoot"] is True
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == f"{manifest['metadata']['name']}-s3"
    for key in ("hostNetwork", "hostPID", "hostIPC", "nodeName", "serviceAccountName"):
        assert key not in pod
    labels = manifest["metadata"]["labels"]
    assert labels[OWNER_LABEL] == owner_label("alice")
    assert labels["app.kubernetes.io/managed-by"] == "valeria-jobs"
    assert manifest["spec"]["template"]["metadata"]["labels"][OWNER_LABEL] == owner_label("alice")
    assert manifest["metadata"]["namespace"] == NS
    text = str(manifest)
    assert "alice-secret-key" not in text and "AKIAALICE" not in text


def test_built_job_is_hardened_defaulted_and_schema_valid():
    checked = check_submission(job(), "Job", RULES, NS)
    manifest = build_manifest(checked, target(), RULES)
    hardened_checks(manifest)
    spec = manifest["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 24 * 3600
    assert spec["ttlSecondsAfterFinished"] == 7 * 24 * 3600
    container = spec["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ENDPOINT_URL"} <= set(env)
    assert env["NB_USER"] == "alice" and env["NB_UID"] == str(PROFILE.uid)
    assert env["HOME"] == "/home/alice" and env["VALERIA_JOB_NAME"] == "hello-abcde"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/home/alice" in mounts and "/scratch" in mounts
    assert [v["name"] for v in spec["template"]["spec"]["volumes"]] == ["nfs-home"]
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_code_upload_adds_unpack_init_container_and_valid_schema():
    checked = check_submission(job(), "Job", RULES, NS)
    manifest = build_manifest(checked, target(code=True), RULES)
    pod = manifest["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["command"][:2] == ["python3", "-c"]
    assert init["command"][-2:] == ["/valeria-code-zip/code.zip", "/code"]
    assert pod["containers"][0]["workingDir"] == "/code"
    assert {"name": "code", "mountPath": "/code"} in pod["containers"][0]["volumeMounts"]
    cm = next(v for v in pod["volumes"] if v["name"] == "code-zip")
    assert cm["configMap"]["name"] == "hello-abcde-code"
    hardened_checks(manifest)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    configmap = build_code_configmap(target(code=True), b"PK-bytes")
    assert base64.b64decode(configmap["binaryData"]["code"]) == b"PK-bytes"
    kubernetes_validate.validate(configmap, K8S_VERSION, strict=True)


def test_cronjob_is_hardened_and_schema_valid():
    body = job()
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "metadata": {"labels": {"user.valeria.io/team": "a"}},
                "spec": body["spec"],
            },
        },
    }
    checked = check_submission(cron, "CronJob", RULES, NS)
    manifest = build_manifest(checked, target("nightly"), RULES)
    assert manifest["spec"]["concurrencyPolicy"] == "Forbid"
    jt = manifest["spec"]["jobTemplate"]
    assert jt["metadata"]["labels"][OWNER_LABEL] == owner_label("alice")
    assert jt["metadata"]["labels"]["user.valeria.io/team"] == "a"
    hardened_checks({"metadata": manifest["metadata"], "spec": jt["spec"]})
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    bad = copy.deepcopy(cron)
    bad["spec"]["schedule"] = "every day"
    with pytest.raises(PolicyError, match="spec.schedule"):
        check_submission(bad, "CronJob", RULES, NS)
    bad = copy.deepcopy(cron)
    bad["spec"]["jobTemplate"]["spec"]["template"]["spec"]["hostPID"] = True
    with pytest.raises(PolicyError, match="spec.jobTemplate.spec.template.spec.hostPID"):
        check_submission(bad, "CronJob", RULES, NS)


def kbatch_style_job(profile: dict | None = None) -> dict:
    """A V1Job built with the kubernetes client and sent as to_dict(), as kbatch does."""
    profile = profile or {}
    resources = profile.get("resources", {})
    container = k8s.V1Container(
        name="job",
        image="python:3.11",
        command=["python", "-c", "print(1)"],
        env=[k8s.V1EnvVar(name="GREETING", value="hi")],
        working_dir="/code",
        resources=k8s.V1ResourceRequirements(
            requests=dict(resources.get("requests", {})), limits=dict(resources.get("limits", {}))
        ),
    )
    tolerations = [k8s.V1Toleration(**t) for t in profile.get("tolerations", [])] or None
    affinity = None
    if profile.get("node_affinity_required"):
        reqs = [
            k8s.V1NodeSelectorRequirement(**r)
            for term in profile["node_affinity_required"]
            for r in term["matchExpressions"]
        ]
        affinity = k8s.V1Affinity(
            node_affinity=k8s.V1NodeAffinity(
                required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
                    node_selector_terms=[
                        k8s.V1NodeSelectorTerm(match_expressions=reqs, match_fields=[])
                    ]
                )
            )
        )
    pod = k8s.V1PodSpec(
        containers=[container], restart_policy="Never", tolerations=tolerations, affinity=affinity
    )
    spec = k8s.V1JobSpec(
        template=k8s.V1PodTemplateSpec(
            spec=pod, metadata=k8s.V1ObjectMeta(name="hello-pod", labels={}, annotations={})
        ),
        backoff_limit=0,
        ttl_seconds_after_finished=300,
    )
    meta = k8s.V1ObjectMeta(generate_name="hello-", labels={}, annotations={})
    return k8s.V1Job(api_version="batch/v1", kind="Job", metadata=meta, spec=spec).to_dict()


def test_kbatch_to_dict_shape_is_accepted_and_profile_inferred():
    checked = check_submission(kbatch_style_job(), "Job", RULES, NS)
    assert checked.generate_name == "hello-"
    assert checked.containers[0]["workingDir"] == "/code"
    assert checked.job_spec["ttlSecondsAfterFinished"] == 300
    gpu = PROFILES["gpu"].public()
    checked = check_submission(kbatch_style_job(gpu), "Job", RULES, NS)
    assert checked.profile.name == "gpu"
    manifest = build_manifest(checked, target(), RULES)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_normalize_keeps_user_map_keys():
    out = normalize({"metadata": {"labels": {"my_label": "x"}, "generate_name": "a-"}})
    assert out == {"metadata": {"labels": {"my_label": "x"}, "generateName": "a-"}}


def test_extra_env_templates_and_secret_entries_go_to_the_secret():
    templates = parse_extra_env(
        {
            "DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE": "{image}",
            "WHO": "{username}/{job_name}",
            "API_KEY": {"value": "k-{username}", "secret": True},
        }
    )
    extra = render_extra_env(
        templates, username="alice", job_name="j1", image="img:1", namespace=NS
    )
    t = target("j1", extra=extra)
    manifest = build_manifest(check_submission(job(), "Job", RULES, NS), t, RULES)
    env = {e["name"]: e for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WHO"]["value"] == "alice/j1"
    assert env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"]["value"] == "img:1"
    assert env["API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "j1-s3", "key": "API_KEY"}
    assert "k-alice" not in str(manifest)
    secret = build_secret(t, PROFILE, "http://s3.example")
    assert base64.b64decode(secret["data"]["API_KEY"]).decode() == "k-alice"
    assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == "alice-secret-key"
    kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    with pytest.raises(ValueError, match="unknown placeholder"):
        parse_extra_env({"X": "{password}"})


def test_user_env_cannot_shadow_platform_variables():
    body = job(**{f"{C}.env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "stolen"}]})
    manifest = build_manifest(check_submission(body, "Job", RULES, NS), target(), RULES)
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    mine = [e for e in env if e["name"] == "AWS_SECRET_ACCESS_KEY"]
    assert len(mine) == 1 and "secretKeyRef" in mine[0]["valueFrom"]


def test_owned_by_needs_namespace_label_and_annotation():
    meta = {
        "namespace": NS,
        "labels": {OWNER_LABEL: owner_label("alice")},
        "annotations": {"valeria.io/username": "alice"},
    }
    assert owned_by(meta, "alice", NS)
    assert not owned_by(meta, "bob", NS)
    assert not owned_by(dict(meta, namespace="other"), "alice", NS)
    assert not owned_by(dict(meta, annotations={}), "alice", NS)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_upload_decoding_limits_and_shapes():
    data = _zip({"main.py": b"print('hi')"})
    b64 = base64.b64encode(data).decode()
    assert decode_code(b64, 10_000) == data
    assert decode_code({"binary_data": {"code": b64}}, 10_000) == data
    assert decode_code(None, 10) is None
    with pytest.raises(UploadError) as err:
        decode_code(b64, 10)
    assert err.value.status == 413
    with pytest.raises(UploadError, match="not a zip"):
        decode_code(base64.b64encode(b"plain text").decode(), 10_000)
    with pytest.raises(UploadError, match="not valid base64"):
        decode_code("***", 10_000)
    with pytest.raises(UploadError, match="outside|climbs out"):
        decode_code(base64.b64encode(_zip({"../evil.py": b"x"})).decode(), 10_000)
