"""The jobs service as the hub registers it: the managed-service entry and its roles. Pure.

``jupyterhub_config.py`` reads the environment into :class:`~valeria_hub.envconfig.Settings`
and hands them here. The hub starts the service itself (``command``), proxies it at
``/services/jobs/`` and lists it in the Services menu for every user who may use it.
"""

from __future__ import annotations

from typing import Any

from ..envconfig import Settings

SERVICE_NAME = "jobs"
DISPLAY_NAME = "Batch jobs"
# What the service needs from the hub: who owns a token, and the owner's Keycloak tokens
# (auth_state) for the Vault login; nothing that changes users.
SERVICE_SCOPES = ["list:users", "read:users", "admin:auth_state"]
USER_SCOPE = f"access:services!service={SERVICE_NAME}"


def service_command(s: Settings, python: str) -> list[str]:
    """``python -m valeria_hub.jobs`` with the Vault and storage settings the spawner uses."""
    cmd = [
        python,
        "-m",
        "valeria_hub.jobs",
        f"--VaultIdentity.url={s.vault_url}",
        f"--VaultIdentity.jwt_mount={s.vault_jwt_mount}",
        f"--VaultIdentity.role={s.vault_jwt_role}",
        f"--VaultIdentity.kv_mount={s.vault_kv_mount}",
        f"--StorageLayout.nfs_server={s.nfs_server}",
        f"--StorageLayout.nfs_path={s.nfs_path}",
        f"--StorageLayout.s3_endpoint_url={s.s3_endpoint_url}",
        f"--JobsServiceApp.namespace_mode={s.jobs_namespace_mode}",
    ]
    if s.jobs_namespace_mode == "shared" and s.namespace:
        cmd.append(f"--JobsServiceApp.shared_namespace={s.namespace}")
    if s.jobs_public_profiles:
        cmd.append("--JobsServiceApp.public_profiles=True")
    return cmd


def service_definition(s: Settings, python: str) -> dict[str, Any]:
    """The entry of ``c.JupyterHub.services`` for the jobs service."""
    return {
        "name": SERVICE_NAME,
        "display": True,
        "info": {"display_name": DISPLAY_NAME},
        "command": service_command(s, python),
        "url": f"http://127.0.0.1:{s.jobs_service_port}",
        # managed services get only a few of the hub's variables: pass the cluster's
        "environment": dict(s.kube_environment),
        "oauth_no_confirm": True,
    }


def service_roles() -> list[dict[str, Any]]:
    """The service's own role, and the ``user`` role extended with access to it."""
    return [
        {"name": "jobs-service", "services": [SERVICE_NAME], "scopes": list(SERVICE_SCOPES)},
        {"name": "user", "scopes": ["self", USER_SCOPE]},
    ]
