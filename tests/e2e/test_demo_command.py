"""`python -m devstack demo`: starts, prints its URLs and users, serves the login page, spawns,
and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx

from devstack.hub import free_port
from tests.helpers.e2e import browser, notebook_processes, progress_events, spawn, start_cli


def processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            blob = (
                Path(f"/proc/{pid}/cmdline").read_bytes()
                + Path(f"/proc/{pid}/environ").read_bytes()
            )
        except OSError:
            continue
        if text.encode() in blob and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def test_demo_starts_serves_spawns_and_stops_cleanly(tmp_path):
    ports = {name: free_port() for name in ("port", "hub-api", "proxy-api", "kc", "vault", "kube")}
    state = tmp_path / "demo-state"
    proc, output = start_cli(
        "demo",
        "--state-dir",
        str(state),
        "--port",
        str(ports["port"]),
        "--hub-api-port",
        str(ports["hub-api"]),
        "--proxy-api-port",
        str(ports["proxy-api"]),
        "--keycloak-port",
        str(ports["kc"]),
        "--vault-port",
        str(ports["vault"]),
        "--kube-port",
        str(ports["kube"]),
    )
    public = f"http://127.0.0.1:{ports['port']}"
    try:
        out = output.wait_for("Ctrl-C stops everything.", timeout=120)
        assert f"{public}/hub/login" in out
        assert f"http://127.0.0.1:{ports['kc']}/realms/valeria" in out
        assert f"http://127.0.0.1:{ports['vault']}" in out
        for user in ("alice", "bob", "carol", "admin"):
            assert user in out
        assert httpx.get(f"{public}/hub/login", timeout=10).status_code == 200

        hub = SimpleNamespace(
            public_url=public,
            env={"JUPYTERHUB_HUB_BIND_URL": f"http://127.0.0.1:{ports['hub-api']}"},
        )
        client = browser(hub, "alice")
        spawn(client, hub)
        assert progress_events(client, hub, "alice")[-1].get("ready")
        assert notebook_processes("alice", hub)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0
    output.thread.join(10)
    assert "Stopped." in output.text
    time.sleep(1)
    assert not notebook_processes("alice", hub)
    assert not processes_mentioning(str(state))
