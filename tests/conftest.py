"""Fixtures shared by every test folder.

Helpers live in the ``tests.helpers`` package (stacks, the hub process, PostgreSQL,
Chromium); folders mirror the code: ``unit/`` (pure functions and single classes),
``standins/`` (the devstack's Keycloak, Vault and Kubernetes), ``e2e/`` (a real
JupyterHub over HTTP), ``browser/`` (headless Chromium).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from devstack.keycloak import KeycloakStandIn


@pytest.fixture
async def kc() -> AsyncIterator[KeycloakStandIn]:
    """The Keycloak stand-in with the demo realm, on a free loopback port."""
    async with KeycloakStandIn() as stand_in:
        yield stand_in
