"""The storage check: its shell script run for real as a person's uid, and how a pod's
status is read for its failure (storage.storage_check_failure)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers.e2e import require_root
from valeria_hub.storage import (
    STORAGE_CHECK_CONTAINER,
    STORAGE_CHECK_EXIT,
    STORAGE_CHECK_SCRIPT,
    storage_check_failure,
)

UID = 23456


@pytest.fixture
def export():
    """A directory other uids can enter (pytest's own tmp dirs are root's, mode 0700)."""
    base = Path(tempfile.mkdtemp(prefix="valeria-check-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


def run_check(*dirs: tuple[str, Path]) -> subprocess.CompletedProcess:
    require_root("running the check as another uid")
    args = [a for name, path in dirs for a in (name, str(path))]
    return subprocess.run(
        ["sh", "-c", STORAGE_CHECK_SCRIPT, STORAGE_CHECK_CONTAINER, str(UID), *args],
        user=UID,
        group=UID,
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )


def own(path: Path, uid: int = UID, mode: int = 0o700) -> Path:
    path.mkdir(exist_ok=True)
    os.chown(path, uid, uid)
    path.chmod(mode)
    return path


def test_usable_directories_pass(export):
    done = run_check(("home", own(export / "home")), ("scratch", own(export / "scratch")))
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "does not exist"),
        (lambda p: own(p, 0, 0o755), f"is not writable by your uid {UID} (it has uid 0, mode 755)"),
        (lambda p: own(p, 1, 0o700), f"is not writable by your uid {UID} (it has uid 1, mode 700)"),
        (lambda p: own(p, UID, 0o500), f"is not writable by your uid {UID} (it has uid {UID}"),
    ],
)
def test_a_missing_or_unwritable_directory_fails_naming_it(export, make, problem):
    make(export / "scratch")
    done = run_check(("home", own(export / "home")), ("scratch", export / "scratch"))
    assert done.returncode == STORAGE_CHECK_EXIT
    line = f"valeria-hub storage check: your scratch directory {export}/scratch {problem}"
    assert done.stderr.startswith(line), done.stderr


def pod(*states: dict, name: str = STORAGE_CHECK_CONTAINER) -> dict:
    return {"status": {"initContainerStatuses": [{"name": name, **s} for s in states]}}


MESSAGE = "your home directory /home/a is not writable by your uid 5 (it has uid 0, mode 755)"


def test_the_failure_is_read_from_the_state_or_while_backing_off_from_the_last_state():
    ended = {
        "terminated": {"exitCode": 78, "message": f"x\nvaleria-hub storage check: {MESSAGE}\n"}
    }
    assert storage_check_failure(pod({"state": ended})) == MESSAGE
    waiting = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert storage_check_failure(pod({"state": waiting, "lastState": ended})) == MESSAGE


def test_without_its_message_the_runtimes_reason_is_given():
    start = {
        "exitCode": 128,
        "reason": "StartError",
        "message": 'failed to start container process: exec: "sh": executable file not found',
    }
    found = storage_check_failure(pod({"state": {"terminated": start}}))
    assert found.startswith("the check of your storage failed (StartError, exit code 128: ")
    assert 'exec: "sh"' in found
    plain = storage_check_failure(pod({"state": {"terminated": {"exitCode": 1}}}))
    assert plain == "the check of your storage failed (Error, exit code 1)"


def test_no_failure_while_running_after_success_or_for_other_containers():
    assert storage_check_failure({"status": {}}) is None
    assert storage_check_failure(pod({"state": {"running": {}}})) is None
    assert storage_check_failure(pod({"state": {"terminated": {"exitCode": 0}}})) is None
    other = pod({"state": {"terminated": {"exitCode": 3}}}, name="site-setup")
    assert storage_check_failure(other) is None


def test_a_long_message_is_cut():
    long = "valeria-hub storage check: " + "x" * 5000
    found = storage_check_failure(pod({"state": {"terminated": {"exitCode": 78, "message": long}}}))
    assert found == "x" * 300
