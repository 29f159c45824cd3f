"""The OpenShift deployment (openshift/): templates process like `oc process` does, every
object validates against the Kubernetes OpenAPI schema (strict) or the OpenShift kinds'
required fields, the hub's environment is exactly what jupyterhub_config.py reads, and
the hub's Role grants exactly the API calls the hub and the jobs service make.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import ValidationError, validate

from tests.helpers.openshift import (
    OPENSHIFT_CHECKS,
    TemplateError,
    load,
    process,
    references,
    required_without_default,
    route_problems,
    scc_problems,
    template_problems,
)
from valeria_hub.envconfig import read_settings
from valeria_hub.jobs.labels import MANAGED_BY

TEMPLATES = [
    "valeria-hub-template.yaml",
    "secrets-template.yaml",
    "scc-notebook.yaml",
    "rbac-user-namespaces.yaml",
]
# OpenShift 4.16 serves Kubernetes 1.29; also the newest schema we have.
K8S_VERSIONS = ["1.29.0", "1.33.0"]
ROOT = Path(__file__).resolve().parents[2]

HUB_PARAMS = {
    "HUB_IMAGE": "image-registry.openshift-image-registry.svc:5000/valeria/valeria-hub:1.0",
    "HUB_HOSTNAME": "jupyter.valeria.example.org",
    "KEYCLOAK_REALM_URL": "https://sso.example.org/realms/valeria",
    "VAULT_URL": "https://vault.example.org",
    "NFS_SERVER": "nfs.example.org",
    "NFS_PATH": "/export/valeria",
    "S3_ENDPOINT_URL": "https://s3.example.org",
    "DATABASE_HOST": "pg.example.org",
    "S3_CIDR": "10.20.30.0/24",
    "NFS_CIDR": "10.20.40.5/32",
    "VAULT_CIDR": "10.20.50.0/28",
}
SECRET_PARAMS = {
    "OAUTH_CLIENT_SECRET": "kc-client-secret",
    "DATABASE_USER": "jupyterhub",
    "DATABASE_PASSWORD": "p@ss:w/rd?#",
}
SCC_PARAMS = {
    "NAMESPACE": "valeria",
    "UID_MIN": "1000",
    "UID_MAX": "60000",
    "GID_MIN": "1000",
    "GID_MAX": "60000",
}
RBAC_PARAMS = {"NAMESPACE": "valeria"}
PARAMS = {
    "valeria-hub-template.yaml": HUB_PARAMS,
    "secrets-template.yaml": SECRET_PARAMS,
    "scc-notebook.yaml": SCC_PARAMS,
    "rbac-user-namespaces.yaml": RBAC_PARAMS,
}


def rendered(name: str) -> list[dict[str, Any]]:
    return process(load(name), PARAMS[name])


def one(objects: list[dict], kind: str, name_suffix: str = "") -> dict:
    found = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(found) == 1, (kind, name_suffix, [o["metadata"]["name"] for o in found])
    return found[0]


def hub_container(objects: list[dict]) -> dict:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


# -- the templates as templates -------------------------------------------------------------
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_is_well_formed(name):
    assert template_problems(load(name)) == []


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_parameter_is_defined_and_used(name):
    template = load(name)
    declared = {p["name"] for p in template["parameters"]}
    used = references(template)
    assert used - declared == set(), "used but not defined"
    assert declared - used == set(), "defined but never used"


@pytest.mark.parametrize("name", TEMPLATES)
def test_required_parameters_without_default_are_refused(name):
    template = load(name)
    required = required_without_default(template)
    with pytest.raises(TemplateError) as err:
        process(template, {})
    listed = set(re.findall(r"'([A-Z0-9_]+)'", str(err.value)))
    assert listed == required
    # and each one alone is enough to refuse
    for missing in required:
        given = {k: v for k, v in PARAMS[name].items() if k != missing}
        with pytest.raises(TemplateError, match=missing):
            process(template, given)


def test_operator_specific_settings_have_no_default():
    required = required_without_default(load("valeria-hub-template.yaml"))
    assert {"HUB_IMAGE", "HUB_HOSTNAME", "KEYCLOAK_REALM_URL", "VAULT_URL", "DATABASE_HOST"} <= (
        required
    )
    assert {"OAUTH_CLIENT_SECRET", "DATABASE_PASSWORD"} <= required_without_default(
        load("secrets-template.yaml")
    )
    assert {"UID_MIN", "UID_MAX"} <= required_without_default(load("scc-notebook.yaml"))


def test_unknown_parameter_is_refused():
    with pytest.raises(TemplateError, match="unknown"):
        process(load("valeria-hub-template.yaml"), {**HUB_PARAMS, "HUB_IMAGES": "x"})


# -- every object validates -----------------------------------------------------------------
def all_objects() -> list[tuple[str, dict]]:
    return [(name, obj) for name in TEMPLATES for obj in rendered(name)]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_kubernetes_object_validates_strictly(version):
    checked = 0
    for name, obj in all_objects():
        if (obj["apiVersion"], obj["kind"]) in OPENSHIFT_CHECKS:
            continue
        try:
            validate(obj, version, strict=True)
        except ValidationError as e:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {e}")
        checked += 1
    assert checked >= 10


def test_every_openshift_object_has_its_required_fields():
    kinds = set()
    for name, obj in all_objects():
        check = OPENSHIFT_CHECKS.get((obj["apiVersion"], obj["kind"]))
        if check is not None:
            assert check(obj) == [], (name, obj["kind"])
            kinds.add(obj["kind"])
    assert kinds == {"Route", "SecurityContextConstraints"}


def test_the_validators_do_fail_on_broken_objects():
    deployment = one(rendered("valeria-hub-template.yaml"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(ValidationError):
        validate(deployment, K8S_VERSIONS[0], strict=True)
    route = one(rendered("valeria-hub-template.yaml"), "Route")
    route["spec"]["tls"]["termination"] = "edgy"
    assert route_problems(route)
    scc = one(rendered("scc-notebook.yaml"), "SecurityContextConstraints")
    del scc["allowHostPID"]
    scc["runAsUser"]["uidRangeMin"] = "1000"
    assert len(scc_problems(scc)) == 2


def test_integer_parameters_become_integers():
    scc = one(rendered("scc-notebook.yaml"), "SecurityContextConstraints")
    assert scc["runAsUser"] == {"type": "MustRunAsRange", "uidRangeMin": 1000, "uidRangeMax": 60000}
    assert 0 not in range(scc["runAsUser"]["uidRangeMin"], scc["runAsUser"]["uidRangeMax"] + 1)


# -- what the reference deployment got wrong ---------------------------------------------------
def test_no_deploymentconfig_no_clusterrole_edit_in_the_main_template():
    objects = rendered("valeria-hub-template.yaml")
    kinds = {o["kind"] for o in objects}
    assert "DeploymentConfig" not in kinds
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    binding = one(objects, "RoleBinding")
    assert binding["roleRef"]["kind"] == "Role"
    deployment = one(objects, "Deployment")
    assert deployment["apiVersion"] == "apps/v1"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_secret_uses_string_data_and_keys_generated_once():
    template = load("secrets-template.yaml")
    first = one(process(template, SECRET_PARAMS), "Secret")
    second = one(process(template, SECRET_PARAMS), "Secret")
    assert "data" not in first and "stringData" in first
    for key in ("crypt-key", "cookie-secret"):
        assert re.fullmatch(r"[0-9a-f]{64}", first["stringData"][key])
        assert first["stringData"][key] != second["stringData"][key]
    assert first["stringData"]["database-password"] == SECRET_PARAMS["DATABASE_PASSWORD"]


def test_secret_refs_of_the_hub_exist_in_the_secret():
    secret = one(rendered("secrets-template.yaml"), "Secret")
    container = hub_container(rendered("valeria-hub-template.yaml"))
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    ]
    assert refs
    for ref in refs:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]


def test_probes_use_the_hub_health_endpoint():
    container = hub_container(rendered("valeria-hub-template.yaml"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/hub/health"
        assert get["port"] in ports


def test_route_is_edge_tls_to_the_proxy_port():
    objects = rendered("valeria-hub-template.yaml")
    route, service = one(objects, "Route"), one(objects, "Service")
    assert route["spec"]["tls"]["termination"] == "edge"
    assert route["spec"]["tls"]["insecureEdgeTerminationPolicy"] == "Redirect"
    assert route["spec"]["to"]["name"] == service["metadata"]["name"]
    assert route["spec"]["port"]["targetPort"] in {p["name"] for p in service["spec"]["ports"]}
    assert route["spec"]["host"] == HUB_PARAMS["HUB_HOSTNAME"]


# -- the environment is jupyterhub_config.py's ----------------------------------------------
class Recording(dict):
    """A mapping that remembers every variable name it was asked for."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def variables_the_config_reads(env: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for probe in (Recording(env), Recording()):
        try:
            read_settings(probe)
        except Exception:
            pass
        names |= probe.asked
    text = (ROOT / "jupyterhub_config.py").read_text()
    names |= set(re.findall(r"environ(?:\.get)?\(?\[?\s*[\"']([A-Z0-9_]+)[\"']", text))
    names |= set(re.findall(r"getenv\(\s*[\"']([A-Z0-9_]+)[\"']", text))
    return names


def hub_environment(objects: list[dict], secret: dict) -> dict[str, str]:
    """The hub container's environment as the kubelet would build it."""
    configmaps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    container = hub_container(objects)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        ref = item.get("valueFrom", {})
        if "secretKeyRef" in ref:
            env[item["name"]] = secret["stringData"][ref["secretKeyRef"]["key"]]
        elif "fieldRef" in ref:
            assert ref["fieldRef"]["fieldPath"] == "metadata.namespace"
            env[item["name"]] = "valeria"
        else:
            env[item["name"]] = item["value"]
    return env


def test_every_variable_the_template_sets_is_read_by_the_config():
    objects = rendered("valeria-hub-template.yaml")
    env = hub_environment(objects, one(rendered("secrets-template.yaml"), "Secret"))
    unread = set(env) - variables_the_config_reads(env)
    assert unread == set(), f"set by the template but never read: {sorted(unread)}"


def test_the_rendered_environment_is_a_working_configuration():
    objects = rendered("valeria-hub-template.yaml")
    env = hub_environment(objects, one(rendered("secrets-template.yaml"), "Secret"))
    settings = read_settings(env)  # raises ConfigError naming every problem
    assert settings.public_url == f"https://{HUB_PARAMS['HUB_HOSTNAME']}"
    assert settings.db_url and "p%40ss%3Aw%2Frd%3F%23@" in settings.db_url
    assert settings.namespace == "valeria"
    service = one(objects, "Service")
    hub_port = int(settings.hub_bind_url.rsplit(":", 1)[1])
    assert settings.hub_connect_ip == service["metadata"]["name"]
    assert hub_port in {p["port"] for p in service["spec"]["ports"]}


# -- network policies select what the hub and the jobs service create -------------------------
def test_network_policies_select_notebook_and_job_pods():
    objects = rendered("valeria-hub-template.yaml")
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    jobs = policies["valeria-hub-jobs"]["spec"]
    assert jobs["podSelector"]["matchLabels"].items() <= MANAGED_BY.items()
    assert jobs["ingress"] == [] and "Ingress" in jobs["policyTypes"]
    for spec in (jobs, policies["valeria-hub-notebooks"]["spec"]):
        cidrs = [
            b["ipBlock"] for rule in spec["egress"] for b in rule.get("to", []) if "ipBlock" in b
        ]
        wide = [b for b in cidrs if b["cidr"] == "0.0.0.0/0"]
        assert wide and set(wide[0]["except"]) >= {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
        for param in ("S3_CIDR", "NFS_CIDR", "VAULT_CIDR"):
            assert {"cidr": HUB_PARAMS[param]} in cidrs


# -- RBAC: the Role is exactly what the code uses ---------------------------------------------
def granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for r in rules
        for group in r["apiGroups"]
        for resource in r["resources"]
        for verb in r["verbs"]
    }


def test_cluster_role_for_user_namespaces_extends_the_role():
    role = one(rendered("valeria-hub-template.yaml"), "Role")
    cluster = one(rendered("rbac-user-namespaces.yaml"), "ClusterRole")
    extra = granted(cluster["rules"]) - granted(role["rules"])
    assert granted(role["rules"]) <= granted(cluster["rules"])
    assert extra == {
        ("", "namespaces", "get"),
        ("", "namespaces", "create"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("", "resourcequotas", "create"),
    }


async def jobs_service_calls(
    kubeconfig: Path, namespace: str, pod: str | None, per_user: bool
) -> None:
    """Every Kubernetes call of the jobs service (valeria_hub/jobs/kube.py), once."""
    from valeria_hub.jobs import isolation
    from valeria_hub.jobs.kube import Kube

    kube = await Kube.connect(str(kubeconfig))
    try:
        if per_user:
            ns = "valeria-rbac-check"
            assert await kube.read_namespace(ns) is None
            await kube.create_namespace(isolation.namespace_manifest(ns, "alice"))
            assert await kube.read_namespace(ns) is not None
            await kube.create_if_missing(
                "NetworkPolicy", ns, isolation.network_policy_manifest(ns, [])
            )
            await kube.create_if_missing("ResourceQuota", ns, isolation.quota_manifest(ns, {}))
        meta = {"labels": dict(MANAGED_BY)}
        await kube.create_secret(
            namespace, {"metadata": {"name": "rbac-s", **meta}, "stringData": {"k": "v"}}
        )
        await kube.create_configmap(namespace, {"metadata": {"name": "rbac-c", **meta}})
        container = {"name": "main", "image": "busybox", "command": ["true"]}
        pod_spec = {"restartPolicy": "Never", "containers": [container]}
        job = {
            "metadata": {"name": "rbac-job", **meta},
            "spec": {"suspend": True, "template": {"spec": pod_spec}},
        }
        created = await kube.create_workload("Job", namespace, job)
        cron = {
            "metadata": {"name": "rbac-cron", **meta},
            "spec": {
                "schedule": "0 0 1 1 *",
                "suspend": True,
                "jobTemplate": {"spec": {"template": {"spec": pod_spec}}},
            },
        }
        await kube.create_workload("CronJob", namespace, cron)
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "rbac-job",
            "uid": created["metadata"]["uid"],
        }
        await kube.set_owner("Secret", namespace, "rbac-s", owner)
        await kube.set_owner("ConfigMap", namespace, "rbac-c", owner)
        selector = "app.kubernetes.io/managed-by=valeria-jobs"
        for kind, name in (("Job", "rbac-job"), ("CronJob", "rbac-cron")):
            assert await kube.read_workload(kind, namespace, name)
            await kube.list_workloads(kind, namespace, selector)
        await kube.list_pods(namespace, selector)
        if pod is not None:
            assert await kube.read_pod(namespace, pod) is not None
            await kube.read_log(namespace, pod, "notebook")
        await kube.delete_workload("CronJob", namespace, "rbac-cron")
        await kube.delete("Job", namespace, "rbac-job")
        await kube.delete("Secret", namespace, "rbac-s")
        await kube.delete("ConfigMap", namespace, "rbac-c")
    finally:
        await kube.close()


def used(audit: list, user: str) -> set[tuple[str, str, str]]:
    denied = [a for u, a, ok in audit if u == user and not ok]
    assert denied == [], f"the Role lacks: {denied}"
    return {(a.group, a.combined, a.verb) for u, a, ok in audit if u == user}


@pytest.mark.e2e
def test_the_role_grants_exactly_what_the_hub_and_jobs_service_use(tmp_path):
    from devstack.stack import DEMO_KUBE_TOKEN
    from tests.helpers.e2e import (
        browser,
        progress_events,
        running_hub,
        running_stack,
        spawn,
        stack_objects,
    )
    from valeria_hub.names import dependent_name

    objects = rendered("valeria-hub-template.yaml")
    role = one(objects, "Role")
    user = "system:serviceaccount:default:valeria-hub-hub"
    rules = [dict(r, namespaces=["default"]) for r in role["rules"]]
    tokens = {DEMO_KUBE_TOKEN: {"user": user, "rules": rules}}
    with running_stack(tmp_path, tokens=tokens) as stack:
        stack.kube.api.audit = audit = []
        # a stale S3 Secret left by a crashed spawn: the spawner replaces it (update)
        stale = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": dependent_name("s3", "jupyter-alice"), "namespace": "default"},
            "stringData": {"AWS_ACCESS_KEY_ID": "old"},
        }
        stack.kube.call(stack.kube.create_object, stale)
        with running_hub(stack, tmp_path / "hub") as hub:
            client = browser(hub, "alice")
            assert spawn(client, hub).status_code == 200
            events = progress_events(client, hub, "alice")
            assert events[-1].get("ready"), [e.get("message") for e in events]
            pod = one(stack_objects(stack, "v1/pods", "default"), "Pod", "jupyter-alice")

            # the spawned pod is what the notebook NetworkPolicy selects and admits
            policy = one(objects, "NetworkPolicy", "-notebooks")["spec"]
            assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
            ports = {p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
            assert {p["port"] for p in policy["ingress"][0]["ports"]} <= ports

            asyncio.run(jobs_service_calls(stack.kubeconfig, "default", "jupyter-alice", False))

            client.get(f"{hub.public_url}/hub/home")
            xsrf = client.cookies.get("_xsrf", path="/hub/")
            resp = client.delete(
                f"{hub.public_url}/hub/api/users/alice/server",
                headers={"X-XSRFToken": xsrf or "", "Referer": f"{hub.public_url}/hub/home"},
            )
            assert resp.status_code in (202, 204), resp.text
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                names = [p["metadata"]["name"] for p in stack_objects(stack, "v1/pods")]
                if "jupyter-alice" not in names and ("", "secrets", "delete") in used(audit, user):
                    break
                time.sleep(0.3)
        assert used(audit, user) == granted(role["rules"])

        # per-user namespaces: the ClusterRole (no namespace restriction) covers the rest
        cluster = one(rendered("rbac-user-namespaces.yaml"), "ClusterRole")
        cluster_tokens = {DEMO_KUBE_TOKEN: {"user": user, "rules": cluster["rules"]}}
        stack.kube.call(stack.kube.set_tokens, cluster_tokens)
        audit.clear()
        asyncio.run(jobs_service_calls(stack.kubeconfig, "default", None, True))
        extra = granted(cluster["rules"]) - granted(role["rules"])
        assert extra <= used(audit, user)

        # and a Role without one of those verbs fails: the audit above is not a formality
        stack.kube.call(stack.kube.set_tokens, {DEMO_KUBE_TOKEN: {"user": user, "rules": rules}})
        audit.clear()
        with pytest.raises(Exception, match="403|forbidden"):
            asyncio.run(jobs_service_calls(stack.kubeconfig, "default", None, True))


def test_yaml_files_parse_and_carry_no_plain_data_secret():
    for path in sorted((ROOT / "openshift").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for obj in doc.get("objects", []):
            if obj.get("kind") == "Secret":
                assert "data" not in obj, path.name
