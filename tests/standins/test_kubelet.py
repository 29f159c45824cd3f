"""The devstack kubelet, driven through the object store like the API server would."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from devstack.kube.kubelet import Kubelet
from devstack.kube.store import NotFound, Store

PY = sys.executable


def pod(name: str, *containers: dict, ns: str = "default", **spec: object) -> dict:
    """A pod as the API server stores it after defaulting."""
    body = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 30,
        "containers": list(containers),
    }
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
        "status": {"phase": "Pending"},
    }


def sh(script: str, name: str = "main", **extra: object) -> dict:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script], **extra}


async def wait_for(fn, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except NotFound:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def phase(store: Store, name: str, ns: str = "default") -> str | None:
    return store.get("v1/pods", ns, name).get("status", {}).get("phase")


async def finished(store: Store, name: str, ns: str = "default") -> dict:
    await wait_for(lambda: phase(store, name, ns) in ("Succeeded", "Failed"))
    return store.get("v1/pods", ns, name)


def events(store: Store, name: str) -> list[dict]:
    return [e for e in store.list("v1/events")[0] if e["involvedObject"]["name"] == name]


def reasons(store: Store, name: str) -> list[str]:
    return [e["reason"] for e in events(store, name)]


def as_client_pod(obj: dict):
    """Deserialize with the official client (client-side validation, like KubeSpawner)."""

    class Response:
        data = json.dumps(obj)

    return ApiClient().deserialize(Response(), "V1Pod")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie not yet reaped by anyone still answers kill(0)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
async def kubelet(store: Store, tmp_path: Path):
    k = Kubelet(
        store,
        root=tmp_path / "node",
        backoff_base=0.05,
        backoff_max=0.2,
        config_retry=0.1,
        shutdown_grace=0.5,
    )
    await k.start()
    yield k
    await k.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_pod_runs_to_succeeded_with_log(store: Store, kubelet: Kubelet) -> None:
    store.create("v1/pods", "default", pod("hello", sh("echo hello; echo err >&2; exit 0")))
    done = await finished(store, "hello")
    status = done["status"]
    assert done["spec"]["nodeName"] == "devstack-node"
    assert status["phase"] == "Succeeded"
    assert status["podIP"].startswith("127.") and status["podIP"] != "127.0.0.1"
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] and status["startTime"]
    cs = status["containerStatuses"][0]
    assert cs["state"]["terminated"]["exitCode"] == 0
    assert cs["state"]["terminated"]["reason"] == "Completed"
    assert cs["imageID"].startswith("docker-pullable://busybox@sha256:")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "Ready": "False",
        "ContainersReady": "False",
    }
    client_pod = as_client_pod(done)
    assert client_pod.status.container_statuses[0].restart_count == 0
    assert kubelet.read_log("default", "hello") == b"hello\nerr\n"
    assert kubelet.read_log("default", "hello", tail_lines=1) == b"err\n"
    assert kubelet.read_log("default", "hello", "main") == b"hello\nerr\n"
    got = reasons(store, "hello")
    for r in ("Scheduled", "Pulled", "Created", "Started"):
        assert r in got
    scheduled = next(e for e in events(store, "hello") if e["reason"] == "Scheduled")
    assert scheduled["message"] == "Successfully assigned default/hello to devstack-node"
    assert scheduled["source"]["component"] == "default-scheduler"
    pulled = next(e for e in events(store, "hello") if e["reason"] == "Pulled")
    assert pulled["message"] == 'Container image "busybox:1.36" already present on machine'
    assert pulled["involvedObject"]["fieldPath"] == "spec.containers{main}"
    with pytest.raises(NotFound):
        kubelet.read_log("default", "nope")
    with pytest.raises(ValueError):
        kubelet.read_log("default", "hello", "other")


async def test_failing_container_fails_pod(store: Store, kubelet: Kubelet) -> None:
    store.create("v1/pods", "default", pod("bad", sh("echo boom; exit 3")))
    done = await finished(store, "bad")
    assert done["status"]["phase"] == "Failed"
    term = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")


async def test_missing_command_is_a_create_error(store: Store, kubelet: Kubelet) -> None:
    store.create("v1/pods", "default", pod("nocmd", {"name": "c", "image": "x:1"}))

    def waiting():
        cs = store.get("v1/pods", "default", "nocmd")["status"].get("containerStatuses") or [{}]
        return cs[0].get("state", {}).get("waiting", {}).get("reason") == "CreateContainerError"

    await wait_for(waiting)
    with pytest.raises(KeyError):
        kubelet.read_log("default", "nocmd")


async def test_http_servers_on_same_port_coexist(store: Store, kubelet: Kubelet) -> None:
    port = free_port()
    for name in ("web-a", "web-b"):
        server = {
            "name": "web",
            "image": "python:3.11",
            "command": [PY, "-m", "http.server", str(port)],
            "args": ["--bind", "0.0.0.0", "--directory", "/"],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            "ports": [{"name": "http", "containerPort": port}],
        }
        store.create("v1/pods", "default", pod(name, server))

    def ready(name: str) -> dict | None:
        p = store.get("v1/pods", "default", name)
        st = p["status"]
        cs = st.get("containerStatuses") or []
        return p if st.get("phase") == "Running" and cs and all(c["ready"] for c in cs) else None

    a = await wait_for(lambda: ready("web-a"))
    b = await wait_for(lambda: ready("web-b"))
    ip_a, ip_b = a["status"]["podIP"], b["status"]["podIP"]
    assert ip_a != ip_b

    def fetch(ip: str) -> int:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as r:
            return r.status

    assert await asyncio.to_thread(fetch, ip_a) == 200
    assert await asyncio.to_thread(fetch, ip_b) == 200
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(fetch, "127.0.0.1")  # bound to the pod IPs only
    as_client_pod(a)


async def test_env_from_secret_configmap_and_fields(store: Store, kubelet: Kubelet) -> None:
    secret_value = "s3cr3t-value-42"
    store.create(
        "v1/secrets",
        "default",
        {
            "metadata": {"name": "creds"},
            "type": "Opaque",
            "data": {"AWS_SECRET": base64.b64encode(secret_value.encode()).decode()},
        },
    )
    store.create(
        "v1/configmaps", "default", {"metadata": {"name": "cfg"}, "data": {"MODE": "fast"}}
    )
    container = sh(
        'echo "secret=$S3KEY"; echo "mode=$CFG_MODE"; echo "name=$MY_NAME"; '
        'echo "url=$URL"; echo "podip=$POD_IP"; echo "path=$PATH"; echo "$1"',
        env=[
            {
                "name": "S3KEY",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "AWS_SECRET"}},
            },
            {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "URL", "value": "http://0.0.0.0:8888/$(MY_NAME)/$$(MY_NAME)"},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}},
            },
        ],
        envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        args=["sh", "arg=$(MY_NAME)"],
    )
    store.create("v1/pods", "default", pod("envy", container))
    done = await finished(store, "envy")
    assert secret_value not in json.dumps(done)  # only the reference is in the pod
    out = kubelet.read_log("default", "envy").decode()
    ip = done["status"]["podIP"]
    assert f"secret={secret_value}\n" in out
    assert "mode=fast\n" in out
    assert "name=envy\n" in out
    assert f"url=http://{ip}:8888/envy/$(MY_NAME)\n" in out
    assert f"podip={ip}\n" in out
    assert str(Path(sys.executable).parent) in out  # venv commands resolve
    assert "arg=envy\n" in out


async def test_missing_secret_key_is_config_error_until_created(
    store: Store, kubelet: Kubelet
) -> None:
    container = sh(
        'echo "v=$V"',
        env=[{"name": "V", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}],
    )
    store.create("v1/pods", "default", pod("waits", container))

    def waiting():
        cs = store.get("v1/pods", "default", "waits")["status"].get("containerStatuses") or [{}]
        return cs[0].get("state", {}).get("waiting")

    w = await wait_for(
        lambda: (waiting() or {}).get("reason") == "CreateContainerConfigError" and waiting()
    )
    assert w["message"] == 'secret "later" not found'
    assert phase(store, "waits") == "Pending"
    failed = [e for e in events(store, "waits") if e["reason"] == "Failed"]
    assert failed[0]["type"] == "Warning"
    assert failed[0]["message"] == 'Error: secret "later" not found'
    store.create(
        "v1/secrets",
        "default",
        {"metadata": {"name": "later"}, "data": {"k": base64.b64encode(b"ok").decode()}},
    )
    await finished(store, "waits")
    assert kubelet.read_log("default", "waits") == b"v=ok\n"


async def test_volumes_appear_at_mount_paths(
    store: Store, kubelet: Kubelet, tmp_path: Path
) -> None:
    assert kubelet.namespaced, "the suite runs as root with unshare"
    store.create(
        "v1/secrets",
        "default",
        {"metadata": {"name": "s3"}, "data": {"key": base64.b64encode(b"K3Y").decode()}},
    )
    store.create(
        "v1/configmaps",
        "default",
        {"metadata": {"name": "conf"}, "data": {"a.txt": "alpha", "b.txt": "beta"}},
    )
    store.create("v1/persistentvolumeclaims", "default", {"metadata": {"name": "claim"}})
    script = (
        "cat /srv/devstack-test/secret/creds/key; echo; "
        "stat -c %a /srv/devstack-test/secret/creds/key; "
        "cat /srv/devstack-test/conf/a.txt; echo; ls /srv/devstack-test/conf; "
        "echo nfsdata > /srv/devstack-test/home/f; echo pvcdata > /srv/devstack-test/data/x; "
        "echo sub > /srv/devstack-test/sub/f; "
        "touch /srv/devstack-test/ro/f 2>/dev/null && echo writable || echo readonly"
    )
    container = sh(
        script,
        volumeMounts=[
            {"name": "secret", "mountPath": "/srv/devstack-test/secret"},
            {"name": "conf", "mountPath": "/srv/devstack-test/conf"},
            {"name": "home", "mountPath": "/srv/devstack-test/home"},
            {"name": "claim", "mountPath": "/srv/devstack-test/data"},
            {"name": "scratch", "mountPath": "/srv/devstack-test/sub", "subPath": "deep/er"},
            {"name": "scratch", "mountPath": "/srv/devstack-test/ro", "readOnly": True},
        ],
    )
    volumes = [
        {
            "name": "secret",
            "secret": {
                "secretName": "s3",
                "defaultMode": 0o400,
                "items": [{"key": "key", "path": "creds/key"}],
            },
        },
        {
            "name": "conf",
            "configMap": {"name": "conf", "items": [{"key": "a.txt", "path": "a.txt"}]},
        },
        {"name": "home", "nfs": {"server": "nfs.example.org", "path": "/export/home/alice"}},
        {"name": "claim", "persistentVolumeClaim": {"claimName": "claim"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    store.create("v1/pods", "default", pod("vols", container, volumes=volumes))
    done = await finished(store, "vols")
    out = kubelet.read_log("default", "vols").decode()
    assert done["status"]["phase"] == "Succeeded", out
    assert out.splitlines() == ["K3Y", "400", "alpha", "a.txt", "readonly"]
    assert (kubelet.nfs_root / "export/home/alice/f").read_text() == "nfsdata\n"
    assert (kubelet.root / "pvc/default/claim/x").read_text() == "pvcdata\n"
    uid = done["metadata"]["uid"]
    assert (kubelet.root / "pods" / uid / "volumes/scratch/deep/er/f").read_text() == "sub\n"
    assert not Path("/srv/devstack-test").exists()  # noqa: ASYNC240 - nothing left on the host
    # deleting the pod removes its directories, not nfs/pvc data
    store.delete("v1/pods", "default", "vols")
    await wait_for(lambda: not (kubelet.root / "pods" / uid).exists())
    assert (kubelet.nfs_root / "export/home/alice/f").exists()


async def test_without_namespaces_mounts_are_env_paths(store: Store, tmp_path: Path) -> None:
    k = Kubelet(store, root=tmp_path / "node", isolate=False, config_retry=0.1)
    await k.start()
    try:
        store.create(
            "v1/pods",
            "default",
            pod(
                "flat",
                sh(
                    'echo "$VALERIA_MOUNT_WORK_DIR"; pwd',
                    volumeMounts=[{"name": "work-dir", "mountPath": "/w"}],
                ),
                volumes=[{"name": "work-dir", "emptyDir": {}}],
            ),
        )
        done = await finished(store, "flat")
        lines = k.read_log("default", "flat").decode().splitlines()
        assert lines[0] == str(k.root / "pods" / done["metadata"]["uid"] / "volumes/work-dir")
        assert lines[1] == "/"
    finally:
        await k.stop()


async def test_graceful_delete_sigterm_and_sigkill(store: Store, kubelet: Kubelet) -> None:
    polite = sh('trap "echo got-term; exit 0" TERM; echo pid $$$$; while true; do sleep 0.05; done')
    stubborn = sh('trap "" TERM; echo pid $$$$; while true; do sleep 0.05; done')
    store.create("v1/pods", "default", pod("polite", polite))
    store.create("v1/pods", "default", pod("stubborn", stubborn))
    pids = {}
    for name in ("polite", "stubborn"):
        await wait_for(
            lambda n=name: (
                b"pid" in kubelet.read_log("default", n) if phase(store, n) == "Running" else False
            )
        )
        pids[name] = int(kubelet.read_log("default", name).split()[1])

    def request_delete(name: str, grace: int) -> None:
        p = store.get("v1/pods", "default", name)
        p["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
        p["metadata"]["deletionGracePeriodSeconds"] = grace
        store.update("v1/pods", "default", p)

    start = time.monotonic()
    request_delete("polite", 10)
    request_delete("stubborn", 1)
    await wait_for(lambda: not store.exists("v1/pods", "default", "polite"))
    assert time.monotonic() - start < 5
    await wait_for(lambda: not store.exists("v1/pods", "default", "stubborn"))
    assert time.monotonic() - start >= 0.9  # it waited for the grace period
    for pid in pids.values():
        await wait_for(lambda p=pid: gone(p))
    killing = [e for e in store.list("v1/events")[0] if e["reason"] == "Killing"]
    assert {e["involvedObject"]["name"] for e in killing} == {"polite", "stubborn"}
    assert killing[0]["message"] == "Stopping container main"


async def test_direct_delete_kills_at_once(store: Store, kubelet: Kubelet) -> None:
    store.create("v1/pods", "default", pod("quick", sh('trap "" TERM; echo pid $$$$; sleep 60')))
    await wait_for(
        lambda: (
            b"pid" in kubelet.read_log("default", "quick")
            if phase(store, "quick") == "Running"
            else False
        )
    )
    pid = int(kubelet.read_log("default", "quick").split()[1])
    store.delete("v1/pods", "default", "quick")
    await wait_for(lambda: gone(pid), timeout=3)


async def test_init_containers_run_first(store: Store, kubelet: Kubelet) -> None:
    vols = [{"name": "shared", "emptyDir": {}}]
    mount = [{"name": "shared", "mountPath": "/srv/devstack-init"}]
    p = pod(
        "inits",
        sh("cat /srv/devstack-init/one /srv/devstack-init/two", volumeMounts=mount),
        initContainers=[
            sh("echo first > /srv/devstack-init/one", name="one", volumeMounts=mount),
            sh("echo second > /srv/devstack-init/two", name="two", volumeMounts=mount),
        ],
        volumes=vols,
    )
    store.create("v1/pods", "default", p)
    done = await finished(store, "inits")
    assert done["status"]["phase"] == "Succeeded"
    assert kubelet.read_log("default", "inits") == b"first\nsecond\n"
    inits = done["status"]["initContainerStatuses"]
    assert [s["state"]["terminated"]["reason"] for s in inits] == ["Completed", "Completed"]
    as_client_pod(done)

    failing = pod(
        "init-fails",
        sh("echo never"),
        initContainers=[sh("exit 2", name="setup")],
    )
    store.create("v1/pods", "default", failing)
    done = await finished(store, "init-fails")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    assert "waiting" in done["status"]["containerStatuses"][0]["state"]
    initialized = next(c for c in done["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False"


async def test_run_as_user_and_fs_group(store: Store, kubelet: Kubelet) -> None:
    assert os.geteuid() == 0, "the suite runs as root (here and in CI)"
    p = pod(
        "ids",
        sh(
            "id -u; id -g; id -G; touch /srv/devstack-ids/scratch/f && echo wrote",
            volumeMounts=[{"name": "scratch", "mountPath": "/srv/devstack-ids/scratch"}],
        ),
        securityContext={"runAsUser": 1234, "runAsGroup": 2345, "fsGroup": 3456},
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    store.create("v1/pods", "default", p)
    done = await finished(store, "ids")
    lines = kubelet.read_log("default", "ids").decode().split("\n")
    assert lines[0] == "1234" and lines[1] == "2345"
    assert "3456" in lines[2].split()
    assert lines[3] == "wrote"
    f = kubelet.root / "pods" / done["metadata"]["uid"] / "volumes/scratch/f"
    assert f.stat().st_uid == 1234
    assert (f.parent.stat().st_uid, f.parent.stat().st_gid) == (1234, 3456)

    nonroot = pod("nonroot", sh("id -u"), securityContext={"runAsNonRoot": True})
    store.create("v1/pods", "default", nonroot)

    def reason():
        cs = store.get("v1/pods", "default", "nonroot")["status"].get("containerStatuses") or [{}]
        return cs[0].get("state", {}).get("waiting", {})

    w = await wait_for(lambda: reason().get("reason") == "CreateContainerConfigError" and reason())
    assert w["message"] == "container has runAsNonRoot and image will run as root"


async def test_restart_always_after_crash(store: Store, kubelet: Kubelet) -> None:
    store.create(
        "v1/pods", "default", pod("crashy", sh("echo run; exit 1"), restartPolicy="Always")
    )

    def restarted():
        p = store.get("v1/pods", "default", "crashy")
        cs = (p["status"].get("containerStatuses") or [{}])[0]
        return p if cs.get("restartCount", 0) >= 2 else None

    p = await wait_for(restarted)
    cs = p["status"]["containerStatuses"][0]
    assert p["status"]["phase"] == "Running"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert "BackOff" in reasons(store, "crashy")
    assert kubelet.read_log("default", "crashy", previous=True) == b"run\n"
    as_client_pod(p)


async def test_follow_log_streams_until_exit(store: Store, kubelet: Kubelet) -> None:
    store.create(
        "v1/pods", "default", pod("chatty", sh("for i in 1 2 3; do echo line$i; sleep 0.2; done"))
    )
    await wait_for(lambda: phase(store, "chatty") == "Running")
    await wait_for(lambda: kubelet.read_log("default", "chatty"))
    chunks = [c async for c in kubelet.follow_log("default", "chatty")]
    assert b"".join(chunks) == b"line1\nline2\nline3\n"
    assert len(chunks) >= 2  # it streamed as the lines were written


async def test_kubelet_restart_leaves_no_orphans(store: Store, tmp_path: Path) -> None:
    first = Kubelet(store, root=tmp_path / "node", backoff_base=0.05, shutdown_grace=0.3)
    await first.start()
    store.create(
        "v1/pods",
        "default",
        pod("long", sh("echo pid $$$$; sleep 60"), restartPolicy="Always"),
    )
    await wait_for(
        lambda: (
            b"pid" in first.read_log("default", "long")
            if phase(store, "long") == "Running"
            else False
        )
    )
    pid = int(first.read_log("default", "long").split()[1])
    await first.stop()
    assert gone(pid)
    second = Kubelet(store, root=tmp_path / "node", backoff_base=0.05, shutdown_grace=0.3)
    await second.start()
    try:

        def restarted():
            p = store.get("v1/pods", "default", "long")
            cs = p["status"]["containerStatuses"][0]
            return cs if cs["restartCount"] == 1 and "running" in cs["state"] else None

        cs = await wait_for(restarted)
        assert cs["lastState"]["terminated"]["reason"] == "Unknown"
        await wait_for(lambda: b"pid" in second.read_log("default", "long"))
        new_pid = int(second.read_log("default", "long").split()[1])
        assert new_pid != pid
    finally:
        await second.stop()
    assert gone(new_pid)
