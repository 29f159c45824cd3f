"""The kubelet's container processes: started in a worker thread so the API server's
loop keeps answering, their exit seen without blocking it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

from devstack.kube import process


def launch(argv: list[str], tmp_path) -> process.Launch:
    return process.Launch(argv, {"PATH": "/usr/bin:/bin"}, str(tmp_path), process.Identity())


def test_exit_code_log_and_concurrent_waits(tmp_path):
    log = tmp_path / "c.log"

    async def run() -> None:
        argv = ["sh", "-c", "echo hello; exit 3"]
        proc = await process.spawn(launch(argv, tmp_path), log, namespaced=False)
        assert proc.pid > 0
        first, second = await asyncio.gather(proc.wait(), proc.wait())
        assert (first, second, proc.returncode) == (3, 3, 3)

    asyncio.run(run())
    assert log.read_bytes() == b"hello\n"


def test_the_fork_is_off_the_loop_and_terminate_kills_it(tmp_path, monkeypatch):
    started_in: list[str] = []

    class Watched(subprocess.Popen):
        def __init__(self, *args, **kwargs) -> None:
            started_in.append(threading.current_thread().name)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(process.subprocess, "Popen", Watched)

    async def run() -> None:
        argv = [sys.executable, "-c", "import time; time.sleep(60)"]
        proc = await process.spawn(launch(argv, tmp_path), tmp_path / "s.log", namespaced=False)
        assert started_in and started_in[0] != threading.current_thread().name
        t0 = time.monotonic()
        await process.terminate(proc, grace=5)
        assert proc.returncode is not None and proc.returncode < 0
        assert time.monotonic() - t0 < 5

    asyncio.run(run())


def test_a_priority_reaches_the_containers_session_and_its_children(tmp_path):
    """``nice``: the container and what it starts run at that priority, and so does its
    whole session's autogroup (where a process's own nice value alone weighs only
    against its session's other processes)."""
    log = tmp_path / "n.log"
    autogroup = "cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup'"
    # the child reports after a moment: the priority is set once the process has started
    argv = ["sh", "-c", f"sleep 0.3; sh -c 'cut -d\" \" -f19 /proc/$$/stat; {autogroup}'"]

    async def run(nice: int | None) -> list[str]:
        log.write_bytes(b"")
        proc = await process.spawn(launch(argv, tmp_path), log, namespaced=False, nice=nice)
        assert await proc.wait() == 0
        return log.read_text().split("\n")

    niced = asyncio.run(run(19))
    assert niced[0] == "19", niced
    if niced[1] != "no autogroup":  # kernels without CONFIG_SCHED_AUTOGROUP
        assert niced[1].endswith("nice 19"), niced
    plain = asyncio.run(run(None))
    assert plain[0] == str(os.getpriority(os.PRIO_PROCESS, 0)), plain
