"""Fixtures for the tests against Keycloak's own server: one server per test session.

``make test`` installs Keycloak (devstack/keycloak/real.py, stamp ``.keycloak/.installed``);
``real_keycloak`` starts it once, with the demo realm (``realm-valeria.json``) whose
``${HUB_URL}`` placeholders name the URL that ``keycloak_hub`` then binds. Without an
installed Keycloak or a JDK these tests are skipped on a developer's machine, and fail
under ``CI=true``: CI must never pass by running none of them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import httpx
import pytest

from devstack.hub import HubProcess, free_port
from devstack.keycloak.real import (
    KEYCLOAK_VERSION,
    KeycloakError,
    KeycloakServer,
    find_java_home,
    installed,
)
from tests.helpers.auth_hub import hub_config
from tests.helpers.real_keycloak import admin_client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "keycloak: tests against Keycloak's own server")


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: these tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_keycloak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeycloakServer]:
    """Keycloak 26 on free loopback ports, its H2 database in this session's temp dir."""
    dist = installed()
    if dist is None:
        _missing(f"Keycloak {KEYCLOAK_VERSION} is not installed: run `make .keycloak/.installed`")
    java_home = find_java_home()
    if java_home is None:
        _missing("no JDK 17, 21 or 25 for Keycloak")
    server = KeycloakServer(
        dist,
        tmp_path_factory.mktemp("keycloak"),
        variables={"HUB_URL": f"http://127.0.0.1:{free_port()}"},
        java_home=java_home,
    )
    try:
        server.start()
    except KeycloakError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def keycloak_hub_url(real_keycloak: KeycloakServer) -> str:
    """The hub URL the imported realm knows (redirect, back-channel logout)."""
    return real_keycloak.variables["HUB_URL"]


@pytest.fixture(scope="session")
def keycloak_hub(
    real_keycloak: KeycloakServer, keycloak_hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubProcess]:
    """A JupyterHub with KeycloakAuthenticator on the real server, shared by the session
    (the realm's redirect and back-channel URLs name its one URL; each test uses its
    own Keycloak user).

    The same config as the stand-in's hubs, with a longer HTTP timeout: a cold Keycloak
    JVM on a loaded 2-core machine can take seconds over its first token requests.
    """
    workdir = tmp_path_factory.mktemp("hub")
    config = hub_config(
        real_keycloak.issuer,
        keycloak_hub_url,
        workdir,
        extra="c.KeycloakAuthenticator.http_timeout = 20\n",
    )
    hub = HubProcess(
        {"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)},
        workdir,
        config=config,
        public_url=keycloak_hub_url,
    )
    hub.start(timeout=90)
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="session")
def admin(real_keycloak: KeycloakServer) -> Iterator[httpx.Client]:
    """Keycloak's admin REST API on the valeria realm, as the bootstrap admin."""
    with admin_client(real_keycloak) as client:
        yield client


@pytest.fixture
def hub_url(keycloak_hub: HubProcess) -> str:
    return keycloak_hub.public_url
