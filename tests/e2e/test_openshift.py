"""The OpenShift deployment (openshift/): templates process like `oc process` does, every
object validates against the Kubernetes OpenAPI schema (strict) or the OpenShift kinds'
required fields, the hub's environment is exactly what jupyterhub_config.py reads, and
the hub's Role grants exactly the API calls the hub and the jobs service make.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes_validate import ValidationError, validate

from tests.helpers import DEPLOYMENT_ENV
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
from valeria_hub.jobs.settings import Namespaces

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
    "NFS_CIDR": "130.225.40.5/32",
    "INTERNAL_CIDR": "130.225.0.0/16",
}
SECRET_PARAMS = {
    "OAUTH_CLIENT_SECRET": "kc-client-secret",
    "JUPYTERHUB_CRYPT_KEY": "ab" * 32,
    "JUPYTERHUB_COOKIE_SECRET": "cd" * 32,
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
    assert {
        "OAUTH_CLIENT_SECRET",
        "DATABASE_PASSWORD",
        "JUPYTERHUB_CRYPT_KEY",
        "JUPYTERHUB_COOKIE_SECRET",
    } <= required_without_default(load("secrets-template.yaml"))
    assert {"NFS_CIDR", "INTERNAL_CIDR", "S3_CIDR"} <= required_without_default(
        load("valeria-hub-template.yaml")
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


def test_secret_keys_are_the_operators_never_generated_by_the_template():
    """`generate: expression` is not a cryptographic generator: the crypt key and the cookie
    secret are parameters the operator must give (openssl rand -hex 32), never empty."""
    template = load("secrets-template.yaml")
    params = {p["name"]: p for p in template["parameters"]}
    for name in ("JUPYTERHUB_CRYPT_KEY", "JUPYTERHUB_COOKIE_SECRET"):
        assert "generate" not in params[name] and "value" not in params[name]
        assert (
            params[name]["required"] is True
            and "openssl rand -hex 32" in params[name]["description"]
        )
        with pytest.raises(TemplateError, match=name):
            process(template, {**SECRET_PARAMS, name: ""})
    assert not any(p.get("generate") for name in TEMPLATES for p in load(name)["parameters"])
    secret = one(process(template, SECRET_PARAMS), "Secret")
    assert "data" not in secret and "stringData" in secret
    assert secret["stringData"]["crypt-key"] == SECRET_PARAMS["JUPYTERHUB_CRYPT_KEY"]
    assert secret["stringData"]["cookie-secret"] == SECRET_PARAMS["JUPYTERHUB_COOKIE_SECRET"]
    assert secret["stringData"]["database-password"] == SECRET_PARAMS["DATABASE_PASSWORD"]


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
    hsts = route["metadata"]["annotations"]["haproxy.router.openshift.io/hsts_header"]
    assert hsts == "max-age=31536000;includeSubDomains;preload"


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
            field = ref["fieldRef"]["fieldPath"]
            pod = one(objects, "Deployment")["spec"]["template"]["spec"]
            env[item["name"]] = {
                "metadata.namespace": "valeria",
                "spec.serviceAccountName": pod["serviceAccountName"],
            }[field]
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
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "openshift-dns"}},
    "podSelector": {"matchLabels": {"dns.operator.openshift.io/daemonset-dns": "default"}},
}
DNS_PORTS = [{"protocol": proto, "port": port} for port in (53, 5353) for proto in ("UDP", "TCP")]
PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}


def policies() -> dict[str, dict]:
    objects = rendered("valeria-hub-template.yaml")
    return {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}


def ip_blocks(spec: dict) -> list[dict]:
    return [b["ipBlock"] for rule in spec["egress"] for b in rule.get("to", []) if "ipBlock" in b]


def test_network_policies_select_notebook_and_job_pods():
    specs = policies()
    jobs, notebooks = specs["valeria-hub-jobs"], specs["valeria-hub-notebooks"]
    assert jobs["podSelector"]["matchLabels"].items() <= MANAGED_BY.items()
    assert jobs["ingress"] == [] and "Ingress" in jobs["policyTypes"]
    # notebooks: only the hub pod (the hub and its proxy) on the notebook port
    hub = {"app.kubernetes.io/instance": "valeria-hub", "app.kubernetes.io/component": "hub"}
    assert notebooks["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": hub}}],
            "ports": [{"protocol": "TCP", "port": 8888}],
        }
    ]


def test_user_pods_reach_dns_pods_s3_and_the_internet_never_nfs_or_internal_ranges():
    for name, spec in policies().items():
        if name == "valeria-hub-hub":
            continue
        assert "Egress" in spec["policyTypes"]
        # DNS: only the cluster DNS pods, 53 and 5353 (OVN polices after the Service NAT)
        dns = [
            r
            for r in spec["egress"]
            if any(p.get("port") in (53, 5353) for p in r.get("ports", []))
        ]
        assert dns == [{"to": [DNS_PEER], "ports": DNS_PORTS}], name
        assert all(r.get("to") for r in spec["egress"]), f"{name}: a rule open to everything"
        blocks = ip_blocks(spec)
        assert {"cidr": HUB_PARAMS["S3_CIDR"]} in blocks
        wide = [b for b in blocks if b["cidr"] == "0.0.0.0/0"]
        closed = PRIVATE | {HUB_PARAMS["NFS_CIDR"], HUB_PARAMS["INTERNAL_CIDR"]}
        assert len(wide) == 1 and set(wide[0]["except"]) == closed, name
        # no block opens the NFS server (the kubelet mounts it from the node)
        assert not [b for b in blocks if b["cidr"] == HUB_PARAMS["NFS_CIDR"]]


def normalized(egress: list[dict]) -> list[str]:
    rules = []
    for rule in egress:
        rule = json.loads(json.dumps(rule))
        for peer in rule.get("to", []):
            if "except" in peer.get("ipBlock", {}):
                peer["ipBlock"]["except"].sort()
        rules.append(json.dumps(rule, sort_keys=True))
    return sorted(rules)


def test_per_user_namespaces_get_the_egress_of_the_shared_namespace():
    """egress_allow_cidrs / egress_deny_cidrs come from the same template parameters as the
    shared namespace's policy: a job's egress is the same in either mode."""
    from valeria_hub.jobs import isolation

    objects = rendered("valeria-hub-template.yaml")
    env = hub_environment(objects, one(rendered("secrets-template.yaml"), "Secret"))
    namespaces = service_namespaces(env)
    ns = namespaces.for_user("alice")
    policy = isolation.network_policy_manifest(
        ns, list(namespaces.egress_allow_cidrs), list(namespaces.egress_deny_cidrs)
    )["spec"]
    shared = policies()["valeria-hub-jobs"]
    assert normalized(policy["egress"]) == normalized(shared["egress"])
    assert policy["ingress"] == [] and policy["podSelector"] == {}  # every pod there
    assert namespaces.service_account == ("valeria", "valeria-hub-hub")
    cluster_roles = {o["metadata"]["name"] for o in rendered("rbac-user-namespaces.yaml")}
    scc_role = one(rendered("scc-notebook.yaml"), "ClusterRole")["metadata"]["name"]
    assert namespaces.service_role in cluster_roles and namespaces.pod_scc_role == scc_role


# -- RBAC: the Role is exactly what the code uses ---------------------------------------------
def granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for r in rules
        for group in r["apiGroups"]
        for resource in r["resources"]
        for verb in r["verbs"]
    }


def shipped_roles() -> dict[str, dict]:
    """Every Role and ClusterRole of the templates, by name."""
    return {
        o["metadata"]["name"]: o
        for name in TEMPLATES
        for o in rendered(name)
        if o["kind"] in ("Role", "ClusterRole")
    }


def test_no_role_reads_or_changes_a_secret():
    """get/list/watch return the keys, and so do patch and update (the answer is the whole
    Secret): the hub only ever creates and deletes them."""
    for name, role in shipped_roles().items():
        for rule in role["rules"]:
            if {"secrets", "*"} & set(rule["resources"]):
                assert set(rule["verbs"]) <= {"create", "delete"}, name


def test_nothing_cluster_wide_on_workloads_logs_or_secrets_and_bind_only_by_name():
    objects = [o for name in TEMPLATES for o in rendered(name)]
    roles = shipped_roles()
    cluster_wide = {o["roleRef"]["name"] for o in objects if o["kind"] == "ClusterRoleBinding"}
    assert cluster_wide == {"valeria-hub-namespaces"}
    for name in cluster_wide:
        resources = {r for rule in roles[name]["rules"] for r in rule["resources"]}
        assert resources == {"namespaces", "rolebindings", "clusterroles"}
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            if {"bind", "escalate", "use", "impersonate"} & set(rule["verbs"]):
                assert rule.get("resourceNames"), role["metadata"]["name"]
    bindable = next(
        r["resourceNames"] for r in roles["valeria-hub-namespaces"]["rules"] if "bind" in r["verbs"]
    )
    # exactly what the jobs service binds (the template's settings of the service)
    namespaces = service_namespaces()
    assert sorted(bindable) == sorted([namespaces.service_role, namespaces.pod_scc_role])
    assert all(name in roles for name in bindable)


def readme_permissions() -> dict[tuple[str, str, str], tuple[str, ...]]:
    """The README's Security table: (role, resource, verb) -> resource names ("only ...")."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Security\n") :]
    section = section[: section.index("\n## ", 1)]
    rows: dict[tuple[str, str, str], tuple[str, ...]] = {}
    for line in section.splitlines():
        if not re.match(r"^\| (Cluster)?Role `", line):
            continue
        role_cell, resource_cell, verb_cell = (c.strip() for c in line.strip("|").split("|")[:3])
        role = re.search(r"`([^`]+)`", role_cell).group(1)
        only = re.search(r"\(only ([^)]*)\)", resource_cell)
        names = tuple(sorted(re.findall(r"`([^`]+)`", only.group(1)))) if only else ()
        resources = re.findall(r"`([^`]+)`", resource_cell.split("(only")[0])
        for resource in resources:
            for verb in (v.strip() for v in verb_cell.split(",")):
                rows[(role, resource, verb)] = names
    return rows


def test_the_readme_lists_every_verb_granted_and_no_other():
    granted_rows = {
        (name, resource, verb): tuple(sorted(rule.get("resourceNames") or ()))
        for name, role in shipped_roles().items()
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert readme_permissions() == granted_rows


async def jobs_service_calls(
    kubeconfig: Path,
    namespace: str,
    pod: str | None,
    per_user: bool,
    log_container: str = "notebook",
) -> None:
    """Every Kubernetes call of the jobs service (valeria_hub/jobs/kube.py), once; per-user
    mode first prepares ``namespace`` as the service does (ensure_namespace)."""
    from valeria_hub.jobs.kube import Kube
    from valeria_hub.storage import owner_reference

    kube = await Kube.connect(str(kubeconfig))
    try:
        if per_user:
            await prepare_user_namespace(kube, namespace, "alice")
        meta = {"labels": dict(MANAGED_BY)}
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
        # dependents are created owned by their Job: no PATCH of Secrets is needed
        owned = {
            **meta,
            "ownerReferences": [
                owner_reference("batch/v1", "Job", "rbac-job", created["metadata"]["uid"])
            ],
        }
        await kube.create_secret(
            namespace, {"metadata": {"name": "rbac-s", **owned}, "stringData": {"k": "v"}}
        )
        await kube.create_configmap(namespace, {"metadata": {"name": "rbac-c", **owned}})
        selector = "app.kubernetes.io/managed-by=valeria-jobs"
        for kind, name in (("Job", "rbac-job"), ("CronJob", "rbac-cron")):
            assert await kube.read_workload(kind, namespace, name)
            listed = await kube.list_workloads(kind, namespace, selector)
            # the list cache's watch (valeria_hub/jobs/cache.py), ended by the server
            rv = listed["metadata"]["resource_version"]
            stream = await kube.watch_workloads(kind, namespace, selector, rv, 1)
            async for _ in stream:
                pass
        await kube.list_pods(namespace, selector)
        # a job's events, by the uid of the object (valeria_hub/jobs/events.py)
        uid = created["metadata"]["uid"]
        await kube.list_events(namespace, f"involvedObject.uid={uid}")
        if pod is not None:
            assert await kube.read_pod(namespace, pod) is not None
            await kube.read_log(namespace, pod, log_container)
        await kube.delete_workload("CronJob", namespace, "rbac-cron")
        await kube.delete("Job", namespace, "rbac-job")
        await kube.delete("Secret", namespace, "rbac-s")
        await kube.delete("ConfigMap", namespace, "rbac-c")
    finally:
        await kube.close()


def service_namespaces(env: dict[str, str] | None = None) -> Namespaces:
    """The jobs service's namespace settings exactly as the template configures them: the
    hub's ConfigMap and service account, through jupyterhub_config.py's reading
    (envconfig) and the service's command line (hub_service). Default: the devstack's."""
    from devstack import deployment
    from valeria_hub.jobs.config import JobsServiceApp
    from valeria_hub.jobs.hub_service import service_command

    if env is None:
        env = {
            **DEPLOYMENT_ENV,
            "KUBERNETES_NAMESPACE": "default",
            **deployment.hub_environment(deployment.objects()),
        }
    app = JobsServiceApp()
    app.parse_command_line(service_command(read_settings(env), "python")[3:])
    return app.settings().namespaces


async def prepare_user_namespace(kube: Any, namespace: str, username: str) -> None:
    """The service's own ensure_namespace, configured as the template configures it."""
    from valeria_hub.jobs.service import Context, ensure_namespace
    from valeria_hub.jobs.settings import JobsSettings

    namespaces = service_namespaces()
    assert namespaces.for_user(username) == namespace
    settings = JobsSettings(prefix="/", service_name="jobs", hub_api_url="", hub_api_token="")
    settings = dataclasses.replace(settings, namespaces=namespaces)
    ctx = Context(settings=settings, hub=None, kube=kube, vault=None)  # type: ignore[arg-type]
    await ensure_namespace(ctx, namespace, username)


Use = tuple[str, str, str]  # (group, resource[/subresource], verb)


def used(audit: list, user: str, absent: tuple[str, ...] = ()) -> dict[str, set[Use]]:
    """What ``user`` did, by namespace ("" for the cluster scope); fails on any refusal but
    reads in the ``absent`` namespaces (which do not exist: refused, as on OpenShift)."""
    denied = [a for u, a, ok in audit if u == user and not ok and a.namespace not in absent]
    assert denied == [], f"the shipped RBAC lacks: {denied}"
    out: dict[str, set[Use]] = {}
    for u, a, _ in audit:
        if u == user and a.namespace not in absent:
            out.setdefault(a.namespace, set()).add((a.group, a.combined, a.verb))
    return out


def submit_job(hub: Any, token: str, container: dict) -> tuple[str, dict]:
    """A Job through the hub-managed jobs service (code upload included), run to its end."""
    import base64
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("run.sh", "echo code-ok\n")
    body = {
        "job": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"generateName": "rbac-"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        },
        "code": base64.b64encode(code.getvalue()).decode(),
    }
    with httpx.Client(
        base_url=f"{hub.public_url}/services/jobs/",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ) as api:
        resp = api.post("jobs/", json=body)
        assert resp.status_code == 201, resp.text
        name = resp.json()["metadata"]["name"]
        deadline = time.monotonic() + 90
        status: dict = {}
        while time.monotonic() < deadline:
            status = api.get(f"jobs/{name}").json().get("status") or {}
            if status.get("succeeded") or status.get("failed"):
                break
            time.sleep(0.5)
        assert status.get("succeeded") == 1, status
        pods = api.get("pods/", params={"job_name": name}).json()["items"]
        assert api.get(f"jobs/logs/{name}/").status_code == 200
        return name, pods[0]


@pytest.mark.e2e
def test_the_shipped_rbac_grants_exactly_what_the_hub_and_jobs_service_use(tmp_path):
    """The stack runs what openshift/ ships (OpenShift profile, templates applied, the hub's
    token is the template's service account with no rules of its own): a spawn, a job
    through the hub-managed service and every call of the service's Kubernetes edge in
    both namespace modes are all allowed, and use every verb granted, no more."""
    from devstack import deployment
    from tests.helpers.e2e import (
        browser,
        progress_events,
        running_hub,
        running_stack,
        spawn,
        stack_objects,
    )
    from tests.helpers.security_stack import own_token
    from valeria_hub.jobs.naming import user_namespace
    from valeria_hub.names import dependent_name

    objects = rendered("valeria-hub-template.yaml")
    role = one(objects, "Role")
    per_user = rendered("rbac-user-namespaces.yaml")
    cluster = one(per_user, "ClusterRole", "-namespaces")
    in_user_namespaces = one(per_user, "ClusterRole", "-user-namespace")
    user = deployment.HUB_USER
    alice_ns = user_namespace("valeria-jobs-", "alice")
    bob_ns = user_namespace("valeria-jobs-", "bob")
    with running_stack(tmp_path) as stack:
        stack.kube.api.audit = audit = []
        # a stale S3 Secret left by a crashed spawn: the spawner deletes and re-creates it
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
            # admitted by the shipped SCC, through the shipped RoleBinding of `default`
            assert pod["metadata"]["annotations"]["openshift.io/scc"] == "valeria-notebook"

            # the spawned pod is what the notebook NetworkPolicy selects and admits
            policy = one(objects, "NetworkPolicy", "-notebooks")["spec"]
            assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
            ports = {p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
            assert {p["port"] for p in policy["ingress"][0]["ports"]} <= ports

            # shared mode: every call of the service's Kubernetes edge in the hub's namespace
            asyncio.run(jobs_service_calls(stack.kubeconfig, "default", "jupyter-alice", False))

            # per-user mode: a real job through the hub-managed service (its namespace made
            # and bound by the service), then every call of its edge in that namespace
            container = {"name": "job", "image": "python:3.11", "command": ["sh", "run.sh"]}
            job, job_pod = submit_job(hub, own_token(client, hub.public_url, "alice"), container)
            assert job_pod["metadata"]["namespace"] == alice_ns
            admitted = stack.kube.call(
                stack.kube.get_object, "v1/pods", alice_ns, job_pod["metadata"]["name"]
            )
            assert admitted["metadata"]["annotations"]["openshift.io/scc"] == "valeria-notebook"
            asyncio.run(
                jobs_service_calls(
                    stack.kubeconfig, alice_ns, job_pod["metadata"]["name"], True, "job"
                )
            )

            # bob has no namespace yet: his (empty) lists, not a refusal
            with contextlib.closing(browser(hub, "bob")) as bob:
                bob_token = own_token(bob, hub.public_url, "bob")
            headers = {"Authorization": f"token {bob_token}"}
            for path in ("jobs/", "cronjobs/", "pods/", "jobs/nothing"):
                resp = httpx.get(f"{hub.public_url}/services/jobs/{path}", headers=headers)
                assert resp.status_code == (404 if path == "jobs/nothing" else 200), resp.text
                assert path == "jobs/nothing" or resp.json()["items"] == []

            client.get(f"{hub.public_url}/hub/home")
            xsrf = client.cookies.get("_xsrf", path="/hub/")
            resp = client.delete(
                f"{hub.public_url}/hub/api/users/alice/server",
                headers={"X-XSRFToken": xsrf or "", "Referer": f"{hub.public_url}/hub/home"},
            )
            assert resp.status_code in (202, 204), resp.text
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                names = [p["metadata"]["name"] for p in stack_objects(stack, "v1/pods", "default")]
                calls = used(audit, user, (bob_ns,))
                done = ("", "secrets", "delete") in calls.get("default", set())
                if "jupyter-alice" not in names and done:
                    break
                time.sleep(0.3)
        calls = used(audit, user, (bob_ns,))
        # the hub's namespace: exactly the Role
        assert calls.pop("default") == granted(role["rules"])
        # a person's namespace: exactly the ClusterRole bound there, plus its two
        # RoleBindings and the look at the namespace itself (the cluster-wide ClusterRole)
        bindings = {("rbac.authorization.k8s.io", "rolebindings", "create")}
        look = {("", "namespaces", "get")}
        assert calls.pop(alice_ns) == granted(in_user_namespaces["rules"]) | bindings | look
        # cluster-wide, nothing but namespaces; every verb of that ClusterRole used
        # (`bind` is what RBAC escalation prevention asked, not a request of its own)
        assert calls.pop("", set()) | look | bindings | {
            ("rbac.authorization.k8s.io", "clusterroles", "bind")
        } == granted(cluster["rules"])
        assert calls == {}, "calls in other namespaces"
        created = [
            (o["roleRef"]["name"], o["subjects"][0]["name"])
            for o in stack_objects(stack, "rbac.authorization.k8s.io/v1/rolebindings", alice_ns)
        ]
        assert sorted(created) == [
            ("valeria-hub-user-namespace", "valeria-hub-hub"),
            ("valeria-notebook-scc", "default"),
        ]
        assert {
            o["metadata"]["name"]
            for o in stack_objects(stack, "networking.k8s.io/v1/networkpolicies", alice_ns)
        } == {"valeria-jobs-isolation"}
        assert stack_objects(stack, "v1/resourcequotas", alice_ns)


@pytest.mark.e2e
def test_the_hubs_account_can_do_nothing_outside_the_namespaces_it_made(tmp_path):
    """With only the shipped RBAC, the hub's account is refused, with the server's
    answers, everywhere but its own namespace and the per-user namespaces it bound, and
    may bind no role but the two it is given."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException

    from tests.helpers.e2e import running_stack

    with running_stack(tmp_path) as stack:
        other = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "someone-else"}}
        stack.kube.call(stack.kube.create_object, other)
        api_client = k8s_config.new_client_from_config(str(stack.kubeconfig))
        core, batch = k8s.CoreV1Api(api_client), k8s.BatchV1Api(api_client)
        rbac = k8s.RbacAuthorizationV1Api(api_client)

        def refused(call: Any, *args: Any, **kwargs: Any) -> str:
            with pytest.raises(ApiException) as err:
                call(*args, **kwargs)
            assert err.value.status == 403, err.value.body
            return json.loads(err.value.body)["message"]

        user = 'User "system:serviceaccount:default:valeria-hub-hub"'
        for call, args in (
            (core.list_pod_for_all_namespaces, ()),
            (core.list_secret_for_all_namespaces, ()),
            (core.list_namespaced_pod, ("someone-else",)),
            (core.list_namespaced_secret, ("default",)),  # not even its own: never read
            (core.read_namespaced_secret, ("valeria-hub", "default")),
            (batch.list_namespaced_job, ("someone-else",)),
        ):
            assert user in refused(call, *args)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        assert user in refused(core.create_namespaced_pod, "someone-else", pod)
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "valeria-hub"}}
        assert user in refused(core.patch_namespaced_secret, "valeria-hub", "default", secret)
        assert user in refused(core.replace_namespaced_secret, "valeria-hub", "default", secret)

        # in a namespace of its own making, it may bind the two roles it is given, no other
        ns = "valeria-jobs-probe"
        core.create_namespace({"metadata": {"name": ns}})
        for role in (
            "system:openshift:scc:privileged",
            "system:openshift:scc:anyuid",
            "system:controller:job-controller",
        ):
            binding = {
                "metadata": {"name": "grab"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "valeria-hub-hub", "namespace": "default"}
                ],
            }
            message = refused(rbac.create_namespaced_role_binding, ns, binding)
            assert "is attempting to grant RBAC permissions not currently held" in message
        # nor make a Role of its own (it holds no `create` on roles)
        role = {"metadata": {"name": "mine"}, "rules": []}
        assert user in refused(rbac.create_namespaced_role, ns, role)
        api_client.close()


# -- the shipped NetworkPolicies on real traffic ------------------------------------------------
PY = sys.executable
# addresses outside every private range, on the node: a campus NFS server and an S3
# endpoint on public addresses (TEST-NET-3, documentation only; pods reach no machine)
NFS_IP, S3_IP = "203.0.113.20", "203.0.113.10"
RESOLVE = """import socket, sys
for name in sys.argv[1:]:
    try:
        print(name, socket.gethostbyname(name))
    except OSError as e:
        print(name, "ERROR", e)
"""


def server_pod(name: str, port: int, labels: dict, ns: str = "default") -> dict:
    """A pod serving HTTP on ``port``, labelled as the hub labels its workloads."""
    container = {
        "name": "main",
        "image": "python:3.11",
        "command": [PY, "-m", "http.server", str(port), "--bind", "0.0.0.0", "--directory", "/"],
        "ports": [{"containerPort": port}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }


async def connects(prefix: list[str], ip: str, port: int, timeout: float = 0.7) -> bool:
    """Does a TCP connection from inside a pod's network namespace succeed?"""
    code = (
        "import socket,sys\ns=socket.socket();s.settimeout(float(sys.argv[3]))\n"
        "try:\n s.connect((sys.argv[1],int(sys.argv[2])));print('ok')\nexcept OSError as e:print(e)"
    )
    argv = [*prefix, PY, "-I", "-S", "-c", code, ip, str(port), str(timeout)]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(*argv, stdout=pipe, stderr=pipe)
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err
    return out.decode().strip() == "ok"


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_the_shipped_network_policies_hold_on_real_traffic(tmp_path):
    """The template's NetworkPolicies and a per-user namespace's (isolation.py), enforced
    by the stand-in's netns network on pods labelled as the hub's notebooks, its own pod
    (hub and proxy) and jobs: DNS resolves from a job; a job reaches S3 but no other pod
    and not the NFS server; a notebook is reachable from the hub pod only, a job from
    nothing."""
    from devstack import deployment
    from devstack.kube.server import KubeStandIn
    from valeria_hub.jobs import isolation

    kube = KubeStandIn(root=tmp_path / "kube", profile="openshift", network="netns")
    try:
        await kube.start()
    except RuntimeError as e:
        if "cannot enforce" not in str(e) or os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(str(e))
    servers: list[asyncio.AbstractServer] = []
    try:
        net = kube.network
        # the "NFS server" and "S3" answer on the node at public addresses of their own
        for ip in (NFS_IP, S3_IP):
            await (await asyncio.create_subprocess_exec(
                "ip", "addr", "add", f"{ip}/32", "dev", net.names.bridge
            )).wait()  # fmt: skip
            servers.append(await asyncio.start_server(lambda r, w: w.close(), ip, 2049))
        net.hosts["s3.campus.example"] = S3_IP
        params = deployment.Parameters(
            s3_cidr=f"{S3_IP}/32", nfs_cidr=f"{NFS_IP}/32", internal_cidr="198.51.100.0/24"
        )
        for obj in deployment.objects(params):
            if obj["kind"] != "Secret":
                deployment.apply(kube, [obj])
        # a person's job namespace, as the jobs service makes it
        alice_ns = "valeria-jobs-alice-probe"
        kube.create_object(isolation.namespace_manifest(alice_ns, "alice"))
        kube.create_object(
            isolation.network_policy_manifest(
                alice_ns, [f"{S3_IP}/32"], [f"{NFS_IP}/32", "198.51.100.0/24"]
            )
        )
        hub_labels = {
            "app.kubernetes.io/instance": "valeria-hub",
            "app.kubernetes.io/component": "hub",
        }
        notebook = {"component": "singleuser-server", "hub.jupyter.org/username": "alice"}
        job = {**MANAGED_BY, "job-name": "probe"}
        pods = {
            "hub": server_pod("hub", 8081, hub_labels),
            "alice-nb": server_pod("alice-nb", 8888, notebook),
            "bob-nb": server_pod("bob-nb", 8888, {**notebook, "hub.jupyter.org/username": "bob"}),
            "job": server_pod("job", 8080, job),
            "user-job": server_pod("user-job", 8080, job, ns=alice_ns),
        }
        for pod in pods.values():
            kube.create_object(pod)
        dns_pods = {}
        for name, ns in (("dns-job", "default"), ("dns-user-job", alice_ns)):
            container = {
                "name": "main",
                "image": "python:3.11",
                "command": [PY, "-c", RESOLVE],
                "args": ["valeria-hub-hub.default.svc.cluster.local", "s3.campus.example"],
            }
            dns_pods[name] = kube.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": ns, "labels": job},
                    "spec": {"restartPolicy": "Never", "containers": [container]},
                }
            )

        async def running(name: str, ns: str) -> dict:
            deadline = time.monotonic() + 30
            while True:
                pod = kube.store.get("v1/pods", ns, name)
                if pod["status"].get("podIP") and pod["status"].get("phase") == "Running":
                    return pod
                assert time.monotonic() < deadline, f"{ns}/{name}: {pod['status']}"
                await asyncio.sleep(0.1)

        live = {
            name: await running(name, pod["metadata"]["namespace"]) for name, pod in pods.items()
        }
        await net.sync()
        ip = {name: pod["status"]["podIP"] for name, pod in live.items()}

        def inside(name: str) -> list[str]:
            return net.exec_prefix(live[name]["metadata"]["uid"])

        # every server answers at its address, from its own netns (never policed): what
        # is refused below is refused by the policies, not by a server still starting
        for name, port in (("hub", 8081), ("alice-nb", 8888), ("job", 8080), ("user-job", 8080)):
            deadline = time.monotonic() + 20
            while not await connects(inside(name), ip[name], port, timeout=0.3):
                assert time.monotonic() < deadline, f"{name} never served on {ip[name]}:{port}"
                await asyncio.sleep(0.1)

        # DNS from a job pod (both modes): the cluster DNS pods on 5353 behind the Service
        for name, pod in dns_pods.items():
            ns = pod["metadata"]["namespace"]
            deadline = time.monotonic() + 30
            while kube.store.get("v1/pods", ns, name)["status"].get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            lines = kube.kubelet.read_log(ns, name).decode().splitlines()
            assert lines == [
                f"valeria-hub-hub.default.svc.cluster.local {ip['hub']}",
                f"s3.campus.example {S3_IP}",
            ], (name, lines)

        checks = {
            # a job (shared or per-user namespace) reaches S3, nothing else
            ("job", S3_IP, 2049): True,
            ("user-job", S3_IP, 2049): True,
            ("job", NFS_IP, 2049): False,
            ("user-job", NFS_IP, 2049): False,
            ("job", ip["alice-nb"], 8888): False,
            ("user-job", ip["alice-nb"], 8888): False,
            ("job", ip["hub"], 8081): False,
            ("user-job", ip["job"], 8080): False,
            # a notebook: reached from the hub pod only; reaches the hub API, not NFS
            ("hub", ip["alice-nb"], 8888): True,
            ("job", ip["bob-nb"], 8888): False,
            ("bob-nb", ip["alice-nb"], 8888): False,
            ("alice-nb", ip["hub"], 8081): True,
            ("alice-nb", S3_IP, 2049): True,
            ("alice-nb", NFS_IP, 2049): False,
            # a job pod: reached from nothing, not even the hub pod
            ("hub", ip["job"], 8080): False,
            ("hub", ip["user-job"], 8080): False,
            ("alice-nb", ip["job"], 8080): False,
        }
        results = await asyncio.gather(
            *(connects(inside(src), dst, port) for src, dst, port in checks)
        )
        assert dict(zip(checks, results, strict=True)) == checks
    finally:
        for server in servers:
            server.close()
        await kube.stop()


def test_yaml_files_parse_and_carry_no_plain_data_secret():
    for path in sorted((ROOT / "openshift").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for obj in doc.get("objects", []):
            if obj.get("kind") == "Secret":
                assert "data" not in obj, path.name
