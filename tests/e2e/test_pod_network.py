"""Network checks from inside a real notebook and a real batch job (issue 12, item 4).

The stack runs what ``openshift/`` ships on the Kubernetes stand-in's pod network
(``network="netns"``: a network namespace per pod, the template's NetworkPolicies and a
per-user namespace's enforced by nftables, the cluster DNS). The repository's hub runs in
a pod of its own labelled like the template's hub pod, with the ConfigMap's ports and
its Service name as the hub's address; Keycloak, Vault and the Kubernetes API listen on
the node address (private), which the host and pods both reach unless a policy says
otherwise. "S3" and "the NFS server" are listeners on addresses of their own on the node,
named in the cluster DNS and given to the template as S3_CIDR and NFS_CIDR: S3 on a
private address (only the S3_CIDR rule opens it), the NFS server on a public one (only
the NFS_CIDR exception closes it).

alice and bob log in and spawn through the hub; alice submits a job through the
hub-managed jobs service. The probe (resolve names, open TCP connections, one HTTP GET)
runs inside alice's notebook container (its network and mount namespaces, its uid and
environment: what ``oc exec`` gives) and as the job's own command, whose log is read back
through the jobs service. The hub pod, which no egress policy restricts, runs it too: the
listeners that notebooks and jobs must not reach do answer there, so a refusal below is a
policy's, not a server missing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from devstack.hub import notebook_command
from devstack.kube.resources import kind_of
from devstack.stack import DevStack
from tests.helpers.e2e import (
    browser,
    pod_exec,
    progress_events,
    running_hub_in_pod,
    running_stack,
    spawn,
    wait_for_lab,
)
from tests.helpers.security_stack import jobs_api, own_token, wait_until

pytestmark = pytest.mark.e2e

S3_NAME, NFS_NAME = "s3.campus.example", "nfs.campus.example"
S3_PORT, NFS_PORT = 9000, 2049
S3_HOST = 5  # S3 at .5 of the pod network's /24: unused there (node .1, probes .2, DNS .10)
INTERNAL_CIDR = "198.51.100.0/24"  # TEST-NET-2: "internal networks on public addresses"
HUB_SERVICE = "valeria-hub-hub"  # the template's Service, the hub's address for notebooks
HUB_FQDN = f"{HUB_SERVICE}.default.svc.cluster.local"
QUOTA = "valeria-jobs-quota"

# Run in the pod: argv[1] is {label: [check, args...]}; prints one line "PROBE {json}".
# $VARS in URLs are the pod's own environment (S3_ENDPOINT_URL, JUPYTERHUB_API_URL).
PROBE = r"""
import json, os, socket, sys, urllib.error, urllib.parse, urllib.request
from concurrent.futures import ThreadPoolExecutor
T = 2.0
def dns(name):
    try:
        return socket.gethostbyname(name)
    except OSError as e:
        return "error: %s" % e
def tcp(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=T):
            return "open"
    except OSError as e:
        return "error: %s" % e
def url(u):
    u = os.path.expandvars(u)
    p = urllib.parse.urlsplit(u)
    return [u, tcp(p.hostname, p.port or 80)]
def http(u):
    u = os.path.expandvars(u)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(u, timeout=T) as r:
            return [u, r.status]
    except urllib.error.HTTPError as e:
        return [u, e.code]
    except OSError as e:
        return [u, "error: %s" % getattr(e, "reason", e)]
checks = json.loads(sys.argv[1])
with ThreadPoolExecutor(len(checks)) as pool:
    futures = {k: pool.submit(globals()[c[0]], *c[1:]) for k, c in checks.items()}
print("PROBE " + json.dumps({k: f.result() for k, f in futures.items()}, sort_keys=True))
"""


def pod_python() -> str:
    """The "image's" interpreter for pods: the notebook environment's (its users' uids may
    run it; the test's own venv may sit under a home only root can enter)."""
    image = Path(notebook_command()).parent / "python3"
    return str(image) if image.exists() else shutil.which("python3") or sys.executable


def probe_argv(checks: dict[str, list]) -> list[str]:
    return [pod_python(), "-I", "-S", "-c", PROBE, json.dumps(checks)]


def probe_output(text: str) -> dict[str, Any]:
    """The probe's results from its output (a job's log, a command's stdout)."""
    lines = [line for line in text.splitlines() if line.startswith("PROBE ")]
    assert lines, f"the probe printed no result:\n{text[-2000:]}"
    return json.loads(lines[-1][len("PROBE ") :])


def outcome(result: Any) -> Any:
    """A probe result as the test compares it: an address, True/False for "connected",
    an HTTP status; URL checks keep the URL the pod's environment gave."""
    if isinstance(result, list):
        return [result[0], outcome(result[1])]
    if result == "open":
        return True
    if isinstance(result, str) and result.startswith("error"):
        return False
    return result


def public_address() -> str:
    """An address of TEST-NET-3 no interface of this machine holds, for a campus NFS
    server on a public address (random: parallel runs pick others)."""
    held = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    free = [
        str(ip)
        for ip in ipaddress.ip_network("203.0.113.0/24").hosts()
        if int(str(ip).rsplit(".", 1)[1]) >= 32 and f" {ip}/" not in held
    ]
    return random.choice(free)


@contextlib.contextmanager
def listeners_on_the_node(stack: DevStack, servers: dict[str, int]) -> Iterator[None]:
    """A listening socket at each address (added to the node's bridge): a TCP connection
    that a policy lets through completes; one it drops times out."""
    bridge = stack.kube.network.names.bridge
    socks = []
    try:
        for ip, port in servers.items():
            subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", bridge], check=True)
            sock = socket.socket()
            sock.bind((ip, port))
            sock.listen(64)
            socks.append(sock)
        yield
    finally:
        for sock in socks:
            sock.close()
        for ip in servers:
            subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", bridge], capture_output=True)


def run_probe(prefix: list[str], checks: dict[str, list], env: dict | None = None) -> dict:
    """The probe run under ``prefix`` (into a pod's namespaces) with ``env``."""
    proc = subprocess.run(
        [*prefix, *probe_argv(checks)], capture_output=True, text=True, env=env, timeout=30
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return probe_output(proc.stdout)


def submit(api: httpx.Client, command: list[str], name: str) -> httpx.Response:
    """A one-container Job through the jobs service, as a person submits one."""
    container = {"name": "probe", "image": "python:3.11", "command": command}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": f"{name}-"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }
    return api.post("jobs/", json={"job": job})


def finished(api: httpx.Client, name: str) -> dict:
    """The Job's status once it succeeded or failed; {} while it runs."""
    status = api.get(f"jobs/{name}").json().get("status") or {}
    return status if status.get("succeeded") or status.get("failed") else {}


@pytest.mark.timeout(240)
def test_from_a_notebook_and_a_job_only_what_the_policies_allow(tmp_path):
    """From alice's notebook: the cluster DNS resolves the hub's Service and S3's name, S3
    and the hub API answer; bob's notebook, the NFS server, Vault and the Kubernetes API
    do not. From alice's job: the same, and the hub API does not answer either. Beyond
    her namespace's quota a submission is refused with the quota's figures."""
    nfs_ip = public_address()
    s3_url = f"http://{S3_NAME}:{S3_PORT}"
    net: dict[str, str] = {}

    def parameters(stack: DevStack) -> dict[str, str]:
        """The template's network parameters, once the pod network has its /24: S3 on a
        private address of its own (only S3_CIDR opens it), the NFS server on a public
        one (only NFS_CIDR closes it)."""
        net["s3"] = str(stack.kube.network.subnet.network_address + S3_HOST)
        return {
            "s3_cidr": f"{net['s3']}/32",
            "nfs_cidr": f"{nfs_ip}/32",
            "internal_cidr": INTERNAL_CIDR,
            "s3_endpoint_url": s3_url,
            "nfs_server": NFS_NAME,
        }

    with contextlib.ExitStack() as running:
        stack = running.enter_context(
            running_stack(tmp_path, network="netns", deployment_options=parameters)
        )
        s3_ip = net["s3"]
        stack.kube.network.hosts.update({S3_NAME: s3_ip, NFS_NAME: nfs_ip})
        running.enter_context(listeners_on_the_node(stack, {s3_ip: S3_PORT, nfs_ip: NFS_PORT}))
        hub = running.enter_context(running_hub_in_pod(stack, tmp_path / "hub"))
        hub_ip = urlsplit(hub.public_url).hostname
        vault, kube = urlsplit(stack.vault.url), urlsplit(stack.kube.url)
        node = stack.kube.network.node_ip
        assert vault.hostname == kube.hostname == node and ipaddress.ip_address(node).is_private

        # -- alice and bob spawn through the hub; alice's lab answers through the proxy
        clients = {
            user: running.enter_context(contextlib.closing(browser(hub, user)))
            for user in ("alice", "bob")
        }
        for client in clients.values():
            assert spawn(client, hub).status_code == 200
        for user, client in clients.items():
            events = progress_events(client, hub, user)
            assert events[-1].get("ready"), events
        wait_for_lab(clients["alice"], hub, "alice")
        pods = {
            user: stack.kube.call(stack.kube.store.get, "v1/pods", "default", f"jupyter-{user}")
            for user in clients
        }
        ip = {user: pod["status"]["podIP"] for user, pod in pods.items()}

        # -- alice's job: the probe is its command; its log comes back through the service
        token = own_token(clients["alice"], hub.public_url, "alice")
        api = running.enter_context(jobs_api(hub, token))
        job_checks = {
            "dns hub service": ["dns", HUB_FQDN],
            "dns s3": ["dns", S3_NAME],
            "s3": ["url", "$S3_ENDPOINT_URL"],
            "hub api": ["http", f"http://{HUB_FQDN}:8081/hub/api/"],
            "alice's notebook": ["tcp", ip["alice"], 8888],
            "bob's notebook": ["tcp", ip["bob"], 8888],
            "nfs server": ["tcp", NFS_NAME, NFS_PORT],
            "vault": ["tcp", vault.hostname, vault.port],
            "kubernetes api": ["tcp", kube.hostname, kube.port],
        }
        resp = submit(api, probe_argv(job_checks), "netprobe")
        assert resp.status_code == 201, resp.text
        job = resp.json()["metadata"]

        # -- meanwhile: inside alice's notebook container, and the hub pod's control run
        prefix, nb_env = pod_exec(stack, "default", "jupyter-alice")
        nb_checks = {
            "dns hub service": ["dns", HUB_SERVICE],  # the search path, as the hub's URL
            "dns s3": ["dns", S3_NAME],
            "s3": ["url", "$S3_ENDPOINT_URL"],
            "hub api": ["http", "$JUPYTERHUB_API_URL/"],
            "bob's notebook": ["tcp", ip["bob"], 8888],
            "nfs server": ["tcp", NFS_NAME, NFS_PORT],
            "vault": ["tcp", vault.hostname, vault.port],
            "kubernetes api": ["tcp", kube.hostname, kube.port],
        }
        control_checks = {
            "alice's notebook": ["tcp", ip["alice"], 8888],
            "bob's notebook": ["tcp", ip["bob"], 8888],
            "nfs server": ["tcp", nfs_ip, NFS_PORT],
            "s3": ["tcp", s3_ip, S3_PORT],
            "vault": ["tcp", vault.hostname, vault.port],
            "kubernetes api": ["tcp", kube.hostname, kube.port],
        }
        with ThreadPoolExecutor(2) as pool:
            in_notebook = pool.submit(run_probe, prefix, nb_checks, nb_env)
            in_hub_pod = pool.submit(run_probe, hub.prefix, control_checks)
            notebook, control = in_notebook.result(), in_hub_pod.result()

        assert nb_env["JUPYTERHUB_API_URL"] == f"http://{HUB_SERVICE}:8081/hub/api"
        assert {k: outcome(v) for k, v in notebook.items()} == {
            "dns hub service": hub_ip,
            "dns s3": s3_ip,
            "s3": [s3_url, True],
            "hub api": [nb_env["JUPYTERHUB_API_URL"] + "/", 200],
            "bob's notebook": False,
            "nfs server": False,
            "vault": False,
            "kubernetes api": False,
        }, notebook
        # every listener refused above answers a pod that no egress policy restricts
        assert {k: outcome(v) for k, v in control.items()} == dict.fromkeys(control_checks, True)

        status = wait_until(lambda: finished(api, job["name"]), 90, what="the probe job")
        log = api.get(f"jobs/logs/{job['name']}/")
        assert status.get("succeeded") == 1, (status, log.text[-2000:])
        in_job = probe_output(log.text)
        assert {k: outcome(v) for k, v in in_job.items()} == {
            "dns hub service": hub_ip,  # the name resolves: the refusal is the policy's
            "dns s3": s3_ip,
            "s3": [s3_url, True],
            "hub api": [f"http://{HUB_FQDN}:8081/hub/api/", False],
            "alice's notebook": False,
            "bob's notebook": False,
            "nfs server": False,
            "vault": False,
            "kubernetes api": False,
        }, in_job

        # -- a quota overrun: an operator holds alice's namespace at the jobs she has
        namespace = job["namespace"]
        assert namespace != "default"  # her own namespace, with its policy and quota
        patch = {"spec": {"hard": {"count/jobs.batch": "1"}}}
        stack.kube.call(
            stack.kube.registry.patch,
            kind_of("v1/resourcequotas"),
            namespace,
            QUOTA,
            "application/merge-patch+json",
            json.dumps(patch).encode(),
        )
        before = names_in(stack, namespace)
        resp = submit(api, ["true"], "over")
        assert resp.status_code == 403, resp.text
        detail = resp.json()["detail"]
        assert "exceeded quota: " + QUOTA in detail, detail
        assert "limited: count/jobs.batch=1" in detail, detail
        assert names_in(stack, namespace) == before  # nothing half-made is left


def names_in(stack: DevStack, namespace: str) -> dict[str, list[str]]:
    """What the namespace holds that a submission creates."""
    out = {}
    for resource in ("batch/v1/jobs", "v1/secrets", "v1/configmaps"):
        items, _ = stack.kube.call(stack.kube.store.list, resource, namespace)
        out[resource] = sorted(i["metadata"]["name"] for i in items)
    return out
