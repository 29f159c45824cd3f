"""RBAC from Role, ClusterRole and their bindings in the store, and the OpenShift
profile's namespace ranges: through HTTP, as a client of the real API server sees them.
"""

from __future__ import annotations

import httpx
import pytest

from devstack.kube.openshift.namespaces import MCS, SUPPLEMENTAL_GROUPS, UID_RANGE
from devstack.kube.server import KubeStandIn

SA = "system:serviceaccount:hub:valeria-hub"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
TOKENS = {"root": {"user": "admin", "admin": True}, "sa": {"user": SA}, "kim": {"user": "kim"}}


@pytest.fixture
def kube(tmp_path):
    s = KubeStandIn(
        root=tmp_path / "kube",
        run_kubelet=False,
        run_controllers=False,
        strict_schema=True,
        tokens=TOKENS,
        namespaces=["default", "hub", "a", "b"],
    )
    with s.serve_in_thread():
        yield s


def call(kube: KubeStandIn, token: str, method: str, path: str, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, kube.url + path, json=body, headers=headers, timeout=10)


def role(name: str, kind: str = "Role", namespace: str = "") -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "get"]}],
    }


def binding(name: str, role_kind: str, role_name: str, subject: dict, namespace: str = ""):
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": [subject],
    }


SA_SUBJECT = {"kind": "ServiceAccount", "name": "valeria-hub", "namespace": "hub"}


def test_a_role_binding_grants_only_in_its_namespace(kube):
    assert call(kube, "sa", "GET", "/api/v1/namespaces/a/pods").status_code == 403
    r = call(kube, "root", "POST", f"{RBAC}/namespaces/a/roles", role("reader", namespace="a"))
    assert r.status_code == 201, r.text
    b = binding("reader", "Role", "reader", SA_SUBJECT, namespace="a")
    assert call(kube, "root", "POST", f"{RBAC}/namespaces/a/rolebindings", b).status_code == 201
    assert call(kube, "sa", "GET", "/api/v1/namespaces/a/pods").status_code == 200
    refused = call(kube, "sa", "GET", "/api/v1/namespaces/b/pods")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        f'pods is forbidden: User "{SA}" cannot list resource "pods" in API group "" '
        'in the namespace "b"'
    )
    assert call(kube, "sa", "GET", "/api/v1/pods").status_code == 403  # not cluster-wide
    assert call(kube, "kim", "GET", "/api/v1/namespaces/a/pods").status_code == 403
    # the binding goes, the right goes with it
    call(kube, "root", "DELETE", f"{RBAC}/namespaces/a/rolebindings/reader")
    assert call(kube, "sa", "GET", "/api/v1/namespaces/a/pods").status_code == 403


def test_a_cluster_role_bound_in_a_namespace_applies_there_only(kube):
    assert call(
        kube, "root", "POST", f"{RBAC}/clusterroles", role("pods", "ClusterRole")
    ).is_success
    b = binding("pods", "ClusterRole", "pods", SA_SUBJECT, namespace="b")
    assert call(kube, "root", "POST", f"{RBAC}/namespaces/b/rolebindings", b).is_success
    assert call(kube, "sa", "GET", "/api/v1/namespaces/b/pods").status_code == 200
    assert call(kube, "sa", "GET", "/api/v1/namespaces/a/pods").status_code == 403
    assert call(kube, "sa", "GET", "/api/v1/pods").status_code == 403


def test_cluster_role_bindings_to_groups(kube):
    assert call(
        kube, "root", "POST", f"{RBAC}/clusterroles", role("pods", "ClusterRole")
    ).is_success
    everyone = binding(
        "sas", "ClusterRole", "pods", {"kind": "Group", "name": "system:serviceaccounts:hub"}
    )
    assert call(kube, "root", "POST", f"{RBAC}/clusterrolebindings", everyone).is_success
    assert call(kube, "sa", "GET", "/api/v1/pods").status_code == 200  # the SA's group
    assert call(kube, "kim", "GET", "/api/v1/pods").status_code == 403  # a user is not in it
    users = binding("kim", "ClusterRole", "pods", {"kind": "Group", "name": "system:authenticated"})
    assert call(kube, "root", "POST", f"{RBAC}/clusterrolebindings", users).is_success
    assert call(kube, "kim", "GET", "/api/v1/namespaces/a/pods").status_code == 200
    anonymous = httpx.get(f"{kube.url}/api/v1/pods", timeout=10)
    assert anonymous.status_code == 403


def test_openshift_profile_gives_each_namespace_its_own_ranges(tmp_path):
    s = KubeStandIn(
        root=tmp_path / "kube",
        run_kubelet=False,
        run_controllers=False,
        profile="openshift",
        namespaces=["default", "team"],
    )
    with s.serve_in_thread():
        for name, preset in (("one", None), ("two", None), ("kept", "1000990000/10000")):
            meta = {"name": name}
            if preset:
                meta["annotations"] = {UID_RANGE: preset}
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
            assert httpx.post(f"{s.url}/api/v1/namespaces", json=body, timeout=10).is_success
        got = {
            ns["metadata"]["name"]: ns["metadata"]["annotations"]
            for ns in httpx.get(f"{s.url}/api/v1/namespaces", timeout=10).json()["items"]
        }
    ranges = [got[n][UID_RANGE] for n in ("default", "team", "one", "two")]
    assert len(set(ranges)) == 4 and all(r.endswith("/10000") for r in ranges)
    assert all(1_000_000_000 <= int(r.split("/")[0]) < 2_000_000_000 for r in ranges)
    assert got["one"][SUPPLEMENTAL_GROUPS] == got["one"][UID_RANGE]
    assert got["one"][MCS] != got["two"][MCS]
    assert got["kept"][UID_RANGE] == "1000990000/10000"


def test_an_unknown_profile_is_refused(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        KubeStandIn(root=tmp_path / "k", run_kubelet=False, profile="minikube")
