"""VaultIdentity against the Keycloak and Vault stand-ins: one kept-alive client per
loop, the token revoked after each lookup (later, but always), a failed read revoked
before it is reported, and the TLS context made off the loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from devstack.vault import VaultStandIn
from valeria_hub import vault as vault_mod
from valeria_hub.vault import VaultError, VaultIdentity


def user_tokens(vault: VaultStandIn) -> list[dict]:
    return [t for t in vault.call(vault.live_tokens) if not t["root"]]


def test_lookups_share_one_client_and_every_token_is_revoked(realm_and_vault):
    kc, vault, _ = realm_and_vault
    token = kc.call(kc.issue_tokens, "alice")["access_token"]
    identity = VaultIdentity(url=vault.url, timeout=10)

    async def run() -> None:
        first = await identity.lookup(token, "alice")
        client = await identity._client()
        assert first.profile.uid == 1001
        assert first.profile.s3_access_key == "DEMOALICEACCESSKEY01"
        await first.revoked
        assert user_tokens(vault) == []
        # a second lookup (another VaultIdentity, same settings) reuses the client
        again = await VaultIdentity(url=vault.url, timeout=10).lookup(token, "alice")
        assert await VaultIdentity(url=vault.url, timeout=10)._client() is client
        await again.revoked
        assert user_tokens(vault) == []
        profile, _ = await identity.fetch_profile(token, "alice")
        assert profile.uid == 1001 and user_tokens(vault) == []

    asyncio.run(run())
    # the loop's end closed its client
    assert not [k for k in vault_mod._CLIENTS if k[1] == vault.url.rstrip("/")]


def test_a_failed_read_is_revoked_before_it_is_reported(realm_and_vault):
    kc, vault, _ = realm_and_vault
    token = kc.call(kc.issue_tokens, "alice")["access_token"]
    identity = VaultIdentity(url=vault.url, timeout=10, s3_path="users/{entity_id}/nothing")

    async def run() -> None:
        with pytest.raises(VaultError) as e:
            await identity.lookup(token, "alice")
        assert e.value.reason == "not_provisioned"
        assert user_tokens(vault) == []

    asyncio.run(run())


def test_the_tls_context_is_made_once_in_a_worker_thread(monkeypatch):
    made_in: list[str] = []
    real = vault_mod.make_tls_context

    def recording(ca_bundle: str = ""):
        made_in.append(threading.current_thread().name)
        return real(ca_bundle)

    monkeypatch.setattr(vault_mod, "make_tls_context", recording)
    monkeypatch.setattr(vault_mod, "_TLS_CONTEXTS", {})

    async def run() -> None:
        first = await vault_mod.tls_context("")
        second = await vault_mod.tls_context("")
        assert first is second

    asyncio.run(run())
    assert len(made_in) == 1 and made_in[0] != threading.main_thread().name
