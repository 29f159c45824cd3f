"""The real kbatch client (the version the Makefile installs into .venv-kbatch) against the
running jobs service: configure, submit with code, list, show, pods, logs, cronjobs, delete.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.jobs_stack import UIDS, hub_login, jobs_stack, user_token

pytestmark = pytest.mark.e2e

KBATCH = Path(__file__).resolve().parents[2] / ".venv-kbatch" / "bin" / "kbatch"
# kbatch logs every HTTP request (rich's log handler) to stdout, before its own output
LOG_LINE = re.compile(r"^(\[[\d:]+\])?\s*(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s{2,}")


def require_kbatch() -> None:
    if KBATCH.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{KBATCH} is missing (CI=true): run `make .venv-kbatch/.installed`")
    pytest.skip(f"{KBATCH} is missing: `make test` builds it")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_kbatch()
    # kbatch fetches /profiles/ without its token
    with jobs_stack(tmp_path_factory.mktemp("kbatch"), public_profiles=True) as s:
        hub_login(s.hub_url, "alice")
        yield s


@pytest.fixture(scope="module")
def kbatch(stack, tmp_path_factory):
    home = tmp_path_factory.mktemp("kbatch-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "COLUMNS": "400",  # rich wraps at the terminal width
        "LANG": "C.UTF-8",
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(KBATCH), *args], env=env, capture_output=True, text=True, timeout=90
        )
        if check:
            assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        lines = done.stdout.splitlines(keepends=True)
        done.stdout = "".join(line for line in lines if not LOG_LINE.match(line))
        return done

    token = user_token(stack.hub_url, "alice")
    done = run("configure", "--kbatch-url", stack.service.url, "--token", token)
    config = json.loads((home / "config" / "kbatch" / "config.json").read_text())
    assert config == {"kbatch_url": stack.service.url, "token": token}
    assert token not in done.stdout
    return run


def wait_finished(kbatch, name: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = json.loads(kbatch("job", "show", name).stdout)
        if job["status"].get("succeeded") or job["status"].get("failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"{name} did not finish: {job['status']}")


def test_kbatch_job_lifecycle_with_code(kbatch, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "hello.py").write_text("print('hello from kbatch code')\n")
    name = kbatch(
        "job", "submit", "--name", "hello", "--image", "python:3.11",
        "--command", '["sh", "-c", "id -u; echo hi; python3 hello.py"]',
        "--code", str(code), "--output", "name",
    ).stdout.strip()  # fmt: skip
    assert name.startswith("hello-")
    job = wait_finished(kbatch, name)
    assert job["status"]["succeeded"] == 1
    assert job["metadata"]["creation_timestamp"]

    listed = json.loads(kbatch("job", "list").stdout)
    assert name in [j["metadata"]["name"] for j in listed["items"]]
    table = kbatch("job", "list", "--output", "table").stdout
    assert name in table and "done" in table

    pods = kbatch("pod", "list", "--job-name", name, "--output", "name").stdout.split()
    assert len(pods) == 1 and pods[0].startswith(name)
    pod_table = kbatch("pod", "list", "--output", "table").stdout
    assert pods[0] in pod_table and "Succeeded" in pod_table

    # (kbatch 0.4.2's --no-pretty fails with UnboundLocalError: the default output is used)
    logs = [line for line in kbatch("pod", "logs", pods[0]).stdout.splitlines() if line]
    assert logs[-3:] == [str(UIDS["alice"][0]), "hi", "hello from kbatch code"]
    streamed = kbatch("pod", "logs", pods[0], "--stream").stdout
    assert "hello from kbatch code" in streamed

    deleted = json.loads(kbatch("job", "delete", name).stdout)
    assert deleted.get("status") == "Success" or deleted.get("kind") == "Status"
    missing = kbatch("job", "show", name, check=False)
    assert missing.returncode != 0
    assert "404" in missing.stdout + missing.stderr


def test_kbatch_profiles_and_cronjobs(kbatch):
    profiles = json.loads(kbatch("profiles").stdout)
    assert set(profiles) == {"small", "medium"}

    name = kbatch(
        "cronjob", "submit", "--name", "nightly", "--image", "python:3.11",
        "--command", '["echo", "nightly"]', "--schedule", "0 3 * * *", "--output", "name",
    ).stdout.strip()  # fmt: skip
    assert name.startswith("nightly-cron-")
    shown = json.loads(kbatch("cronjob", "show", name).stdout)
    assert shown["spec"]["schedule"] == "0 3 * * *"
    table = kbatch("cronjob", "list", "--output", "table").stdout
    assert name in table and "0 3 * * *" in table
    kbatch("cronjob", "delete", name)
    listed = json.loads(kbatch("cronjob", "list").stdout)
    assert name not in [c["metadata"]["name"] for c in listed["items"]]


def test_kbatch_with_a_bad_token_is_refused(kbatch, stack):
    done = kbatch(
        "job", "list", "--token", "not-a-hub-token", "--kbatch-url", stack.service.url, check=False
    )
    assert done.returncode != 0
    assert "401" in done.stdout + done.stderr
