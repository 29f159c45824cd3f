"""Write a kubeconfig that points the Kubernetes clients at the stand-in."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def kubeconfig_dict(
    server_url: str, token: str, namespace: str = "default", context: str = "devstack"
) -> dict:
    """A kubeconfig with one cluster, one bearer-token user and one context."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": {"server": server_url}}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
    }


def write_kubeconfig(
    path: str | os.PathLike,
    server_url: str,
    token: str,
    namespace: str = "default",
    context: str = "devstack",
) -> Path:
    """Write it owner-readable only (it holds a token) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig_dict(server_url, token, namespace, context), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path
