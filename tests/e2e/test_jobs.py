"""The jobs service end to end: a real hub, the Keycloak, Vault and Kubernetes stand-ins
(kubelet runs pods as local processes), the service under uvicorn, real HTTP throughout."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest

from tests.helpers.jobs_stack import PREFIX, S3, UIDS, hub_login, jobs_stack, user_token
from valeria_hub.jobs.naming import name_tag, owner_label, user_namespace
from valeria_hub.names import dependent_name

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with jobs_stack(tmp_path_factory.mktemp("jobs"), code_max_bytes=50_000) as s:
        for name in UIDS:
            hub_login(s.hub_url, name)
        yield s


@pytest.fixture(scope="module")
def tokens(stack):
    return {name: user_token(stack.hub_url, name) for name in UIDS}


def client(stack, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.Client(base_url=stack.service.url, headers=headers, timeout=30)


def job_body(command: str, name: str | None = None, **extra) -> dict:
    meta = {"name": name} if name else {"generateName": "e2e-"}
    container = {"name": "job", "image": "python:3.11", "command": ["/bin/sh", "-c", command]}
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }
    return {"job": body, **extra}


def objects(stack) -> set[tuple[str, str, str]]:
    """Secrets, ConfigMaps, Jobs and CronJobs in the cluster (not pods and events, which
    earlier tests' jobs still change)."""
    kinds = ("v1/secrets", "v1/configmaps", "batch/v1/jobs", "batch/v1/cronjobs")
    dump = stack.kube.dump()
    return {
        (kind, o["metadata"]["namespace"], o["metadata"]["name"])
        for kind in kinds
        for o in dump.get(kind, [])
    }


def wait_done(c: httpx.Client, name: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"jobs/{name}").json()
        status = job.get("status") or {}
        if status.get("succeeded") or status.get("failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {name} did not finish: {job}")


def test_service_root_is_public_and_everything_else_needs_a_token(stack):
    with client(stack, None) as c:
        assert c.get("").json()["message"] == "kbatch"
        for path in ("authorized", "jobs/", "cronjobs/", "pods/", "profiles/", "openapi.json"):
            resp = c.get(path)
            assert resp.status_code == 401, path
            assert "token" in resp.json()["detail"]
        assert c.post("jobs/", json=job_body("true")).status_code == 401
    with client(stack, "not-a-real-token") as c:
        resp = c.get("jobs/")
        assert resp.status_code == 401 and "log in to the hub again" in resp.json()["detail"]


def test_authorized_profiles_and_openapi(stack, tokens):
    with client(stack, tokens["alice"]) as c:
        assert c.get("authorized").json() == {"name": "alice", "groups": []}
        profiles = c.get("profiles/").json()
        assert profiles["small"]["resources"]["limits"]["cpu"] == "1"
        doc = c.get("openapi.json").json()
        assert f"{PREFIX}jobs/" in doc["paths"] and f"{PREFIX}jobs/logs/{{name}}/" in doc["paths"]


def test_submit_runs_as_the_user_with_storage_and_s3_then_logs_and_delete(stack, tokens):
    uid, gid = UIDS["alice"]
    command = (
        "id -u; id -g; echo key=$AWS_ACCESS_KEY_ID; echo endpoint=$S3_ENDPOINT_URL; "
        "echo home=$HOME; echo hi > /home/alice/from-job.txt && echo wrote-home; "
        "test -d /scratch && echo scratch-ok"
    )
    with client(stack, tokens["alice"]) as c:
        resp = c.post("jobs/", json=job_body(command))
        assert resp.status_code == 201, resp.text
        job = resp.json()
        name = job["metadata"]["name"]
        assert name.startswith("e2e-") and job["metadata"]["creation_timestamp"]
        namespace = user_namespace("valeria-jobs-", "alice")
        assert job["metadata"]["namespace"] == namespace
        done = wait_done(c, name)
        assert done["status"]["succeeded"] == 1, done["status"]
        assert done["status"]["start_time"] and done["status"]["completion_time"]
        listed = c.get("jobs/").json()
        assert name in [j["metadata"]["name"] for j in listed["items"]]
        pods = c.get("pods/", params={"job_name": name}).json()["items"]
        assert len(pods) == 1 and pods[0]["status"]["phase"] == "Succeeded"
        pod_name = pods[0]["metadata"]["name"]
        assert c.get(f"pods/{pod_name}").json()["metadata"]["name"] == pod_name
        log = c.get(f"jobs/logs/{name}/").text  # kbatch 0.5: by job
        assert log == c.get(f"jobs/logs/{pod_name}/").text  # kbatch 0.4: by pod
        assert log == c.get(f"pods/logs/{pod_name}/").text
        streamed = c.get(f"jobs/logs/{name}/", params={"stream": "true"}).text
        assert streamed == log
        lines = log.splitlines()
        assert lines[:2] == [str(uid), str(gid)]
        assert f"key={S3['alice'][0]}" in lines
        assert "endpoint=http://s3.valeria.test" in lines
        assert "home=/home/alice" in lines
        assert "wrote-home" in lines and "scratch-ok" in lines
        written = stack.nfs_root / "export/home/alice/from-job.txt"
        assert written.read_text() == "hi\n" and written.stat().st_uid == uid

        stored = stack.kube.get_object("batch/v1/jobs", namespace, name)
        stored_text = json.dumps(stored)
        assert S3["alice"][1] not in stored_text and S3["alice"][0] not in stored_text
        secrets = [
            s
            for s in stack.kube.dump().get("v1/secrets", [])
            if s["metadata"]["namespace"] == namespace
        ]
        assert len(secrets) == 1
        assert secrets[0]["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
        assert secrets[0]["metadata"]["labels"]["valeria.io/owner"] == owner_label("alice")

        resp = c.delete(f"jobs/{name}")
        assert resp.status_code == 200, resp.text
        assert c.get(f"jobs/{name}").status_code == 404
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            left = [
                s
                for s in stack.kube.dump().get("v1/secrets", [])
                if s["metadata"]["namespace"] == namespace
            ]
            if not left:
                break
            time.sleep(0.2)
        assert not left, "the job's Secret outlived the job"


def test_per_user_namespace_has_isolation(stack, tokens):
    namespace = user_namespace("valeria-jobs-", "alice")
    with client(stack, tokens["alice"]) as c:
        assert c.post("jobs/", json=job_body("true")).status_code == 201
    ns = stack.kube.get_object("v1/namespaces", "", namespace)
    assert ns["metadata"]["labels"]["valeria.io/owner"] == owner_label("alice")
    netpol = stack.kube.get_object(
        "networking.k8s.io/v1/networkpolicies", namespace, "valeria-jobs-isolation"
    )
    assert netpol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "10.0.0.0/8" in netpol["spec"]["egress"][0]["to"][0]["ipBlock"]["except"]
    quota = stack.kube.get_object("v1/resourcequotas", namespace, "valeria-jobs-quota")
    assert quota["spec"]["hard"]["limits.cpu"] == "32"


def test_a_namespace_deleted_by_hand_is_set_up_again_by_the_next_submission(stack, tokens):
    """The service sets a person's namespace up once and then takes it as ready; if an
    administrator deletes it meanwhile, the next submission makes it again, with its
    bindings, NetworkPolicy and quota, instead of failing."""
    namespace = user_namespace("valeria-jobs-", "bob")
    with client(stack, tokens["bob"]) as c:
        assert c.post("jobs/", json=job_body("true")).status_code == 201

        def delete_namespace() -> None:  # as namespace deletion does: contents first
            store = stack.kube.store
            for resource in store.resources():
                for obj in store.list(resource, namespace)[0]:
                    store.delete(resource, namespace, obj["metadata"]["name"])
            store.delete("v1/namespaces", "", namespace)

        stack.kube.call(delete_namespace)
        resp = c.post("jobs/", json=job_body("true"))
        assert resp.status_code == 201, resp.text
        assert resp.json()["metadata"]["namespace"] == namespace
    for resource, name in (
        ("networking.k8s.io/v1/networkpolicies", "valeria-jobs-isolation"),
        ("v1/resourcequotas", "valeria-jobs-quota"),
    ):
        assert stack.kube.get_object(resource, namespace, name)["metadata"]["name"] == name
    bindings = stack.kube.store.list("rbac.authorization.k8s.io/v1/rolebindings", namespace)[0]
    assert len(bindings) == 2  # the service's own rights and the pods' SCC


def test_code_upload_is_unpacked_into_the_working_dir(stack, tokens):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("main.py", "import os\nprint('code says hi', os.getuid())\n")
        z.writestr("data/input.txt", "42\n")
    code = base64.b64encode(buf.getvalue()).decode()
    command = "pwd; cat data/input.txt; /usr/bin/python3 main.py"
    with client(stack, tokens["alice"]) as c:
        resp = c.post("jobs/", json=job_body(command, code=code))
        assert resp.status_code == 201, resp.text
        name = resp.json()["metadata"]["name"]
        done = wait_done(c, name)
        log = c.get(f"jobs/logs/{name}/").text
        assert done["status"].get("succeeded") == 1, log
        assert log.splitlines() == ["/code", "42", f"code says hi {UIDS['alice'][0]}"]
        namespace = done["metadata"]["namespace"]
        cms = [
            m
            for m in stack.kube.dump().get("v1/configmaps", [])
            if m["metadata"]["namespace"] == namespace
        ]
        assert len(cms) == 1
        assert cms[0]["metadata"]["ownerReferences"][0]["name"] == name


def test_kbatch_code_shape_and_oversized_upload(stack, tokens):
    big = base64.b64encode(b"\0" * 60_000).decode()
    with client(stack, tokens["alice"]) as c:
        before = objects(stack)
        resp = c.post("jobs/", json=job_body("true", code=big))
        assert resp.status_code == 413 and "limit" in resp.json()["detail"]
        resp = c.post(
            "jobs/", json=job_body("true", code={"binary_data": {"code": "bm90IHppcA=="}})
        )
        assert resp.status_code == 422 and "not a zip" in resp.json()["detail"]
        assert objects(stack) == before


def test_forbidden_spec_is_refused_naming_the_field(stack, tokens):
    body = job_body("true")
    body["job"]["spec"]["template"]["spec"]["hostNetwork"] = True
    with client(stack, tokens["alice"]) as c:
        resp = c.post("jobs/", json=body)
        assert resp.status_code == 422
        assert "spec.template.spec.hostNetwork" in resp.json()["detail"]
        resp = c.post("jobs/", json={**job_body("true"), "surprise": 1})
        assert resp.status_code == 422


def test_name_collision_is_409_and_nothing_leaks(stack, tokens):
    with client(stack, tokens["alice"]) as c:
        assert c.post("jobs/", json=job_body("sleep 0.1", name="fixed-name")).status_code == 201
        before = objects(stack)
        resp = c.post("jobs/", json=job_body("true", name="fixed-name"))
        assert resp.status_code == 409 and "fixed-name" in resp.json()["detail"]
        assert objects(stack) == before


def test_a_generated_name_that_is_taken_is_made_again(stack, tokens, monkeypatch):
    """As the API server does with generateName: the person asked for any name, so a
    taken one is no conflict of theirs (the service names the Job itself, to name its
    Secret and ConfigMap before it exists)."""
    from valeria_hub.jobs import service

    suffixes = iter(["taken", "taken", "fresh"])
    monkeypatch.setattr(service, "random_suffix", lambda: next(suffixes))
    with client(stack, tokens["alice"]) as c:
        first = c.post("jobs/", json=job_body("sleep 0.1"))
        assert first.status_code == 201 and first.json()["metadata"]["name"] == "e2e-taken"
        before = objects(stack)
        again = c.post("jobs/", json=job_body("true"))
        assert again.status_code == 201, again.text
        assert again.json()["metadata"]["name"] == "e2e-fresh"
        added = objects(stack) - before
        assert {name for _, _, name in added} == {"e2e-fresh", dependent_name("s3", "e2e-fresh")}
        # tries are bounded: a person asking for one name gets the 409 at once
        monkeypatch.setattr(service, "random_suffix", lambda: "taken")
        refused = c.post("jobs/", json=job_body("true"))
        assert refused.status_code == 409 and "e2e-taken" in refused.json()["detail"]


def test_failed_job_creation_rolls_back_secret_and_configmap(stack, tokens):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.py", "pass\n")
    code = base64.b64encode(buf.getvalue()).decode()
    namespace = user_namespace("valeria-jobs-", "alice")
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    fault = stack.kube.faults.inject(path, method="POST", status=500, times=1)
    try:
        with client(stack, tokens["alice"]) as c:
            before = objects(stack)
            resp = c.post("jobs/", json=job_body("true", code=code))
            assert resp.status_code == 503 and "could not create" in resp.json()["detail"]
            assert fault.hits == 1
            assert objects(stack) == before
    finally:
        stack.kube.faults.remove(fault)


def test_cross_user_access_is_refused_as_not_found(stack, tokens):
    with client(stack, tokens["alice"]) as alice:
        name = alice.post("jobs/", json=job_body("echo alice-private")).json()["metadata"]["name"]
        wait_done(alice, name)
        pod = alice.get("pods/", params={"job_name": name}).json()["items"][0]["metadata"]["name"]
    with client(stack, tokens["bob"]) as bob:
        assert name not in [j["metadata"]["name"] for j in bob.get("jobs/").json()["items"]]
        assert bob.get("pods/", params={"job_name": name}).json()["items"] == []
        for method, path in [
            ("GET", f"jobs/{name}"),
            ("DELETE", f"jobs/{name}"),
            ("GET", f"jobs/logs/{name}/"),
            ("GET", f"jobs/logs/{pod}/"),
            ("GET", f"pods/{pod}"),
            ("GET", f"pods/logs/{pod}/"),
            ("GET", "jobs/no-such-job"),
        ]:
            resp = bob.request(method, path)
            assert resp.status_code == 404, (method, path, resp.text)
            assert "alice-private" not in resp.text
    with client(stack, tokens["alice"]) as alice:
        assert alice.get(f"jobs/{name}").status_code == 200


def test_a_jobs_events_are_its_owners_with_its_pods_and_no_one_elses(stack, tokens):
    """GET jobs/NAME/events: what the job controller and the kubelet recorded about the
    Job and its own pods, oldest first; another person gets the 404 of ``show``."""
    with client(stack, tokens["alice"]) as alice:
        ok = alice.post("jobs/", json=job_body("echo events-private")).json()["metadata"]
        failed = alice.post("jobs/", json=job_body("exit 3")).json()["metadata"]
        wait_done(alice, ok["name"])
        wait_done(alice, failed["name"])
        pod = alice.get("pods/", params={"job_name": ok["name"]}).json()["items"][0]["metadata"]
        resp = alice.get(f"jobs/{ok['name']}/events")
        assert resp.status_code == 200, resp.text
        events = resp.json()
        assert events["kind"] == "EventList"
        seen = [(e["involved_object"]["kind"], e["reason"]) for e in events["items"]]
        for expected in [
            ("Job", "SuccessfulCreate"),
            ("Pod", "Scheduled"),
            ("Pod", "Pulled"),
            ("Pod", "Created"),
            ("Pod", "Started"),
            ("Job", "Completed"),
        ]:
            assert expected in seen, seen
        # about this Job and its own pod only (the other job's are not listed)
        assert {e["involved_object"]["uid"] for e in events["items"]} == {ok["uid"], pod["uid"]}
        created = next(e for e in events["items"] if e["reason"] == "SuccessfulCreate")
        assert created["message"] == f"Created pod: {pod['name']}" and created["type"] == "Normal"
        started = next(e for e in events["items"] if e["reason"] == "Started")
        assert started["involved_object"]["field_path"] == "spec.containers{job}"
        times = [e["last_timestamp"] for e in events["items"]]
        assert all(times) and times == sorted(times, key=datetime.fromisoformat)
        assert all(e["count"] >= 1 and e["first_timestamp"] for e in events["items"])

        bad = alice.get(f"jobs/{failed['name']}/events").json()["items"]
        limit = [e for e in bad if e["reason"] == "BackoffLimitExceeded"]
        assert [(e["type"], e["involved_object"]["uid"]) for e in limit] == [
            ("Warning", failed["uid"])
        ]
        assert limit[0]["message"] == "Job has reached the specified backoff limit"
        for text in (resp.text, json.dumps(bad)):
            assert S3["alice"][0] not in text and S3["alice"][1] not in text
            assert tokens["alice"] not in text and "events-private" not in text
        # a cronjob's events: its own (none before its first run)
        cron = alice.post("cronjobs/", json=cron_body("true", "ev-cron"))
        assert cron.status_code == 201, cron.text
        assert alice.get("cronjobs/ev-cron/events").json()["items"] == []
    with client(stack, tokens["bob"]) as bob:
        for kind, name in (("jobs", ok["name"]), ("jobs", failed["name"]), ("cronjobs", "ev-cron")):
            shown = bob.get(f"{kind}/{name}")
            resp = bob.get(f"{kind}/{name}/events")
            assert resp.status_code == shown.status_code == 404, resp.text
            assert resp.json() == shown.json()  # exactly as show answers
        assert bob.get("jobs/no-such-job/events").status_code == 404
    with client(stack, tokens["alice"]) as alice:
        for name in (ok["name"], failed["name"]):
            assert alice.delete(f"jobs/{name}").status_code == 200
            assert alice.get(f"jobs/{name}/events").status_code == 404
        assert alice.delete("cronjobs/ev-cron").status_code == 200


def test_without_the_shipped_events_grant_the_events_are_a_503_naming_it(stack, tokens):
    """The shipped ClusterRole's ``list`` on events is what the route needs: taken away,
    the API server (stand-in) refuses, and the service says so (503), never a 500."""
    role = "valeria-hub-user-namespace"
    resource = "rbac.authorization.k8s.io/v1/clusterroles"
    store = stack.kube.store
    kept = stack.kube.call(store.get, resource, "", role)["rules"]
    assert {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]} in kept

    def without_events(obj: dict) -> None:
        obj["rules"] = [r for r in obj["rules"] if "events" not in r["resources"]]

    def restore(obj: dict) -> None:
        obj["rules"] = kept

    with client(stack, tokens["alice"]) as alice:
        name = alice.post("jobs/", json=job_body("true")).json()["metadata"]["name"]
        try:
            stack.kube.call(store.mutate, resource, "", role, without_events)
            resp = alice.get(f"jobs/{name}/events")
            assert resp.status_code == 503, resp.text
            detail = resp.json()["detail"]
            assert detail.startswith("could not read the Job's events: the cluster answered 403")
            assert 'cannot list resource "events"' in detail
            assert alice.get(f"jobs/{name}").status_code == 200  # the rest still works
        finally:
            stack.kube.call(store.mutate, resource, "", role, restore)
        assert alice.get(f"jobs/{name}/events").status_code == 200
        assert alice.delete(f"jobs/{name}").status_code == 200


def test_cronjob_lifecycle(stack, tokens):
    job = job_body("true")["job"]
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": job["spec"]}},
    }
    with client(stack, tokens["alice"]) as c:
        resp = c.post("cronjobs/", json={"job": cron})
        assert resp.status_code == 201, resp.text
        assert resp.json()["spec"]["schedule"] == "0 3 * * *"
        assert [i["metadata"]["name"] for i in c.get("cronjobs/").json()["items"]] == ["nightly"]
    with client(stack, tokens["bob"]) as bob:
        assert bob.get("cronjobs/nightly").status_code == 404
        assert bob.delete("cronjobs/nightly").status_code == 404
    with client(stack, tokens["alice"]) as c:
        assert c.delete("cronjobs/nightly").status_code == 200
        assert c.get("cronjobs/nightly").status_code == 404


def service_memory(stack) -> dict:
    """The people's Vault profiles the running service keeps (username -> entry)."""
    return stack.service.server.config.app.state.ctx.profiles


def test_expired_login_is_401_and_vault_down_is_503(stack, tokens):
    service_memory(stack).clear()  # as after a restart: Vault must be read
    stack.vault.faults.inject("/v1/auth/jwt/login", status=503, times=2)
    try:
        with client(stack, tokens["bob"]) as c:
            resp = c.post("jobs/", json=job_body("true"))
            assert resp.status_code == 503 and "vault" in resp.json()["detail"].lower()
    finally:
        stack.vault.faults.clear()
    assert "bob" not in service_memory(stack)
    stack.vault.faults.inject(
        "/v1/auth/jwt/login", status=400, body={"errors": ["token is expired"]}, times=1
    )
    try:
        with client(stack, tokens["bob"]) as c:
            resp = c.post("jobs/", json=job_body("true"))
            assert resp.status_code == 401 and "log in to the hub again" in resp.json()["detail"]
    finally:
        stack.vault.faults.clear()


def test_a_vault_profile_read_a_moment_ago_serves_the_next_submissions(stack, tokens):
    """Vault's three calls were most of a submission: a person's profile is kept in the
    service's memory for vault_profile_ttl (60 s) after a successful read, so Vault
    going down a moment later does not stop their next submissions; a person whose
    profile is not kept still gets the 503."""
    memory = service_memory(stack)
    memory.clear()
    with client(stack, tokens["alice"]) as a, client(stack, tokens["bob"]) as b:
        assert a.post("jobs/", json=job_body("true")).status_code == 201
        assert set(memory) == {"alice"}
        stack.vault.faults.inject("/v1/auth/jwt/login", status=503)
        try:
            for _ in range(3):
                assert a.post("jobs/", json=job_body("true")).status_code == 201
            resp = b.post("jobs/", json=job_body("true"))
            assert resp.status_code == 503 and "vault" in resp.json()["detail"].lower()
        finally:
            stack.vault.faults.clear()
    assert "alice-s3-secret-value" not in repr(memory)  # the keys never show in a repr


def test_lists_come_from_memory_kept_current_by_a_watch(stack, tokens):
    """After the first list, a person's list is answered from the service's memory (no
    LIST call reaches the API server), shows a submission at once, and follows what
    happens behind the service's back (a controller's status change, a deletion)."""
    kube = stack.kube
    namespace = user_namespace("valeria-jobs-", "alice")

    def listed(c: httpx.Client) -> dict[str, dict]:
        resp = c.get("jobs/")
        assert resp.status_code == 200, resp.text
        return {i["metadata"]["name"]: i for i in resp.json()["items"]}

    def eventually(c: httpx.Client, check, what: str) -> dict[str, dict]:
        deadline = time.monotonic() + 10
        while True:
            items = listed(c)
            if check(items):
                return items
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    with client(stack, tokens["alice"]) as c:
        assert c.post("jobs/", json=job_body("true")).status_code == 201  # a namespace
        listed(c)  # the view exists from here on
        kube.api.audit = audit = []
        try:
            name = c.post("jobs/", json=job_body("true")).json()["metadata"]["name"]
            assert name in listed(c)  # at once, whatever the watch's delay
            for _ in range(5):
                listed(c)
            lists = [a for _, a, _ in audit if a.resource == "jobs" and a.verb == "list"]
            assert lists == [], [(a.verb, a.resource) for _, a, _ in audit]
        finally:
            kube.api.audit = None

        def mark(obj: dict) -> None:
            obj["metadata"].setdefault("annotations", {})["test.example/seen"] = "yes"

        kube.call(kube.store.mutate, "batch/v1/jobs", namespace, name, mark)
        eventually(
            c,
            lambda items: items[name]["metadata"]["annotations"].get("test.example/seen"),
            "a change made behind the service's back never showed",
        )
        kube.call(kube.store.delete, "batch/v1/jobs", namespace, name)
        eventually(c, lambda items: name not in items, "a deleted job stayed in the list")
        # deleted through the service: gone from the very next list
        other = c.post("jobs/", json=job_body("true")).json()["metadata"]["name"]
        assert other in listed(c)
        assert c.delete(f"jobs/{other}").status_code == 200
        assert other not in listed(c)


def test_kubernetes_down_is_503_with_a_message(stack, tokens):
    with client(stack, tokens["alice"]) as c:
        listed = c.get("jobs/").json()["items"]  # the list cache's view of alice's jobs
        stack.kube.faults.inject("/apis/batch/v1", status=500, times=1)
        try:
            resp = c.get("jobs/some-job")
            assert resp.status_code == 503 and "could not read" in resp.json()["detail"]
            # a list kept by a watch answers from memory meanwhile
            stack.kube.faults.inject("/apis/batch/v1", status=500, times=1)
            resp = c.get("jobs/")
            assert resp.status_code == 200 and resp.json()["items"] == listed
        finally:
            stack.kube.faults.clear()
    # an uncached list (bob has none yet in this module's cache) needs the API server
    stack.service.server.config.app.state.ctx.cache._views.clear()
    stack.kube.faults.inject("/apis/batch/v1", status=500, times=1)
    try:
        with client(stack, tokens["bob"]) as c:
            resp = c.get("jobs/")
            assert resp.status_code == 503 and "could not list" in resp.json()["detail"]
    finally:
        stack.kube.faults.clear()


def test_token_without_access_scope_is_403_naming_the_scope(stack, tokens):
    hub_login(stack.hub_url, "carol")  # a hub user without the jobs-users role
    narrow = user_token(stack.hub_url, "alice", ["read:users:name!user=alice"])
    for token in (user_token(stack.hub_url, "carol"), narrow):
        with client(stack, token) as c:
            for path in ("authorized", "jobs/", "pods/"):
                resp = c.get(path)
                assert resp.status_code == 403, (path, resp.text)
                assert "access:services!service=jobs" in resp.json()["detail"]


def test_bearer_header_and_other_service_token(stack, tokens):
    with httpx.Client(base_url=stack.service.url, timeout=10) as c:
        resp = c.get("authorized", headers={"Authorization": f"Bearer {tokens['bob']}"})
        assert resp.json()["name"] == "bob"
        from tests.helpers.jobs_stack import OTHER_TOKEN

        resp = c.get("jobs/", headers={"Authorization": f"token {OTHER_TOKEN}"})
        assert resp.status_code == 403


def test_browser_oauth_flow_through_the_hub(stack):
    """No credentials -> hub authorize -> our callback checks state -> HttpOnly cookie."""
    jobs_url = f"{stack.hub_url}{PREFIX}jobs/"
    html = {"Accept": "text/html"}
    with httpx.Client(timeout=15) as browser:
        hub_login(stack.hub_url, "alice", browser)
        resp = browser.get(jobs_url, headers=html)  # through the hub's proxy
        assert resp.status_code == 302
        assert resp.headers["location"].startswith(f"{stack.hub_url}/hub/api/oauth2/authorize?")
        resp = browser.get(resp.headers["location"])
        assert resp.status_code == 302, resp.text[:300]
        callback = resp.headers["location"]
        assert f"{PREFIX}oauth_callback?" in callback
        forged = callback.replace("state=", "state=x")
        with httpx.Client(timeout=15, cookies=browser.cookies) as other:
            assert other.get(forged).status_code == 400
        resp = browser.get(callback)
        assert resp.status_code == 302 and resp.headers["location"] == f"{PREFIX}jobs/"
        cookie = resp.headers["set-cookie"]
        assert "jobs-token=" in cookie and "HttpOnly" in cookie
        resp = browser.get(jobs_url, headers=html)  # a page load: no XSRF token needed
        assert resp.status_code == 200 and resp.json()["kind"] == "JobList"
        # a script's request with the cookie needs the token the jobs page hands out
        authorized = f"{stack.hub_url}{PREFIX}authorized"
        refused = browser.get(authorized)
        assert refused.status_code == 403 and "X-XSRFToken" in refused.json()["detail"]
        page = browser.get(f"{stack.hub_url}{PREFIX}ui/", headers=html)
        xsrf = re.search(r'name="xsrf-token" content="([0-9a-f]+)"', page.text).group(1)
        assert browser.get(authorized, headers={"X-XSRFToken": xsrf}).json()["name"] == "alice"


def test_response_shapes_are_what_kbatch_reads(stack, tokens):
    """kbatch reads to_dict() shapes and parses times with datetime.fromisoformat."""
    from datetime import datetime

    with client(stack, tokens["bob"]) as c:
        name = c.post("jobs/", json=job_body("echo shape")).json()["metadata"]["name"]
        job = wait_done(c, name)
        listed = c.get("jobs/").json()
        assert listed["kind"] == "JobList" and listed["api_version"] == "batch/v1"
        row = next(i for i in listed["items"] if i["metadata"]["name"] == name)
        for value in (
            row["metadata"]["creation_timestamp"],
            row["status"]["start_time"],
            row["status"]["completion_time"],
        ):
            assert not value.endswith("Z")
            datetime.fromisoformat(value)
        assert {"succeeded", "failed", "active"} <= set(job["status"])
        pods = c.get("pods/", params={"job_name": ""}).json()
        assert pods["kind"] == "PodList"
        assert all(p["status"]["phase"] for p in pods["items"])
        status = c.delete(f"jobs/{name}").json()
        assert status.get("kind") == "Status" or status.get("metadata", {}).get("name") == name


# -- the shared namespace: personal names, per-person ceilings --------------------------------
@contextlib.contextmanager
def shared_service(stack, tokens, namespace: str, **overrides):
    """A second jobs service on the same hub and cluster, in shared mode on a namespace
    of its own (so each test counts only its own jobs): alice's and bob's clients."""
    from tests.helpers.jobs_stack import ServiceThread, service_settings, shared_namespace

    shared_namespace(stack, namespace)
    settings = service_settings(
        stack.hub_url,
        stack.vault.url,
        stack.kubeconfig,
        namespace_mode="shared",
        shared_namespace=namespace,
        **overrides,
    )
    with ServiceThread(settings) as shared:
        a = httpx.Client(base_url=shared.url, headers={"Authorization": f"token {tokens['alice']}"})
        b = httpx.Client(base_url=shared.url, headers={"Authorization": f"token {tokens['bob']}"})
        with a, b:
            yield a, b


def cron_body(command: str, name: str, **spec) -> dict:
    job = job_body(command)["job"]
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": job["spec"]}, **spec},
    }
    return {"job": cron}


def in_namespace(stack, namespace: str) -> set[tuple[str, str, str]]:
    return {o for o in objects(stack) if o[1] == namespace}


def test_shared_namespace_mode_isolates_by_owner_label(stack, tokens):
    with shared_service(stack, tokens, "hub-jobs") as (a, b):
        job = a.post("jobs/", json=job_body("echo shared-alice", name="same-name"))
        assert job.status_code == 201, job.text
        assert job.json()["metadata"]["namespace"] == "hub-jobs"
        alices = job.json()["metadata"]["name"]
        assert alices == f"same-name-{name_tag('alice')}"
        wait_done(a, alices)
        assert b.get("jobs/").json()["items"] == []
        assert b.get(f"jobs/{alices}").status_code == 404
        assert b.get(f"jobs/logs/{alices}/").status_code == 404
        assert b.get(f"jobs/{alices}/events").status_code == 404
        assert b.delete(f"jobs/{alices}").status_code == 404
        assert b.get("pods/").json()["items"] == []
        assert a.get(f"jobs/logs/{alices}/").text == "shared-alice\n"
        reasons = {e["reason"] for e in a.get(f"jobs/{alices}/events").json()["items"]}
        assert {"SuccessfulCreate", "Started", "Completed"} <= reasons, reasons
        assert a.delete(f"jobs/{alices}").status_code == 200


def test_shared_names_someone_else_holds_are_as_free_as_any(stack, tokens):
    """A name alice holds is accepted for bob exactly like a free one (his own name, 201),
    never a 409 that tells him it exists; a 409 is only ever about one's own objects."""
    with shared_service(stack, tokens, "hub-jobs-names") as (a, b):
        held = a.post("jobs/", json=job_body("echo alice-secret", name="report"))
        assert held.status_code == 201, held.text
        alices = held.json()["metadata"]["name"]
        answers = {}
        for asked in ("report", alices, "never-used"):  # held (short and full) and free
            resp = b.post("jobs/", json=job_body("true", name=asked))
            assert resp.status_code == 201, resp.text
            assert "alice-secret" not in resp.text
            answers[asked] = resp.json()["metadata"]["name"]
        tag = name_tag("bob")
        assert answers == {
            "report": f"report-{tag}",
            alices: f"{alices}-{tag}",
            "never-used": f"never-used-{tag}",
        }
        assert all(b.get(f"jobs/{name}").status_code == 200 for name in answers.values())
        assert b.get(f"jobs/{alices}").status_code == 404
        # one's own name: 409, by the short name or the full one, and nothing changes
        before = objects(stack)
        for asked in ("report", alices):
            resp = a.post("jobs/", json=job_body("true", name=asked))
            assert resp.status_code == 409 and alices in resp.json()["detail"], resp.text
        assert objects(stack) == before
        # generated names carry the tag too; a name without room for it is a 422
        resp = b.post("jobs/", json=job_body("true"))
        assert resp.status_code == 201 and resp.json()["metadata"]["name"].endswith(f"-{tag}")
        before = objects(stack)
        resp = a.post("cronjobs/", json=cron_body("true", "c" * 41))
        assert resp.status_code == 422, resp.text
        assert "metadata.name" in resp.json()["detail"] and "40 characters" in resp.json()["detail"]
        resp = a.post("jobs/", json=job_body("true", name="j" * 52))
        assert resp.status_code == 422 and "51 characters" in resp.json()["detail"]
        assert objects(stack) == before
        fitting = a.post("cronjobs/", json=cron_body("true", "c" * 40))
        assert fitting.status_code == 201, fitting.text
        assert len(fitting.json()["metadata"]["name"]) == 52

        assert a.delete(f"cronjobs/{fitting.json()['metadata']['name']}").status_code == 200


def test_nobody_can_pre_claim_the_names_of_a_cronjobs_runs(stack, tokens):
    """Bob (and alice herself) ask for the very names alice's CronJob's runs will get; each
    gets a name of their own, and the runs are then made, alice's, with their names."""
    namespace = "hub-jobs-runs"
    with shared_service(stack, tokens, namespace) as (a, b):
        resp = a.post("cronjobs/", json=cron_body("echo run", "nightly", schedule="* * * * *"))
        assert resp.status_code == 201, resp.text
        cron = resp.json()["metadata"]
        created = datetime.fromisoformat(cron["creation_timestamp"])
        first = int(created.timestamp() // 60)
        runs = [f"{cron['name']}-{m}" for m in range(first, first + 4)]  # the next ones
        for client in (b, a):
            for run in runs:
                resp = client.post("jobs/", json=job_body("true", name=run))
                assert resp.status_code == 201, resp.text
                assert resp.json()["metadata"]["name"] not in runs
        # the controller's next schedule check, a minute on
        later = created + timedelta(seconds=70)
        stack.kube.call(stack.kube.controllers.check_cronjobs, later)
        made = [
            j
            for j in stack.kube.dump().get("batch/v1/jobs", [])
            if j["metadata"]["namespace"] == namespace and j["metadata"]["name"] in runs
        ]
        assert made, "the CronJob made no run"
        for own in b.get("jobs/").json()["items"]:
            assert b.delete(f"jobs/{own['metadata']['name']}").status_code == 200
        for run in made:
            assert run["metadata"]["labels"]["valeria.io/owner"] == owner_label("alice")
            name = run["metadata"]["name"]
            assert a.get(f"jobs/{name}").status_code == 200
            assert b.get(f"jobs/{name}").status_code == 404
            # asking for an existing run's name: a name of one's own, never a 409
            resp = b.post("jobs/", json=job_body("true", name=name))
            assert resp.status_code == 201 and resp.json()["metadata"]["name"] != name
        assert a.delete(f"cronjobs/{cron['name']}").status_code == 200


def sleeper(seconds: int, parallelism: int = 1) -> dict:
    body = job_body(f"sleep {seconds}")
    body["job"]["spec"]["parallelism"] = parallelism
    return body


def test_shared_ceilings_refuse_with_the_figures_and_create_nothing(stack, tokens):
    """Each person's jobs stay under their ceilings, counted from the Jobs themselves (the
    pods need not exist yet); a CronJob holds its one run from the start, and its run is
    not counted twice. Profile `small`: 250m CPU requested per pod."""
    namespace = "hub-jobs-ceilings"
    ceilings = {"cronjobs": "1", "jobs": "3", "pods": "4", "requests.cpu": "1"}
    with shared_service(stack, tokens, namespace, user_ceilings=ceilings) as (a, b):

        def refused(path: str, body: dict, ceiling: str, *figures: str) -> None:
            before = objects(stack)
            resp = a.post(path, json=body)
            assert resp.status_code == 403, resp.text
            detail = resp.json()["detail"]
            assert f"ceiling of {ceiling}" in detail and all(f in detail for f in figures), detail
            assert objects(stack) == before

        first = a.post("jobs/", json=sleeper(60))
        assert first.status_code == 201, first.text
        refused("jobs/", sleeper(60, parallelism=4), "pods", "is 4", "needs 4", "hold 1")
        assert a.post("jobs/", json=sleeper(60, parallelism=2)).status_code == 201
        cron = a.post("cronjobs/", json=cron_body("sleep 60", "hourly", schedule="* * * * *"))
        assert cron.status_code == 201, cron.text  # 3 jobs, 4 pods, 1 CPU: every ceiling full
        refused("cronjobs/", cron_body("true", "another"), "cronjobs", "is 1", "hold 1")
        refused("jobs/", sleeper(1), "jobs", "is 3", "needs 1", "hold 3")
        # bob has ceilings of his own
        assert b.post("jobs/", json=sleeper(1)).status_code == 201
        # the CronJob's run starts: it was counted from the start, and is not counted again
        created = datetime.fromisoformat(cron.json()["metadata"]["creation_timestamp"])
        stack.kube.call(stack.kube.controllers.check_cronjobs, created + timedelta(seconds=70))
        runs = [i for i in a.get("jobs/").json()["items"] if i["metadata"]["name"].startswith(
            cron.json()["metadata"]["name"] + "-")]  # fmt: skip
        assert len(runs) == 1 and not (runs[0]["status"] or {}).get("succeeded")
        refused("jobs/", sleeper(1), "jobs", "hold 3")
        assert a.delete(f"jobs/{first.json()['metadata']['name']}").status_code == 200
        again = a.post("jobs/", json=sleeper(1))
        assert again.status_code == 201, again.text
        # a finished job holds nothing
        wait_done(a, again.json()["metadata"]["name"])
        assert a.post("jobs/", json=sleeper(1)).status_code == 201
        for kind, items in (("cronjobs", a.get("cronjobs/")), ("jobs", a.get("jobs/"))):
            for item in items.json()["items"]:
                a.delete(f"{kind}/{item['metadata']['name']}")


def test_shared_concurrent_submissions_cannot_both_pass_a_ceiling(stack, tokens):
    namespace = "hub-jobs-burst"
    with shared_service(stack, tokens, namespace, user_ceilings={"jobs": "1"}) as (a, b):

        def submit(_: int) -> httpx.Response:
            with httpx.Client(base_url=a.base_url, headers=a.headers, timeout=60) as own:
                return own.post("jobs/", json=sleeper(2))

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(submit, range(8)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] + [403] * 7, [r.text for r in answers]
        jobs = [
            j
            for j in stack.kube.dump().get("batch/v1/jobs", [])
            if j["metadata"]["namespace"] == namespace
        ]
        assert len(jobs) == 1
        made = next(r for r in answers if r.status_code == 201).json()["metadata"]["name"]
        wait_done(a, made)
        assert a.post("jobs/", json=sleeper(0)).status_code == 201  # finished: room again


def test_minimum_requests_and_one_run_at_a_time(stack, tokens):
    """Either mode: requests below the minimum and cronjobs whose runs could pile up are
    a 422 naming the field; in the shared namespace a limit a ceiling counts is required."""
    ctr = "spec.template.spec.containers[0].resources"
    with client(stack, tokens["alice"]) as c:
        before = objects(stack)
        body = job_body("true")
        body["job"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
            "requests": {"cpu": "1m"}
        }
        resp = c.post("jobs/", json=body)
        assert resp.status_code == 422 and f"{ctr}.requests.cpu" in resp.json()["detail"]
        assert "minimum of 10m" in resp.json()["detail"]
        for spec, field in (
            ({"concurrencyPolicy": "Allow"}, "spec.concurrencyPolicy"),
            ({"failedJobsHistoryLimit": 100}, "spec.failedJobsHistoryLimit"),
        ):
            resp = c.post("cronjobs/", json=cron_body("true", "piling", **spec))
            assert resp.status_code == 422 and field in resp.json()["detail"], resp.text
        assert objects(stack) == before
    bare = {"bare": {"description": "requests only", "resources": {"requests": {"cpu": "100m"}}}}
    with shared_service(stack, tokens, "hub-jobs-bare", profiles=bare) as (a, _):
        before = objects(stack)
        resp = a.post("jobs/", json=job_body("true"))
        assert resp.status_code == 422, resp.text
        assert f"{ctr}.limits.cpu: required in the shared namespace" in resp.json()["detail"]
        resp = a.post("cronjobs/", json=cron_body("true", "bare"))
        assert resp.status_code == 422
        assert f"spec.jobTemplate.{ctr}.limits.cpu" in resp.json()["detail"]
        assert objects(stack) == before
        body = job_body("true")
        body["job"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
            "limits": {"cpu": "1", "memory": "1Gi"}
        }
        resp = a.post("jobs/", json=body)
        assert resp.status_code == 201, resp.text
        made = stack.kube.get_object(
            "batch/v1/jobs", "hub-jobs-bare", resp.json()["metadata"]["name"]
        )
        resources = made["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources["requests"] == {"cpu": "100m", "memory": "1Gi"}  # memory: the limit


def test_a_list_comes_deflated_to_clients_that_accept_it_and_plain_to_others(stack, tokens):
    """The list's bytes on the wire: deflated (each item compressed once) when the
    client accepts deflate, as requests and httpx do; plain otherwise. Both decode to
    the same list, and the owner check applies to both."""
    with client(stack, tokens["alice"]) as alice, client(stack, tokens["bob"]) as bob:
        names = [
            alice.post("jobs/", json=job_body("true")).json()["metadata"]["name"] for _ in range(3)
        ]
        deflated, plain = same_snapshot(
            lambda: alice.get("jobs/", headers={"Accept-Encoding": "gzip, deflate"}),
            lambda: alice.get("jobs/", headers={"Accept-Encoding": "identity"}),
        )
        assert deflated.headers["content-encoding"] == "deflate"
        assert "content-encoding" not in plain.headers
        assert deflated.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
        assert int(deflated.headers["content-length"]) < len(plain.content) / 2
        assert deflated.json() == plain.json()  # httpx decoded it
        assert set(names) <= {i["metadata"]["name"] for i in plain.json()["items"]}
        theirs = bob.get("jobs/", headers={"Accept-Encoding": "deflate"}).json()["items"]
        assert not set(names) & {i["metadata"]["name"] for i in theirs}
        for name in names:
            assert alice.delete(f"jobs/{name}").status_code == 200


def same_snapshot(*requests: Callable[[], httpx.Response], tries: int = 40) -> list:
    """The answers of ``requests``, made one after another, again until all carry the
    same list resourceVersion: a person's jobs keep changing (pods start and end) while
    a test compares two lists of them."""
    versions: set = set()
    for _ in range(tries):
        answers = [request() for request in requests]
        versions = {answer.json()["metadata"].get("resource_version") for answer in answers}
        if len(versions) == 1:
            return answers
        time.sleep(0.25)
    raise AssertionError(f"the list kept changing: {versions}")


def summary_keys(kind: str) -> dict[str, set[str]]:
    """The fields of a summary list's item (README, "Batch jobs")."""
    meta = {"name", "namespace", "uid", "creation_timestamp"}
    if kind == "CronJob":
        return {"": {"api_version", "kind", "metadata", "spec", "status"}, "metadata": meta}
    return {"": {"api_version", "kind", "metadata", "status"}, "metadata": meta}


@pytest.mark.parametrize("cached", [True, False], ids=["list-cache", "through-the-api-server"])
def test_a_summary_list_is_the_callers_own_items_cut_to_what_a_list_shows(stack, tokens, cached):
    """``?view=summary`` (our CLI's and web page's list): the same envelope, only the
    caller's items, each with the fields the tables show under the to_dict() keys, made
    from the same objects as the full list (by the list cache or, without it, per
    request), deflated or not. No parameter (kbatch's client) stays the whole to_dict()
    shape, every field present; an unknown view is a 422 naming the field."""
    from kubernetes_asyncio.client import V1Job, V1ObjectMeta

    from valeria_hub.jobs.listbody import summary

    namespace = f"hub-jobs-summary-{'cached' if cached else 'direct'}"
    overrides = {} if cached else {"list_cache_views": 0}
    with shared_service(stack, tokens, namespace, **overrides) as (a, b):
        made = [
            a.post("jobs/", json=job_body("echo one")),
            a.post("jobs/", json=job_body("sleep 60")),
        ]
        assert all(r.status_code == 201 for r in made), [r.text for r in made]
        done, running = (r.json()["metadata"]["name"] for r in made)
        theirs = b.post("jobs/", json=job_body("true")).json()["metadata"]["name"]
        cron = a.post("cronjobs/", json=cron_body("true", "nightly", suspend=True))
        assert cron.status_code == 201, cron.text
        wait_done(a, done)

        answers = same_snapshot(
            lambda: a.get("jobs/"),
            lambda: a.get("jobs/", params={"view": "full"}),
            lambda: a.get("jobs/", params={"view": "summary"}),
            lambda: a.get("jobs/?view=summary", headers={"Accept-Encoding": "identity"}),
        )
        full = answers[0].json()
        assert answers[1].json()["items"] == full["items"]
        short, plain = answers[2], answers[3]
        assert short.status_code == 200 and short.headers["content-encoding"] == "deflate"
        assert "content-encoding" not in plain.headers and plain.json() == short.json()
        listed = short.json()
        assert {k: listed[k] for k in ("api_version", "kind")} == {
            "api_version": "batch/v1",
            "kind": "JobList",
        }
        assert set(listed) == set(full) and set(listed["metadata"]) == set(full["metadata"])
        by_name = {i["metadata"]["name"]: i for i in listed["items"]}
        assert set(by_name) == {done, running}  # bob's is not there
        assert theirs not in by_name and len(short.content) < len(a.get("jobs/").content)
        keys = summary_keys("Job")
        status_keys = {"active", "succeeded", "failed", "start_time", "completion_time"}
        for item in listed["items"]:
            assert set(item) == keys[""] and set(item["metadata"]) == keys["metadata"]
            assert set(item["status"]) == status_keys | {"conditions"}
            assert item["metadata"]["namespace"] == namespace
        row = by_name[done]
        assert row["status"]["succeeded"] == 1 and row["status"]["completion_time"]
        datetime.fromisoformat(row["metadata"]["creation_timestamp"])
        conditions = row["status"]["conditions"]
        assert any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
        assert set(row["status"]["conditions"][0]) == {
            "type", "status", "reason", "message", "last_transition_time",
        }  # fmt: skip
        assert by_name[running]["status"]["succeeded"] is None
        # the same objects as the full list, cut down
        assert listed["items"] == [summary("Job", i) for i in full["items"]]
        # the full list: every field of the client's models, nulls and all (kbatch reads them)
        for item in full["items"]:
            assert set(item) == set(V1Job.openapi_types)
            assert set(item["metadata"]) == set(V1ObjectMeta.openapi_types)
            assert item["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.11"

        crons = a.get("cronjobs/", params={"view": "summary"}).json()
        assert crons["kind"] == "CronJobList"
        [item] = crons["items"]
        assert set(item) == summary_keys("CronJob")[""]
        assert item["spec"] == {"schedule": "0 3 * * *", "suspend": True}
        assert set(item["status"]) == {"active", "last_schedule_time"}
        assert b.get("cronjobs/?view=summary").json()["items"] == []

        for path in ("jobs/", "cronjobs/"):
            bad = a.get(path, params={"view": "compact"})
            assert bad.status_code == 422, bad.text
            [problem] = bad.json()["detail"]
            assert problem["loc"] == ["query", "view"] and "'summary'" in problem["msg"]
        for path in ("jobs/", "cronjobs/"):
            operation = a.get("openapi.json").json()["paths"][f"{PREFIX}{path}"]["get"]
            [param] = [p for p in operation["parameters"] if p["name"] == "view"]
            assert param["in"] == "query" and "summary" in param["description"]
            assert param["schema"]["enum"] == ["full", "summary"]
        for name in (done, running):
            assert a.delete(f"jobs/{name}").status_code == 200
        assert a.delete(f"cronjobs/{item['metadata']['name']}").status_code == 200
        assert b.delete(f"jobs/{theirs}").status_code == 200
