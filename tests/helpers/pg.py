"""PostgreSQL for the deployment tests: devstack's server, or a clear failure under CI."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from devstack.postgres import Postgres, bindir

__all__ = ["Postgres", "postgres_server", "require_postgres"]


def require_postgres() -> None:
    if bindir() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql); CI=true")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")


@contextlib.contextmanager
def postgres_server(password: str) -> Iterator[Postgres]:
    """A throw-away server for one test module (commits do not wait for the disk)."""
    require_postgres()
    from devstack.postgres import postgres_server as server

    with server(password) as pg:
        yield pg
