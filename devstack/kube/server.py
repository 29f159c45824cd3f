"""The Kubernetes API stand-in: store + API + (when present) kubelet and controllers.

Tests and the devstack drive it over HTTP like a real API server, and through a
small control surface (in-process methods, ``/_control/kube/...``) to seed objects,
look at everything, stall watches and change tokens at runtime.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from ..server import StandIn
from . import openshift, rbac
from .admission import Admission
from .api import KubeAPI, error_response, json_response
from .errors import BadRequest, StoreError
from .pod_security import PodSecurity
from .quota import QuotaStatus, ResourceQuotaAdmission
from .registry import Registry, present
from .resources import KINDS, kind_for_object, kind_of
from .store import Store

log = logging.getLogger(__name__)

CONTROL = "/_control/kube"
NODE = "node"  # start(host=NODE): the node address of the netns pod network


def _optional(module: str, attr: str) -> Any:
    """The other half of the stand-in (kubelet, controllers), if it exists yet."""
    name = f"{__package__}.{module}"
    try:
        mod = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            return None
        raise
    return getattr(mod, attr, None)


class KubeStandIn(StandIn):
    """A Kubernetes API server on loopback, with local pods when a kubelet is present."""

    name = "kube"

    def __init__(
        self,
        *,
        root: Path | None = None,
        nfs_root: Path | None = None,
        tokens: dict[str, dict] | None = None,
        strict_schema: bool = False,
        run_kubelet: bool = True,
        run_controllers: bool = True,
        namespaces: list[str] | tuple[str, ...] = ("default",),
        history: int = 100_000,
        bookmark_interval: float = 60.0,
        profile: str = "kubernetes",
        network: str = "loopback",
        dns_hosts: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if strict_schema:
            from . import schema

            if not schema.available():
                raise RuntimeError("strict_schema needs kubernetes-validate (the [test] extra)")
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="kube-standin-")) if root is None else Path(root)
        self.nfs_root = nfs_root
        self.store = Store(history=history)
        self.registry = Registry(self.store, strict_schema=strict_schema)
        self.api = KubeAPI(self.registry, bookmark_interval=bookmark_interval)
        self.set_tokens(tokens)
        kubelet_cls = _optional("kubelet", "Kubelet") if run_kubelet else None
        controllers_cls = _optional("controllers", "Controllers") if run_controllers else None
        # network="netns": per-pod network namespaces, NetworkPolicy, cluster DNS (network/)
        if network not in ("loopback", "netns"):
            raise ValueError(f"network must be 'loopback' or 'netns', not {network!r}")
        self.network: Any = None  # a network.PodNetwork in netns mode
        net_opts: dict[str, Any] = {}
        if network == "netns":
            from .network import PodNetwork

            self.network = net_opts["podnet"] = PodNetwork(self.store, hosts=dns_hosts)
            if "openshift-dns" not in namespaces:  # where the cluster DNS pod lives
                namespaces = [*namespaces, "openshift-dns"]
        self.kubelet = (
            kubelet_cls(self.store, root=self.root, nfs_root=nfs_root, **net_opts)
            if kubelet_cls
            else None
        )
        self.controllers = (
            controllers_cls(self.store, registry=self.registry) if controllers_cls else None
        )
        self.api.kubelet = self.kubelet
        if profile not in openshift.PROFILES:
            raise ValueError(f"profile must be one of {openshift.PROFILES}, not {profile!r}")
        self.profile = profile
        # issue 12: Pod Security and ResourceQuota admission are upstream Kubernetes, so every
        # profile has them (the openshift profile lists them among its plugins); the quota
        # controller keeps status.used current whether or not the other controllers run
        self.registry.admission = Admission(
            self.store, self.api.authorizer, [PodSecurity(), ResourceQuotaAdmission()]
        )
        self.quota_status = QuotaStatus(self.store)
        if profile == "openshift":
            openshift.install(self)
        for ns in namespaces:
            self.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host``; :data:`NODE` means the pod network's node address
        (``network="netns"``, known once the network is up), which pods and the host
        both reach, subject to the pods' policies like any address outside the cluster."""
        if host == NODE and self.network is None:
            raise ValueError("host=NODE needs network='netns'")
        if self.network is not None:  # network="netns": refuses before anything runs
            await self.network.start()
            if host == NODE:
                host = self.network.node_ip
        try:
            return await super().start(host, port)
        except BaseException:
            if self.network is not None:
                await self.network.stop()
            raise

    def add_routes(self, app: web.Application) -> None:
        self.api.add_routes(app)
        app.router.add_get(CONTROL + "/objects", self._c_dump)
        app.router.add_post(CONTROL + "/objects", self._c_create)
        app.router.add_get(CONTROL + "/counts", self._c_counts)
        app.router.add_post(CONTROL + "/watches/stall", self._c_stall)
        app.router.add_post(CONTROL + "/watches/release", self._c_release)
        app.router.add_put(CONTROL + "/tokens", self._c_tokens)

    async def on_start(self) -> None:
        self.api.server_address = f"{self.host}:{self.port}"
        if self.controllers is not None:
            await self.controllers.start()
        if self.kubelet is not None:
            await self.kubelet.start()

    async def on_stop(self) -> None:
        self.api.gate.release()
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self.network is not None:  # network="netns"
            await self.network.stop()
        if self.controllers is not None:
            await self.controllers.stop()
        await self.registry.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- control surface (in-process) ------------------------------------------------------
    def dump(self) -> dict[str, list[dict]]:
        """Every object, by resource (``"v1/pods"`` ...)."""
        out = {}
        for resource in sorted({k.resource for k in KINDS} | set(self.store.resources())):
            items, _ = self.store.list(resource)
            if items:
                out[resource] = items
        return out

    def counts(self) -> dict[str, int]:
        return {resource: len(items) for resource, items in self.dump().items()}

    def create_object(self, obj: dict, namespace: str | None = None) -> dict:
        """Create a manifest as a request would (defaults, validation), status kept."""
        kind = kind_for_object(obj)
        if kind is None:
            raise BadRequest(
                f"no served kind for apiVersion={obj.get('apiVersion')!r} kind={obj.get('kind')!r}"
            )
        ns = (
            namespace
            or (obj.get("metadata") or {}).get("namespace")
            or ("default" if kind.namespaced else None)
        )
        return self.registry.create(kind, ns, obj, keep_status=True)

    def get_object(self, resource: str, namespace: str, name: str) -> dict:
        return present(kind_of(resource), self.store.get(resource, namespace, name))

    def stall_watches(self) -> None:
        """Watches stay open but send nothing until ``release_watches``."""
        self.api.gate.stall()

    def release_watches(self) -> None:
        self.api.gate.release()

    def set_tokens(self, tokens: dict[str, dict] | None) -> None:
        """``{token: {"user": ..., "rules": [...]}}``; None lets any caller be admin."""
        self.api.identities = rbac.parse_tokens(tokens)

    # -- control surface (HTTP) ---------------------------------------------------------------
    async def _c_dump(self, request: web.Request) -> web.Response:
        return json_response(self.dump())

    async def _c_counts(self, request: web.Request) -> web.Response:
        return json_response(self.counts())

    async def _c_create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            items = body["items"] if isinstance(body, dict) and "items" in body else [body]
            created = [self.create_object(o) for o in items]
        except StoreError as err:
            return error_response(err)
        except (ValueError, TypeError, KeyError) as e:
            return json_response({"error": str(e)}, status=400)
        return json_response({"items": created}, status=201)

    async def _c_stall(self, request: web.Request) -> web.Response:
        self.stall_watches()
        return json_response({"stalled": True})

    async def _c_release(self, request: web.Request) -> web.Response:
        self.release_watches()
        return json_response({"stalled": False})

    async def _c_tokens(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.set_tokens(body.get("tokens"))
        except (ValueError, TypeError, AttributeError) as e:
            return json_response({"error": str(e)}, status=400)
        return json_response(
            {"tokens": None if self.api.identities is None else len(self.api.identities)}
        )
