"""The jobs service end to end: a real hub, the Keycloak, Vault and Kubernetes stand-ins
(kubelet runs pods as local processes), the service under uvicorn, real HTTP throughout."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import zipfile

import httpx
import pytest

from tests.helpers.jobs_stack import PREFIX, S3, UIDS, hub_login, jobs_stack, user_token
from valeria_hub.jobs.naming import owner_label, user_namespace

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


def test_expired_login_is_401_and_vault_down_is_503(stack, tokens):
    stack.vault.faults.inject("/v1/auth/jwt/login", status=503, times=2)
    try:
        with client(stack, tokens["bob"]) as c:
            resp = c.post("jobs/", json=job_body("true"))
            assert resp.status_code == 503 and "vault" in resp.json()["detail"].lower()
    finally:
        stack.vault.faults.clear()
    stack.vault.faults.inject(
        "/v1/auth/jwt/login", status=400, body={"errors": ["token is expired"]}, times=1
    )
    try:
        with client(stack, tokens["bob"]) as c:
            resp = c.post("jobs/", json=job_body("true"))
            assert resp.status_code == 401 and "log in to the hub again" in resp.json()["detail"]
    finally:
        stack.vault.faults.clear()


def test_kubernetes_down_is_503_with_a_message(stack, tokens):
    stack.kube.faults.inject("/apis/batch/v1", status=500, times=1)
    try:
        with client(stack, tokens["alice"]) as c:
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


def test_shared_namespace_mode_isolates_by_owner_label(stack, tokens):
    from tests.helpers.jobs_stack import ServiceThread, service_settings, shared_namespace

    shared_namespace(stack, "hub-jobs")
    settings = service_settings(
        stack.hub_url,
        stack.vault.url,
        stack.kubeconfig,
        namespace_mode="shared",
        shared_namespace="hub-jobs",
    )
    with ServiceThread(settings) as shared:
        a = httpx.Client(base_url=shared.url, headers={"Authorization": f"token {tokens['alice']}"})
        b = httpx.Client(base_url=shared.url, headers={"Authorization": f"token {tokens['bob']}"})
        with a, b:
            job = a.post("jobs/", json=job_body("echo shared-alice", name="same-name"))
            assert job.status_code == 201, job.text
            assert job.json()["metadata"]["namespace"] == "hub-jobs"
            wait_done(a, "same-name")
            assert b.get("jobs/").json()["items"] == []
            assert b.get("jobs/same-name").status_code == 404
            assert b.get("jobs/logs/same-name/").status_code == 404
            assert b.delete("jobs/same-name").status_code == 404
            assert b.get("pods/").json()["items"] == []
            # bob cannot take alice's name either, and learns nothing but "exists"
            resp = b.post("jobs/", json=job_body("true", name="same-name"))
            assert resp.status_code == 409
            assert "shared-alice" not in resp.text
            assert a.get("jobs/logs/same-name/").text == "shared-alice\n"
            assert a.delete("jobs/same-name").status_code == 200
