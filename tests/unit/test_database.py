"""SQLite connections the hub makes get a write-ahead log and commits that do not wait
for the disk; other databases are left alone."""

from __future__ import annotations

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from valeria_hub.database import sqlite_pragmas, use_write_ahead_log_for_sqlite


def test_every_new_sqlite_engine_gets_wal_and_normal_sync(tmp_path):
    use_write_ahead_log_for_sqlite()
    use_write_ahead_log_for_sqlite()  # said twice (a config loaded twice): one listener
    try:
        engine = create_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            conn.execute(text("create table t (a integer)"))
            conn.commit()
        engine.dispose()
    finally:
        event.remove(Engine, "connect", sqlite_pragmas)
    plain = create_engine(f"sqlite:///{tmp_path / 'other.sqlite'}")
    with plain.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "delete"
    plain.dispose()


def test_a_connection_that_is_not_sqlite_is_not_touched():
    class Other:  # what psycopg2 hands the listener: no PRAGMA may reach it
        def cursor(self):
            raise AssertionError("a PRAGMA was sent to a non-SQLite connection")

    sqlite_pragmas(Other(), None)
