"""The three stand-ins together, seeded like a real Valeria deployment.

Keycloak serves the demo realm; Vault trusts that realm for JWT logins, holds the
templated user policy and the demo users' uid and S3 keys (alice and bob; carol is
deliberately not provisioned); the Kubernetes API runs pods as local processes.
Used by ``python -m devstack run``, ``python -m devstack demo`` and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hub import free_port, notebook_command
from .keycloak import KeycloakStandIn
from .server import StandIn
from .vault import VaultStandIn

DEMO_ROOT_TOKEN = "devstack-root-token"
DEMO_KUBE_TOKEN = "devstack-hub-token"
NFS_SERVER = "nfs.devstack.local"
NFS_EXPORT = "/export"
S3_ENDPOINT_URL = "http://s3.devstack.local:9000"
DEMO_PORTS = {"keycloak": 8080, "vault": 8200, "kube": 6443}


@dataclass(frozen=True)
class DemoStorage:
    username: str
    uid: int
    gid: int
    s3_access_key: str
    s3_secret_key: str
    sub: str | None = None  # the user's id in an external realm (DevStack(realm_url=...))


# Demo-only values: they exist on loopback stand-ins and nowhere else.
DEMO_STORAGE = [
    DemoStorage("alice", 1001, 1001, "DEMOALICEACCESSKEY01", "demo-alice-secret-key-0001"),
    DemoStorage("bob", 1002, 1002, "DEMOBOBACCESSKEY0002", "demo-bob-secret-key-00002"),
]
UNPROVISIONED = ["carol"]
ADMINS = ["admin"]


class DevStack:
    """Keycloak, Vault and Kubernetes stand-ins, started together and seeded."""

    def __init__(
        self,
        state_dir: Path,
        *,
        ports: dict[str, int] | None = None,
        kube_options: dict | None = None,
        storage: list[DemoStorage] | None = None,
        host: str = "127.0.0.1",
        openshift: bool = False,
        deployment_options: dict | Callable[[DevStack], dict] | None = None,
        network: str = "loopback",
        realm_url: str | None = None,
    ) -> None:
        """``openshift=True``: the Kubernetes stand-in's OpenShift profile with what
        ``openshift/`` ships applied (:mod:`devstack.deployment`), and the hub's token
        mapped to the template's service account with no rights of its own: every call of
        the hub and the jobs service is allowed by the shipped RBAC or refused.
        ``deployment_options``: the template parameters (:class:`deployment.Parameters`),
        or a function of the started stack returning them, called before the templates
        are processed (to give addresses of a pod network that exists only then).

        ``network="netns"``: the Kubernetes stand-in's pod network (devstack/kube/network:
        a network namespace per pod, NetworkPolicies enforced, cluster DNS). Pods cannot
        reach the host's loopback, so the Kubernetes stand-in starts first and all three
        then listen on the network's node address instead of ``host`` (reached by the
        host and by pods alike, subject to the pods' policies); a hub can run in a pod of
        its own (:meth:`add_hub_pod`, :meth:`hub_pod_environment`). Threads only
        (:meth:`serve_in_threads`).

        ``realm_url``: an external Keycloak realm (Keycloak's own server, tests/keycloak/)
        instead of the Keycloak stand-in, which is then not started: Vault trusts that
        issuer, hubs are pointed at it, and each ``storage`` entry is provisioned under its
        ``sub`` there. The realm's clients are the caller's to change (redirect URIs)."""
        from .kube.server import KubeStandIn

        if network not in ("loopback", "netns"):
            raise ValueError(f"network must be 'loopback' or 'netns', not {network!r}")
        self.state_dir = Path(state_dir)
        self.ports = {"keycloak": 0, "vault": 0, "kube": 0, **(ports or {})}
        self.host = host
        self.network = network
        self.external_realm = realm_url.rstrip("/") if realm_url else None
        self.keycloak = KeycloakStandIn()
        self.vault = VaultStandIn(root_token=DEMO_ROOT_TOKEN)
        opts = {
            "root": self.state_dir / "kube",
            "nfs_root": self.state_dir / "nfs",
            **(kube_options or {}),
        }
        if network == "netns":
            opts.setdefault("network", "netns")
        self.openshift = openshift
        self.deployment: list[dict] = []
        self.params: Any = None  # deployment.Parameters with openshift
        self._deployment_options = deployment_options
        if openshift:
            from . import deployment

            if not callable(deployment_options):
                self._process_templates(deployment_options or {})
            opts.setdefault("profile", "openshift")
            opts.setdefault("tokens", {DEMO_KUBE_TOKEN: {"user": deployment.HUB_USER}})
        self.kube = KubeStandIn(**opts)
        self.storage = DEMO_STORAGE if storage is None else storage
        self.entities: dict[str, str] = {}
        self.kubeconfig = self.state_dir / "kubeconfig"

    def _process_templates(self, options: dict) -> None:
        from . import deployment

        self.params = deployment.Parameters(**options)
        self.deployment = deployment.objects(self.params)

    @property
    def standins(self) -> list[tuple[str, StandIn]]:
        found = [("keycloak", self.keycloak), ("vault", self.vault), ("kube", self.kube)]
        return found[1:] if self.external_realm else found

    @property
    def realm_url(self) -> str:
        return self.external_realm or self.keycloak.issuer

    # -- seeding ------------------------------------------------------------------
    async def seed(self) -> None:
        """Vault trusts the realm; demo users get their uid and keys."""
        from .kube.kubeconfig import write_kubeconfig

        issuer = self.external_realm or self.keycloak.discovery_url.rsplit("/.well-known", 1)[0]
        await self.vault.configure_valeria(issuer)
        for item in self.storage:
            self.entities[item.username] = self.vault.provision_user(
                sub=self._sub(item),
                username=item.username,
                uid=item.uid,
                gid=item.gid,
                s3_access_key=item.s3_access_key,
                s3_secret_key=item.s3_secret_key,
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_nfs()
        if self.openshift:
            from . import deployment

            if callable(self._deployment_options) and self.params is None:
                self._process_templates(self._deployment_options(self))
            await _on_loop(self.kube, deployment.apply, self.kube, self.deployment)
        write_kubeconfig(self.kubeconfig, self.kube.url, DEMO_KUBE_TOKEN, namespace="default")

    def _sub(self, item: DemoStorage) -> str:
        """The user's ``sub`` in the realm Vault trusts."""
        if item.sub is not None:
            return item.sub
        if self.external_realm:
            raise RuntimeError(f"{item.username} needs its sub in the realm {self.external_realm}")
        user = self.keycloak.realm.find_login(item.username)
        if user is None:
            raise RuntimeError(f"demo user {item.username} is not in the realm")
        return user.id

    def prepare_nfs(self) -> None:
        """Each provisioned user's home and scratch on the export, owned by their uid.

        On a real NFS export these exist already (created with the account); the
        kubelet stand-in maps the export to ``<state>/nfs/export``.
        """
        import os

        export = self.state_dir / "nfs" / NFS_EXPORT.lstrip("/")
        for item in self.storage:
            for top in ("home", "scratch"):
                path = export / top / item.username
                path.mkdir(parents=True, exist_ok=True)
                if os.geteuid() == 0:
                    os.chown(path, item.uid, item.gid)
                path.chmod(0o700)

    # -- in this loop -----------------------------------------------------------------
    async def start(self) -> None:
        if self.network == "netns":
            raise RuntimeError("DevStack(network='netns') runs in threads: serve_in_threads()")
        for name, s in self.standins:
            await s.start(self.host, self.ports[name])
        await self.seed()

    async def stop(self) -> None:
        for _, s in reversed(self.standins):
            with contextlib.suppress(Exception):
                await s.stop()

    # -- each in its own thread (for synchronous clients in tests) ---------------------
    @contextlib.contextmanager
    def serve_in_threads(self) -> Iterator[DevStack]:
        with contextlib.ExitStack() as stack:
            standins = self.standins
            if self.network == "netns":
                from .kube.server import NODE

                # the node address exists once the Kubernetes stand-in's network is up
                stack.enter_context(self.kube.serve_in_thread(NODE, self.ports["kube"]))
                self.host = self.kube.network.node_ip
                standins = [(n, s) for n, s in standins if s is not self.kube]
            for name, s in standins:
                stack.enter_context(s.serve_in_thread(self.host, self.ports[name]))
            self.vault.call(self.seed)
            yield self

    # -- what the hub needs -------------------------------------------------------------
    def hub_environment(
        self,
        *,
        public_url: str,
        hub_port: int,
        proxy_api_port: int,
        singleuser_cmd: str | None = None,
        namespace: str = "default",
    ) -> dict[str, str]:
        """The environment that points jupyterhub_config.py at the stand-ins.

        Only these variables differ from a production deployment.
        """
        host = public_url.split("://", 1)[1].rsplit(":", 1)[0]
        return {
            **self._hub_settings(singleuser_cmd, namespace),
            "JUPYTERHUB_PUBLIC_URL": public_url,
            "JUPYTERHUB_BIND_URL": public_url,
            "JUPYTERHUB_HUB_BIND_URL": f"http://{host}:{hub_port}",
            "JUPYTERHUB_PROXY_API_URL": f"http://{host}:{proxy_api_port}",
            # the hub-managed jobs service: any free loopback port (reached through the proxy)
            "JOBS_SERVICE_PORT": str(free_port(host)),
        }

    def hub_pod_environment(
        self, pod_ip: str, *, singleuser_cmd: str | None = None
    ) -> dict[str, str]:
        """The environment of a hub in its own pod (:meth:`add_hub_pod`) at ``pod_ip``.

        Bind and connect addresses as the template's ConfigMap sets them: the proxy on
        8080, the hub API on 8081 and reached by notebooks and services at the Service's
        name (the pod resolves it through the cluster DNS), the proxy's API on the pod's
        loopback. The public URL is the proxy port at the pod's address (the test's
        stand-in for the Route); the jobs service keeps its default port in the pod.
        """
        from . import deployment

        if not self.openshift:
            raise RuntimeError("a hub pod needs openshift=True (the template's objects)")
        pod = deployment.hub_pod(self.deployment)
        port = pod.environment["JUPYTERHUB_BIND_URL"].rsplit(":", 1)[1]
        return {
            **self._hub_settings(singleuser_cmd, pod.namespace),
            **pod.environment,
            "JUPYTERHUB_PUBLIC_URL": f"http://{pod_ip}:{port}",
        }

    def _hub_settings(self, singleuser_cmd: str | None, namespace: str) -> dict[str, str]:
        """What every hub of this stack gets, wherever it listens."""
        nfs_server, s3_url = NFS_SERVER, S3_ENDPOINT_URL
        if self.params is not None:  # openshift: what the template is given
            nfs_server, s3_url = self.params.nfs_server, self.params.s3_endpoint_url
        return {
            "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
            "JUPYTERHUB_COOKIE_SECRET": secrets.token_hex(32),
            "KEYCLOAK_REALM_URL": self.realm_url,
            "OAUTH_CLIENT_ID": "jupyterhub",
            "OAUTH_CLIENT_SECRET": "demo-jupyterhub-secret",
            "VAULT_URL": self.vault.url or "",
            "NFS_SERVER": nfs_server,
            "NFS_PATH": NFS_EXPORT,
            "S3_ENDPOINT_URL": s3_url,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBERNETES_NAMESPACE": namespace,
            "NOTEBOOK_CMD": singleuser_cmd or notebook_command(),
            "VALERIA_DEVSTACK": "1",
            "INSTITUTION_NAME": "Valeria Demo SSO",
            "SUPPORT_CONTACT": "support@valeria.example",
            **self.deployment_environment(),
        }

    def add_hub_pod(self) -> Any:
        """``network="netns"``: a place on the pod network for a hub process, labelled and
        named like the template's hub pod, so the shipped NetworkPolicies select it as
        they select the real one. Returns the network's Attachment: run the hub under
        its ``run_prefix()`` (its own network namespace and the cluster's resolv.conf);
        its proxy and managed services, its children, share both."""
        from . import deployment

        if self.network != "netns" or not self.openshift:
            raise RuntimeError("a hub pod needs DevStack(network='netns', openshift=True)")
        pod = deployment.hub_pod(self.deployment)
        net = self.kube.network
        return self.kube.call(net.add_endpoint, pod.name, pod.namespace, pod.labels, pod.ports)

    def remove_hub_pod(self) -> None:
        """Remove the hub's place on the network; processes still in it are killed."""
        from . import deployment

        pod = deployment.hub_pod(self.deployment)
        self.kube.call(self.kube.network.remove_endpoint, pod.name, pod.namespace)

    def deployment_environment(self) -> dict[str, str]:
        """With ``openshift``: the jobs settings and service account the template gives."""
        if not self.openshift:
            return {}
        from . import deployment

        return deployment.hub_environment(self.deployment)

    def allow_redirects_to(self, public_url: str) -> None:
        """Let the realm's hub client redirect to a hub on another port (tests).

        With an external realm this is the caller's to do, on that server."""
        if self.external_realm:
            return

        def change() -> None:
            client = self.keycloak.realm.clients["jupyterhub"]
            uris = list(client.redirect_uris)
            if f"{public_url}/*" not in uris:
                uris.append(f"{public_url}/*")
            self.keycloak.update_client("jupyterhub", redirect_uris=uris)

        if self.keycloak._loop is not None and _in_other_thread(self.keycloak):
            self.keycloak.call(change)
        else:
            change()

    def describe(self) -> str:
        lines = [
            f"  Keycloak realm  {self.realm_url}",
            f"  Vault           {self.vault.url}   (root token: {DEMO_ROOT_TOKEN})",
            f"  Kubernetes API  {self.kube.url}   (kubeconfig: {self.kubeconfig})",
        ]
        return "\n".join(lines)


async def _on_loop(s: StandIn, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on the stand-in's own loop (it may serve in another thread)."""
    if s._loop is not None and _in_other_thread(s):
        return await asyncio.to_thread(s.call, fn, *args)
    return fn(*args)


def _in_other_thread(s: StandIn) -> bool:
    try:
        return asyncio.get_running_loop() is not s._loop
    except RuntimeError:
        return True


def demo_users_text() -> str:
    rows = [f"  {d.username:<6} password {d.username:<6} uid {d.uid}" for d in DEMO_STORAGE]
    rows += [f"  {u:<6} password {u:<6} not provisioned in Vault" for u in UNPROVISIONED]
    rows += [f"  {u:<6} password {u:<6} hub admin (Keycloak role hub-admin)" for u in ADMINS]
    return "\n".join(rows)


def run_devstack(
    state_dir: Path, host: str = "127.0.0.1", ports: dict[str, int] | None = None
) -> int:
    """``python -m devstack run``: the stand-ins on fixed ports until Ctrl-C."""
    import signal

    async def main() -> None:
        stack = DevStack(
            state_dir, ports={**DEMO_PORTS, **(ports or {})}, host=host, openshift=True
        )
        await stack.start()
        print("the valeria-hub devstack is running:\n" + stack.describe(), flush=True)
        print("Users (password = name):\n" + demo_users_text(), flush=True)
        print("Ctrl-C stops everything.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await stack.stop()

    asyncio.run(main())
    return 0
