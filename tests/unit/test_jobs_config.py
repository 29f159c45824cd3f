"""JobsServiceApp (traits, the hub's service variables, command line and config file) and
the pure parts of hub authentication."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from traitlets import TraitError

from valeria_hub.jobs.config import JobsServiceApp
from valeria_hub.jobs.hubauth import has_access, safe_next, token_from_headers
from valeria_hub.jobs.hubclient import TokenCache
from valeria_hub.jobs.naming import InvalidName

HUB_ENV = {
    "JUPYTERHUB_API_TOKEN": "svc-token",
    "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
    "JUPYTERHUB_SERVICE_PREFIX": "/services/batch/",
    "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:10202",
    "JUPYTERHUB_SERVICE_NAME": "batch",
    "JUPYTERHUB_CLIENT_ID": "service-batch",
    "JUPYTERHUB_OAUTH_CALLBACK_URL": "/services/batch/oauth_callback",
    "JUPYTERHUB_HOST": "https://hub.example",
    "JUPYTERHUB_BASE_URL": "/",
    "KUBECONFIG": "/etc/kube/config",
}


def test_hub_service_variables_become_defaults(monkeypatch):
    for key, value in HUB_ENV.items():
        monkeypatch.setenv(key, value)
    app = JobsServiceApp()
    assert app.hub_api_token == "svc-token"
    assert app.hub_api_url == "http://hub:8081/hub/api"
    assert app.prefix == "/services/batch/"
    assert app.bind_url == "http://0.0.0.0:10202"
    assert app.service_name == "batch" and app.oauth_client_id == "service-batch"
    assert app.oauth_callback_url == "/services/batch/oauth_callback"
    assert app.hub_authorize_url == "https://hub.example/hub/api/oauth2/authorize"
    assert app.kubeconfig == "/etc/kube/config"


def test_command_line_and_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_NAME", raising=False)
    config = tmp_path / "jobs_config.py"
    config.write_text(
        "c.JobsServiceApp.namespace_mode = 'shared'\n"
        "c.JobsServiceApp.shared_namespace = 'hub-jobs'\n"
        "c.StorageLayout.nfs_server = 'from-file'\n"
        "c.JobsServiceApp.max_active_deadline_seconds = 3600\n"
    )
    app = JobsServiceApp()
    app.initialize(
        [
            f"--config={config}",
            "--VaultIdentity.url=https://vault.example",
            "--StorageLayout.nfs_server=nfs.example",
        ]
    )
    assert app.vault.url == "https://vault.example"
    assert app.storage.nfs_server == "nfs.example"  # the command line wins
    assert app.namespace_mode == "shared"
    namespaces = app.settings().namespaces
    assert namespaces.for_user("a.b") == namespaces.for_user("a-b") == "hub-jobs"
    assert app.rules().max_active_deadline_seconds == 3600


def test_namespace_modes_and_refusals():
    app = JobsServiceApp(namespace_prefix="jobs-")
    namespaces = app.settings().namespaces
    assert namespaces.for_user("a.b") != namespaces.for_user("a-b")
    assert namespaces.for_user("alice").startswith("jobs-alice-")
    shared = JobsServiceApp(namespace_mode="shared")
    assert shared.settings().namespaces.for_user("alice", fallback="hub") == "hub"
    for ns in ("kube-system", "default", "openshift-config"):
        with pytest.raises(InvalidName):
            JobsServiceApp(namespace_mode="shared", shared_namespace=ns).settings()
    with pytest.raises(TraitError):
        JobsServiceApp(namespace_prefix="kube-")
    with pytest.raises(TraitError):
        JobsServiceApp(profiles={"bad": {"resources": {"limits": {"cpu": "lots"}}}})
    with pytest.raises(TraitError):
        JobsServiceApp(extra_env={"X": "{secret}"})
    with pytest.raises(ValueError, match="default_profile"):
        JobsServiceApp(default_profile="nope").rules()


def test_help_all_lists_the_shared_classes():
    out = subprocess.run(
        [sys.executable, "-m", "valeria_hub.jobs", "--help-all"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for flag in (
        "--VaultIdentity.url",
        "--StorageLayout.nfs_server",
        "--JobsServiceApp.namespace_mode",
    ):
        assert flag in out


def test_token_headers_scopes_and_next_urls():
    assert token_from_headers("token abc") == "abc"
    assert token_from_headers("Bearer abc") == "abc"
    assert token_from_headers("Basic abc") is None
    assert token_from_headers("token ") is None
    assert has_access({"access:services"}, "jobs")
    assert has_access({"access:services!service=jobs"}, "jobs")
    assert not has_access({"access:services!service=other", "self"}, "jobs")
    assert safe_next("/services/jobs/jobs/", "/services/jobs/") == "/services/jobs/jobs/"
    for evil in ("https://evil.example/", "//evil.example", "/hub/admin", None):
        assert safe_next(evil, "/services/jobs/") == "/services/jobs/"


def test_token_cache_is_bounded_in_time_and_size():
    cache = TokenCache(ttl=0.2, size=2)
    cache.put("a", {"name": "a"})
    cache.put("b", {"name": "b"})
    cache.put("c", {"name": "c"})
    assert cache.get("a") is None and cache.get("c") == {"name": "c"}
    time.sleep(0.25)
    assert cache.get("c") is None
