"""The jobs service as the hub registers it: the managed-service entry and its roles. Pure.

``jupyterhub_config.py`` reads the environment into :class:`~valeria_hub.envconfig.Settings`
and hands them here, with its own finished configuration. The hub starts the service
itself (``command``), proxies it at ``/services/jobs/`` and lists it in the Services menu
for every user who may use it.

Settings said once: the service does not get the Vault and storage settings spelled
again as flags. It gets the hub's own ``VaultIdentity`` and ``StorageLayout`` sections,
exactly as the hub's configuration left them (:func:`shared_config`), and applies them
over anything else, so a notebook and a batch job of one person always see the same
uid checks, Vault paths and directories. An operator's ``c.JobsServiceApp`` settings in
the hub's configuration (e.g. in the JUPYTERHUB_EXTRA_CONFIG file) travel the same way,
except what the hub's environment already says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..envconfig import Settings

SHARED_SECTIONS = ("VaultIdentity", "StorageLayout", "JobsServiceApp")
# JobsServiceApp settings the hub gives the service itself (its service environment), so
# an operator's c.JobsServiceApp may not say them again
HUB_SET = frozenset(
    {
        "hub_api_url",
        "hub_api_token",
        "service_name",
        "service_prefix",
        "oauth_client_id",
        "oauth_callback_url",
        "hub_authorize_url",
        "shared_config",
    }
)
SHARED_CONFIG_VARIABLE = "VALERIA_SHARED_CONFIG"

SERVICE_NAME = "jobs"
DISPLAY_NAME = "Batch jobs"
# What the service needs from the hub: who owns a token, and the owner's Keycloak tokens
# (auth_state) for the Vault login; nothing that changes users.
SERVICE_SCOPES = ["list:users", "read:users", "admin:auth_state"]
USER_SCOPE = f"access:services!service={SERVICE_NAME}"


def shared_config(config: Mapping[str, Any], reserved: Mapping[str, str] | None = None) -> str:
    """The hub configuration's shared sections as JSON.

    ``c.JobsServiceApp`` is how an operator tunes the service (quotas, ceilings,
    profiles...) in the hub's own configuration; a setting the hub already gives it
    (``reserved``: trait -> where it comes from, and HUB_SET) is refused with a ValueError
    naming it, as is a value JSON cannot carry: the hub refuses to start rather than run
    the service apart from what it was told.
    """
    sections = {name: dict(config[name]) for name in SHARED_SECTIONS if name in config}
    own = sections.get("JobsServiceApp", {})
    for trait in sorted(own):
        if trait in HUB_SET:
            raise ValueError(f"c.JobsServiceApp.{trait} is set by the hub itself; remove it")
        if reserved and trait in reserved:
            raise ValueError(
                f"c.JobsServiceApp.{trait} is already set by {reserved[trait]}; say it once"
            )
    try:
        return json.dumps(sections, sort_keys=True)
    except TypeError as e:
        names = "c." + " / c.".join(SHARED_SECTIONS)
        raise ValueError(f"{names} hold a non-JSON value: {e}") from None


# the environment variable behind each command-line setting of the service
FLAG_SOURCES = {
    "namespace_mode": "JOBS_NAMESPACE_MODE",
    "public_url": "JUPYTERHUB_PUBLIC_URL",
    "platform_name": "PLATFORM_NAME",
    "shared_namespace": "KUBERNETES_NAMESPACE (shared mode)",
    "public_profiles": "JOBS_PUBLIC_PROFILES",
    "service_account": "KUBERNETES_SERVICE_ACCOUNT",
    "namespace_role": "JOBS_NAMESPACE_ROLE",
    "pod_scc_role": "JOBS_POD_SCC_ROLE",
    "egress_allow_cidrs": "JOBS_EGRESS_ALLOW_CIDRS",
    "egress_deny_cidrs": "JOBS_EGRESS_DENY_CIDRS",
}


def command_settings(cmd: list[str]) -> dict[str, str]:
    """The JobsServiceApp traits a service command sets -> the variable behind each."""
    prefix = "--JobsServiceApp."
    names = {a[len(prefix) :].split("=", 1)[0] for a in cmd if a.startswith(prefix)}
    return {n: FLAG_SOURCES.get(n, "the service command") for n in names}


def service_command(s: Settings, python: str) -> list[str]:
    """``python -m valeria_hub.jobs`` with the service's own options."""
    cmd = [
        python,
        "-m",
        "valeria_hub.jobs",
        f"--JobsServiceApp.namespace_mode={s.jobs_namespace_mode}",
        f"--JobsServiceApp.public_url={s.public_url}",
        f"--JobsServiceApp.platform_name={s.platform_name}",
    ]
    if s.jobs_namespace_mode == "shared" and s.namespace:
        cmd.append(f"--JobsServiceApp.shared_namespace={s.namespace}")
    if s.jobs_public_profiles:
        cmd.append("--JobsServiceApp.public_profiles=True")
    if s.service_account:
        account = f"{s.namespace}:{s.service_account}" if s.namespace else s.service_account
        cmd.append(f"--JobsServiceApp.service_account={account}")
    if s.jobs_namespace_role:
        cmd.append(f"--JobsServiceApp.namespace_role={s.jobs_namespace_role}")
    if s.jobs_pod_scc_role:
        cmd.append(f"--JobsServiceApp.pod_scc_role={s.jobs_pod_scc_role}")
    cmd += [f"--JobsServiceApp.egress_allow_cidrs={c}" for c in s.jobs_egress_allow_cidrs]
    cmd += [f"--JobsServiceApp.egress_deny_cidrs={c}" for c in s.jobs_egress_deny_cidrs]
    return cmd


def service_definition(s: Settings, python: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The entry of ``c.JupyterHub.services`` for the jobs service; ``config`` is the hub's
    configuration (``c``) once every VaultIdentity and StorageLayout setting is made."""
    command = service_command(s, python)
    return {
        "name": SERVICE_NAME,
        "display": True,
        "info": {"display_name": DISPLAY_NAME},
        "command": command,
        "url": f"http://127.0.0.1:{s.jobs_service_port}",
        # managed services get only a few of the hub's variables: pass the cluster's
        "environment": {
            **s.kube_environment,
            SHARED_CONFIG_VARIABLE: shared_config(config, command_settings(command)),
        },
        "oauth_no_confirm": True,
    }


def service_roles() -> list[dict[str, Any]]:
    """The service's own role, and the ``user`` role extended with access to it."""
    return [
        {"name": "jobs-service", "services": [SERVICE_NAME], "scopes": list(SERVICE_SCOPES)},
        {"name": "user", "scopes": ["self", USER_SCOPE]},
    ]
