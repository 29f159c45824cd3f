"""What the jobs service keeps in memory between submissions: the hub's answer about a
person's login (for ``login_recheck_seconds``, dropped when the hub says it ended), their
Vault profile (for ``vault_profile_ttl``, dropped when their login is found ended) and the
per-user namespaces it set up (shared by concurrent first submissions).

The hub, Vault and Kubernetes are small fakes here: these are the service's own
bookkeeping decisions; the HTTP paths are covered in tests/e2e/test_jobs.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from valeria_hub.jobs import service
from valeria_hub.jobs.config import JobsServiceApp
from valeria_hub.jobs.hubclient import HubUser
from valeria_hub.jobs.service import Context, ServiceError
from valeria_hub.vault import UserProfile, VaultError

ALICE = HubUser("alice")
PROFILE = UserProfile("alice", "entity-1", 20001, 30001, "AKIAALICE", "alice-secret")


class Hub:
    """The hub's answers about alice's login: a valid token, or none (login ended)."""

    def __init__(self) -> None:
        self.ended = False
        self.asked = 0
        self.expires_at = 4e9

    async def user_model(self, name: str) -> dict[str, Any]:
        self.asked += 1
        if self.ended:
            return {"name": name, "auth_state": {"ended_at": 1.0}}
        return {
            "name": name,
            "auth_state": {"access_token": "at", "access_token_expires_at": self.expires_at},
        }

    async def fresh_tokens(self, name: str, minimum: float) -> None:
        return None


class Vault:
    def __init__(self) -> None:
        self.reads = 0
        self.down = False

    async def fetch_profile(self, access: str, username: str) -> tuple[UserProfile, None]:
        self.reads += 1
        if self.down:
            raise VaultError("unavailable", "Vault did not answer")
        return PROFILE, None


def context(**traits: Any) -> tuple[Context, Hub, Vault]:
    settings = JobsServiceApp(
        hub_api_url="http://hub.invalid/hub/api", hub_api_token="t", **traits
    ).settings()
    hub, vault = Hub(), Vault()
    return Context(settings, hub, None, vault), hub, vault  # type: ignore[arg-type]


async def submit_profile(ctx: Context) -> UserProfile:
    """What a submission does first: the person's token, then their profile."""
    access = await service.user_access_token(ctx, ALICE)
    return await service.storage_profile(ctx, ALICE, access)


async def test_a_profile_is_read_once_within_the_ttl_and_dropped_when_the_login_ends():
    ctx, hub, vault = context(login_recheck_seconds=0)
    assert await submit_profile(ctx) is PROFILE
    assert await submit_profile(ctx) is PROFILE
    assert vault.reads == 1
    hub.ended = True
    with pytest.raises(ServiceError) as e:
        await submit_profile(ctx)
    assert e.value.status == 401
    assert ctx.profiles == {}  # nothing of theirs stays
    hub.ended = False
    await submit_profile(ctx)
    assert vault.reads == 2


async def test_the_hubs_answer_serves_the_next_submissions_until_the_hub_says_it_ended():
    ctx, hub, vault = context()
    for _ in range(3):
        assert await submit_profile(ctx) is PROFILE
    assert hub.asked == 1 and vault.reads == 1
    service.forget_login(ctx, "alice")  # what the hub's login-ended message does
    assert ctx.logins == {} and ctx.profiles == {}
    hub.ended = True
    with pytest.raises(ServiceError) as e:
        await submit_profile(ctx)
    assert e.value.status == 401 and hub.asked == 2


async def test_a_kept_login_is_asked_for_again_after_the_recheck_interval():
    ctx, hub, _ = context(login_recheck_seconds=0.05)
    await submit_profile(ctx)
    await asyncio.sleep(0.1)
    hub.ended = True  # an ending the hub could not tell: noticed at the recheck
    with pytest.raises(ServiceError) as e:
        await submit_profile(ctx)
    assert e.value.status == 401 and ctx.logins == {} and ctx.profiles == {}


async def test_a_kept_token_too_close_to_expiry_is_asked_for_again():
    import time

    ctx, hub, _ = context()
    hub.expires_at = time.time() + 40  # valid for token_min_validity (30 s) more: kept
    await service.user_access_token(ctx, ALICE)
    await service.user_access_token(ctx, ALICE)
    assert hub.asked == 1
    ctx.logins["alice"][1]["access_token_expires_at"] = time.time() + 10
    hub.expires_at = time.time() + 300
    await service.user_access_token(ctx, ALICE)
    assert hub.asked == 2
    assert ctx.logins["alice"][1]["access_token_expires_at"] == hub.expires_at


async def test_recheck_zero_asks_the_hub_every_time():
    ctx, hub, _ = context(login_recheck_seconds=0)
    for _ in range(3):
        await service.user_access_token(ctx, ALICE)
    assert hub.asked == 3 and ctx.logins == {}


async def test_an_expired_profile_is_read_again_and_a_failed_read_keeps_nothing():
    ctx, _, vault = context(vault_profile_ttl=0.05)
    await submit_profile(ctx)
    await asyncio.sleep(0.1)
    vault.down = True
    with pytest.raises(ServiceError) as e:
        await submit_profile(ctx)
    assert e.value.status == 503 and vault.reads == 2
    assert ctx.profiles == {}


async def test_ttl_zero_reads_vault_every_time():
    ctx, _, vault = context(vault_profile_ttl=0)
    for _ in range(3):
        await submit_profile(ctx)
    assert vault.reads == 3 and ctx.profiles == {}


@pytest.mark.parametrize("trait", ["vault_profile_ttl", "login_recheck_seconds"])
@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_memory_durations_refuse_what_is_not_seconds(trait, bad):
    from traitlets import TraitError

    with pytest.raises(TraitError, match=trait):
        JobsServiceApp(**{trait: bad})


async def test_concurrent_first_submissions_share_one_namespace_set_up(monkeypatch):
    ctx, _, _ = context()
    calls: list[str] = []

    async def set_up(ctx: Context, namespace: str, username: str) -> None:
        calls.append(namespace)
        await asyncio.sleep(0.05)

    monkeypatch.setattr(service, "set_up_namespace", set_up)
    await asyncio.gather(*(service.ensure_namespace(ctx, "ns-a", "alice") for _ in range(10)))
    await service.ensure_namespace(ctx, "ns-a", "alice")
    assert calls == ["ns-a"] and "ns-a" in ctx.ready and not ctx.setups
    # set up again once it is older than the recheck interval
    ctx.ready["ns-a"] -= service.NAMESPACE_RECHECK_SECONDS + 1
    await service.ensure_namespace(ctx, "ns-a", "alice")
    assert calls == ["ns-a", "ns-a"]


async def test_a_failed_namespace_set_up_is_not_taken_as_ready(monkeypatch):
    ctx, _, _ = context()

    async def broken(ctx: Context, namespace: str, username: str) -> None:
        raise RuntimeError("cluster down")

    monkeypatch.setattr(service, "set_up_namespace", broken)
    with pytest.raises(RuntimeError):
        await service.ensure_namespace(ctx, "ns-b", "alice")
    assert "ns-b" not in ctx.ready and not ctx.setups


def test_the_memory_is_not_part_of_the_context_repr():
    ctx, _, _ = context()
    ctx.profiles["alice"] = (0.0, PROFILE)
    ctx.logins["alice"] = (0.0, {"access_token": "eyJ-alice-token"})
    assert "alice-secret" not in repr(ctx) and "alice-secret" not in repr(ctx.profiles)
    assert "eyJ-alice-token" not in repr(ctx)
