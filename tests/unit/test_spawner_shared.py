"""Spawners of one configuration share its StorageLayout and VaultIdentity (made once,
not at every spawn of a rush), and follow a changed configuration."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.config import kube_config
from traitlets.config import Config

from devstack.kube.kubeconfig import write_kubeconfig
from valeria_hub.spawner import ValeriaSpawner


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    path = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:9", "unused")
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


async def test_one_configuration_one_storage_layout_and_vault(kubeconfig):
    c = Config()
    c.StorageLayout.nfs_server = "nfs.example.org"
    c.VaultIdentity.url = "https://vault.example.org"
    a = ValeriaSpawner(_mock=True, config=c)
    b = ValeriaSpawner(_mock=True, config=c)
    assert a.storage is b.storage and a.vault is b.vault
    assert a.storage.nfs_server == "nfs.example.org"
    assert a.vault.url == "https://vault.example.org"

    c.StorageLayout.nfs_server = "nfs2.example.org"  # a changed section: a new object
    changed = ValeriaSpawner(_mock=True, config=c)
    assert changed.storage is not a.storage
    assert changed.storage.nfs_server == "nfs2.example.org"
    assert changed.vault is a.vault

    other = Config()
    other.StorageLayout.nfs_server = "nfs.example.org"
    assert ValeriaSpawner(_mock=True, config=other).storage is not a.storage
