"""Fixtures of the stand-in tests."""

from __future__ import annotations

import pytest

from devstack.kube.store import Store


@pytest.fixture
def store() -> Store:
    """An empty Kubernetes object store (one resourceVersion counter, an event log)."""
    return Store()
