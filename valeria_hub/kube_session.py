"""kubernetes_asyncio's HTTP session without a look at the environment on every request."""

from __future__ import annotations

from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from kubernetes_asyncio import client

# what kubernetes_asyncio gives its session: watch events of large objects exceed
# aiohttp's default read buffer
READ_BUFSIZE = 2**21


def environment_proxy(url: str) -> str | None:
    """The proxy that ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY``
    exempts its host (OpenShift's cluster-wide proxy sets all three in pods)."""
    parts = urlsplit(url)
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme) or None


def without_environment_lookups(api: client.ApiClient) -> client.ApiClient:
    """Give ``api`` a session that reads the proxy settings once, now, and never netrc.

    kubernetes_asyncio opens its aiohttp session with ``trust_env=True``: every request
    then reads ``~/.netrc`` in the loop's default executor (a thread hop per call; with 50
    requests at once they queue for its few threads) and the proxy variables again. The
    API server's credentials come from the kubeconfig or the service account, never
    netrc. Call it inside the running loop that will use ``api``.
    """
    rest = api.rest_client
    if not rest.proxy:
        rest.proxy = environment_proxy(api.configuration.host)
    old = rest.pool_manager
    connector = old.connector
    old.detach()  # the connector (its TLS context and pool) moves to the new session
    rest.pool_manager = aiohttp.ClientSession(
        connector=connector, trust_env=False, read_bufsize=READ_BUFSIZE
    )
    return api
