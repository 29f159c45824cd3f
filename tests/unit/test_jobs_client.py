"""Pure pieces around the jobs service: CLI errors, request building, tables, the hub's
service entry and the environment settings for it, the web page's paths."""

from __future__ import annotations

import base64
import datetime as dt
import io
import sys
import zipfile

import pytest
from traitlets.config import Config

from tests.helpers import DEPLOYMENT_ENV
from valeria_hub.envconfig import ConfigError, read_settings
from valeria_hub.jobs.hub_service import service_definition, service_roles
from valeria_hub.jobs.routers.ui import hub_base, render_page
from valeria_hub.jobs_client.api import error_message, service_url, validation_text
from valeria_hub.jobs_client.spec import SpecError, build_body, parse_env, zip_code
from valeria_hub.jobs_client.tables import details, duration, jobs_table

BASE_ENV = DEPLOYMENT_ENV


@pytest.mark.parametrize(
    ("status", "detail", "expected"),
    [
        (401, "the token is invalid", "log in to the hub again"),
        (403, "the token lacks the 'access:services!service=jobs' scope", "access:services"),
        (404, "Job 'x' not found", "not found: Job 'x' not found"),
        (404, None, "is the service URL right?"),
        (409, "a Job named 'x' already exists", "conflict: a Job named 'x'"),
        (413, None, "too large"),
        (422, "spec.template.spec.hostNetwork: host namespaces", "invalid job: spec.template"),
        (503, "the cluster failed", "unavailable: the cluster failed"),
        (302, None, "redirect"),
        (500, None, "HTTP 500"),
    ],
)
def test_error_messages_are_one_line_and_name_the_problem(status, detail, expected):
    text = error_message(status, detail, "job")
    assert expected in text and "\n" not in text


def test_fastapi_validation_errors_name_the_field():
    detail = [{"loc": ["body", "job"], "msg": "Field required", "type": "missing"}]
    assert validation_text(detail) == "job: Field required"


def test_build_body_from_options_and_short_form_file(tmp_path):
    body = build_body(
        "Job", image="img", command="sh -c 'echo hi'", env=parse_env(["A=1", "B=x=y"])
    )
    container = body["job"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "echo hi"]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"}]
    assert body["job"]["metadata"] == {"generateName": "job-"}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)")
    file = {"name": "n", "image": "i", "code": "src", "env": {"A": "f"}, "profile": "small"}
    body = build_body("Job", file=file, env={"A": "cli"}, base_dir=tmp_path)
    assert body["profile"] == "small" and body["job"]["metadata"] == {"name": "n"}
    env = body["job"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "cli"}]
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(body["code"]))) as z:
        assert z.namelist() == ["a.py"]


def test_build_body_refusals():
    with pytest.raises(SpecError, match="--image is required"):
        build_body("Job", command=["true"])
    with pytest.raises(SpecError, match="--schedule is required"):
        build_body("CronJob", image="i")
    with pytest.raises(SpecError, match="not a Job"):
        build_body("Job", file={"apiVersion": "batch/v1", "kind": "CronJob"})
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        parse_env(["=x"])


def test_zip_skips_symlinks_and_caches(tmp_path):
    (tmp_path / "d" / "__pycache__").mkdir(parents=True)
    (tmp_path / "d" / "__pycache__" / "x.pyc").write_bytes(b"x")
    (tmp_path / "d" / "run.py").write_text("x")
    (tmp_path / "d" / "link").symlink_to("/etc/passwd")
    with zipfile.ZipFile(io.BytesIO(zip_code(tmp_path / "d"))) as z:
        assert z.namelist() == ["run.py"]


@pytest.fixture
def utc(monkeypatch):
    """The reader's zone: UTC here, whatever the machine's."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_jobs_table_shows_status_times_and_duration(utc):
    now = dt.datetime(2024, 1, 1, 12, 0, 30, tzinfo=dt.UTC)
    items = [
        {
            "metadata": {"name": "a", "creation_timestamp": "2024-01-01T12:00:00+00:00"},
            "status": {
                "succeeded": 1,
                "start_time": "2024-01-01T12:00:01Z",
                "completion_time": "2024-01-01T12:01:06Z",
            },
        },
        {"metadata": {"name": "b"}, "status": {"active": 1, "startTime": "2024-01-01T12:00:00Z"}},
    ]
    lines = jobs_table(items, now).splitlines()
    assert "SUBMITTED (UTC)" in lines[0] and "FINISHED (UTC)" in lines[0]
    assert lines[1].split() == [
        "a", "Succeeded", "2024-01-01", "12:00:00", "2024-01-01", "12:00:01",
        "2024-01-01", "12:01:06", "1m05s",
    ]  # fmt: skip
    assert lines[2].split()[1] == "Running" and lines[2].endswith("30s")
    assert duration(None, None) == "-"


def test_service_entry_and_roles_from_the_environment():
    env = {
        **BASE_ENV,
        "JOBS_SERVICE_PORT": "10555",
        "JOBS_NAMESPACE_MODE": "shared",
        "KUBERNETES_NAMESPACE": "valeria",
        "KUBECONFIG": "/etc/kube/config",
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
    }
    hub_config = Config({"VaultIdentity": {"url": "https://vault.example.org"}})
    svc = service_definition(read_settings(env), sys.executable, hub_config)
    assert svc["url"] == "http://127.0.0.1:10555"
    assert svc["environment"] == {
        "KUBECONFIG": "/etc/kube/config",
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "VALERIA_SHARED_CONFIG": '{"VaultIdentity": {"url": "https://vault.example.org"}}',
    }
    assert svc["command"][:3] == [sys.executable, "-m", "valeria_hub.jobs"]
    assert not [arg for arg in svc["command"] if arg.startswith("--VaultIdentity")]
    assert "--JobsServiceApp.shared_namespace=valeria" in svc["command"]
    assert svc["oauth_no_confirm"] is True and svc["info"]["display_name"] == "Batch jobs"
    roles = {r["name"]: r for r in service_roles()}
    assert roles["user"]["scopes"] == ["self", "access:services!service=jobs"]
    assert roles["jobs-service"]["scopes"] == ["list:users", "read:users", "admin:auth_state"]
    default = service_definition(read_settings(BASE_ENV), "python", Config())
    assert default["url"] == "http://127.0.0.1:10101"
    assert default["environment"] == {"VALERIA_SHARED_CONFIG": "{}"}


def test_bad_jobs_settings_are_reported_with_the_others():
    env = {**BASE_ENV, "JOBS_SERVICE_PORT": "http", "JOBS_NAMESPACE_MODE": "team"}
    with pytest.raises(ConfigError) as e:
        read_settings(env)
    assert any("JOBS_SERVICE_PORT" in p for p in e.value.problems)
    assert any("JOBS_NAMESPACE_MODE" in p for p in e.value.problems)


def test_page_paths_and_escaping():
    assert hub_base("/services/jobs/") == "/"
    assert hub_base("/base/services/jobs/") == "/base/"
    page = render_page("<b>x</b>", "/base/services/jobs/")
    assert "/base/hub/static/css/style.min.css" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_show_gives_the_command_as_typed_and_times_with_their_zone(utc, monkeypatch):
    import time

    job = {
        "metadata": {"name": "q", "creation_timestamp": "2024-01-01T12:00:00+00:00"},
        "status": {"start_time": "2024-01-01T12:00:01Z"},
        "spec": {"template": {"spec": {"containers": [
            {"image": "python:3.11", "command": ["sh", "-c", "id; echo $X"], "args": ["a b"]}
        ]}}},
    }  # fmt: skip
    text = details(job)
    assert "Command:   sh -c 'id; echo $X' 'a b'" in text
    assert "Started:   2024-01-01 12:00:01 UTC" in text
    monkeypatch.setenv("TZ", "Europe/Copenhagen")
    time.tzset()
    assert "Started:   2024-01-01 13:00:01 CET" in details(job)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://hub.example.org", "https://hub.example.org/services/jobs/"),
        ("https://hub.example.org/", "https://hub.example.org/services/jobs/"),
        ("https://hub.example.org/hub/home", "https://hub.example.org/services/jobs/"),
        ("https://x.org/jupyter/hub/", "https://x.org/jupyter/services/jobs/"),
        ("https://hub.example.org/services/jobs", "https://hub.example.org/services/jobs/"),
        ("http://127.0.0.1:8000/services/jobs/", "http://127.0.0.1:8000/services/jobs/"),
    ],
)
def test_the_hubs_address_leads_to_the_jobs_service(given, expected):
    assert service_url(given) == expected
