"""The Kubernetes API stand-in, driven by the official ``kubernetes`` client (sync, in a
thread) and by ``kubernetes_asyncio`` (in the test's loop), without a kubelet: every
behaviour here is the API server's own."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import kubernetes
import kubernetes_asyncio
import pytest
from kubernetes.client.rest import ApiException

from devstack.kube.kubeconfig import write_kubeconfig
from devstack.kube.server import KubeStandIn

NS = "default"


def pod_manifest(name: str | None = None, labels: dict | None = None, **spec) -> dict:
    meta = {"name": name} if name else {"generateName": "p-"}
    if labels:
        meta["labels"] = labels
    body = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def job_manifest(name: str, **spec) -> dict:
    template = {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36"}],
        }
    }
    body = {"template": template}
    body.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": body}


def status_of(err: ApiException) -> dict:
    return json.loads(err.body)


@pytest.fixture
def kube(tmp_path):
    s = KubeStandIn(
        root=tmp_path / "kube", run_kubelet=False, run_controllers=False, strict_schema=True
    )
    with s.serve_in_thread():
        yield s


def client_for(
    s: KubeStandIn, tmp_path: Path, token: str = "admin-token"
) -> kubernetes.client.ApiClient:
    path = write_kubeconfig(tmp_path / f"kubeconfig-{token}", s.url, token)
    return kubernetes.config.new_client_from_config(str(path))


@pytest.fixture
def api(kube, tmp_path):
    c = client_for(kube, tmp_path)
    yield c
    c.close()


@pytest.fixture
def v1(api):
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def batch(api):
    return kubernetes.client.BatchV1Api(api)


# -- CRUD and defaults ---------------------------------------------------------------


def test_load_kube_config_and_pod_crud_with_server_defaults(kube, tmp_path):
    path = write_kubeconfig(tmp_path / "kc", kube.url, "tok", namespace="default")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    kubernetes.config.load_kube_config(config_file=str(path))
    v1 = kubernetes.client.CoreV1Api()
    try:
        created = v1.create_namespaced_pod(NS, pod_manifest("web", {"app": "x"}))
        assert created.metadata.uid and created.metadata.resource_version
        spec = created.spec
        assert (spec.restart_policy, spec.dns_policy, spec.scheduler_name) == (
            "Always",
            "ClusterFirst",
            "default-scheduler",
        )
        assert (spec.termination_grace_period_seconds, spec.service_account_name) == (30, "default")
        assert (created.status.phase, created.status.qos_class) == ("Pending", "BestEffort")
        assert spec.containers[0].image_pull_policy == "IfNotPresent"
        got = v1.read_namespaced_pod("web", NS)
        assert got.metadata.uid == created.metadata.uid
        assert [p.metadata.name for p in v1.list_namespaced_pod(NS).items] == ["web"]
        assert [p.metadata.name for p in v1.list_pod_for_all_namespaces().items] == ["web"]
        gone = v1.delete_namespaced_pod("web", NS)  # not scheduled: deleted at once
        assert gone.metadata.name == "web"
        with pytest.raises(ApiException) as e:
            v1.read_namespaced_pod("web", NS)
        assert e.value.status == 404
    finally:
        kubernetes.client.Configuration.set_default(None)


def test_error_bodies_are_kubernetes_status_objects(v1):
    with pytest.raises(ApiException) as e:
        v1.read_namespaced_pod("nope", NS)
    assert (e.value.status, e.value.reason) == (404, "Not Found")
    assert status_of(e.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "pods"},
        "code": 404,
    }
    v1.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}, "data": {"a": "b"}})
    with pytest.raises(ApiException) as e:
        v1.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}})
    body = status_of(e.value)
    assert (e.value.status, body["reason"], body["message"]) == (
        409,
        "AlreadyExists",
        'configmaps "cm" already exists',
    )

    with pytest.raises(ApiException) as e:
        v1.create_namespaced_pod(NS, {"metadata": {"name": "empty"}, "spec": {"containers": []}})
    body = status_of(e.value)
    assert (e.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == 'Pod "empty" is invalid: spec.containers: Required value'
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
    ]

    with pytest.raises(ApiException) as e:
        v1.create_namespaced_config_map(NS, {"metadata": {"name": "Bad_Name"}})
    cause = status_of(e.value)["details"]["causes"][0]
    assert (e.value.status, cause["field"], cause["reason"]) == (
        422,
        "metadata.name",
        "FieldValueInvalid",
    )
    assert "RFC 1123 subdomain" in cause["message"]

    svc = {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}}
    with pytest.raises(ApiException) as e:
        v1.create_namespaced_service(NS, svc)
    assert "DNS-1035 label" in status_of(e.value)["message"]

    with pytest.raises(ApiException) as e:
        v1.create_namespaced_pod("missing", pod_manifest("p"))
    body = status_of(e.value)
    assert (e.value.status, body["message"]) == (404, 'namespaces "missing" not found')

    with pytest.raises(ApiException) as e:
        v1.create_namespaced_pod(NS, pod_manifest("p", serviceAccountName="robot"))
    assert e.value.status == 403
    assert 'serviceaccount "robot" not found' in status_of(e.value)["message"]


def test_generate_name(v1):
    names = {v1.create_namespaced_pod(NS, pod_manifest()).metadata.name for _ in range(3)}
    assert len(names) == 3
    for name in names:
        assert name.startswith("p-") and len(name) == 7
        assert all(c in "bcdfghjklmnpqrstvwxz2456789" for c in name[2:])


def test_secret_string_data_is_folded_into_data(v1):
    s = v1.create_namespaced_secret(
        NS,
        {
            "metadata": {"name": "s3"},
            "data": {"a": base64.b64encode(b"x").decode()},
            "stringData": {"key": "sécret"},
        },
    )
    assert s.type == "Opaque"
    assert s.string_data is None
    assert base64.b64decode(s.data["key"]).decode() == "sécret"
    assert base64.b64decode(s.data["a"]) == b"x"
    with pytest.raises(ApiException) as e:
        v1.create_namespaced_secret(NS, {"metadata": {"name": "bad"}, "data": {"k": "not base64!"}})
    assert e.value.status == 400
    assert "illegal base64 data at input byte" in status_of(e.value)["message"]


def test_replace_with_stale_resource_version_conflicts(v1):
    cm = v1.create_namespaced_config_map(NS, {"metadata": {"name": "cfg"}, "data": {"v": "1"}})
    cm.data = {"v": "2"}
    fresh = v1.replace_namespaced_config_map("cfg", NS, cm)
    assert int(fresh.metadata.resource_version) > int(cm.metadata.resource_version)
    cm.data = {"v": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as e:
        v1.replace_namespaced_config_map("cfg", NS, cm)
    body = status_of(e.value)
    assert (e.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    assert v1.read_namespaced_config_map("cfg", NS).data == {"v": "2"}


def test_three_patch_formats(kube, v1):
    v1.create_namespaced_pod(
        NS,
        pod_manifest(
            "pp",
            {"a": "1"},
            containers=[{"name": "main", "image": "i:1", "env": [{"name": "X", "value": "1"}]}],
        ),
    )
    merged = v1.patch_namespaced_pod(
        "pp",
        NS,
        {"metadata": {"labels": {"a": None, "b": "2"}}},
        _content_type="application/merge-patch+json",
    )
    assert merged.metadata.labels == {"b": "2"}
    strategic = v1.patch_namespaced_pod(
        "pp",
        NS,
        {"spec": {"containers": [{"name": "main", "image": "i:2"}]}},
        _content_type="application/strategic-merge-patch+json",
    )
    assert strategic.spec.containers[0].image == "i:2"
    assert strategic.spec.containers[0].env[0].name == "X"  # merged by name, not replaced
    jp = v1.patch_namespaced_pod(
        "pp", NS, [{"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}}]
    )
    assert jp.metadata.annotations == {"k": "v"}
    # a dict without a content type goes out as a strategic merge patch
    assert v1.patch_namespaced_pod(
        "pp", NS, {"metadata": {"labels": {"c": "3"}}}
    ).metadata.labels == {"b": "2", "c": "3"}
    # a JSON patch must be an array, as on the real server
    req = urllib.request.Request(
        f"{kube.url}/api/v1/namespaces/{NS}/pods/pp",
        data=b'{"op": "add"}',
        method="PATCH",
        headers={"Content-Type": "application/json-patch+json"},
    )
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req, timeout=10)
    assert http_err.value.code == 400
    assert "jsonpatch.Patch" in json.load(http_err.value)["message"]
    with pytest.raises(ApiException) as e:
        v1.patch_namespaced_pod(
            "pp", NS, [{"op": "test", "path": "/metadata/name", "value": "other"}]
        )
    assert e.value.status == 422
    # a pod's spec is immutable apart from images and a few fields
    with pytest.raises(ApiException) as e:
        v1.patch_namespaced_pod(
            "pp",
            NS,
            {"spec": {"containers": [{"name": "extra", "image": "x"}]}},
            _content_type="application/strategic-merge-patch+json",
        )
    body = status_of(e.value)
    assert (e.value.status, body["details"]["causes"][0]["field"]) == (422, "spec")
    # the status subresource changes status only
    st = v1.patch_namespaced_pod_status(
        "pp",
        NS,
        {"status": {"phase": "Running"}, "metadata": {"labels": {"z": "1"}}},
        _content_type="application/merge-patch+json",
    )
    assert st.status.phase == "Running" and "z" not in (st.metadata.labels or {})
    # ... and the main resource ignores status
    main = v1.patch_namespaced_pod(
        "pp", NS, {"status": {"phase": "Failed"}}, _content_type="application/merge-patch+json"
    )
    assert main.status.phase == "Running"


def test_job_defaults_validation_and_immutable_template(batch):
    job = batch.create_namespaced_job(NS, job_manifest("train"))
    uid = job.metadata.uid
    spec = job.spec
    assert (spec.backoff_limit, spec.completions, spec.parallelism) == (6, 1, 1)
    assert (spec.completion_mode, spec.suspend) == ("NonIndexed", False)
    assert spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = spec.template.metadata.labels
    assert labels["controller-uid"] == uid and labels["job-name"] == "train"
    assert labels["batch.kubernetes.io/job-name"] == "train"
    with pytest.raises(ApiException) as e:
        bad = job_manifest("bad")
        del bad["spec"]["template"]["spec"]["restartPolicy"]
        batch.create_namespaced_job(NS, bad)
    body = status_of(e.value)
    assert body["message"] == (
        'Job.batch "bad" is invalid: spec.template.spec.restartPolicy: '
        'Unsupported value: "Always": supported values: "OnFailure", "Never"'
    )
    suspended = batch.patch_namespaced_job(
        "train",
        NS,
        {"spec": {"suspend": True}},
        _content_type="application/strategic-merge-patch+json",
    )
    assert suspended.spec.suspend is True
    with pytest.raises(ApiException) as e:
        batch.patch_namespaced_job(
            "train",
            NS,
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other"}]}}}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert e.value.status == 422
    assert status_of(e.value)["details"]["causes"][0]["field"] == "spec.template"
    st = batch.patch_namespaced_job_status(
        "train", NS, {"status": {"active": 1}}, _content_type="application/merge-patch+json"
    )
    assert st.status.active == 1


def test_cronjob_create_and_bad_schedule(batch):
    cj = {
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": job_manifest("x")["spec"]}},
    }
    created = batch.create_namespaced_cron_job(NS, cj)
    assert (created.spec.concurrency_policy, created.spec.successful_jobs_history_limit) == (
        "Allow",
        3,
    )
    cj["metadata"]["name"], cj["spec"]["schedule"] = "broken", "every day"
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_cron_job(NS, cj)
    assert status_of(e.value)["details"]["causes"][0]["field"] == "spec.schedule"


def test_service_gets_a_cluster_ip_and_pvc_is_bound(v1):
    a = v1.create_namespaced_service(
        NS, {"metadata": {"name": "a"}, "spec": {"ports": [{"port": 8888}]}}
    )
    b = v1.create_namespaced_service(
        NS, {"metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert a.spec.cluster_ip.startswith("10.9") and a.spec.cluster_ip != b.spec.cluster_ip
    assert (a.spec.type, a.spec.ports[0].target_port, a.spec.ports[0].protocol) == (
        "ClusterIP",
        8888,
        "TCP",
    )
    pvc = {
        "metadata": {"name": "home"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    created = v1.create_namespaced_persistent_volume_claim(NS, pvc)
    assert created.status.phase == "Bound"
    with pytest.raises(ApiException) as e:
        v1.create_namespaced_persistent_volume_claim(
            NS, {"metadata": {"name": "x"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
        )
    assert status_of(e.value)["details"]["causes"][0]["field"] == "spec.accessModes"


# -- selectors, lists, deletecollection ---------------------------------------------------


def test_label_and_field_selectors(kube, v1):
    v1.create_namespaced_pod(NS, pod_manifest("a", {"app": "hub", "tier": "web"}))
    v1.create_namespaced_pod(NS, pod_manifest("b", {"app": "hub"}))
    v1.create_namespaced_pod(NS, pod_manifest("c", {"app": "other"}, nodeName="n1"))
    kube.call(kube.store.mutate, "v1/pods", NS, "a", lambda p: p["status"].update(phase="Running"))

    def names(**kw):
        return sorted(p.metadata.name for p in v1.list_namespaced_pod(NS, **kw).items)

    assert names(label_selector="app=hub") == ["a", "b"]
    assert names(label_selector="app==hub,tier") == ["a"]
    assert names(label_selector="app!=hub") == ["c"]
    assert names(label_selector="app in (hub,other),!tier") == ["b", "c"]
    assert names(label_selector="app notin (hub)") == ["c"]
    assert names(field_selector="status.phase=Running") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="spec.nodeName=n1") == ["c"]
    assert names(field_selector="status.phase!=Running", label_selector="app=hub") == ["b"]
    assert names(limit=1) == ["a", "b", "c"]  # limit may be ignored, not break
    with pytest.raises(ApiException) as e:
        v1.list_namespaced_pod(NS, field_selector="spec.image=x")
    assert (e.value.status, status_of(e.value)["message"]) == (
        400,
        "field label not supported: spec.image",
    )
    with pytest.raises(ApiException) as e:
        v1.list_namespaced_pod(NS, label_selector="app in (")
    assert e.value.status == 400

    ev = {
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "a", "namespace": NS},
        "reason": "Scheduled",
    }
    v1.create_namespaced_event(NS, ev)
    got = v1.list_namespaced_event(
        NS, field_selector="involvedObject.kind=Pod,involvedObject.name=a"
    )
    assert [e.reason for e in got.items] == ["Scheduled"]
    assert v1.list_namespaced_event(NS, field_selector="involvedObject.kind=Job").items == []


def test_delete_collection_with_label_selector(v1):
    for name, app in (("x1", "gone"), ("x2", "gone"), ("x3", "stay")):
        v1.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": {"app": app}}})
    v1.delete_collection_namespaced_config_map(NS, label_selector="app=gone")
    assert [c.metadata.name for c in v1.list_namespaced_config_map(NS).items] == ["x3"]


# -- watches -----------------------------------------------------------------------------


def test_list_then_watch_replays_changes_made_in_between(v1):
    v1.create_namespaced_pod(NS, pod_manifest("before", {"app": "w"}))
    listed = v1.list_namespaced_pod(NS, label_selector="app=w")
    rv = listed.metadata.resource_version
    assert [p.metadata.name for p in listed.items] == ["before"]
    v1.create_namespaced_pod(NS, pod_manifest("between", {"app": "w"}))
    v1.patch_namespaced_pod(
        "before",
        NS,
        {"metadata": {"annotations": {"x": "1"}}},
        _content_type="application/merge-patch+json",
    )
    v1.create_namespaced_pod(NS, pod_manifest("unrelated", {"app": "other"}))
    v1.delete_namespaced_pod("between", NS)
    w = kubernetes.watch.Watch()
    events = [
        (e["type"], e["object"].metadata.name)
        for e in w.stream(
            v1.list_namespaced_pod,
            NS,
            label_selector="app=w",
            resource_version=rv,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "between"), ("MODIFIED", "before"), ("DELETED", "between")]


def test_watch_without_resource_version_starts_with_current_state(v1):
    v1.create_namespaced_pod(NS, pod_manifest("now"))
    w = kubernetes.watch.Watch()
    events = [
        (e["type"], e["object"].metadata.name)
        for e in w.stream(v1.list_namespaced_pod, NS, timeout_seconds=1)
    ]
    assert events == [("ADDED", "now")]


def test_watch_timeout_seconds_ends_the_stream(kube, v1):
    started = time.monotonic()
    w = kubernetes.watch.Watch()
    assert list(w.stream(v1.list_namespaced_config_map, NS, timeout_seconds=1)) == []
    assert 0.9 <= time.monotonic() - started < 5
    # the legacy /watch/ path streams the same way
    v1.create_namespaced_config_map(NS, {"metadata": {"name": "legacy"}})
    url = f"{kube.url}/api/v1/watch/namespaces/{NS}/configmaps?timeoutSeconds=1"
    with urllib.request.urlopen(url, timeout=10) as resp:
        lines = resp.read().decode().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["ADDED"]


def test_watch_delivers_live_changes_and_selector_exits(kube, v1):
    v1.create_namespaced_pod(NS, pod_manifest("live", {"app": "w"}))
    rv = v1.list_namespaced_pod(NS).metadata.resource_version
    seen = []

    def watch():
        w = kubernetes.watch.Watch()
        for e in w.stream(
            v1.list_namespaced_pod,
            NS,
            label_selector="app=w",
            resource_version=rv,
            timeout_seconds=3,
        ):
            seen.append(
                (
                    e["type"],
                    e["object"].metadata.name,
                    (e["object"].metadata.labels or {}).get("app"),
                )
            )
            if len(seen) == 2:
                w.stop()

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.3)
    v1.create_namespaced_pod(NS, pod_manifest("second", {"app": "w"}))
    v1.patch_namespaced_pod(
        "live",
        NS,
        {"metadata": {"labels": {"app": "gone"}}},
        _content_type="application/merge-patch+json",
    )
    t.join(10)
    # an object that stops matching the selector is DELETED for this watcher
    assert seen == [("ADDED", "second", "w"), ("DELETED", "live", "gone")]


def test_too_old_resource_version_gives_410(tmp_path):
    s = KubeStandIn(run_kubelet=False, run_controllers=False, history=5)
    with s.serve_in_thread():
        c = client_for(s, tmp_path)
        v1 = kubernetes.client.CoreV1Api(c)
        first_rv = v1.list_namespaced_config_map(NS).metadata.resource_version
        for i in range(8):
            v1.create_namespaced_config_map(NS, {"metadata": {"name": f"c{i}"}})
        # the raw answer: HTTP 200 and one ERROR event carrying a 410 Status
        url = f"{s.url}/api/v1/namespaces/{NS}/configmaps?watch=1&resourceVersion={first_rv}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            lines = resp.read().decode().splitlines()
        assert len(lines) == 1
        event = json.loads(lines[0])
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        # ... which the client turns into an ApiException
        with pytest.raises(ApiException) as e:
            list(
                kubernetes.watch.Watch().stream(
                    v1.list_namespaced_config_map, NS, resource_version=first_rv, timeout_seconds=1
                )
            )
        assert e.value.status == 410
        # a list at an exact, too old version is 410 as well; NotOlderThan answers now
        with pytest.raises(ApiException) as e:
            v1.list_namespaced_config_map(
                NS, resource_version=first_rv, resource_version_match="Exact"
            )
        assert e.value.status == 410
        assert (
            len(
                v1.list_namespaced_config_map(
                    NS, resource_version=first_rv, resource_version_match="NotOlderThan"
                ).items
            )
            == 8
        )
        c.close()


def test_list_at_exact_resource_version_rewinds(v1):
    v1.create_namespaced_config_map(NS, {"metadata": {"name": "keep"}, "data": {"v": "1"}})
    rv = v1.list_namespaced_config_map(NS).metadata.resource_version
    v1.patch_namespaced_config_map(
        "keep", NS, {"data": {"v": "2"}}, _content_type="application/merge-patch+json"
    )
    v1.create_namespaced_config_map(NS, {"metadata": {"name": "later"}})
    old = v1.list_namespaced_config_map(NS, resource_version=rv, resource_version_match="Exact")
    assert old.metadata.resource_version == rv
    assert [(c.metadata.name, c.data) for c in old.items] == [("keep", {"v": "1"})]


def test_stalled_watches_send_nothing_until_released(kube, v1):
    rv = v1.list_namespaced_config_map(NS).metadata.resource_version
    kube.stall_watches()
    got: list = []

    def watch():
        for e in kubernetes.watch.Watch().stream(
            v1.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=5
        ):
            got.append((e["type"], e["object"].metadata.name, time.monotonic()))
            break

    t = threading.Thread(target=watch)
    t.start()
    v1.create_namespaced_config_map(NS, {"metadata": {"name": "held"}})
    time.sleep(0.8)
    assert got == []
    released = time.monotonic()
    req = urllib.request.Request(f"{kube.url}/_control/kube/watches/release", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    t.join(10)
    assert [g[:2] for g in got] == [("ADDED", "held")]
    assert got[0][2] >= released


# -- deletion -------------------------------------------------------------------------------


def test_graceful_pod_deletion_protocol(kube, v1):
    v1.create_namespaced_pod(
        NS, pod_manifest("run", nodeName="devstack-node", terminationGracePeriodSeconds=20)
    )
    marked = v1.delete_namespaced_pod(
        "run",
        NS,
        body=kubernetes.client.V1DeleteOptions(grace_period_seconds=7),
        grace_period_seconds=7,
    )
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.deletion_grace_period_seconds == 7
    assert (
        v1.read_namespaced_pod("run", NS).metadata.deletion_timestamp is not None
    )  # kubelet's turn
    # the kubelet's half: stop the process, then remove the object
    kube.call(kube.store.delete, "v1/pods", NS, "run")
    with pytest.raises(ApiException):
        v1.read_namespaced_pod("run", NS)
    # without a grace period, or with 0, a scheduled pod goes at once
    v1.create_namespaced_pod(NS, pod_manifest("now", nodeName="devstack-node"))
    v1.delete_namespaced_pod("now", NS, grace_period_seconds=0)
    assert v1.list_namespaced_pod(NS).items == []


def test_job_deletion_orphans_pods_unless_told_otherwise(api, batch, v1):
    job = batch.create_namespaced_job(NS, job_manifest("j1"))
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "j1",
        "uid": job.metadata.uid,
        "controller": True,
    }
    pod = pod_manifest("j1-pod", restartPolicy="Never")
    pod["metadata"]["ownerReferences"] = [owner]
    v1.create_namespaced_pod(NS, pod)
    _, status, headers = batch.delete_namespaced_job_with_http_info("j1", NS)
    assert status == 200
    assert "child pods are preserved by default" in headers["Warning"]
    assert v1.read_namespaced_pod("j1-pod", NS).metadata.owner_references is None


def test_namespace_deletion_removes_its_objects(kube, v1):
    v1.create_namespace({"metadata": {"name": "team"}})
    assert [sa.metadata.name for sa in v1.list_namespaced_service_account("team").items] == [
        "default"
    ]
    assert v1.read_namespace("team").metadata.labels["kubernetes.io/metadata.name"] == "team"
    v1.create_namespaced_config_map("team", {"metadata": {"name": "cm"}})
    v1.create_namespaced_secret("team", {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    v1.create_namespaced_pod("team", pod_manifest("sleeper", nodeName="devstack-node"))
    resp = v1.delete_namespace("team", _preload_content=False)  # the client expects a Status
    assert json.loads(resp.data)["status"]["phase"] == "Terminating"
    assert v1.read_namespace("team").status.phase == "Terminating"
    deadline = time.monotonic() + 5
    while v1.list_namespaced_config_map("team").items and time.monotonic() < deadline:
        time.sleep(0.05)
    assert v1.list_namespaced_config_map("team").items == []
    # the running pod is being terminated gracefully, so the namespace is still there
    assert v1.read_namespaced_pod("sleeper", "team").metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as e:
        v1.create_namespaced_config_map("team", {"metadata": {"name": "late"}})
    body = status_of(e.value)
    assert (e.value.status, body["reason"]) == (403, "Forbidden")
    assert "because it is being terminated" in body["message"]
    kube.call(kube.store.delete, "v1/pods", "team", "sleeper")  # the kubelet finishes
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            v1.read_namespace("team")
        except ApiException as err:
            assert err.status == 404
            break
        time.sleep(0.05)
    else:
        pytest.fail("namespace was not removed")
    assert "v1/secrets" not in kube.counts()


# -- auth -----------------------------------------------------------------------------------


def test_rbac_forbidden_and_unauthorized(tmp_path):
    tokens = {
        "hub-token": {
            "user": "system:serviceaccount:hub:hub",
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "pods/log"],
                    "verbs": ["get", "list", "watch", "create", "delete"],
                    "namespaces": ["hub"],
                },
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]},
            ],
        }
    }
    s = KubeStandIn(
        run_kubelet=False, run_controllers=False, tokens=tokens, namespaces=["default", "hub"]
    )
    with s.serve_in_thread():
        c = client_for(s, tmp_path, "hub-token")
        v1 = kubernetes.client.CoreV1Api(c)
        v1.create_namespaced_pod("hub", pod_manifest("ok"))
        assert [p.metadata.name for p in v1.list_namespaced_pod("hub").items] == ["ok"]
        with pytest.raises(ApiException) as e:
            v1.list_namespaced_pod("default")
        body = status_of(e.value)
        assert (e.value.status, body["reason"]) == (403, "Forbidden")
        assert body["message"] == (
            'pods is forbidden: User "system:serviceaccount:hub:hub" cannot list resource "pods" '
            'in API group "" in the namespace "default"'
        )
        with pytest.raises(ApiException) as e:
            v1.patch_namespaced_pod_status(
                "ok", "hub", {"status": {}}, _content_type="application/merge-patch+json"
            )
        assert 'cannot patch resource "pods/status"' in status_of(e.value)["message"]
        with pytest.raises(ApiException) as e:
            v1.read_namespaced_pod_log("ok", "hub")  # allowed: fails later, not on RBAC
        assert e.value.status == 400
        with pytest.raises(ApiException) as e:
            v1.list_pod_for_all_namespaces()
        assert "at the cluster scope" in status_of(e.value)["message"]
        with pytest.raises(ApiException) as e:
            v1.create_namespace({"metadata": {"name": "hub"}})
        assert e.value.status == 409  # allowed, and it exists
        c.close()

        bad = client_for(s, tmp_path, "wrong-token")
        with pytest.raises(ApiException) as e:
            kubernetes.client.CoreV1Api(bad).list_namespaced_pod("hub")
        assert (e.value.status, status_of(e.value)["reason"]) == (401, "Unauthorized")
        bad.close()

        # tokens can change at runtime; None makes everyone admin again
        s.call(s.set_tokens, None)
        again = client_for(s, tmp_path, "anything")
        assert kubernetes.client.CoreV1Api(again).list_namespaced_pod("default").items == []
        again.close()


# -- logs (the kubelet's half is a double of the agreed interface) ---------------------------


class FakeKubelet:
    def __init__(self):
        self.calls = []

    def read_log(self, namespace, pod, container=None, tail_lines=None):
        self.calls.append((namespace, pod, container, tail_lines))
        if container == "late":
            raise KeyError(container)
        return b"one\ntwo\n"

    async def follow_log(self, namespace, pod, container=None, tail_lines=None):
        for chunk in (b"a\n", b"b\n"):
            await asyncio.sleep(0.05)
            yield chunk


def test_pod_log_subresource(kube, v1):
    v1.create_namespaced_pod(NS, pod_manifest("solo"))
    with pytest.raises(ApiException) as e:
        v1.read_namespaced_pod_log("solo", NS)
    assert (
        status_of(e.value)["message"]
        == 'container "main" in pod "solo" is waiting to start: ContainerCreating'
    )
    kube.api.kubelet = fake = FakeKubelet()
    # (the sync client turns a preloaded log into str(bytes); read it raw)
    assert (
        v1.read_namespaced_pod_log("solo", NS, tail_lines=5, _preload_content=False).data
        == b"one\ntwo\n"
    )
    assert fake.calls[-1] == (NS, "solo", "main", 5)
    resp = v1.read_namespaced_pod_log("solo", NS, follow=True, _preload_content=False)
    assert resp.read() == b"a\nb\n"
    two = pod_manifest(
        "duo", containers=[{"name": "main", "image": "i"}, {"name": "late", "image": "i"}]
    )
    v1.create_namespaced_pod(NS, two)
    with pytest.raises(ApiException) as e:
        v1.read_namespaced_pod_log("duo", NS)
    assert (
        status_of(e.value)["message"]
        == "a container name must be specified for pod duo, choose one of: [main late]"
    )
    with pytest.raises(ApiException) as e:
        v1.read_namespaced_pod_log("duo", NS, container="late")
    assert "is waiting to start" in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        v1.read_namespaced_pod_log("duo", NS, container="nope")
    assert status_of(e.value)["message"] == "container nope is not valid for pod duo"
    with pytest.raises(ApiException) as e:
        v1.read_namespaced_pod_log("ghost", NS)
    assert e.value.status == 404


# -- strict schema, discovery, control surface ------------------------------------------------


def test_strict_schema_rejects_unknown_fields(v1, batch):
    pod = pod_manifest("typo")
    pod["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(ApiException) as e:
        v1.create_namespaced_pod(NS, pod)
    body = status_of(e.value)
    assert (e.value.status, body["reason"]) == (400, "BadRequest")
    assert (
        'strict decoding error: unknown field "spec.containers[0].imagePullPolcy"'
        in body["message"]
    )
    job = job_manifest("typo")
    job["spec"]["backofLimit"] = 2
    with pytest.raises(ApiException) as e:
        batch.create_namespaced_job(NS, job)
    assert 'unknown field "spec.backofLimit"' in status_of(e.value)["message"]


def test_discovery_and_health(api, kube):
    assert kubernetes.client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name for g in kubernetes.client.ApisApi(api).get_api_versions().groups}
    assert {"batch", "networking.k8s.io"} <= groups
    resources = {r.name for r in kubernetes.client.CoreV1Api(api).get_api_resources().resources}
    assert {"pods", "pods/log", "pods/status", "secrets", "namespaces"} <= resources
    batch_res = {r.name for r in kubernetes.client.BatchV1Api(api).get_api_resources().resources}
    assert {"jobs", "cronjobs", "jobs/status"} <= batch_res
    assert kubernetes.client.VersionApi(api).get_code().major == "1"
    for path in ("/healthz", "/readyz", "/livez"):
        with urllib.request.urlopen(kube.url + path, timeout=10) as resp:
            assert resp.read() == b"ok"
    net = kubernetes.client.NetworkingV1Api(api)
    np = net.create_namespaced_network_policy(
        NS, {"metadata": {"name": "deny"}, "spec": {"podSelector": {}}}
    )
    assert np.spec.policy_types == ["Ingress"]


def test_control_surface_over_http(kube, v1):
    body = json.dumps(
        {
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "seeded", "namespace": NS},
                }
            ]
        }
    ).encode()
    req = urllib.request.Request(
        f"{kube.url}/_control/kube/objects",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
    assert v1.read_namespaced_config_map("seeded", NS).metadata.uid
    with urllib.request.urlopen(f"{kube.url}/_control/kube/counts", timeout=10) as resp:
        counts = json.load(resp)
    assert counts == {"v1/configmaps": 1, "v1/namespaces": 1, "v1/serviceaccounts": 1}
    with urllib.request.urlopen(f"{kube.url}/_control/kube/objects", timeout=10) as resp:
        dump = json.load(resp)
    assert dump["v1/configmaps"][0]["metadata"]["name"] == "seeded"
    # seeded pods keep their status (tests can set up a Running pod directly)
    pod = pod_manifest("seed-run")
    pod["status"] = {"phase": "Running", "podIP": "10.0.0.9"}
    kube.call(kube.create_object, pod)
    assert v1.read_namespaced_pod("seed-run", NS).status.pod_ip == "10.0.0.9"
    req = urllib.request.Request(
        f"{kube.url}/_control/kube/tokens", data=b'{"tokens": {"t": {"user": "u"}}}', method="PUT"
    )
    urllib.request.urlopen(req, timeout=10).close()
    with pytest.raises(ApiException) as e:
        v1.list_namespaced_pod(NS)
    assert e.value.status == 401


# -- KubeSpawner's exact call shapes, with kubernetes_asyncio ----------------------------------


async def test_kubespawner_call_shapes(tmp_path):
    from kubernetes_asyncio import watch
    from kubernetes_asyncio.client import ApiException as AsyncApiException
    from kubernetes_asyncio.client import V1DeleteOptions
    from kubespawner.objects import make_namespace, make_pod, make_pvc, make_secret, make_service

    s = KubeStandIn(run_kubelet=False, run_controllers=False, strict_schema=True)
    await s.start()
    try:
        path = write_kubeconfig(tmp_path / "kc", s.url, "t", namespace="jhub")
        client = await kubernetes_asyncio.config.new_client_from_config(config_file=str(path))
        api = kubernetes_asyncio.client.CoreV1Api(client)
        # _ensure_namespace: create, and 409 when it exists
        await api.create_namespace(
            make_namespace("jhub", labels={"hub.jupyter.org/managed": "true"})
        )
        with pytest.raises(AsyncApiException) as e:
            await api.create_namespace(make_namespace("jhub"))
        assert e.value.status == 409

        # the reflector: list with resource_version "0" + NotOlderThan, raw content
        labels = "component=singleuser-server"
        resp = await api.list_namespaced_pod(
            namespace="jhub", label_selector=labels, field_selector="", _preload_content=False,
            resource_version="0", resource_version_match="NotOlderThan",
        )  # fmt: skip
        assert resp.ok
        listed = json.loads(await resp.read())
        rv = listed["metadata"]["resourceVersion"]
        ev = await api.list_namespaced_event(
            namespace="jhub",
            label_selector="",
            field_selector="involvedObject.kind=Pod",
            _preload_content=False,
        )
        assert json.loads(await ev.read())["items"] == []

        # objects as KubeSpawner builds them, through strict schema validation
        pod = make_pod(
            name="jupyter-alice", cmd=["jupyterhub-singleuser"], port=8888,
            image="quay.io/jupyter/base-notebook:latest", labels={"component": "singleuser-server"},
            annotations={}, uid=1234, gid=1234, fs_gid=100,
            env={"JUPYTERHUB_API_TOKEN": "x"}, volumes=[{"name": "home", "emptyDir": {}}],
            volume_mounts=[{"name": "home", "mountPath": "/home/jovyan"}],
        )  # fmt: skip
        certs = {}
        for key in ("keyfile", "certfile", "cafile", "hub_ca"):
            certs[key] = tmp_path / key
            certs[key].write_text(f"-----BEGIN {key}-----\n")
        hub_ca = certs.pop("hub_ca")
        secret = make_secret(
            name="jupyter-alice",
            username="alice",
            cert_paths=certs,
            hub_ca=hub_ca,
            owner_references=[],
        )
        service = make_service(
            name="jupyter-alice",
            port=8888,
            selector={"component": "singleuser-server"},
            owner_references=[],
        )
        await api.create_namespaced_pod("jhub", pod)  # created between list and watch
        await api.create_namespaced_secret("jhub", secret)
        await api.create_namespaced_service("jhub", service)
        pvc = make_pvc(
            name="claim-alice",
            storage_class=None,
            access_modes=["ReadWriteOnce"],
            selector=None,
            storage="1Gi",
        )
        await api.create_namespaced_persistent_volume_claim(namespace="jhub", body=pvc)
        got = await api.read_namespaced_persistent_volume_claim(
            name="claim-alice", namespace="jhub"
        )
        assert got.status.phase == "Bound"
        with pytest.raises(AsyncApiException) as e:
            await api.create_namespaced_pod("jhub", pod)
        assert e.value.status == 409

        # the reflector's watch, resuming from the list's resourceVersion
        w = watch.Watch()
        seen = []
        method = __import__("functools").partial(api.list_namespaced_pod, _preload_content=False)
        async with w.stream(
            method,
            namespace="jhub",
            label_selector=labels,
            field_selector="",
            resource_version=rv,
            timeout_seconds=1,
        ) as stream:
            async for event in stream:
                seen.append(
                    (
                        event["type"],
                        event["raw_object"]["metadata"]["name"],
                        event["raw_object"]["metadata"]["namespace"],
                    )
                )
        assert seen == [("ADDED", "jupyter-alice", "jhub")]

        # stop(): delete with DeleteOptions + grace period, then wait for DELETED
        await api.delete_namespaced_pod(
            name="jupyter-alice",
            namespace="jhub",
            body=V1DeleteOptions(grace_period_seconds=1),
            grace_period_seconds=1,
        )
        with pytest.raises(AsyncApiException) as e:
            await api.delete_namespaced_pod(name="jupyter-alice", namespace="jhub")
        assert e.value.status == 404
        async with watch.Watch().stream(
            api.list_namespaced_pod, namespace="jhub", resource_version=rv, timeout_seconds=1
        ) as stream:
            types = [event["type"] async for event in stream]
        assert types == ["ADDED", "DELETED"]
        # too-old watches: 410 becomes an exception the reflector retries from "0"
        await client.close()
    finally:
        await s.stop()


async def test_async_watch_bookmarks_and_410(tmp_path):
    from kubernetes_asyncio import watch
    from kubernetes_asyncio.client import ApiException as AsyncApiException

    s = KubeStandIn(run_kubelet=False, run_controllers=False, history=3, bookmark_interval=0.2)
    await s.start()
    try:
        path = write_kubeconfig(tmp_path / "kc", s.url, "t")
        client = await kubernetes_asyncio.config.new_client_from_config(config_file=str(path))
        api = kubernetes_asyncio.client.CoreV1Api(client)
        rv = (await api.list_namespaced_secret(NS)).metadata.resource_version
        async with watch.Watch().stream(
            api.list_namespaced_secret,
            NS,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        ) as stream:
            types = {e["type"] async for e in stream}
        assert types == {"BOOKMARK"}
        for i in range(5):
            await api.create_namespaced_secret(NS, {"metadata": {"name": f"s{i}"}})
        with pytest.raises(AsyncApiException) as e:
            async with watch.Watch().stream(
                api.list_namespaced_secret, NS, resource_version=rv, timeout_seconds=1
            ) as stream:
                async for _ in stream:
                    pass
        assert e.value.status == 410
        await client.close()
    finally:
        await s.stop()


# -- with the controllers (no kubelet): ownerReferences and propagationPolicy -----------------


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_job_pods_follow_propagation_policy(tmp_path):
    s = KubeStandIn(run_kubelet=False, run_controllers=True)
    assert s.controllers is not None
    with s.serve_in_thread():
        c = client_for(s, tmp_path)
        v1, batch = kubernetes.client.CoreV1Api(c), kubernetes.client.BatchV1Api(c)
        for name in ("keep", "drop"):
            batch.create_namespaced_job(NS, job_manifest(name))
            assert _wait(
                lambda n=name: v1.list_namespaced_pod(NS, label_selector=f"job-name={n}").items
            )
        batch.delete_namespaced_job("drop", NS, propagation_policy="Background")
        assert _wait(lambda: not v1.list_namespaced_pod(NS, label_selector="job-name=drop").items)
        batch.delete_namespaced_job("keep", NS)  # batch/v1 default: Orphan
        time.sleep(0.3)
        kept = v1.list_namespaced_pod(NS, label_selector="job-name=keep").items
        assert len(kept) == 1 and kept[0].metadata.owner_references is None
        c.close()
