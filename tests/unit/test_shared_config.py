"""Settings said once: the jobs service runs with the hub's own VaultIdentity and
StorageLayout configuration, whatever the deployment sets and wherever it sets it.

The repository's jupyterhub_config.py is loaded as JupyterHub loads it (traitlets'
PyFileConfigLoader, the environment of a deployment, an operator's extra config file);
the jobs service is then initialized exactly as the hub starts it: the command line and
the environment of its ``c.JupyterHub.services`` entry.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from traitlets.config import Config, PyFileConfigLoader

from tests.helpers import DEPLOYMENT_ENV, REPO_ROOT
from valeria_hub.jobs.config import JobsServiceApp
from valeria_hub.jobs.hub_service import SHARED_CONFIG_VARIABLE, shared_config
from valeria_hub.storage import StorageLayout
from valeria_hub.vault import VaultIdentity

# a value unlike the default for every setting of both classes
CHANGED = {
    "VaultIdentity": {
        "url": "https://vault.campus.example:8443",
        "jwt_mount": "oidc-jwt",
        "role": "datascience",
        "kv_mount": "secrets",
        "uid_path": "people/{username}/posix",
        "uid_key": "uidNumber",
        "gid_key": "gidNumber",
        "s3_path": "people/{username}/s3",
        "s3_access_key_key": "access",
        "s3_secret_key_key": "secret",
        "min_id": 20000,
        "default_gid": 20001,
        "timeout": 4.5,
        "connect_retries": 3,
        "max_concurrent": 3,
        "extra_headers": {"X-Vault-Namespace": "research"},
        "ca_bundle": "/etc/pki/campus-ca.pem",
    },
    "StorageLayout": {
        "nfs_server": "10.20.40.5",
        "nfs_path": "/lustre/valeria",
        "home_mount_path": "/work/{username}",
        "home_sub_path": "homes/{uid}",
        "scratch_mount_path": "/tmp-scratch",
        "scratch_sub_path": "scratch2/{username}",
        "valeria_layout": True,
        "s3_endpoint_url": "https://ceph.campus.example",
        "fs_group": 4242,
        "supplemental_groups": [5001, 5002],
    },
}


def test_every_setting_is_listed():
    """A trait added to either class must be added here too, or this fails."""
    for cls in (VaultIdentity, StorageLayout):
        traits = cls.class_traits(config=True)
        assert set(CHANGED[cls.__name__]) == set(traits), cls.__name__
        for name, value in CHANGED[cls.__name__].items():
            assert value != traits[name].default(), (cls.__name__, name)


def load_hub_config(tmp_path, monkeypatch, extra: str) -> Config:
    """jupyterhub_config.py as JupyterHub loads it, with an operator's extra file."""
    path = tmp_path / "site_config.py"
    path.write_text(extra)
    for key in list(os.environ):
        if key.startswith(("JUPYTERHUB_", "KEYCLOAK_", "VAULT_", "JOBS_", "KUBERNETES_")):
            monkeypatch.delenv(key)
    for key, value in {
        **DEPLOYMENT_ENV,
        "KUBECONFIG": "/etc/kube/config",
        "JUPYTERHUB_EXTRA_CONFIG": str(path),
    }.items():
        monkeypatch.setenv(key, value)
    loader = PyFileConfigLoader("jupyterhub_config.py", path=str(REPO_ROOT))
    return loader.load_config()


def start_like_the_hub(monkeypatch, service: dict) -> JobsServiceApp:
    """JobsServiceApp initialized from the service entry's command and environment."""
    command = service["command"]
    assert command[:3] == [sys.executable, "-m", "valeria_hub.jobs"]
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, value)
    app = JobsServiceApp()
    app.initialize(command[3:])
    return app


def test_every_vault_and_storage_setting_reaches_the_jobs_service(tmp_path, monkeypatch):
    lines = [
        f"c.{section}.{name} = {value!r}"
        for section, values in CHANGED.items()
        for name, value in values.items()
    ]
    config = load_hub_config(tmp_path, monkeypatch, "\n".join(lines) + "\n")
    (service,) = [s for s in config.JupyterHub.services if s["name"] == "jobs"]
    app = start_like_the_hub(monkeypatch, service)
    for name, value in CHANGED["VaultIdentity"].items():
        assert getattr(app.vault, name) == value, name
    for name, value in CHANGED["StorageLayout"].items():
        assert getattr(app.storage, name) == value, name
    # and what a job is built from agrees with what a notebook is built from
    hub_side = StorageLayout(config=config)
    assert app.settings().layout == hub_side.layout()
    assert app.settings().layout.mounts[0].mount_path == "/users/home/{username}"


def test_the_hub_settings_win_over_the_service_command_line(monkeypatch):
    monkeypatch.setenv(
        SHARED_CONFIG_VARIABLE,
        shared_config(Config({"VaultIdentity": {"url": "https://vault.hub", "min_id": 5000}})),
    )
    app = JobsServiceApp()
    app.initialize(["--VaultIdentity.url=https://elsewhere", "--VaultIdentity.min_id=1"])
    assert app.vault.url == "https://vault.hub" and app.vault.min_id == 5000


def test_a_broken_hand_over_is_refused_by_name(monkeypatch):
    for text, match in (
        ("{not json", "not JSON"),
        (json.dumps({"KubeSpawner": {"uid": 0}}), "only VaultIdentity, StorageLayout"),
        (json.dumps({"JobsServiceApp": {"hub_api_token": "x"}}), "may not set hub_api_token"),
        (json.dumps({"JobsServiceApp": ["not", "a", "section"]}), "must be a JSON object"),
    ):
        monkeypatch.setenv(SHARED_CONFIG_VARIABLE, text)
        with pytest.raises(ValueError, match=match):
            JobsServiceApp().initialize([])
    with pytest.raises(ValueError, match="non-JSON"):
        shared_config(Config({"StorageLayout": {"fs_group": object()}}))


def test_an_operator_tunes_the_jobs_service_in_the_hubs_configuration(tmp_path, monkeypatch):
    """c.JobsServiceApp in the extra config file reaches the service as it is (quotas,
    ceilings, minimum requests, the list cache), like the Vault and storage sections."""
    extra = """
c.JobsServiceApp.namespace_quota = {"requests.cpu": "4", "count/jobs.batch": "7"}
c.JobsServiceApp.user_ceilings = {"jobs": 3, "pods": 6}
c.JobsServiceApp.min_requests = {"cpu": "50m", "memory": "64Mi"}
c.JobsServiceApp.list_cache_views = 17
c.JobsServiceApp.vault_profile_ttl = 0.0
"""
    config = load_hub_config(tmp_path, monkeypatch, extra)
    (service,) = [s for s in config.JupyterHub.services if s["name"] == "jobs"]
    app = start_like_the_hub(monkeypatch, service)
    settings = app.settings()
    assert dict(settings.namespaces.quota) == {"requests.cpu": "4", "count/jobs.batch": "7"}
    assert app.user_ceilings == {"jobs": 3, "pods": 6}
    assert app.min_requests == {"cpu": "50m", "memory": "64Mi"}
    assert settings.list_cache_views == 17 and settings.vault_profile_ttl == 0.0
    # what the environment gives is still the environment's
    assert settings.namespaces.mode == DEPLOYMENT_ENV.get("JOBS_NAMESPACE_MODE", "per-user")


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("c.JobsServiceApp.namespace_mode = 'shared'", "JOBS_NAMESPACE_MODE"),
        ("c.JobsServiceApp.public_url = 'https://elsewhere'", "JUPYTERHUB_PUBLIC_URL"),
        ("c.JobsServiceApp.hub_api_token = 'x'", "set by the hub itself"),
    ],
)
def test_a_service_setting_said_twice_stops_the_hub_naming_it(
    tmp_path, monkeypatch, capsys, line, named
):
    with pytest.raises(SystemExit) as e:
        load_hub_config(tmp_path, monkeypatch, line + "\n")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert named in err and line.split(" = ")[0] in err
