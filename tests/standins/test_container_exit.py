"""How the kubelet stand-in reports a container's exit (its termination message, as the
real kubelet writes it) and what a container's "image" puts on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from devstack.kube import process
from devstack.kube.kubelet import Kubelet
from devstack.kube.store import Store
from tests.helpers.e2e import require_root
from tests.standins.test_kubelet import as_client_pod, finished, pod, sh, wait_for

NOTEBOOK_BIN = Path(__file__).resolve().parents[2] / ".venv-notebook" / "bin"


@pytest.fixture
async def kubelet(store: Store, tmp_path: Path):
    k = Kubelet(store, root=tmp_path / "node", backoff_base=0.05, backoff_max=0.2)
    await k.start()
    yield k
    await k.stop()


# -- termination messages -------------------------------------------------------------------
def test_termination_message_rules():
    fallback = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    log = b"".join(f"line {i}\n".encode() for i in range(200))
    message = process.termination_message(fallback, 1, None, log)
    assert message.splitlines() == [f"line {i}" for i in range(120, 200)]  # the last 80
    assert process.termination_message(fallback, 1, None, b"x" * 5000) == "x" * 2048
    assert process.termination_message(fallback, 0, None, log) is None  # only on failure
    assert process.termination_message({}, 1, None, log) is None  # policy File: no fallback
    assert process.termination_message(fallback, 1, b"from the file\n", log) == "from the file\n"
    assert process.termination_message({}, 0, b"y" * 9000, b"") == "y" * 4096


async def test_a_failed_container_with_fallback_to_logs_carries_its_message(
    store: Store, kubelet: Kubelet
) -> None:
    p = pod(
        "fails",
        sh("echo starting; echo 'it went wrong' >&2; exit 3", name="main"),
        initContainers=[
            sh(
                "echo 'check failed' >&2; exit 78",
                name="check",
                terminationMessagePolicy="FallbackToLogsOnError",
            )
        ],
    )
    store.create("v1/pods", "default", p)
    done = await finished(store, "fails")
    ended = done["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert (ended["exitCode"], ended["message"]) == (78, "check failed\n")
    as_client_pod(done)

    plain = pod("plain", sh("echo 'it went wrong' >&2; exit 3"))
    store.create("v1/pods", "default", plain)
    done = await finished(store, "plain")
    ended = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert ended["exitCode"] == 3 and "message" not in ended  # the default policy is File


async def test_while_backing_off_the_message_is_in_the_last_state(
    store: Store, kubelet: Kubelet
) -> None:
    """restartPolicy OnFailure (KubeSpawner's): a failed init container is retried."""
    p = pod(
        "retries",
        sh("sleep 60"),
        initContainers=[
            sh(
                "echo nope >&2; exit 78",
                name="check",
                terminationMessagePolicy="FallbackToLogsOnError",
            )
        ],
        restartPolicy="OnFailure",
    )
    store.create("v1/pods", "default", p)

    def backing_off():
        status = store.get("v1/pods", "default", "retries")["status"]
        (check,) = status.get("initContainerStatuses") or [{}]
        return check.get("restartCount", 0) >= 1 and check

    check = await wait_for(backing_off)
    assert check["lastState"]["terminated"]["message"] == "nope\n"
    assert store.get("v1/pods", "default", "retries")["status"]["phase"] == "Pending"


# -- the "image" PATH ------------------------------------------------------------------------
def test_the_notebook_venv_comes_first_when_it_exists(tmp_path):
    assert process.image_path(tmp_path / "missing").split(os.pathsep)[0] != str(
        tmp_path / "missing"
    )
    (tmp_path / "bin").mkdir()
    assert process.image_path(tmp_path / "bin").split(os.pathsep)[0] == str(tmp_path / "bin")


def test_python_on_the_image_path_runs_as_another_uid():
    """The dev venv's python links into the operator's home, which other uids cannot
    enter; a notebook or job running as the person's uid must still find a python."""
    require_root("running python as another uid")
    if not NOTEBOOK_BIN.is_dir():
        pytest.fail(f"{NOTEBOOK_BIN} is missing: `make` builds the notebook venv")
    done = subprocess.run(
        ["python", "-c", "import sys; print(sys.version_info[0])"],
        env={"PATH": process.image_path()},
        user=4242,
        group=4242,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "3"), done.stderr
