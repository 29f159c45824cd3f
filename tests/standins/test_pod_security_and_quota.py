"""Pod Security admission and ResourceQuota (admission and status.used) of the Kubernetes
stand-in: the pure checks and arithmetic, then through HTTP as a client of the real API
server meets them (status, reason, message, Warning headers), in both profiles."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from devstack.kube import pod_security as ps
from devstack.kube import quota
from devstack.kube.resources import kind_of
from devstack.kube.server import KubeStandIn

NOW = datetime(2025, 1, 1, tzinfo=UTC)
PODS, JOBS, PVCS = (
    kind_of("v1/pods"),
    kind_of("batch/v1/jobs"),
    kind_of("v1/persistentvolumeclaims"),
)
ENFORCE, WARN = "pod-security.kubernetes.io/enforce", "pod-security.kubernetes.io/warn"

# a pod the restricted level admits
GOOD_SC = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name: str = "p", *, sc: dict | None = None, **spec) -> dict:
    container = {"name": "x", "image": "busybox:1.36"}
    if sc is not None:
        container["securityContext"] = sc
    body = {"containers": [container], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def resources_pod(name: str, requests: dict | None = None, limits: dict | None = None) -> dict:
    body = pod(name, sc=dict(GOOD_SC))
    body["spec"]["containers"][0]["resources"] = {
        k: v for k, v in (("requests", requests), ("limits", limits)) if v
    }
    return body


def job(name: str, template_spec: dict | None = None) -> dict:
    spec = template_spec or {"containers": [{"name": "x", "image": "busybox:1.36"}]}
    spec = {"restartPolicy": "Never", **spec}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": spec}},
    }


# -- the Pod Security checks (pure) -------------------------------------------------------


def every_violation() -> dict:
    """One pod that breaks every control of the restricted level."""
    bad_sc = {
        "privileged": True,
        "allowPrivilegeEscalation": True,
        "capabilities": {"add": ["SYS_ADMIN", "NET_BIND_SERVICE"]},
        "procMount": "Unmasked",
        "seLinuxOptions": {"type": "spc_t"},
        "runAsNonRoot": False,
        "runAsUser": 0,
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
        "windowsOptions": {"hostProcess": True},
    }
    body = pod(sc=bad_sc, hostNetwork=True, hostPID=True, hostIPC=True)
    body["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    body["spec"]["volumes"] = [
        {"name": "host", "hostPath": {"path": "/"}},
        {"name": "share", "nfs": {"server": "nfs", "path": "/x"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    body["spec"]["securityContext"] = {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}
    return body


RESTRICTED_DETAIL = (
    'forbidden AppArmor profile (container "x" must not set AppArmor profile type to '
    '"Unconfined"), '
    "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), "
    'hostPort (container "x" uses hostPort 8080), '
    'privileged (container "x" must not set securityContext.privileged=true), '
    'procMount (container "x" must not set securityContext.procMount to "Unmasked"), '
    'seLinuxOptions (container "x" set forbidden securityContext.seLinuxOptions: type "spc_t"), '
    "forbidden sysctls (kernel.msgmax), "
    'hostProcess (container "x" must not set securityContext.windowsOptions.hostProcess=true), '
    "allowPrivilegeEscalation != false "
    '(container "x" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "x" must set securityContext.capabilities.drop=["ALL"]; '
    'container "x" must not include "SYS_ADMIN" in securityContext.capabilities.add), '
    'restricted volume types (volumes "host", "share" use restricted volume types "hostPath", '
    '"nfs"), '
    'runAsNonRoot != true (container "x" must not set securityContext.runAsNonRoot=false), '
    'runAsUser=0 (container "x" must not set runAsUser=0), '
    'seccompProfile (container "x" must not set securityContext.seccompProfile.type to '
    '"Unconfined")'
)


def test_restricted_names_every_violation_in_upstream_order():
    body = every_violation()
    found = ps.evaluate("restricted", body["metadata"], body["spec"])
    assert ps.forbidden_detail(found) == RESTRICTED_DETAIL


def test_baseline_is_the_subset_that_prevents_known_escalations():
    body = every_violation()
    reasons = [r for r, _ in ps.evaluate("baseline", body["metadata"], body["spec"])]
    assert reasons == [
        "forbidden AppArmor profile",
        "non-default capabilities",
        "host namespaces",
        "hostPath volumes",
        "hostPort",
        "privileged",
        "procMount",
        "seLinuxOptions",
        "seccompProfile",
        "forbidden sysctls",
        "hostProcess",
    ]
    plain = pod()
    assert ps.evaluate("baseline", plain["metadata"], plain["spec"]) == []
    assert [r for r, _ in ps.evaluate("restricted", plain["metadata"], plain["spec"])] == [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ]
    assert ps.evaluate("privileged", body["metadata"], body["spec"]) == []


@pytest.mark.parametrize(
    ("level", "change", "expected"),
    [
        # capabilities: baseline allows its default list, restricted only NET_BIND_SERVICE
        ("baseline", {"sc": {"capabilities": {"add": ["CHOWN", "KILL"]}}}, None),
        (
            "baseline",
            {"sc": {"capabilities": {"add": ["NET_RAW", "CHOWN", "BPF"]}}},
            (
                "non-default capabilities",
                'container "x" must not include "BPF", "NET_RAW" in '
                "securityContext.capabilities.add",
            ),
        ),
        (
            "restricted",
            {"sc": {**GOOD_SC, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}},
            (
                "unrestricted capabilities",
                'container "x" must not include "CHOWN" in securityContext.capabilities.add',
            ),
        ),
        # seccomp: Localhost is as good as RuntimeDefault; unset everywhere is not
        ("restricted", {"sc": {**GOOD_SC, "seccompProfile": {"type": "Localhost"}}}, None),
        (
            "restricted",
            {"sc": {k: v for k, v in GOOD_SC.items() if k != "seccompProfile"}},
            (
                "seccompProfile",
                'pod or container "x" must set securityContext.seccompProfile.type to '
                '"RuntimeDefault" or "Localhost"',
            ),
        ),
        # pod-level runAsNonRoot and seccomp cover containers that leave them unset
        (
            "restricted",
            {
                "sc": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            },
            None,
        ),
        (
            "restricted",
            {"sc": GOOD_SC, "securityContext": {"runAsUser": 0}},
            ("runAsUser=0", "pod must not set runAsUser=0"),
        ),
        # volumes: the restricted list; hostPath is baseline's own check
        (
            "restricted",
            {
                "sc": GOOD_SC,
                "volumes": [
                    {"name": n, src: {}}
                    for n, src in (
                        ("a", "configMap"),
                        ("b", "secret"),
                        ("c", "emptyDir"),
                        ("d", "projected"),
                        ("e", "downwardAPI"),
                        ("f", "persistentVolumeClaim"),
                        ("g", "csi"),
                        ("h", "ephemeral"),
                    )
                ],
            },
            None,
        ),
        (
            "baseline",
            {"volumes": [{"name": "a", "hostPath": {"path": "/"}}, {"name": "b", "nfs": {}}]},
            ("hostPath volumes", 'volume "a"'),
        ),
        # sysctls: the safe set is allowed
        (
            "baseline",
            {"securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range"}]}},
            None,
        ),
        # SELinux: the container types are allowed, user and role are not
        ("baseline", {"sc": {"seLinuxOptions": {"type": "container_init_t"}}}, None),
        (
            "baseline",
            {"securityContext": {"seLinuxOptions": {"user": "root", "type": "x_t"}}},
            (
                "seLinuxOptions",
                'pod set forbidden securityContext.seLinuxOptions: type "x_t"; user may not be set',
            ),
        ),
        # AppArmor: the deprecated annotation still counts
        (
            "baseline",
            {"annotations": {"container.apparmor.security.beta.kubernetes.io/x": "unconfined"}},
            (
                "forbidden AppArmor profile",
                "annotation must not set AppArmor profile type to "
                '"container.apparmor.security.beta.kubernetes.io/x="unconfined""',
            ),
        ),
        ("baseline", {"sc": {"appArmorProfile": {"type": "Localhost"}}}, None),
        # host ports: 0 means none
        ("baseline", {"ports": [{"containerPort": 80, "hostPort": 0}]}, None),
        # Windows pods are spared the Linux-only restricted controls
        (
            "restricted",
            {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}},
            None,
        ),
    ],
)
def test_each_control(level, change, expected):
    body = pod(sc=change.get("sc"))
    spec, meta = body["spec"], body["metadata"]
    for key in ("securityContext", "volumes", "os"):
        if key in change:
            spec[key] = copy.deepcopy(change[key])
    if "ports" in change:
        spec["containers"][0]["ports"] = change["ports"]
    if "annotations" in change:
        meta["annotations"] = change["annotations"]
    found = ps.evaluate(level, meta, spec)
    assert found == ([expected] if expected else [])


def test_policy_from_labels():
    policy, causes = ps.policy_from_labels({ENFORCE: "restricted"})
    assert (str(policy.enforce), str(policy.warn), str(policy.audit)) == (
        "restricted:latest",
        "restricted:latest",  # warn follows a stricter enforce when not set itself
        "privileged:latest",
    )
    assert not causes
    policy, _ = ps.policy_from_labels({ENFORCE: "baseline", WARN: "privileged"})
    assert policy.warn.level == "privileged"
    policy, _ = ps.policy_from_labels({ENFORCE: "baseline", f"{ENFORCE}-version": "v1.29"})
    assert str(policy.enforce) == "baseline:v1.29" == str(policy.warn)
    policy, causes = ps.policy_from_labels({ENFORCE: "strict", WARN: "loud"})
    assert (policy.enforce.level, policy.warn.level) == ("restricted", "privileged")
    assert [c.message for c in causes] == [
        'Invalid value: "strict": must be one of privileged, baseline, restricted',
        'Invalid value: "loud": must be one of privileged, baseline, restricted',
    ]
    assert ps.policy_from_labels({ENFORCE: "strict"})[0].warn.level == "privileged"
    _, causes = ps.policy_from_labels({f"{WARN}-version": "1.30"})
    assert causes[0].field == f"metadata.labels[{WARN}-version]"
    assert causes[0].message == 'Invalid value: "1.30": must be "latest" or "v1.x"'
    assert ps.policy_from_labels(None)[0].privileged


def test_existing_pods_are_named_when_enforce_tightens():
    pods = [pod(n, hostNetwork=True) for n in ("c", "a", "b")] + [pod("d")]
    pods.append(pod("e", sc={"privileged": True}))
    warnings = ps.existing_pod_warnings("team", ps.LevelVersion("baseline"), pods)
    assert warnings == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level '
        '"baseline:latest"',
        "a (and 2 other pods): host namespaces",
        "e: privileged",
    ]


# -- quota arithmetic (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "printed"),
    [
        (["500m", "1"], "1500m"),
        (["1", "500m"], "1500m"),
        (["1Gi", "512Mi"], "1536Mi"),
        (["512Mi", "512Mi", "1Gi"], "2Gi"),
        (["0.5"], "500m"),
        (["1000"], "1k"),
        (["1200"], "1200"),
        (["2", 1], "3"),
        (["100Mi", "100M"], "204857600"),  # binary, but no whole Ki multiple: plain bytes
        (["1G", "1Gi"], "2073741824"),  # decimal first: the sum prints in decimal
        (["1e3"], "1e3"),
        (["512"], "512"),
        (["0", "1Ki"], "1Ki"),
    ],
)
def test_sums_print_like_the_api_server(values, printed):
    total = quota.ZERO
    for v in values:
        total = total + quota.amount(v)
    assert str(total) == printed


def test_pod_usage_counts_sidecars_and_the_largest_init_container():
    body = resources_pod("p", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "1"})
    body["spec"]["initContainers"] = [
        {"name": "unpack", "image": "i", "resources": {"requests": {"cpu": "2"}}},
        {"name": "small", "image": "i", "resources": {"requests": {"cpu": "100m"}}},
    ]
    used = quota.usage(PODS, body, NOW)
    assert {k: str(v) for k, v in used.items()} == {
        "count/pods": "1",
        "pods": "1",
        "cpu": "2",
        "requests.cpu": "2",
        "memory": "1Gi",
        "requests.memory": "1Gi",
        "limits.cpu": "1",
    }
    body["spec"]["initContainers"].append(
        {
            "name": "sidecar",
            "image": "i",
            "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "250m"}},
        }
    )
    assert str(quota.usage(PODS, body, NOW)["requests.cpu"]) == "2"  # max(2, 500m+250m)
    body["status"] = {"phase": "Succeeded"}
    assert set(quota.usage(PODS, body, NOW)) == {"count/pods"}


def test_missing_requests_names_resources_and_containers():
    body = resources_pod("p", {"cpu": "1"})
    body["spec"]["containers"].append({"name": "b", "image": "i"})
    required = ["requests.cpu", "limits.cpu", "requests.memory", "pods", "limits.ephemeral-storage"]
    assert quota.missing_requests(required, body) == (
        "must specify limits.cpu for: b,x; requests.cpu for: b; requests.memory for: b,x"
    )
    assert quota.missing_requests(["pods"], body) is None


def test_check_request_charges_what_fits_and_words_what_does_not():
    hard = {"pods": quota.amount("3"), "limits.cpu": quota.amount("2")}
    used = {"pods": quota.amount("2"), "limits.cpu": quota.amount("1500m")}
    state = quota.QuotaState("q", hard, used)
    fits = resources_pod("a", limits={"cpu": "500m", "memory": "1Gi"})
    decision = quota.check_request(PODS, fits, None, [state], NOW)
    assert decision.refusal is None
    assert {k: str(v) for k, v in decision.used["q"].items()} == {"pods": "3", "limits.cpu": "2"}
    big = resources_pod("b", limits={"cpu": "1", "memory": "1Gi"})
    assert quota.check_request(PODS, big, None, [state], NOW).refusal == (
        "exceeded quota: q, requested: limits.cpu=1, used: limits.cpu=1500m, limited: limits.cpu=2"
    )
    # an update is charged what it adds: a PVC grown from 1Gi to 3Gi against 2Gi left
    pvc = {"spec": {"resources": {"requests": {"storage": "3Gi"}}}, "metadata": {"name": "d"}}
    old = copy.deepcopy(pvc)
    old["spec"]["resources"]["requests"]["storage"] = "1Gi"
    storage = quota.QuotaState(
        "s", {"requests.storage": quota.amount("4Gi")}, {"requests.storage": quota.amount("2Gi")}
    )
    assert quota.check_request(PVCS, pvc, old, [storage], NOW).refusal is None
    storage.used["requests.storage"] = quota.amount("3Gi")
    assert quota.check_request(PVCS, pvc, old, [storage], NOW).refusal == (
        "exceeded quota: s, requested: requests.storage=2Gi, used: requests.storage=3Gi, "
        "limited: requests.storage=4Gi"
    )


def test_scoped_quotas_cover_the_pods_in_their_scopes_only():
    best_effort = [("BestEffort", "Exists", ())]
    assert quota.matches_scopes(PODS, pod(), best_effort)
    assert not quota.matches_scopes(PODS, resources_pod("r", {"cpu": "1"}), best_effort)
    assert not quota.matches_scopes(JOBS, job("j"), best_effort)
    assert quota.matches_scopes(PODS, pod(activeDeadlineSeconds=5), [("Terminating", "Exists", ())])
    high = [("PriorityClass", "In", ("high",))]
    assert quota.matches_scopes(PODS, pod(priorityClassName="high"), high)
    assert not quota.matches_scopes(PODS, pod(), high)
    assert quota.amount("2Gi").value == Decimal(2 * 2**30)


# -- through HTTP ----------------------------------------------------------------------------

_names = itertools.count()


@pytest.fixture(scope="module", params=["kubernetes", "openshift"])
def kube(request, tmp_path_factory):
    s = KubeStandIn(
        root=tmp_path_factory.mktemp("kube"),
        run_kubelet=False,
        run_controllers=False,
        profile=request.param,
    )
    with s.serve_in_thread():
        yield s


@pytest.fixture(scope="module")
def k8s(tmp_path_factory):
    """The plain profile: Pod Security's messages are checked on pods no SCC has changed
    (in the openshift profile, SCC admission rewrites the pods first)."""
    s = KubeStandIn(
        root=tmp_path_factory.mktemp("kube-plain"),
        run_kubelet=False,
        run_controllers=False,
        profile="kubernetes",
    )
    with s.serve_in_thread():
        yield s


def namespace(kube: KubeStandIn, labels: dict | None = None) -> str:
    name = f"ns{next(_names)}"
    meta = {"name": name, **({"labels": labels} if labels else {})}
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
    r = httpx.post(f"{kube.url}/api/v1/namespaces", json=body, timeout=10)
    assert r.status_code == 201, r.text
    return name


def post(kube: KubeStandIn, ns: str, body: dict) -> httpx.Response:
    group = "/apis/batch/v1" if body["apiVersion"] == "batch/v1" else "/api/v1"
    plural = {
        "Pod": "pods",
        "Job": "jobs",
        "CronJob": "cronjobs",
        "ResourceQuota": "resourcequotas",
    }
    url = f"{kube.url}{group}/namespaces/{ns}/{plural[body['kind']]}"
    return httpx.post(url, json=body, timeout=10)


def warnings_of(r: httpx.Response) -> list[str]:
    """The texts of ``Warning: 299 - "..."`` headers, unquoted as kubectl does."""
    out = []
    for value in r.headers.get_list("warning"):
        assert value.startswith('299 - "') and value.endswith('"'), value
        out.append(value[7:-1].replace('\\"', '"').replace("\\\\", "\\"))
    return out


def used(kube: KubeStandIn, ns: str, name: str = "q") -> dict:
    r = httpx.get(f"{kube.url}/api/v1/namespaces/{ns}/resourcequotas/{name}", timeout=10)
    assert r.status_code == 200, r.text
    status = r.json()["status"]
    assert status["hard"] == r.json()["spec"]["hard"]
    return status["used"]


def test_restricted_enforce_refuses_with_every_reason_and_admits_a_compliant_pod(k8s):
    ns = namespace(k8s, {ENFORCE: "restricted"})
    r = post(k8s, ns, every_violation())
    assert r.status_code == 403
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'pods "p" is forbidden: violates PodSecurity "restricted:latest": '
        f"{RESTRICTED_DETAIL}",
        "reason": "Forbidden",
        "details": {"name": "p", "kind": "pods"},
        "code": 403,
    }
    assert warnings_of(r) == []  # a refused request carries no warning
    good = post(k8s, ns, pod("good", sc=GOOD_SC))
    assert good.status_code == 201, good.text
    assert warnings_of(good) == []


def test_baseline_admits_what_only_restricted_refuses(k8s):
    ns = namespace(k8s, {ENFORCE: "baseline", f"{ENFORCE}-version": "v1.30"})
    assert post(k8s, ns, pod("plain")).status_code == 201
    body = pod("host", sc={"privileged": True})
    body["spec"]["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
    r = post(k8s, ns, body)
    assert r.status_code == 403
    assert r.json()["message"] == (
        'pods "host" is forbidden: violates PodSecurity "baseline:v1.30": '
        'hostPath volumes (volume "root"), '
        'privileged (container "x" must not set securityContext.privileged=true)'
    )


def test_warn_only_admits_with_a_warning_header(k8s):
    ns = namespace(k8s, {WARN: "restricted"})
    r = post(k8s, ns, pod("w"))
    assert r.status_code == 201, r.text
    assert warnings_of(r) == [
        'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "x" must set securityContext.allowPrivilegeEscalation=false), '
        "unrestricted capabilities "
        '(container "x" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "x" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "x" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")'
    ]


def test_enforce_warns_of_workloads_but_refuses_only_their_pods(kube):
    """Works the same in both profiles: SCCs look at pods, not at pod templates."""
    ns = namespace(kube, {ENFORCE: "restricted"})
    r = post(kube, ns, job("j", {"containers": [{"name": "x", "image": "i"}], "hostPID": True}))
    assert r.status_code == 201, r.text
    assert warnings_of(r) == [
        'would violate PodSecurity "restricted:latest": host namespaces (hostPID=true), '
        'allowPrivilegeEscalation != false (container "x" must set '
        "securityContext.allowPrivilegeEscalation=false), "
        'unrestricted capabilities (container "x" must set '
        'securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "x" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "x" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")'
    ]
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job("x")["spec"]}},
    }
    r = post(kube, ns, cron)
    assert r.status_code == 201, r.text
    assert warnings_of(r)[0].startswith('would violate PodSecurity "restricted:latest": ')
    quiet = post(
        kube,
        ns,
        job(
            "ok",
            {
                "containers": [{"name": "x", "image": "i"}],
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            },
        ),
    )
    assert quiet.status_code == 201
    assert len(warnings_of(quiet)) == 1  # the container still keeps its capabilities
    privileged_ns = namespace(kube)
    assert warnings_of(post(kube, privileged_ns, job("j"))) == []


def test_namespace_labels_are_validated_and_tightening_warns_of_existing_pods(k8s):
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "badlabel", "labels": {ENFORCE: "strict"}},
    }
    r = httpx.post(f"{k8s.url}/api/v1/namespaces", json=body, timeout=10)
    assert r.status_code == 422
    assert r.json()["message"] == (
        'Namespace "badlabel" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )
    ns = namespace(k8s)
    for name in ("b", "a"):
        assert post(k8s, ns, pod(name, hostNetwork=True)).status_code == 201
    r = httpx.patch(
        f"{k8s.url}/api/v1/namespaces/{ns}",
        json={"metadata": {"labels": {ENFORCE: "baseline"}}},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert warnings_of(r) == [
        f'existing pods in namespace "{ns}" violate the new PodSecurity enforce level '
        '"baseline:latest"',
        "a (and 1 other pod): host namespaces",
    ]


def test_pod_and_job_counts(kube):
    ns = namespace(kube)
    q = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "2", "count/jobs.batch": "1"}},
    }
    assert post(kube, ns, q).status_code == 201
    assert used(kube, ns) == {"pods": "0", "count/jobs.batch": "0"}
    for name in ("a", "b"):
        assert post(kube, ns, pod(name, sc=GOOD_SC)).status_code == 201
    r = post(kube, ns, pod("c", sc=GOOD_SC))
    assert r.status_code == 403
    assert r.json()["message"] == (
        'pods "c" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
    )
    assert r.json()["reason"] == "Forbidden"
    assert post(kube, ns, job("j1")).status_code == 201
    r = post(kube, ns, job("j2"))
    assert r.status_code == 403
    assert r.json()["message"] == (
        'jobs.batch "j2" is forbidden: exceeded quota: q, requested: count/jobs.batch=1, '
        "used: count/jobs.batch=1, limited: count/jobs.batch=1"
    )
    assert r.json()["details"] == {"name": "j2", "group": "batch", "kind": "jobs"}
    assert used(kube, ns) == {"pods": "2", "count/jobs.batch": "1"}


def test_compute_sums_mix_units_and_pods_must_name_what_is_tracked(kube):
    ns = namespace(kube)
    q = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"requests.cpu": "2", "requests.memory": "2Gi", "limits.cpu": "3"}},
    }
    assert post(kube, ns, q).status_code == 201
    a = resources_pod("a", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "1"})
    b = resources_pod("b", {"cpu": "1", "memory": "512Mi"}, {"cpu": "1500m"})
    assert post(kube, ns, a).status_code == 201
    assert post(kube, ns, b).status_code == 201
    assert used(kube, ns) == {
        "requests.cpu": "1500m",
        "requests.memory": "1536Mi",
        "limits.cpu": "2500m",
    }
    r = post(kube, ns, resources_pod("c", {"cpu": "100m", "memory": "600Mi"}, {"cpu": "1"}))
    assert r.status_code == 403
    assert r.json()["message"] == (
        'pods "c" is forbidden: exceeded quota: q, requested: limits.cpu=1,requests.memory=600Mi, '
        "used: limits.cpu=2500m,requests.memory=1536Mi, limited: limits.cpu=3,requests.memory=2Gi"
    )
    r = post(kube, ns, resources_pod("none"))
    assert r.status_code == 403
    assert r.json()["message"] == (
        'pods "none" is forbidden: failed quota: q: must specify limits.cpu for: x; '
        "requests.cpu for: x; requests.memory for: x"
    )
    # limits alone are enough: the server defaults requests from them
    r = post(kube, ns, resources_pod("lim", limits={"cpu": "100m", "memory": "100Mi"}))
    assert r.status_code == 201, r.text
    assert used(kube, ns) == {
        "requests.cpu": "1600m",
        "requests.memory": "1636Mi",
        "limits.cpu": "2600m",
    }


def test_deleting_or_finishing_a_pod_frees_the_quota(kube):
    ns = namespace(kube)
    q = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "1", "limits.memory": "1Gi", "count/pods": "5"}},
    }
    assert post(kube, ns, q).status_code == 201
    assert post(kube, ns, resources_pod("a", limits={"memory": "1Gi"})).status_code == 201
    assert post(kube, ns, resources_pod("b", limits={"memory": "1Gi"})).status_code == 403
    r = httpx.delete(f"{kube.url}/api/v1/namespaces/{ns}/pods/a", timeout=10)
    assert r.status_code == 200
    assert used(kube, ns) == {"pods": "0", "limits.memory": "0", "count/pods": "0"}
    assert post(kube, ns, resources_pod("b", limits={"memory": "1Gi"})).status_code == 201
    assert used(kube, ns) == {"pods": "1", "limits.memory": "1Gi", "count/pods": "1"}
    # a finished pod keeps its object count but no longer holds compute
    r = httpx.patch(
        f"{kube.url}/api/v1/namespaces/{ns}/pods/b/status",
        json={"status": {"phase": "Succeeded"}},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert used(kube, ns) == {"pods": "0", "limits.memory": "0", "count/pods": "1"}
    assert post(kube, ns, resources_pod("c", limits={"memory": "1Gi"})).status_code == 201
    # a changed spec.hard shows in status.hard at once
    r = httpx.patch(
        f"{kube.url}/api/v1/namespaces/{ns}/resourcequotas/q",
        json={"spec": {"hard": {"pods": "4", "limits.memory": "1Gi", "count/pods": "5"}}},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"]["hard"]["pods"] == "4"
    assert used(kube, ns) == {"pods": "1", "limits.memory": "1Gi", "count/pods": "2"}


def test_no_quantity_is_a_bad_request_and_a_dry_run_charges_nothing(kube):
    ns = namespace(kube)
    q = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "lots"}},
    }
    r = post(kube, ns, q)
    assert r.status_code == 400
    assert r.json()["message"] == (
        'ResourceQuota in version "v1" cannot be handled as a ResourceQuota: quantities must '
        "match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )
    q["spec"]["hard"]["pods"] = "1"
    assert post(kube, ns, q).status_code == 201
    r = httpx.post(
        f"{kube.url}/api/v1/namespaces/{ns}/pods?dryRun=All", json=pod("d", sc=GOOD_SC), timeout=10
    )
    assert r.status_code == 201, r.text
    assert used(kube, ns) == {"pods": "0"}
    assert post(kube, ns, pod("real", sc=GOOD_SC)).status_code == 201
    assert used(kube, ns) == {"pods": "1"}
