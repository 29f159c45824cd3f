"""Fixtures of the stand-in tests."""

from __future__ import annotations

import pytest

from devstack.keycloak import KeycloakStandIn
from devstack.kube.store import Store
from devstack.stack import DEMO_ROOT_TOKEN, DEMO_STORAGE
from devstack.vault import VaultStandIn


@pytest.fixture
def store() -> Store:
    """An empty Kubernetes object store (one resourceVersion counter, an event log)."""
    return Store()


@pytest.fixture(scope="module")
def realm_and_vault():
    """The Keycloak and Vault stand-ins, Vault trusting the realm and holding the demo
    users' uids and keys: (keycloak, vault, {username: entity id})."""
    kc = KeycloakStandIn()
    vault = VaultStandIn(root_token=DEMO_ROOT_TOKEN)
    with kc.serve_in_thread(), vault.serve_in_thread():
        vault.call(vault.configure_valeria, kc.issuer)
        entities = {}
        for item in DEMO_STORAGE:
            user = kc.realm.find_login(item.username)
            entities[item.username] = vault.call(
                vault.provision_user,
                sub=user.id,
                username=item.username,
                uid=item.uid,
                gid=item.gid,
                s3_access_key=item.s3_access_key,
                s3_secret_key=item.s3_secret_key,
            )
        yield kc, vault, entities
