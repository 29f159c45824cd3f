"""``valeria-hub jobs``: the CLI against the running service (real hub, stand-ins, real HTTP)
through the hub's proxy, and its one-line errors for every kind of failure."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devstack.hub import free_port
from tests.helpers.jobs_stack import UIDS, hub_login, jobs_stack, user_token
from valeria_hub.cli import main
from valeria_hub.jobs.naming import user_namespace
from valeria_hub.jobs_client.api import JobsClient
from valeria_hub.jobs_client.tables import cronjobs_table, jobs_table

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with jobs_stack(tmp_path_factory.mktemp("jobs-cli"), code_max_bytes=20_000) as s:
        for name in UIDS:
            hub_login(s.hub_url, name)
        yield s


@pytest.fixture(scope="module")
def alice_token(stack):
    return user_token(stack.hub_url, "alice")


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run ``valeria-hub jobs ...`` in-process with its own config directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("VALERIA_JOBS_URL", raising=False)
    monkeypatch.delenv("VALERIA_JOBS_TOKEN", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["jobs", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def configured(cli, stack, alice_token):
    code, out, err = cli("configure", "--url", stack.hub_url, "--token", alice_token)
    assert code == 0, err
    return cli


def test_configure_finds_the_service_checks_the_token_and_keeps_it_private(
    cli, stack, alice_token, tmp_path
):
    path = tmp_path / "config" / "valeria-hub" / "jobs.json"
    code, out, err = cli("configure", "--url", stack.hub_url, "--token", "not-a-token")
    assert code == 1 and "log in to the hub again" in err and err.count("\n") == 1
    assert not path.exists()

    code, out, err = cli("configure", "--url", stack.hub_url, "--token", alice_token)
    assert code == 0, err
    assert f"{stack.hub_url}/services/jobs/" in out and "alice" in out
    assert alice_token not in out + err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "url": f"{stack.hub_url}/services/jobs/",
        "token": alice_token,
    }


def test_submit_list_show_follow_logs_and_delete(configured, stack, tmp_path, alice_token):
    cli = configured
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "main.py").write_text("import os\nprint('from-code', os.environ['GREETING'])\n")
    code, out, err = cli(
        "submit", "--image", "python:3.11", "--name", "cli-job", "-e", "GREETING=hello",
        "--code", str(code_dir), "--", "sh", "-c", "id -u; sleep 1; python3 main.py",
    )  # fmt: skip
    assert code == 0, err
    namespace = user_namespace("valeria-jobs-", "alice")
    assert out.strip() == f"job cli-job submitted (namespace {namespace})"

    code, out, err = cli("logs", "cli-job", "--follow")
    assert code == 0, err
    assert out.splitlines()[-2:] == [str(UIDS["alice"][0]), "from-code hello"]

    code, out, err = cli("events", "cli-job")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["LAST", "SEEN"] and header.split()[3:5] == ["TYPE", "REASON"]
    seen = {(r.split()[3], r.split()[4]) for r in rows}  # date, time, type, reason, object
    assert ("SuccessfulCreate", "Job/cli-job") in seen and ("Completed", "Job/cli-job") in seen
    assert any(obj.startswith("Pod/cli-job-") for _, obj in seen)
    code, out, err = cli("events", "cli-job", "-o", "json")
    assert "Completed" in [e["reason"] for e in json.loads(out)["items"]]
    code, out, err = cli("events", "no-such-job")
    assert code == 1 and err.startswith("error: not found:")

    code, out, err = cli("list")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["NAME", "STATUS", "SUBMITTED"]
    row = next(r for r in rows if r.startswith("cli-job "))
    assert row.split()[1] == "Succeeded"

    code, out, err = cli("list", "--output", "json")
    whole = {i["metadata"]["name"]: i for i in json.loads(out)["items"]}
    # -o json: the whole objects, as scripts read them (the table comes from summaries)
    assert whole["cli-job"]["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.11"
    assert row == jobs_table([whole["cli-job"]]).splitlines()[1]
    code, out, err = cli("list", "-o", "name")
    assert code == 0 and "cli-job" in out.splitlines()
    with JobsClient(stack.hub_url + "/services/jobs/", alice_token) as c:
        summaries = c.list("Job", summary=True)["items"]
    assert summaries and all("spec" not in i for i in summaries)
    assert {i["metadata"]["name"] for i in summaries} == set(whole)

    code, out, err = cli("show", "cli-job")
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["Status"].strip() == "Succeeded"
    assert fields["Image"].strip() == "python:3.11"
    assert fields["Pod"].strip().startswith("cli-job-")
    code, out, err = cli("show", "cli-job", "-o", "json")
    assert json.loads(out)["metadata"]["namespace"] == namespace

    code, out, err = cli("logs", "cli-job")
    assert out.splitlines()[-1] == "from-code hello"

    code, out, err = cli("submit", "--image", "python:3.11", "--name", "cli-job", "--", "true")
    assert code == 1 and err.startswith("error: conflict:") and "cli-job" in err

    code, out, err = cli("delete", "cli-job")
    assert code == 0 and out.strip() == "job cli-job deleted"
    code, out, err = cli("show", "cli-job")
    assert code == 1 and err.strip() == "error: not found: Job 'cli-job' not found"


def test_submit_from_a_kbatch_style_file(configured, tmp_path):
    cli = configured
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "run.sh").write_text("echo file-job $MODE\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(
        textwrap.dedent("""
            name: from-file
            image: python:3.11
            command: ["sh", "run.sh"]
            env: {MODE: yaml}
            code: src
            profile: small
        """)
    )
    code, out, err = cli("submit", "-f", str(spec), "-o", "name")
    assert code == 0, err
    assert out.strip() == "from-file"
    code, out, err = cli("logs", "from-file", "-f")
    assert code == 0, err
    assert out.splitlines()[-1] == "file-job yaml"
    assert cli("delete", "from-file")[0] == 0


def test_cronjob_submit_list_show_delete(configured):
    cli = configured
    code, out, err = cli("cronjob", "submit", "--image", "python:3.11", "--", "true")
    assert code == 2 and "--schedule is required" in err
    code, out, err = cli(
        "cronjob", "submit", "--image", "python:3.11", "--name", "nightly",
        "--schedule", "0 3 * * *", "--command", "echo nightly",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("cronjob nightly submitted")
    code, out, err = cli("cronjob", "list")
    row = next(r for r in out.splitlines() if r.startswith("nightly "))
    assert "0 3 * * *" in row
    code, out, err = cli("cronjob", "list", "-o", "json")
    [whole] = [i for i in json.loads(out)["items"] if i["metadata"]["name"] == "nightly"]
    assert row == cronjobs_table([whole]).splitlines()[1]
    code, out, err = cli("cronjob", "show", "nightly")
    assert "Schedule:" in out and "0 3 * * *" in out
    assert cli("cronjob", "delete", "nightly")[:2] == (0, "cronjob nightly deleted\n")
    code, out, err = cli("cronjob", "list", "-o", "json")
    assert "nightly" not in [i["metadata"]["name"] for i in json.loads(out)["items"]]


def test_refusals_are_one_line_errors_naming_the_problem(configured, stack, tmp_path, monkeypatch):
    cli = configured
    # 422: the service's policy names the field
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        textwrap.dedent("""
            apiVersion: batch/v1
            kind: Job
            metadata: {generateName: bad-}
            spec:
              template:
                spec:
                  hostNetwork: true
                  restartPolicy: Never
                  containers: [{name: job, image: python:3.11}]
        """)
    )
    code, out, err = cli("submit", "-f", str(manifest))
    assert code == 1 and err.startswith("error: invalid job: spec.template.spec.hostNetwork")
    assert err.count("\n") == 1
    # 413: the zipped code is larger than the service accepts
    big = tmp_path / "big"
    big.mkdir()
    (big / "data.bin").write_bytes(os.urandom(40_000))
    code, out, err = cli("submit", "--image", "python:3.11", "--code", str(big), "--", "true")
    assert code == 1 and err.startswith("error: too large: code:") and "20000" in err
    # 503: the cluster fails
    namespace = user_namespace("valeria-jobs-", "alice")
    stack.kube.call(
        stack.kube.faults.inject, f"/apis/batch/v1/namespaces/{namespace}/jobs", status=500, times=1
    )
    code, out, err = cli("show", "some-job")  # lists come from the service's memory
    assert code == 1
    assert err == (
        "error: the service is unavailable: could not read the Job: "
        "the cluster answered 500 (Internal Server Error)\n"
    )
    # usage errors never reach the service
    code, out, err = cli("submit", "--image", "x", "-e", "NOVALUE", "--", "true")
    assert code == 2 and err.strip() == "error: --env 'NOVALUE': expected KEY=VALUE"


def test_token_errors_401_and_403(cli, stack, monkeypatch):
    monkeypatch.setenv("VALERIA_JOBS_URL", stack.service.url)
    monkeypatch.setenv("VALERIA_JOBS_TOKEN", "revoked-or-wrong")
    code, out, err = cli("list")
    assert code == 1 and "log in to the hub again" in err and "revoked-or-wrong" not in err
    narrow = user_token(stack.hub_url, "bob", scopes=["read:users!user=bob"])
    monkeypatch.setenv("VALERIA_JOBS_TOKEN", narrow)
    code, out, err = cli("list")
    assert code == 1
    assert err.strip() == (
        "error: forbidden: the token lacks the 'access:services!service=jobs' scope"
    )


def test_unreachable_service_and_missing_configuration(cli, monkeypatch):
    code, out, err = cli("list")
    assert code == 2 and "valeria-hub jobs configure" in err
    monkeypatch.setenv("VALERIA_JOBS_URL", f"http://127.0.0.1:{free_port()}/services/jobs/")
    monkeypatch.setenv("VALERIA_JOBS_TOKEN", "whatever")
    code, out, err = cli("list")
    assert code == 3 and err.startswith("error: cannot reach the jobs service at http://127.0.0.1:")


def test_the_installed_command(stack, alice_token, tmp_path):
    """The console script itself, as a user runs it."""
    exe = Path(sys.executable).parent / "valeria-hub"
    env = {
        **os.environ,
        "VALERIA_JOBS_URL": stack.service.url,
        "VALERIA_JOBS_TOKEN": alice_token,
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [str(exe), "jobs", "profiles"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["medium", "small"]


@pytest.mark.parametrize("given", ["", "/", "/hub/home"])
def test_the_hubs_address_works_for_every_command_without_configure(
    cli, stack, alice_token, monkeypatch, given
):
    """What a person types first (the hub's address, as in their browser) leads to the
    jobs service for every command, not only `configure`."""
    monkeypatch.setenv("VALERIA_JOBS_URL", stack.hub_url + given)
    monkeypatch.setenv("VALERIA_JOBS_TOKEN", alice_token)
    code, out, err = cli("list", "--output", "json")
    assert code == 0, err
    assert isinstance(json.loads(out), list | dict)
    code, out, err = cli("delete", "no-such-job")
    assert code == 1 and "not found" in err, err  # not a redirect, not "forbidden"
    code, out, err = cli("--url", stack.hub_url + given, "cronjob", "list")
    assert code == 0, err
