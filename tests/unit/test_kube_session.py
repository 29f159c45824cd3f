"""The Kubernetes client's session reads the environment once: calls do not queue behind
the loop's thread pool, and a proxy named by the environment is still used."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from devstack.kube.kubeconfig import write_kubeconfig
from devstack.kube.server import KubeStandIn
from valeria_hub.jobs.kube import Kube


@pytest.fixture
async def kube_url() -> AsyncIterator[str]:
    standin = KubeStandIn(run_kubelet=False, run_controllers=False)
    url = await standin.start()
    try:
        yield url
    finally:
        await standin.stop()


async def connect(tmp_path, url: str) -> Kube:
    config = write_kubeconfig(tmp_path / "kubeconfig", url, "any", namespace="default")
    return await Kube.connect(str(config), timeout=5)


async def test_calls_go_on_while_the_default_thread_pool_is_busy(tmp_path, kube_url, monkeypatch):
    """kubernetes_asyncio's own session looks up ~/.netrc in the default executor on every
    request: with its threads taken (other work, or 50 requests at once) calls waited."""
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    kube = await connect(tmp_path, kube_url)
    loop = asyncio.get_running_loop()
    release = threading.Event()
    # more blocked jobs than the default executor has threads
    blocked = [loop.run_in_executor(None, release.wait, 30) for _ in range(64)]
    try:
        namespace = await asyncio.wait_for(kube.read_namespace("default"), 5)
        assert namespace is not None and namespace["metadata"]["name"] == "default"
    finally:
        release.set()
        await asyncio.gather(*blocked)
        await kube.close()


async def test_a_proxy_from_the_environment_is_used_and_no_proxy_is_honoured(
    tmp_path, kube_url, monkeypatch
):
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:  # answers as the API would not
        seen.append(str(request.url))
        return web.json_response({"kind": "Status", "code": 503}, status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("NO_PROXY", "")
        kube = await connect(tmp_path, kube_url)
        try:
            with pytest.raises(Exception):  # noqa: B017 - the proxy's 503, whatever its form
                await kube.read_namespace("default")
        finally:
            await kube.close()
        assert seen and seen[0].endswith("/api/v1/namespaces/default")

        seen.clear()
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        kube = await connect(tmp_path, kube_url)
        try:
            assert (await kube.read_namespace("default"))["metadata"]["name"] == "default"
        finally:
            await kube.close()
        assert seen == []
    finally:
        await runner.cleanup()
