"""``python -m devstack demo``: the stand-ins plus a real JupyterHub on http://127.0.0.1:8000.

The hub is configured by the repository's ``jupyterhub_config.py``; only environment
variables differ from production. Ctrl-C stops the hub, its proxy, every notebook
process and the stand-ins.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from pathlib import Path

from .hub import HubProcess, find_proxy
from .stack import DEMO_PORTS, DevStack, demo_users_text


def persistent_secrets(path: Path) -> dict[str, str]:
    """The demo hub's crypt key and cookie secret, kept so a restart keeps its database."""
    try:
        data = json.loads(path.read_text())
        if data.get("JUPYTERHUB_CRYPT_KEY") and data.get("JUPYTERHUB_COOKIE_SECRET"):
            return data
    except (OSError, ValueError):
        pass
    data = {
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
        "JUPYTERHUB_COOKIE_SECRET": secrets.token_hex(32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return data


def run_demo(
    state_dir: Path,
    port: int = 8000,
    *,
    ports: dict[str, int] | None = None,
    hub_api_port: int = 8081,
    proxy_api_port: int = 8001,
) -> int:
    if find_proxy() is None:
        print(
            "configurable-http-proxy was not found: run `make demo` "
            "(it installs it into .node/) or `npm install -g configurable-http-proxy`."
        )
        return 1
    state_dir = state_dir.resolve()

    async def main() -> int:
        stack = DevStack(state_dir, ports={**DEMO_PORTS, **(ports or {})}, openshift=True)
        public = f"http://127.0.0.1:{port}"
        hub: HubProcess | None = None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            try:
                await stack.start()
            except OSError as e:
                print(f"Could not start the stand-ins: {e.strerror or e}. Is another demo running?")
                return 1
            stack.allow_redirects_to(public)
            env = stack.hub_environment(
                public_url=public, hub_port=hub_api_port, proxy_api_port=proxy_api_port
            )
            env.update(persistent_secrets(state_dir / "hub" / "secrets.json"))
            hub = HubProcess(env, state_dir / "hub", public_url=public)
            print("Starting the stand-ins and JupyterHub ...", flush=True)
            await hub.astart()
            print(
                f"\nthe valeria-hub demo is running.\n\n  JupyterHub      {public}/hub/login\n"
                f"{stack.describe()}\n  Hub log         {hub.log_path}\n\n"
                f"Users (password = name):\n{demo_users_text()}\n\nCtrl-C stops everything.",
                flush=True,
            )
            while not stop.is_set():
                if hub.proc is None or hub.proc.poll() is not None:
                    print("JupyterHub exited:\n" + hub.log_tail(), flush=True)
                    return 1
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1)
                except TimeoutError:
                    pass
            return 0
        finally:
            print("\nStopping ...", flush=True)
            if hub is not None:
                await hub.astop()
            await stack.stop()
            print("Stopped.", flush=True)

    return asyncio.run(main())
