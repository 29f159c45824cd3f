"""Scenario 3: what token refresh costs Keycloak.

Burst: one user, whose access token has just expired, makes 50 concurrent requests to
the hub: Keycloak must see exactly one refresh (Keycloak rotates refresh tokens; a
second refresh with the same token would end the session) and no request may fail.

Session: users browse for a simulated 10 minutes with 60-second access tokens. The
hub's own clock cannot be moved, so time is scaled 1:10: 6-second tokens,
``auth_refresh_age`` 6 s, a request every second per user, for 60 s (= 10 token
lifetimes). The figure is token-endpoint calls per user per token lifetime.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from .common import BenchHub, bench_hub, bench_stack, bench_users, login, user_client

NAME = "token_refresh"
SCALE = 10  # simulated seconds per real second


def refreshes(kc: Any) -> int:
    """Refresh-token grants Keycloak has answered (every client)."""
    return sum(kc.call(kc.token_counts).get("refresh_token", {}).values())


async def signed_in(hub: BenchHub, user: str) -> httpx.AsyncClient:
    client = user_client(timeout=60)
    resp = await login(client, hub.url, user)
    if resp.status_code != 200 or not str(resp.url).startswith(hub.url):
        raise RuntimeError(f"{user} could not log in: {resp.status_code} {resp.url}")
    return client


async def request_ok(client: httpx.AsyncClient, hub: BenchHub) -> bool:
    """A page load that stays signed in (no detour to the login page)."""
    try:
        resp = await client.get(f"{hub.url}/hub/home")
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and "/hub/login" not in str(resp.url)


async def burst(stack: Any, hub: BenchHub, lifetime: int, n: int) -> dict[str, Any]:
    kc = stack.keycloak
    client = await signed_in(hub, "alice")
    try:
        # the access token has just expired, and auth_refresh_age has passed
        await asyncio.sleep(lifetime + 0.5)
        before = refreshes(kc)
        results = await asyncio.gather(*(request_ok(client, hub) for _ in range(n)))
        calls = refreshes(kc) - before
    finally:
        await client.aclose()
    return {
        "concurrent_requests": n,
        "token_endpoint_calls": calls,
        "failures": results.count(False),
        "targets": {
            "token_endpoint_calls==1": calls == 1,
            "failures==0": results.count(False) == 0,
        },
    }


async def session(stack: Any, hub: BenchHub, users: list[str], seconds: float) -> dict[str, Any]:
    kc = stack.keycloak
    clients = await asyncio.gather(*(signed_in(hub, u) for u in users))
    failures = 0

    async def browse(client: httpx.AsyncClient) -> None:
        nonlocal failures
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if not await request_ok(client, hub):
                failures += 1
            await asyncio.sleep(1.0)

    before = refreshes(kc)
    try:
        await asyncio.gather(*(browse(c) for c in clients))
    finally:
        for c in clients:
            await c.aclose()
    return {"calls": refreshes(kc) - before, "failures": failures}


def run(workdir: Path, quick: bool = False) -> dict[str, Any]:
    lifetime = 60 // SCALE
    session_seconds = 6 if quick else 600 // SCALE
    users = bench_users(1 if quick else 10, prefix="r")
    with bench_stack(workdir, users) as stack:
        stack.keycloak.call(stack.keycloak.set_lifetimes, access_token_lifespan=lifetime)
        # auth_refresh_age = the token lifetime; margin: 30 s of a 60-s token, scaled
        refresh = f"{lifetime},{60 / SCALE / 2}"
        with bench_hub(stack, workdir / "hub", VALERIA_BENCH_REFRESH=refresh) as hub:
            result = asyncio.run(burst(stack, hub, lifetime, 50))
            names = [u.username for u in users]
            s = asyncio.run(session(stack, hub, names, session_seconds))
    lifetimes = session_seconds / lifetime
    per = s["calls"] / len(users) / lifetimes
    result["session"] = {
        "users": len(users),
        "simulated_minutes": session_seconds * SCALE / 60,
        "token_lifetime_simulated_s": lifetime * SCALE,
        "auth_refresh_age_simulated_s": lifetime * SCALE,
        "refresh_calls": s["calls"],
        "calls_per_user_per_token_lifetime": round(per, 2),
        "failures": s["failures"],
    }
    return result
