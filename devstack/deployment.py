"""What ``openshift/`` ships, applied to the Kubernetes stand-in as a cluster admin would.

The templates are processed (``devstack.oc_process``, like ``oc process``) with the
stand-in's parameters and every object of a kind the stand-in serves is created: the hub's
ServiceAccount, Role and RoleBinding, the notebook SCC and its RBAC, the ClusterRoles and
binding of per-user namespaces, the NetworkPolicies, the ConfigMap and the Secret. What
the stand-in does not run (the Deployment, the Route) is left out; the hub runs as a local
process instead, calling the API as the service account the template binds, with no
other rights (:data:`HUB_USER`). Pure but for :func:`apply`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .oc_process import load, process

NAMESPACE = "default"
APP_NAME = "valeria-hub"
HUB_ACCOUNT = f"{APP_NAME}-hub"
HUB_USER = f"system:serviceaccount:{NAMESPACE}:{HUB_ACCOUNT}"
TEMPLATES = (
    "secrets-template.yaml",
    "valeria-hub-template.yaml",
    "scc-notebook.yaml",
    "rbac-user-namespaces.yaml",
)
# the settings of the hub's ConfigMap that the local hub takes over as they are
HUB_CONFIG_KEYS = (
    "JOBS_NAMESPACE_MODE",
    "JOBS_NAMESPACE_ROLE",
    "JOBS_POD_SCC_ROLE",
    "JOBS_EGRESS_ALLOW_CIDRS",
    "JOBS_EGRESS_DENY_CIDRS",
)


@dataclass(frozen=True)
class Parameters:
    """The template parameters of a stand-in deployment.

    The CIDRs only matter with ``network="netns"``: give that network's addresses there.
    Uids and gids cover the demo users and the tests' (1000..65535, never 0).
    """

    namespace: str = NAMESPACE
    realm_url: str = "https://sso.devstack.local/realms/valeria"
    vault_url: str = "https://vault.devstack.local"
    nfs_server: str = "nfs.devstack.local"
    nfs_path: str = "/export"
    s3_endpoint_url: str = "http://s3.devstack.local:9000"
    s3_cidr: str = "198.18.0.10/32"
    nfs_cidr: str = "198.18.0.20/32"
    internal_cidr: str = "198.18.0.0/16"
    uid_range: tuple[int, int] = (1000, 65535)
    gid_range: tuple[int, int] = (1000, 65535)
    extra: dict[str, dict[str, str]] = field(default_factory=dict)  # template -> overrides

    def of(self, template: str) -> dict[str, str]:
        """The parameters given to ``template``."""
        given: dict[str, str]
        if template == "secrets-template.yaml":
            given = {
                "OAUTH_CLIENT_SECRET": "demo-jupyterhub-secret",
                "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
                "JUPYTERHUB_COOKIE_SECRET": secrets.token_hex(32),
                "DATABASE_USER": "jupyterhub",
                "DATABASE_PASSWORD": secrets.token_hex(16),
            }
        elif template == "valeria-hub-template.yaml":
            given = {
                "HUB_IMAGE": "localhost/valeria-hub:devstack",
                "HUB_HOSTNAME": "hub.devstack.local",
                "KEYCLOAK_REALM_URL": self.realm_url,
                "VAULT_URL": self.vault_url,
                "NFS_SERVER": self.nfs_server,
                "NFS_PATH": self.nfs_path,
                "S3_ENDPOINT_URL": self.s3_endpoint_url,
                "DATABASE_HOST": "postgres.devstack.local",
                "S3_CIDR": self.s3_cidr,
                "NFS_CIDR": self.nfs_cidr,
                "INTERNAL_CIDR": self.internal_cidr,
            }
        elif template == "scc-notebook.yaml":
            given = {
                "NAMESPACE": self.namespace,
                "UID_MIN": str(self.uid_range[0]),
                "UID_MAX": str(self.uid_range[1]),
                "GID_MIN": str(self.gid_range[0]),
                "GID_MAX": str(self.gid_range[1]),
            }
        else:
            given = {"NAMESPACE": self.namespace}
        return {**given, **self.extra.get(template, {})}


def objects(params: Parameters | None = None) -> list[dict[str, Any]]:
    """Every object of every template, processed, each with the namespace it goes to."""
    params = params or Parameters()
    out = []
    for name in TEMPLATES:
        for obj in process(load(name), params.of(name)):
            obj.setdefault("metadata", {}).setdefault("namespace", params.namespace)
            out.append(obj)
    return out


def hub_environment(objs: list[dict[str, Any]]) -> dict[str, str]:
    """What the template's Deployment gives the hub that a local hub needs as well: the
    jobs settings of its ConfigMap and its service account (``spec.serviceAccountName``)."""
    config = next(o for o in objs if o["kind"] == "ConfigMap")["data"]
    pod = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    env = {k: str(config[k]) for k in HUB_CONFIG_KEYS if k in config}
    env["KUBERNETES_SERVICE_ACCOUNT"] = pod["serviceAccountName"]
    return env


# the ConfigMap's addresses of a hub running in its own pod (``network="netns"``)
HUB_NETWORK_KEYS = (
    "JUPYTERHUB_BIND_URL",
    "JUPYTERHUB_HUB_BIND_URL",
    "JUPYTERHUB_PROXY_API_URL",
    "JUPYTERHUB_HUB_CONNECT_IP",
)


@dataclass(frozen=True)
class HubPod:
    """What the pod network needs to know of the template's hub pod."""

    name: str
    namespace: str
    labels: dict[str, str]
    ports: list[dict[str, Any]]  # the hub container's ports (named ports of policies)
    environment: dict[str, str]  # the ConfigMap's HUB_NETWORK_KEYS


def hub_pod(objs: list[dict[str, Any]]) -> HubPod:
    """The hub pod as the template's Deployment makes it: its labels (what the
    NetworkPolicies select), its container ports and the ConfigMap's bind and connect
    addresses (the Service name as the hub's address for notebooks and services)."""
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    config = next(o for o in objs if o["kind"] == "ConfigMap")["data"]
    template = deploy["spec"]["template"]
    hub = next(c for c in template["spec"]["containers"] if c["name"] == "hub")
    return HubPod(
        name=deploy["metadata"]["name"],
        namespace=deploy["metadata"].get("namespace", NAMESPACE),
        labels=dict(template["metadata"]["labels"]),
        ports=[dict(p) for p in hub.get("ports", [])],
        environment={k: str(config[k]) for k in HUB_NETWORK_KEYS if k in config},
    )


def apply(kube: Any, objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create ``objs`` in the stand-in (on its loop) as the cluster admin; the ones of
    kinds it does not serve are returned, not created."""
    from .kube.resources import kind_for_object

    skipped = []
    for obj in objs:
        kind = kind_for_object(obj)
        if kind is None:
            skipped.append(obj)
            continue
        body = dict(obj, metadata=dict(obj["metadata"]))
        if not kind.namespaced:
            body["metadata"].pop("namespace", None)
        kube.create_object(body)
    return skipped
