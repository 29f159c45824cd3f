"""Keycloak and Vault stand-ins together: the login path every spawn and job takes.

hvac logs in to Vault with an access token issued by the realm stand-in and reads
only its own secrets, exactly as the spawner's Vault lookup must.
"""

from __future__ import annotations

import time

import hvac
import hvac.exceptions
import pytest


def login(kc, vault, username):
    tokens = kc.call(kc.issue_tokens, username)
    client = hvac.Client(url=vault.url, timeout=5)
    auth = client.auth.jwt.jwt_login(role="valeria", jwt=tokens["access_token"], path="jwt")
    return client, auth["auth"]


def test_user_reads_own_uid_and_keys(realm_and_vault):
    kc, vault, entities = realm_and_vault
    client, auth = login(kc, vault, "alice")
    assert auth["entity_id"] == entities["alice"]
    base = f"users/{auth['entity_id']}"
    uid = client.secrets.kv.v2.read_secret_version(
        path=f"{base}/uid", mount_point="valeria", raise_on_deleted_version=True
    )
    assert uid["data"]["data"]["uid"] == "1001"
    ceph = client.secrets.kv.v2.read_secret_version(
        path=f"{base}/ceph", mount_point="valeria", raise_on_deleted_version=True
    )
    assert ceph["data"]["data"]["AWS_ACCESS_KEY_ID"] == "DEMOALICEACCESSKEY01"


def test_user_cannot_read_another_users_secrets(realm_and_vault):
    kc, vault, entities = realm_and_vault
    client, _ = login(kc, vault, "alice")
    with pytest.raises(hvac.exceptions.Forbidden) as e:
        client.secrets.kv.v2.read_secret_version(
            path=f"users/{entities['bob']}/ceph",
            mount_point="valeria",
            raise_on_deleted_version=True,
        )
    assert "permission denied" in str(e.value)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.list_secrets(path="users", mount_point="valeria")


def test_unprovisioned_user_logs_in_but_has_no_secrets(realm_and_vault):
    kc, vault, entities = realm_and_vault
    client, auth = login(kc, vault, "carol")
    assert auth["entity_id"] not in entities.values()
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version(
            path=f"users/{auth['entity_id']}/uid",
            mount_point="valeria",
            raise_on_deleted_version=True,
        )


def test_forged_token_is_refused(realm_and_vault):
    kc, vault, _ = realm_and_vault
    token = kc.call(kc.issue_tokens, "bob")["access_token"]
    header, payload, signature = token.split(".")
    forged = ".".join([header, payload, signature[::-1]])
    client = hvac.Client(url=vault.url, timeout=5)
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        client.auth.jwt.jwt_login(role="valeria", jwt=forged, path="jwt")
    assert "signature" in str(e.value)


def test_token_without_the_vault_audience_is_refused(realm_and_vault):
    kc, vault, _ = realm_and_vault
    token = kc.call(kc.issue_tokens, "bob", client_id="valeria-onboarding")["access_token"]
    client = hvac.Client(url=vault.url, timeout=5)
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        client.auth.jwt.jwt_login(role="valeria", jwt=token, path="jwt")
    assert "audience" in str(e.value)


def test_expired_token_is_refused(realm_and_vault):
    kc, vault, _ = realm_and_vault
    tokens = kc.call(kc.issue_tokens, "bob")
    kc.call(kc.advance, 3600)
    try:
        # Vault checks exp against its own clock: move Vault's clock forward too
        client = hvac.Client(url=vault.url, timeout=5)
        vault.model.clock = lambda: time.time() + 3600
        with pytest.raises(hvac.exceptions.InvalidRequest) as e:
            client.auth.jwt.jwt_login(role="valeria", jwt=tokens["access_token"], path="jwt")
        assert "expired" in str(e.value)
    finally:
        vault.model.clock = time.time
        kc.call(kc.advance, -3600)


def test_user_cannot_rewrite_their_own_uid(realm_and_vault):
    """A user who could write their uid secret could take anyone's NFS identity."""
    kc, vault, entities = realm_and_vault
    client, auth = login(kc, vault, "alice")
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.create_or_update_secret(
            path=f"users/{auth['entity_id']}/uid",
            secret={"uid": "1002"},
            mount_point="valeria",
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.delete_latest_version_of_secret(
            path=f"users/{auth['entity_id']}/ceph", mount_point="valeria"
        )
