"""SecurityContextConstraints admission in the OpenShift profile of the Kubernetes stand-in,
through HTTP as a client of a real OpenShift API server meets it: which SCC admits a pod,
what it fills in, the exact refusal, SCCs granted by RBAC or by their users field, the
ordering by priority and restrictiveness, pods the Job controller creates, and nothing of
it in the plain Kubernetes profile.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from devstack.kube.openshift.namespaces import MCS, SUPPLEMENTAL_GROUPS, UID_RANGE
from devstack.kube.openshift.scc import (
    SECCOMP_POD,
    FieldError,
    aggregate,
    ordered,
    restriction_points,
)
from devstack.kube.openshift.sccs import DEFAULT_SCCS
from devstack.kube.server import KubeStandIn
from tests.helpers.openshift import load, process

SCCS = "/apis/security.openshift.io/v1/securitycontextconstraints"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
# kim may create pods and jobs anywhere, and nothing else: no SCC beyond what every
# authenticated user has (restricted-v2)
KIM_RULES = [{"apiGroups": ["", "batch"], "resources": ["pods", "jobs"], "verbs": ["*"]}]
TOKENS = {"root": {"user": "admin", "admin": True}, "kim": {"user": "kim", "rules": KIM_RULES}}
NOT_USABLE = "Forbidden: not usable by user or serviceaccount"
# the default SCCs after restricted-v2, in admission's order, none usable by kim
OTHERS = ["restricted", "nonroot-v2", "nonroot", "hostmount-anyuid", "hostnetwork-v2",
          "hostnetwork", "hostaccess", "privileged"]  # fmt: skip


def standin(tmp_path, profile: str = "openshift", controllers: bool = False) -> KubeStandIn:
    return KubeStandIn(
        root=tmp_path / "kube",
        run_kubelet=False,
        run_controllers=controllers,
        tokens=TOKENS,
        profile=profile,
        namespaces=["default", "team", "nb"],
    )


@pytest.fixture
def kube(tmp_path):
    s = standin(tmp_path)
    with s.serve_in_thread():
        yield s


def call(kube: KubeStandIn, token: str, method: str, path: str, body: Any = None, **kw: Any):
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    if isinstance(body, bytes):
        return httpx.request(method, kube.url + path, content=body, headers=headers, timeout=10)
    return httpx.request(method, kube.url + path, json=body, headers=headers, timeout=10)


def pod(name: str, *, sa: str = "", psc: dict | None = None, csc: dict | None = None,
        volumes: list | None = None) -> dict:  # fmt: skip
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": ["true"]}
    if csc is not None:
        container["securityContext"] = csc
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    if sa:
        spec["serviceAccountName"] = sa
    if psc is not None:
        spec["securityContext"] = psc
    if volumes:
        spec["volumes"] = volumes
        container["volumeMounts"] = [
            {"name": v["name"], "mountPath": "/" + v["name"]} for v in volumes
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def create_pod(kube: KubeStandIn, ns: str, body: dict, token: str = "kim") -> httpx.Response:
    return call(kube, token, "POST", f"/api/v1/namespaces/{ns}/pods", body)


def ranges(kube: KubeStandIn, ns: str) -> tuple[int, int, int, str]:
    """(first uid, last uid, first supplemental group, MCS level) of a namespace."""
    annotations = call(kube, "root", "GET", f"/api/v1/namespaces/{ns}").json()["metadata"][
        "annotations"
    ]
    start, size = (int(x) for x in annotations[UID_RANGE].split("/"))
    group = int(annotations[SUPPLEMENTAL_GROUPS].split("/")[0])
    return start, start + size - 1, group, annotations[MCS]


def refusal(name: str, restricted_v2: list[str], extra: list[str] = ()) -> str:
    """The whole message for kim's refused pod: every SCC in order, restricted-v2's reasons
    in its place."""
    parts = [f'provider "anyuid": {NOT_USABLE}', *restricted_v2]
    parts += [f'provider "{o}": {NOT_USABLE}' for o in OTHERS] + list(extra)
    return (
        f'pods "{name}" is forbidden: unable to validate against any security context '
        f"constraint: [{', '.join(parts)}]"
    )


def test_default_sccs_sort_like_openshifts_published_refusals():
    """Priority first (anyuid has 10), then restrictiveness points, then name: the order in
    which real refusals list them."""
    names = [s["metadata"]["name"] for s in ordered(DEFAULT_SCCS)]
    assert names == ["anyuid", "restricted-v2", *OTHERS]


def test_restrictiveness_points_and_error_lists_are_openshifts():
    v2 = next(s for s in DEFAULT_SCCS if s["metadata"]["name"] == "restricted-v2")
    # non-trivial volumes 100000 + caps (5000 + 10 allowed - 3000 drop ALL) + MustRunAs
    # SELinux 10000 + MustRunAsRange 20000
    assert restriction_points(v2) == 132_010
    one = FieldError("spec.volumes[0]", "Invalid value", '"nfs"', "nfs volumes are not allowed")
    assert (
        aggregate([one, one])
        == 'spec.volumes[0]: Invalid value: "nfs": nfs volumes are not allowed'
    )
    assert aggregate([one, FieldError("x", "Required value")]).startswith("[spec.volumes[0]")


def test_the_cluster_starts_with_the_default_sccs_and_their_rbac(kube):
    sccs = {s["metadata"]["name"]: s for s in call(kube, "root", "GET", SCCS).json()["items"]}
    assert {"restricted-v2", "nonroot-v2", "anyuid", "hostmount-anyuid", "privileged"} <= set(sccs)
    v2 = sccs["restricted-v2"]
    assert v2["runAsUser"] == {"type": "MustRunAsRange"}
    assert "nfs" not in v2["volumes"] and "persistentVolumeClaim" in v2["volumes"]
    assert v2["requiredDropCapabilities"] == ["ALL"] and v2["allowPrivilegeEscalation"] is False
    role = call(kube, "root", "GET", f"{RBAC}/clusterroles/system:openshift:scc:restricted-v2")
    assert role.json()["rules"] == [
        {
            "apiGroups": ["security.openshift.io"],
            "resources": ["securitycontextconstraints"],
            "resourceNames": ["restricted-v2"],
            "verbs": ["use"],
        }
    ]
    binding = call(
        kube, "root", "GET", f"{RBAC}/clusterrolebindings/system:openshift:scc:restricted-v2"
    ).json()
    assert binding["subjects"][0]["name"] == "system:authenticated"


def test_a_plain_pod_gets_restricted_v2_and_the_namespaces_ids(kube):
    first_uid, _, first_group, mcs = ranges(kube, "team")
    r = create_pod(kube, "team", pod("plain"))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["metadata"]["annotations"]["openshift.io/scc"] == "restricted-v2"
    psc = got["spec"]["securityContext"]
    assert psc["fsGroup"] == first_group
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert psc["seLinuxOptions"] == {"level": mcs}
    assert "runAsUser" not in psc  # OpenShift sets the uid per container
    assert got["spec"]["containers"][0]["securityContext"] == {
        "runAsUser": first_uid,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "allowPrivilegeEscalation": False,
    }
    # stored as answered, and a later update that changes no security field is admitted
    patch = call(
        kube, "kim", "PATCH", "/api/v1/namespaces/team/pods/plain",
        b'{"metadata": {"labels": {"tier": "a"}}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert patch.status_code == 200, patch.text
    assert patch.json()["metadata"]["annotations"]["openshift.io/scc"] == "restricted-v2"
    # an update that would need restricted-v2 to change the pod again is refused: updates
    # get no mutation, and restricted-v2 is not even named (it passed only by mutating)
    seccomp = {"metadata": {"annotations": {SECCOMP_POD: "unconfined"}}}
    unconfined = call(
        kube, "kim", "PATCH", "/api/v1/namespaces/team/pods/plain", json.dumps(seccomp).encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert unconfined.status_code == 403
    assert unconfined.json()["message"] == refusal("plain", [])


def test_a_pod_may_require_its_scc(kube):
    """``openshift.io/required-scc`` pins the pod to one SCC, usable or not."""
    pinned = pod("pinned")
    pinned["metadata"]["annotations"] = {"openshift.io/required-scc": "restricted-v2"}
    r = create_pod(kube, "team", pinned)
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["annotations"]["openshift.io/scc"] == "restricted-v2"
    pinned["metadata"] = {"name": "rooted", "annotations": {"openshift.io/required-scc": "anyuid"}}
    r = create_pod(kube, "team", pinned)
    assert r.status_code == 403
    assert r.json()["message"] == (
        'pods "rooted" is forbidden: unable to validate against any security context '
        f'constraint: provider "anyuid": {NOT_USABLE}'
    )
    pinned["metadata"] = {"name": "typo", "annotations": {"openshift.io/required-scc": "nope"}}
    assert create_pod(kube, "team", pinned).json()["message"] == (
        'pods "typo" is forbidden: failed to retrieve the required SCC "nope": '
        'securitycontextconstraints.security.openshift.io "nope" not found'
    )
    unpin = call(
        kube, "kim", "PATCH", "/api/v1/namespaces/team/pods/pinned",
        b'{"metadata": {"annotations": {"openshift.io/required-scc": null}}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert unpin.status_code == 403
    assert unpin.json()["message"] == (
        'pods "pinned" is forbidden: invalid change of required security context constraint '
        "annotation: openshift.io/required-scc"
    )


def test_a_uid_in_the_namespaces_range_is_kept(kube):
    first_uid, last_uid, _, _ = ranges(kube, "team")
    r = create_pod(kube, "team", pod("mine", psc={"runAsUser": last_uid}))
    assert r.status_code == 201, r.text
    assert "runAsUser" not in r.json()["spec"]["containers"][0]["securityContext"]
    assert r.json()["spec"]["securityContext"]["runAsUser"] == last_uid


CASES = {
    "uid-outside-range": (
        {"csc": {"runAsUser": 5000}},
        ["spec.containers[0].securityContext.runAsUser: Invalid value: 5000: must be in the "
         "ranges: [{lo}, {hi}]"],
    ),
    "fs-group-outside-range": (
        {"psc": {"fsGroup": 5000}},
        ["provider restricted-v2: .spec.securityContext.fsGroup: Invalid value: []int64{{5000}}: "
         "5000 is not an allowed group"],
    ),
    "host-path": (
        {"volumes": [{"name": "host", "hostPath": {"path": "/etc"}}]},
        ['spec.volumes[0]: Invalid value: "hostPath": hostPath volumes are not allowed to be used'],
    ),
    "nfs": (
        {"volumes": [{"name": "home", "nfs": {"server": "nfs.example", "path": "/home"}}]},
        ['spec.volumes[0]: Invalid value: "nfs": nfs volumes are not allowed to be used'],
    ),
    "added-capability": (
        {"csc": {"capabilities": {"add": ["NET_ADMIN"]}}},
        ['spec.containers[0].securityContext.capabilities.add: Invalid value: "NET_ADMIN": '
         "capability may not be added"],
    ),
    "privileged": (
        {"csc": {"privileged": True}},
        ["spec.containers[0].securityContext.privileged: Invalid value: true: Privileged "
         "containers are not allowed"],
    ),
    "host-network": (
        {"psc": {}, "host_network": True},
        ["provider restricted-v2: .spec.securityContext.hostNetwork: Invalid value: true: Host "
         "network is not allowed to be used"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_what_restricted_v2_refuses_is_refused_like_openshift(kube, case):
    """403 Forbidden, every SCC in admission's order, restricted-v2's reasons in its place
    with OpenShift's field paths (the provider named on pod-level paths, as it prints them)."""
    lo, hi, _, _ = ranges(kube, "team")
    opts, expected = CASES[case]
    opts = dict(opts)
    host_network = opts.pop("host_network", False)
    body = pod("bad", **opts)
    if host_network:
        body["spec"]["hostNetwork"] = True
    r = create_pod(kube, "team", body)
    assert r.status_code == 403, r.text
    status = r.json()
    assert (status["reason"], status["code"], status["details"]) == (
        "Forbidden",
        403,
        {"name": "bad", "kind": "pods"},
    )
    assert status["message"] == refusal("bad", [e.format(lo=lo, hi=hi) for e in expected])
    assert call(kube, "root", "GET", "/api/v1/namespaces/team/pods/bad").status_code == 404


def test_restricted_would_have_admitted_it_is_said(kube):
    """OpenShift adds a hint when only the legacy restricted SCC (not usable) would pass."""
    r = create_pod(kube, "team", pod("escalates", csc={"allowPrivilegeEscalation": True}))
    assert r.status_code == 403
    assert r.json()["message"] == refusal(
        "escalates",
        ["spec.containers[0].securityContext.allowPrivilegeEscalation: Invalid value: true: "
         "Allowing privilege escalation for containers is not allowed"],
        ["no access to scc/restricted: Forbidden: the pod fails to validate against the "
         "`restricted-v2` security context constraint, but would validate successfully "
         "against the `restricted` security context constraint"],
    )  # fmt: skip


def create_all(kube: KubeStandIn, objects: list[dict]) -> None:
    paths = {
        "SecurityContextConstraints": lambda o: SCCS,
        "ClusterRole": lambda o: f"{RBAC}/clusterroles",
        "RoleBinding": lambda o: f"{RBAC}/namespaces/{o['metadata']['namespace']}/rolebindings",
    }
    for obj in objects:
        r = call(kube, "root", "POST", paths[obj["kind"]](obj), obj)
        assert r.status_code == 201, r.text


NOTEBOOK = {"NAMESPACE": "nb", "UID_MIN": "10000", "UID_MAX": "60000",
            "GID_MIN": "10000", "GID_MAX": "60000"}  # fmt: skip


def notebook_pod(name: str) -> dict:
    """A notebook pod as the spawner makes it: the user's uid, NFS home, the default SA."""
    return pod(
        name,
        psc={"runAsUser": 23456, "runAsGroup": 23456, "fsGroup": 23456,
             "supplementalGroups": [23456], "seccompProfile": {"type": "RuntimeDefault"}},
        csc={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        volumes=[{"name": "home", "nfs": {"server": "nfs.example", "path": "/home/u"}}],
    )  # fmt: skip


def test_the_repositorys_notebook_scc_admits_the_uid_and_nfs_it_is_for(kube):
    objects = process(load("scc-notebook.yaml"), NOTEBOOK)
    create_all(kube, objects)
    scc = call(kube, "root", "GET", f"{SCCS}/valeria-notebook").json()
    assert scc["runAsUser"] == {
        "type": "MustRunAsRange",
        "uidRangeMin": 10000,
        "uidRangeMax": 60000,
    }

    r = create_pod(kube, "nb", notebook_pod("nb1"))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["metadata"]["annotations"]["openshift.io/scc"] == "valeria-notebook"
    assert got["spec"]["securityContext"]["runAsUser"] == 23456
    assert got["spec"]["securityContext"]["fsGroup"] == 23456
    # the grant is the RoleBinding in nb only: the same pod elsewhere gets restricted-v2's no
    elsewhere = create_pod(kube, "team", notebook_pod("nb1"))
    assert elsewhere.status_code == 403
    assert 'provider "valeria-notebook": Forbidden: not usable' in elsewhere.json()["message"]

    # the binding goes, the SCC goes with it
    gone = call(kube, "root", "DELETE", f"{RBAC}/namespaces/nb/rolebindings/valeria-notebook-scc")
    assert gone.status_code == 200
    r = create_pod(kube, "nb", notebook_pod("nb2"))
    assert r.status_code == 403
    message = r.json()["message"]
    assert f'provider "valeria-notebook": {NOT_USABLE}' in message
    assert 'spec.volumes[0]: Invalid value: "nfs": nfs volumes are not allowed' in message
    assert "runAsUser: Invalid value: 23456: must be in the ranges" in message

    # naming the service account in the SCC's users field grants it as well
    patch = call(
        kube, "root", "PATCH", f"{SCCS}/valeria-notebook",
        b'{"users": ["system:serviceaccount:nb:default"]}',
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert patch.status_code == 200, patch.text
    r = create_pod(kube, "nb", notebook_pod("nb3"))
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["annotations"]["openshift.io/scc"] == "valeria-notebook"


def test_the_notebook_scc_being_stricter_it_wins_for_pods_that_set_no_uid(kube):
    """valeria-notebook allows no capability at all, restricted-v2 NET_BIND_SERVICE: it sorts
    first, so in its namespace a pod without a uid runs as UID_MIN."""
    create_all(kube, process(load("scc-notebook.yaml"), NOTEBOOK))
    r = create_pod(kube, "nb", pod("bare"))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["metadata"]["annotations"]["openshift.io/scc"] == "valeria-notebook"
    assert got["spec"]["containers"][0]["securityContext"]["runAsUser"] == 10000
    assert got["spec"]["securityContext"]["fsGroup"] == 10000


def scc(name: str, users: list[str], priority: int | None = None, **fields: Any) -> dict:
    """An SCC like restricted-v2, changed by ``fields``."""
    base = next(s for s in DEFAULT_SCCS if s["metadata"]["name"] == "restricted-v2")
    obj = {**base, "metadata": {"name": name}, "users": users, "priority": priority}
    obj.update(fields)
    return obj


def test_the_stricter_of_two_usable_sccs_wins_unless_the_other_has_priority(kube):
    sa = "system:serviceaccount:team:runner"
    call(kube, "root", "POST", "/api/v1/namespaces/team/serviceaccounts",
         {"metadata": {"name": "runner"}})  # fmt: skip
    tight = scc("tight", [sa], allowedCapabilities=[], volumes=["configMap", "secret"])
    loose = scc(
        "loose", [sa], runAsUser={"type": "RunAsAny"}, fsGroup={"type": "RunAsAny"},
        seLinuxContext={"type": "RunAsAny"}, seccompProfiles=["*"], volumes=["*"],
        allowedCapabilities=["*"], requiredDropCapabilities=[],
    )  # fmt: skip
    for obj in (tight, loose):
        assert call(kube, "root", "POST", SCCS, obj).status_code == 201

    def admitted_by(name: str) -> str:
        r = create_pod(kube, "team", pod(name, sa="runner"))
        assert r.status_code == 201, r.text
        return r.json()["metadata"]["annotations"]["openshift.io/scc"]

    assert admitted_by("one") == "tight"  # stricter than loose and than restricted-v2
    bump = call(
        kube, "root", "PATCH", f"{SCCS}/loose", b'{"priority": 5}',
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert bump.status_code == 200, bump.text
    assert admitted_by("two") == "loose"
    # the loose one admits a root pod too; the default account still cannot have it
    root = pod("root", sa="runner", psc={"runAsUser": 0})
    assert create_pod(kube, "team", root).json()["metadata"]["annotations"]["openshift.io/scc"] == (
        "loose"
    )
    root["spec"].pop("serviceAccountName")
    assert create_pod(kube, "team", root).status_code == 403


def test_scc_objects_get_openshifts_defaults_and_need_their_fields(kube):
    obj = scc("hostless", [], allowHostDirVolumePlugin=False, volumes=["hostPath", "secret"])
    del obj["seLinuxContext"]
    r = call(kube, "root", "POST", SCCS, obj)
    assert r.status_code == 201, r.text
    assert r.json()["volumes"] == ["secret"]  # hostPath needs allowHostDirVolumePlugin
    assert r.json()["seLinuxContext"] == {"type": "RunAsAny"}
    broken = scc("broken", [])
    del broken["allowHostPID"]
    broken["runAsUser"] = {"type": "MustRunAsAnything"}
    r = call(kube, "root", "POST", SCCS, broken)
    assert r.status_code == 422
    assert r.json()["message"] == (
        'SecurityContextConstraints.security.openshift.io "broken" is invalid: [allowHostPID: '
        'Required value, runAsUser.type: Unsupported value: "MustRunAsAnything": supported '
        'values: "MustRunAs", "MustRunAsNonRoot", "MustRunAsRange", "RunAsAny"]'
    )


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def job(name: str, pod_spec: dict) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}},
    }


def job_pods(kube: KubeStandIn, name: str) -> list[dict]:
    path = f"/api/v1/namespaces/team/pods?labelSelector=job-name%3D{name}"
    return call(kube, "root", "GET", path).json()["items"]


def test_a_job_whose_pods_an_scc_refuses_is_created_and_says_why(tmp_path):
    s = standin(tmp_path, controllers=True)
    with s.serve_in_thread():
        lo, hi, _, _ = ranges(s, "team")
        refused = job("refused", pod("x", csc={"runAsUser": 5000})["spec"])
        r = call(s, "kim", "POST", "/apis/batch/v1/namespaces/team/jobs", refused)
        assert r.status_code == 201, r.text
        uid = r.json()["metadata"]["uid"]

        def failed_create() -> list[dict]:
            events = call(s, "root", "GET", "/api/v1/namespaces/team/events").json()["items"]
            return [
                e for e in events
                if e["involvedObject"]["uid"] == uid and e["reason"] == "FailedCreate"
            ]  # fmt: skip

        (event,) = wait_for(failed_create)
        assert event["type"] == "Warning"
        assert event["source"]["component"] == "job-controller"
        assert event["involvedObject"]["kind"] == "Job"
        expected = refusal(
            "refused-",  # the controller asks with generateName, as the real one does
            [f"spec.containers[0].securityContext.runAsUser: Invalid value: 5000: must be in "
             f"the ranges: [{lo}, {hi}]"],
        )  # fmt: skip
        assert event["message"] == f"Error creating: {expected}"
        assert job_pods(s, "refused") == []
        # retried with back-off: the same event counts up instead of piling up
        wait_for(lambda: failed_create()[0]["count"] >= 2, timeout=5)
        assert len(failed_create()) == 1

        # a template restricted-v2 admits: the controller's pod passes every admission plugin
        fine = job("fine", pod("y")["spec"])
        assert call(s, "kim", "POST", "/apis/batch/v1/namespaces/team/jobs", fine).is_success
        (created,) = wait_for(lambda: job_pods(s, "fine"))
        assert created["metadata"]["annotations"]["openshift.io/scc"] == "restricted-v2"
        assert created["metadata"]["name"].startswith("fine-")


def test_the_kubernetes_profile_has_no_sccs(tmp_path):
    s = standin(tmp_path, profile="kubernetes", controllers=True)
    with s.serve_in_thread():
        assert call(s, "root", "GET", SCCS).json()["items"] == []
        privileged = pod(
            "anything", psc={"runAsUser": 0},
            csc={"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
            volumes=[{"name": "host", "hostPath": {"path": "/etc"}}],
        )  # fmt: skip
        r = create_pod(s, "team", privileged)
        assert r.status_code == 201, r.text
        assert "openshift.io/scc" not in (r.json()["metadata"].get("annotations") or {})
        assert r.json()["spec"]["containers"][0]["securityContext"] == {
            "privileged": True,
            "capabilities": {"add": ["NET_ADMIN"]},
        }
        body = job("anyjob", privileged["spec"])
        assert call(s, "kim", "POST", "/apis/batch/v1/namespaces/team/jobs", body).is_success
        (created,) = wait_for(lambda: job_pods(s, "anyjob"))
        assert "openshift.io/scc" not in (created["metadata"].get("annotations") or {})
