"""Telling the hub's services that a person's login ended.

A service that keeps something of a person's login in memory (the jobs service keeps
the access token the hub gave it and the Vault profile read with it) learns at once
that it must go: ``POST {service url}{prefix}hub-events/login-ended`` with the person's
name, authorized with the service's own API token, which only the hub and the service
know. A failure is logged and never stops the logout; the service then notices the
ending when it next asks the hub (its recheck interval bounds that).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

EVENT_PATH = "hub-events/login-ended"


def event_url(service: Any) -> str | None:
    """Where a service takes the event; None for a service without a URL or token."""
    url, token = getattr(service, "url", None), getattr(service, "api_token", None)
    if not url or not token:
        return None
    prefix = getattr(service, "prefix", "/") or "/"
    return url.rstrip("/") + "/" + prefix.strip("/") + "/" + EVENT_PATH


async def tell_login_ended(
    client: httpx.AsyncClient,
    services: Mapping[str, Any],
    names: Iterable[str],
    usernames: Iterable[str],
    *,
    log: logging.Logger | Any,
) -> None:
    """Tell each named service, concurrently, that these people's logins ended
    (``client`` carries the timeout; one client for the hub's life, since making one
    loads the CA bundle)."""
    calls = []
    people = list(usernames)
    for name in names:
        service = services.get(name)
        url = event_url(service) if service is not None else None
        if url is None:
            log.warning("Cannot tell service %r that a login ended: no URL or token", name)
            continue
        headers = {"Authorization": f"token {service.api_token}"}
        for person in people:
            calls.append(_tell(client, name, url, headers, person, log))
    await asyncio.gather(*calls)


async def _tell(
    client: httpx.AsyncClient, name: str, url: str, headers: dict, person: str, log: Any
) -> None:
    try:
        resp = await client.post(url, json={"name": person}, headers=headers)
    except httpx.HTTPError as e:
        log.warning("Could not tell service %r that %s's login ended: %s", name, person,
                    type(e).__name__)  # fmt: skip
        return
    if resp.status_code != 204:
        log.warning("Service %r answered HTTP %s to %s's login ending", name,
                    resp.status_code, person)  # fmt: skip
