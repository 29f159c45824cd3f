"""A Kubernetes client reads the proxy environment once, not at every request
(valeria_hub.kube_session.without_environment_lookups, for the spawner's client)."""

from __future__ import annotations

from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from valeria_hub.kube_session import without_environment_lookups


def clear_proxies(monkeypatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


async def test_a_proxy_in_the_environment_is_kept_as_an_explicit_proxy(monkeypatch):
    clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    api = ApiClient(Configuration(host="https://api.example:6443"))
    try:
        assert api.rest_client.pool_manager.trust_env
        without_environment_lookups(api)
        assert not api.rest_client.pool_manager.trust_env
        assert api.rest_client.proxy == "http://proxy.example:3128"
        assert api.rest_client.proxy_headers["Proxy-Authorization"].startswith("Basic ")
    finally:
        await api.close()


async def test_no_proxy_for_an_api_server_the_environment_exempts(monkeypatch):
    clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "api.example")
    api = ApiClient(Configuration(host="https://api.example:6443"))
    try:
        without_environment_lookups(api)
        assert not api.rest_client.pool_manager.trust_env
        assert not api.rest_client.proxy
    finally:
        await api.close()


async def test_requests_still_reach_the_api_server(monkeypatch):
    clear_proxies(monkeypatch)

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "30", "gitVersion": "v1.30.0"})

    async def namespaces(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer sekret"
        return web.json_response({"apiVersion": "v1", "kind": "NamespaceList", "items": []})

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/api/v1/namespaces", namespaces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    config = Configuration(host=f"http://127.0.0.1:{port}")
    config.api_key = {"BearerToken": "sekret"}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    api = ApiClient(config)
    try:
        without_environment_lookups(api)
        listed = await CoreV1Api(api).list_namespace()
        assert listed.items == []
    finally:
        await api.close()
        await runner.cleanup()
