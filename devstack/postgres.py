"""A throw-away PostgreSQL server (Debian's package) for the hub's database: the
deployment tests and the benchmarks run the hub on it, as operators do."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .hub import free_port


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    def env(self) -> dict[str, str]:
        """The hub's settings for this database (``jupyterhub_config.py`` reads them)."""
        return {
            "JUPYTERHUB_DATABASE_HOST": self.host,
            "JUPYTERHUB_DATABASE_PORT": str(self.port),
            "JUPYTERHUB_DATABASE_USER": self.user,
            "JUPYTERHUB_DATABASE_PASSWORD": self.password,
            "JUPYTERHUB_DATABASE_NAME": self.database,
        }


def bindir() -> Path | None:
    """Where Debian's newest PostgreSQL keeps initdb and postgres; None if not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def postgres_server(
    password: str, *, fsync: bool = False, parent: Path | None = None
) -> Iterator[Postgres]:
    """initdb + postgres on a free loopback port; as the postgres user when root.

    ``fsync``: whether commits wait for the disk (off for tests); ``parent``: where the
    data directory goes (a temporary directory by default)."""
    bin_dir = bindir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    # the server runs as the postgres user, who cannot enter pytest's root-only tmp dirs
    tmp = Path(tempfile.mkdtemp(prefix="valeria-pg-", dir=parent))
    data = tmp / "pgdata"
    data.mkdir(parents=True)
    pwfile = tmp / "pgpass"
    pwfile.write_text(password + "\n")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(pwfile, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "hub", "-A", "scram-sha-256"]
    subprocess.run(
        [*as_user, *initdb, f"--pwfile={pwfile}", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = tmp / "postgres.log"
    options = ["-c", "listen_addresses=127.0.0.1", "-c", f"fsync={'on' if fsync else 'off'}"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
            + ["-k", str(tmp), *options],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "hub"]
            + ["jupyterhub"],
            check=True,
            capture_output=True,
            env=env,
            timeout=60,
        )
        yield Postgres("127.0.0.1", port, "hub", password, "jupyterhub")
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "stop", "-m", "fast", "-w"],
            capture_output=True,
            timeout=60,
        )
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
