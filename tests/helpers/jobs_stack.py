"""Test helpers for the jobs service: a real JupyterHub (users log in with a password grant
against the Keycloak stand-in, so auth_state holds real Keycloak tokens), the Vault and
Kubernetes stand-ins, and the jobs service under uvicorn in its own thread."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from devstack import deployment
from devstack.hub import HubProcess, free_port
from devstack.keycloak import KeycloakStandIn
from devstack.kube.kubeconfig import write_kubeconfig
from devstack.kube.server import KubeStandIn
from devstack.vault import VaultStandIn
from valeria_hub.jobs import isolation
from valeria_hub.jobs.app import create_app
from valeria_hub.jobs.config import JobsServiceApp

CLIENT_SECRET = "demo-jupyterhub-secret"
JOBS_TOKEN = secrets.token_hex(16)
ADMIN_TOKEN = secrets.token_hex(16)
OTHER_TOKEN = secrets.token_hex(16)
PREFIX = "/services/jobs/"
UIDS = {"alice": (20001, 30001), "bob": (20002, 30002)}
S3 = {"alice": ("AKIAALICE", "alice-s3-secret-value"), "bob": ("AKIABOB", "bob-s3-secret-value")}


def hub_config(workdir: Path, hub_url: str, token_url: str, service_url: str) -> Path:
    text = f"""
        import time
        import httpx
        from jupyterhub.auth import Authenticator

        class PasswordGrantAuthenticator(Authenticator):
            # logs in at Keycloak with the password grant; auth_state holds the tokens
            async def authenticate(self, handler, data):
                async with httpx.AsyncClient(timeout=10) as client:
                    resp = await client.post({token_url!r}, data={{
                        "grant_type": "password", "client_id": "jupyterhub",
                        "client_secret": {CLIENT_SECRET!r}, "scope": "openid profile email",
                        "username": data["username"], "password": data["password"]}})
                if resp.status_code != 200:
                    return None
                tokens = resp.json()
                return {{"name": data["username"], "auth_state": {{
                    "access_token": tokens["access_token"],
                    "refresh_token": tokens.get("refresh_token"),
                    "access_token_expires_at": time.time() + tokens["expires_in"]}}}}

        c.JupyterHub.authenticator_class = PasswordGrantAuthenticator
        c.Authenticator.enable_auth_state = True
        c.Authenticator.allow_all = True
        c.Authenticator.admin_users = {{"admin"}}
        c.JupyterHub.bind_url = {hub_url!r}
        c.JupyterHub.hub_ip = "127.0.0.1"
        c.JupyterHub.hub_port = {free_port()}
        c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
        c.ConfigurableHTTPProxy.pid_file = {str(workdir / "proxy.pid")!r}
        c.JupyterHub.db_url = "sqlite:///{workdir / "hub.sqlite"}"
        c.JupyterHub.cookie_secret_file = {str(workdir / "cookie_secret")!r}
        c.JupyterHub.pid_file = {str(workdir / "hub.pid")!r}
        c.JupyterHub.spawner_class = "simple"
        c.JupyterHub.default_url = "/hub/home"
        c.JupyterHub.services = [
            {{"name": "jobs", "api_token": {JOBS_TOKEN!r}, "url": {service_url!r},
              "oauth_no_confirm": True,
              "oauth_redirect_uri": {hub_url + PREFIX + "oauth_callback"!r}}},
            {{"name": "other", "api_token": {OTHER_TOKEN!r}}},
            {{"name": "tester", "api_token": {ADMIN_TOKEN!r}}},
        ]
        c.JupyterHub.load_roles = [
            {{"name": "jobs-service", "services": ["jobs"],
              "scopes": ["list:users", "read:users", "admin:auth_state"]}},
            {{"name": "tester", "services": ["tester"], "scopes": ["admin:users", "tokens"]}},
            # JupyterHub's default user role has no access:services: grant it to job users
            {{"name": "jobs-users", "users": ["alice", "bob"],
              "scopes": ["access:services!service=jobs"]}},
        ]
    """
    path = workdir / "jupyterhub_config.py"
    path.write_text(textwrap.dedent(text))
    return path


_XSRF = re.compile(r'name="_xsrf"[^>]*value="([^"]+)"')


def hub_login(hub_url: str, username: str, client: httpx.Client | None = None) -> None:
    """Log in through the hub's login form, which stores auth_state."""
    with contextlib.nullcontext(client) if client else httpx.Client(timeout=15) as c:
        page = c.get(f"{hub_url}/hub/login")
        match = _XSRF.search(page.text)
        data = {"username": username, "password": username}
        if match:
            data["_xsrf"] = match.group(1)
        resp = c.post(f"{hub_url}/hub/login", data=data, follow_redirects=False)
        assert resp.status_code == 302, resp.text[:300]
        assert "/hub/login" not in resp.headers["location"]


def user_token(hub_url: str, username: str, scopes: list[str] | None = None) -> str:
    body = {"note": "jobs tests", "expires_in": 3600}
    if scopes is not None:
        body["scopes"] = scopes
    resp = httpx.post(
        f"{hub_url}/hub/api/users/{username}/tokens",
        json=body,
        headers={"Authorization": f"token {ADMIN_TOKEN}"},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["token"]


class ServiceThread:
    """The jobs app under uvicorn in a thread with its own event loop."""

    def __init__(self, settings: JobsServiceApp) -> None:
        self.settings = settings
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings.settings(), vault=settings.vault),
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="jobs-service", daemon=True)
        self.url = ""

    def __enter__(self) -> ServiceThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the jobs service did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{PREFIX}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def service_settings(
    hub_url: str, vault_url: str, kubeconfig: Path, **overrides: object
) -> JobsServiceApp:
    app = JobsServiceApp(
        hub_api_url=f"{hub_url}/hub/api",
        hub_api_token=JOBS_TOKEN,
        service_name="jobs",
        service_prefix=PREFIX,
        oauth_client_id="service-jobs",
        oauth_callback_url=f"{hub_url}{PREFIX}oauth_callback",
        hub_authorize_url=f"{hub_url}/hub/api/oauth2/authorize",
        kubeconfig=str(kubeconfig),
        user_cache_ttl=1.0,
    )
    app.vault.url = vault_url
    app.vault.timeout = 5.0
    app.storage.nfs_server = "nfs.valeria.test"
    app.storage.nfs_path = "/export"
    app.storage.s3_endpoint_url = "http://s3.valeria.test"
    for key, value in overrides.items():
        setattr(app, key, value)
    return app


def shared_namespace(stack: Stack, namespace: str) -> None:
    """A namespace for ``shared`` mode other than the service's own, set up as an operator
    would: the service account gets the per-user-namespace ClusterRole there and the job
    pods' account the notebook SCC (under the plain profile: just the namespace)."""
    settings = openshift_settings(deployment.objects(deployment.Parameters()))
    account = str(settings["service_account"])
    objects: list[dict] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]
    if stack.openshift:
        objects += [
            isolation.service_binding_manifest(
                namespace, str(settings["namespace_role"]), deployment.NAMESPACE, account
            ),
            isolation.pod_scc_binding_manifest(namespace, str(settings["pod_scc_role"])),
        ]
    for obj in objects:
        stack.kube.call(stack.kube.create_object, obj)


@dataclass
class Stack:
    kc: KeycloakStandIn
    vault: VaultStandIn
    kube: KubeStandIn
    hub: HubProcess
    hub_url: str
    kubeconfig: Path
    nfs_root: Path
    service: ServiceThread
    openshift: bool = True


KUBE_TOKEN = "jobs-service-token"


def openshift_settings(objects: list[dict]) -> dict[str, object]:
    """The jobs settings the shipped template gives the service (its ConfigMap and its
    service account), as JobsServiceApp traits."""
    env = deployment.hub_environment(objects)

    def cidrs(key: str) -> list[str]:
        return [c.strip() for c in env.get(key, "").split(",") if c.strip()]

    return {
        "service_account": env["KUBERNETES_SERVICE_ACCOUNT"],
        "namespace_role": env["JOBS_NAMESPACE_ROLE"],
        "pod_scc_role": env["JOBS_POD_SCC_ROLE"],
        "egress_allow_cidrs": cidrs("JOBS_EGRESS_ALLOW_CIDRS"),
        "egress_deny_cidrs": cidrs("JOBS_EGRESS_DENY_CIDRS"),
    }


@contextlib.contextmanager
def jobs_stack(workdir: Path, *, openshift: bool = True, **overrides: object) -> Iterator[Stack]:
    """Keycloak, Vault, Kubernetes (kubelet + controllers), a hub, the jobs service.

    ``openshift=True`` (the default): the Kubernetes stand-in's OpenShift profile with
    what ``openshift/`` ships created in it, and the service calling the API as the
    template's service account with the settings of its ConfigMap: every call it makes
    must be allowed by the shipped RBAC and every pod admitted by the shipped SCC.
    ``openshift=False``: plain Kubernetes, the service's token a cluster admin's.
    """
    kc = KeycloakStandIn()
    vault = VaultStandIn()
    nfs_root = workdir / "nfs"
    kube_options: dict[str, object] = {"strict_schema": True}
    objects: list[dict] = []
    if openshift:
        objects = deployment.objects(deployment.Parameters())
        kube_options["profile"] = "openshift"
        kube_options["tokens"] = {KUBE_TOKEN: {"user": deployment.HUB_USER}}
        overrides = {**openshift_settings(objects), **overrides}
    kube = KubeStandIn(root=workdir / "kube", nfs_root=nfs_root, **kube_options)
    with kc.serve_in_thread(), vault.serve_in_thread(), kube.serve_in_thread():
        if objects:
            kube.call(deployment.apply, kube, objects)
        vault.call(vault.configure_valeria, kc.issuer)
        for name, (uid, gid) in UIDS.items():
            for tree in ("home", "scratch"):  # what onboarding makes on the NFS server
                path = nfs_root / "export" / tree / name
                path.mkdir(parents=True)
                os.chown(path, uid, gid)
            sub = kc.realm.users[name].id
            vault.provision_user(sub, name, uid, gid, *S3[name])
        hub_url = f"http://127.0.0.1:{free_port()}"
        kubeconfig = write_kubeconfig(
            workdir / "kubeconfig", kube.url, KUBE_TOKEN, namespace=deployment.NAMESPACE
        )
        settings = service_settings(hub_url, vault.url, kubeconfig, **overrides)
        with ServiceThread(settings) as service:
            hub_dir = workdir / "hub"
            hub_dir.mkdir()
            token_url = f"{kc.issuer}/protocol/openid-connect/token"
            config = hub_config(hub_dir, hub_url, token_url, service.url.split(PREFIX)[0])
            env = {"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)}
            hub = HubProcess(env, hub_dir, config=config, public_url=hub_url)
            hub.start(timeout=60)
            try:
                yield Stack(kc, vault, kube, hub, hub_url, kubeconfig, nfs_root, service, openshift)
            finally:
                hub.stop()
