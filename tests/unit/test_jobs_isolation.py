"""What the jobs service puts in a per-user namespace (isolation.py, pure) and the order in
which ensure_namespace makes it (a recording stand-in for the Kubernetes edge)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from traitlets import TraitError

from valeria_hub.jobs import isolation
from valeria_hub.jobs.config import JobsServiceApp, service_account
from valeria_hub.jobs.kube import KubeError
from valeria_hub.jobs.service import Context, ServiceError, ensure_namespace
from valeria_hub.jobs.settings import JobsSettings, Namespaces

NS = "valeria-jobs-alice-0123456789"
DNS_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "openshift-dns"}},
            "podSelector": {"matchLabels": {"dns.operator.openshift.io/daemonset-dns": "default"}},
        }
    ],
    "ports": [
        {"protocol": "UDP", "port": 53},
        {"protocol": "TCP", "port": 53},
        {"protocol": "UDP", "port": 5353},
        {"protocol": "TCP", "port": 5353},
    ],
}


# -- the manifests ----------------------------------------------------------------------
def test_network_policy_closes_ingress_private_and_denied_ranges_and_opens_dns_pods_only():
    spec = isolation.network_policy_manifest(
        NS, ["10.20.30.0/24"], ["130.225.40.5/32", "130.225.0.0/16", "fd00::/8"]
    )["spec"]
    assert spec["podSelector"] == {} and spec["ingress"] == []
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    internet, dns, allowed = spec["egress"]
    assert internet == {
        "to": [
            {
                "ipBlock": {
                    "cidr": "0.0.0.0/0",
                    "except": [
                        *isolation.PRIVATE_RANGES,
                        "130.225.40.5/32",
                        "130.225.0.0/16",
                    ],  # the IPv6 range needs no except: nothing opens IPv6
                }
            }
        ]
    }
    assert dns == DNS_RULE  # 5353: OVN polices after the Service NAT; only the DNS pods
    assert allowed == {"to": [{"ipBlock": {"cidr": "10.20.30.0/24"}}]}
    # every rule names its peers: nothing is open to every destination
    assert all(rule.get("to") for rule in spec["egress"])


def test_without_allowed_or_denied_ranges_the_private_ones_stay_closed():
    egress = isolation.network_policy_manifest(NS, [])["spec"]["egress"]
    assert len(egress) == 2
    assert egress[0]["to"][0]["ipBlock"]["except"] == list(isolation.PRIVATE_RANGES)


def test_manifests_are_fresh_objects_each_time():
    one = isolation.network_policy_manifest(NS, [])
    one["spec"]["egress"][1]["to"][0]["podSelector"]["matchLabels"]["x"] = "y"
    assert isolation.network_policy_manifest(NS, [])["spec"]["egress"][1] == DNS_RULE


def test_namespace_carries_owner_and_pod_security_baseline():
    meta = isolation.namespace_manifest(NS, "alice")["metadata"]
    assert meta["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert isolation.namespace_is_users(meta, "alice")
    assert not isolation.namespace_is_users(meta, "bob")


def test_role_bindings_bind_a_cluster_role_to_one_service_account_in_one_namespace():
    service = isolation.service_binding_manifest(
        NS, "valeria-hub-user-namespace", "valeria", "valeria-hub-hub"
    )
    assert service["metadata"]["namespace"] == NS
    assert service["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "valeria-hub-user-namespace",
    }
    assert service["subjects"] == [
        {"kind": "ServiceAccount", "name": "valeria-hub-hub", "namespace": "valeria"}
    ]
    scc = isolation.pod_scc_binding_manifest(NS, "valeria-notebook-scc")
    assert scc["roleRef"]["name"] == "valeria-notebook-scc"
    # job pods run under the namespace's own default account
    assert scc["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]
    assert scc["metadata"]["name"] != service["metadata"]["name"]


# -- the settings -------------------------------------------------------------------------
def test_service_account_forms():
    assert service_account("") is None
    assert service_account("valeria-hub-hub") == ("", "valeria-hub-hub")
    assert service_account("valeria:valeria-hub-hub") == ("valeria", "valeria-hub-hub")
    assert service_account("system:serviceaccount:valeria:hub") == ("valeria", "hub")
    for bad in ("Hub", "a:b:c", "ns:", ":name", "x" * 64):
        with pytest.raises(ValueError, match="service_account"):
            service_account(bad)


def test_traits_become_namespace_settings_and_bad_values_are_refused():
    app = JobsServiceApp()
    app.parse_command_line(
        [
            "--JobsServiceApp.service_account=valeria:valeria-hub-hub",
            "--JobsServiceApp.egress_allow_cidrs=10.20.30.0/24",
            "--JobsServiceApp.egress_deny_cidrs=130.225.40.5/32",
            "--JobsServiceApp.egress_deny_cidrs=130.225.0.0/16",
        ]
    )
    ns = app.settings().namespaces
    assert ns.service_account == ("valeria", "valeria-hub-hub")
    assert ns.egress_allow_cidrs == ("10.20.30.0/24",)
    assert ns.egress_deny_cidrs == ("130.225.40.5/32", "130.225.0.0/16")
    assert ns.service_role == "valeria-hub-user-namespace"
    assert ns.pod_scc_role == "valeria-notebook-scc"
    with pytest.raises(TraitError, match="egress_deny_cidrs"):
        JobsServiceApp(egress_deny_cidrs=["nfs.example.org"])
    with pytest.raises(TraitError, match="service_account"):
        JobsServiceApp(service_account="Not A Name")


# -- ensure_namespace, against a recording Kubernetes edge ------------------------------------
class FakeKube:
    """Records the calls; ``namespaces`` is what exists; ``forbidden`` 403s to hand out."""

    default_namespace = "valeria"

    def __init__(self, namespaces: dict[str, dict] | None = None, forbidden: int = 0) -> None:
        self.namespaces = namespaces or {}
        self.forbidden = forbidden
        self.calls: list[tuple[str, Any]] = []

    async def read_namespace(self, name: str) -> dict | None:
        self.calls.append(("read_namespace", name))
        return self.namespaces.get(name)

    async def create_namespace(self, body: dict) -> None:
        self.calls.append(("create_namespace", body["metadata"]["name"]))
        self.namespaces[body["metadata"]["name"]] = body

    async def create_if_missing(self, kind: str, namespace: str, body: dict) -> None:
        if kind == "NetworkPolicy" and self.forbidden:
            self.forbidden -= 1
            self.calls.append(("403", kind))
            raise KubeError(403, "networkpolicies is forbidden")
        self.calls.append((kind, body["metadata"]["name"]))


def context(kube: FakeKube, **namespaces: Any) -> Context:
    settings = JobsSettings(prefix="/", service_name="jobs", hub_api_url="", hub_api_token="")
    defaults = {"service_account": ("", "valeria-hub-hub"), "quota": {"limits.cpu": "4"}}
    settings = dataclasses.replace(settings, namespaces=Namespaces(**{**defaults, **namespaces}))
    return Context(settings=settings, hub=None, kube=kube, vault=None)  # type: ignore[arg-type]


def test_a_new_namespace_gets_its_bindings_before_anything_the_service_needs_them_for():
    kube = FakeKube()
    asyncio.run(ensure_namespace(context(kube), NS, "alice"))
    assert kube.calls == [
        ("read_namespace", NS),
        ("create_namespace", NS),
        ("read_namespace", NS),
        ("RoleBinding", isolation.SERVICE_BINDING),
        ("RoleBinding", isolation.POD_SCC_BINDING),
        ("NetworkPolicy", isolation.NETWORK_POLICY),
        ("ResourceQuota", isolation.QUOTA),
    ]


def test_a_403_right_after_the_binding_is_waited_out_and_a_lasting_one_is_not():
    kube = FakeKube(forbidden=2)
    asyncio.run(ensure_namespace(context(kube), NS, "alice"))
    assert kube.calls[-4:] == [
        ("403", "NetworkPolicy"),
        ("403", "NetworkPolicy"),
        ("NetworkPolicy", isolation.NETWORK_POLICY),
        ("ResourceQuota", isolation.QUOTA),
    ]
    import valeria_hub.jobs.service as service

    lasting = FakeKube(forbidden=10_000)
    original, service.RBAC_SETTLE_SECONDS = service.RBAC_SETTLE_SECONDS, 0.5
    try:
        with pytest.raises(KubeError) as err:
            asyncio.run(ensure_namespace(context(lasting), NS, "alice"))
    finally:
        service.RBAC_SETTLE_SECONDS = original
    assert err.value.status == 403 and ("ResourceQuota", isolation.QUOTA) not in lasting.calls


def test_someone_elses_namespace_is_refused_before_anything_is_bound_in_it():
    theirs = isolation.namespace_manifest(NS, "bob")
    kube = FakeKube({NS: theirs})
    with pytest.raises(ServiceError) as err:
        asyncio.run(ensure_namespace(context(kube), NS, "alice"))
    assert err.value.status == 503
    assert kube.calls == [("read_namespace", NS)]


def test_without_an_account_or_scc_role_nothing_is_bound_and_shared_mode_does_nothing():
    kube = FakeKube()
    asyncio.run(ensure_namespace(context(kube, service_account=None, pod_scc_role=""), NS, "a"))
    assert [c for c in kube.calls if c[0] == "RoleBinding"] == []
    shared = FakeKube()
    asyncio.run(ensure_namespace(context(shared, mode="shared"), NS, "alice"))
    assert shared.calls == []


def test_the_service_binds_its_own_account_in_its_own_namespace_by_default():
    recorded: list[dict] = []

    class Recording(FakeKube):
        async def create_if_missing(self, kind: str, namespace: str, body: dict) -> None:
            recorded.append(body)

    asyncio.run(ensure_namespace(context(Recording()), NS, "alice"))
    assert recorded[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": "valeria-hub-hub", "namespace": "valeria"}
    ]


def test_the_hub_hands_the_template_settings_to_the_service_and_refuses_bad_cidrs():
    from tests.helpers import DEPLOYMENT_ENV
    from valeria_hub.envconfig import ConfigError, read_settings
    from valeria_hub.jobs.hub_service import service_command

    env = {
        **DEPLOYMENT_ENV,
        "KUBERNETES_NAMESPACE": "valeria",
        "KUBERNETES_SERVICE_ACCOUNT": "valeria-hub-hub",
        "JOBS_NAMESPACE_ROLE": "hub-user-namespace",
        "JOBS_POD_SCC_ROLE": "notebook-scc",
        "JOBS_EGRESS_ALLOW_CIDRS": "10.20.30.0/24",
        "JOBS_EGRESS_DENY_CIDRS": "130.225.40.5/32, 130.225.0.0/16",
    }
    app = JobsServiceApp()
    app.parse_command_line(service_command(read_settings(env), "python")[3:])
    ns = app.settings().namespaces
    assert ns.service_account == ("valeria", "valeria-hub-hub")
    assert (ns.service_role, ns.pod_scc_role) == ("hub-user-namespace", "notebook-scc")
    assert ns.egress_allow_cidrs == ("10.20.30.0/24",)
    assert ns.egress_deny_cidrs == ("130.225.40.5/32", "130.225.0.0/16")
    with pytest.raises(ConfigError, match="JOBS_EGRESS_DENY_CIDRS.*nfs.example.org"):
        read_settings({**env, "JOBS_EGRESS_DENY_CIDRS": "nfs.example.org"})
