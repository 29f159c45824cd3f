"""Keycloak's own server for the tests: install it from Maven Central, start and stop it.

The stand-in in this package imitates Keycloak; this module runs the real one, so the
authenticator's end-to-end tests meet Keycloak's actual claims, pages and refusals. It
holds no product code: it is the real server's management, next to the imitation.

``install`` (``make test`` runs it once, behind the stamp file ``.keycloak/.installed``):
the ordinary Maven client copies ``org.keycloak:keycloak-quarkus-dist:VERSION:zip`` from
Maven Central (and its local repository, ``~/.m2``) into ``.keycloak/download/``, the zip
is unpacked into ``.keycloak/keycloak-VERSION/`` and ``kc.sh build --db=dev-file`` is run
there once. Building at install time, rather than starting with ``start-dev``, matters
twice: ``start-dev`` re-runs Quarkus's augmentation at every start (30 s on an idle
2-core machine, 60-90 s under load) and writes the result into the distribution's shared
``lib/quarkus/``, so two test sessions starting at once would rewrite each other's
classes. A built distribution is only read at run time.

``KeycloakServer`` starts one server (``kc.sh start --optimized``) with everything that
changes per run outside the distribution: a private home (``-Dkc.home.dir``) whose
``data/`` holds the embedded H2 database (``--db dev-file``) and ``data/import/`` with the
realm file (``--import-realm``), free loopback ports for HTTP and the management
interface, a fixed hostname (so the issuer is ``http://127.0.0.1:PORT/realms/valeria``
whatever the request's Host header), a local cache (no cluster discovery), a bootstrap
admin with a random password, and ``JAVA_HOME`` set to a JDK Keycloak 26 supports.
Placeholders in the realm file (``${HUB_URL}``) are Keycloak's own: the import replaces
``${NAME}`` / ``${NAME:default}`` with the server process's environment variable
``NAME``, which ``KeycloakServer`` sets from ``variables``.

Command line: ``python devstack/keycloak/real.py install`` and ``... run`` (start, print
the issuer and the admin password, stop on Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

# The newest Keycloak 26 that Maven Central serves here (26.8.2 and 26.7.4 do not resolve).
KEYCLOAK_VERSION = "26.7.3"
ARTIFACT = "org.keycloak:keycloak-quarkus-dist:{version}:zip"
# Pinned: a bare ``dependency:copy`` picks Maven 3.8's default plugin, 2.8 (2013).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# Keycloak 26 runs on Java 17, 21 and 25; the newest installed is preferred.
SUPPORTED_JAVA = (25, 21, 17)
JVM_DIRS = (Path("/usr/lib/jvm"), Path("/opt"))

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".keycloak"
STAMP_NAME = ".installed"
REALM_FILE = Path(__file__).with_name("realm-valeria.json")
REALM = "valeria"

DOWNLOAD_TIMEOUT = 900.0
BUILD_TIMEOUT = 600.0
START_TIMEOUT = 300.0
STOP_TIMEOUT = 30.0


class KeycloakError(RuntimeError):
    """Keycloak could not be installed or started; the message says what to look at."""


# -- Java ----------------------------------------------------------------------------


def java_major(java_home: Path) -> int | None:
    """The major version of a JDK, from its ``release`` file (no JVM start needed)."""
    try:
        text = (java_home / "release").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip().strip('"')
            head = version.split(".")[0]
            return int(head) if head.isdigit() else None
    return None


def find_java_home(environ: Mapping[str, str] | None = None) -> Path | None:
    """A JDK Keycloak 26 supports: ``$JAVA_HOME`` if it is one, else the newest installed."""
    environ = os.environ if environ is None else environ
    given = environ.get("JAVA_HOME")
    if given and java_major(Path(given)) in SUPPORTED_JAVA and (Path(given) / "bin/java").exists():
        return Path(given)
    found: list[tuple[int, str, Path]] = []
    for base in JVM_DIRS:
        if not base.is_dir():
            continue
        for home in base.iterdir():
            home = home.resolve()
            major = java_major(home)
            if major in SUPPORTED_JAVA and (home / "bin/java").exists():
                found.append((major, str(home), home))
    return max(found)[2] if found else None


# -- installation --------------------------------------------------------------------


def distribution_dir(version: str = KEYCLOAK_VERSION, cache: Path = CACHE) -> Path:
    return cache / f"keycloak-{version}"


def installed(version: str = KEYCLOAK_VERSION, cache: Path = CACHE) -> Path | None:
    """The built distribution of ``version``, or None when ``install`` has not completed."""
    stamp = cache / STAMP_NAME
    dist = distribution_dir(version, cache)
    try:
        done = stamp.read_text().split()
    except OSError:
        return None
    if done[:1] != [version] or not (dist / "bin/kc.sh").exists():
        return None
    return dist


def _run(cmd: list[str], *, timeout: float, env: Mapping[str, str] | None = None) -> str:
    """Run a command, return its output; a failure raises with the output's tail."""
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise KeycloakError(f"{cmd[0]} {cmd[1]} timed out after {timeout:.0f} s") from e
    except FileNotFoundError as e:
        raise KeycloakError(f"{cmd[0]} is not installed") from e
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise KeycloakError(f"{' '.join(cmd[:2])} failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def download(version: str, target: Path) -> Path:
    """Copy the distribution zip from Maven Central with Maven itself; return its path."""
    target.mkdir(parents=True, exist_ok=True)
    zip_path = target / f"keycloak-quarkus-dist-{version}.zip"
    if zip_path.exists():
        return zip_path
    _run(
        [
            "mvn",
            "-B",
            "-q",
            f"{DEPENDENCY_PLUGIN}:copy",
            f"-Dartifact={ARTIFACT.format(version=version)}",
            f"-DoutputDirectory={target}",
        ],
        timeout=DOWNLOAD_TIMEOUT,
    )
    if not zip_path.exists():
        raise KeycloakError(f"Maven reported success but {zip_path} is missing")
    return zip_path


def unpack(zip_path: Path, dest: Path) -> None:
    """Unpack the zip into ``dest`` (atomically: a half-unpacked tree is never left there).

    ``zipfile`` drops Unix modes, so they are restored from the entries' attributes:
    ``bin/kc.sh`` must stay executable.
    """
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            top = {name.split("/", 1)[0] for name in zf.namelist()}
            if len(top) != 1:
                raise KeycloakError(f"{zip_path.name}: expected one top folder, got {sorted(top)}")
            for info in zf.infolist():
                path = Path(zf.extract(info, staging))
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    path.chmod(mode | stat.S_IRUSR)
        if dest.exists():
            shutil.rmtree(dest)
        (staging / top.pop()).rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build(dist: Path, java_home: Path) -> None:
    """``kc.sh build --db=dev-file``: Quarkus's augmentation, once, for ``start --optimized``."""
    env = {**os.environ, "JAVA_HOME": str(java_home)}
    _run([str(dist / "bin/kc.sh"), "build", "--db=dev-file"], timeout=BUILD_TIMEOUT, env=env)


def install(
    version: str = KEYCLOAK_VERSION, cache: Path = CACHE, *, quiet: bool = False
) -> tuple[Path, dict[str, float]]:
    """Download, unpack and build Keycloak once; return its folder and the seconds spent."""
    timings: dict[str, float] = {}
    dist = installed(version, cache)
    if dist is not None:
        (cache / STAMP_NAME).touch()  # newer than real.py again: make stops asking
        return dist, timings
    java_home = find_java_home()
    if java_home is None:
        raise KeycloakError(f"no JDK {'/'.join(map(str, SUPPORTED_JAVA))} found for Keycloak")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / STAMP_NAME).unlink(missing_ok=True)
    t0 = time.monotonic()
    zip_path = download(version, cache / "download")
    timings["download"] = time.monotonic() - t0
    t0 = time.monotonic()
    dist = distribution_dir(version, cache)
    unpack(zip_path, dist)
    timings["unpack"] = time.monotonic() - t0
    t0 = time.monotonic()
    build(dist, java_home)
    timings["build"] = time.monotonic() - t0
    (cache / STAMP_NAME).write_text(f"{version}\n")
    for old in cache.glob("keycloak-*"):  # earlier versions: 300 MB each
        if old.is_dir() and old != dist:
            shutil.rmtree(old, ignore_errors=True)
    if not quiet:
        spent = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        print(f"Keycloak {version} installed in {dist} ({spent}; JDK {java_home})")
    return dist, timings


# -- one running server --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class KeycloakServer:
    """One Keycloak process on loopback with its own home, database and ports.

    ``variables`` become the server's environment, which fills the realm file's
    placeholders at import. Use as a context manager, or ``start()`` / ``stop()``.
    """

    distribution: Path
    workdir: Path
    realm_file: Path = REALM_FILE
    variables: dict[str, str] = field(default_factory=dict)
    java_home: Path | None = None
    http_port: int = 0
    management_port: int = 0
    admin_user: str = "admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    # The server gets SIGTERM when the thread that started it ends (a test run that was
    # killed outright leaves no Keycloak behind): start it from a long-lived thread.
    die_with_parent: bool = True
    process: subprocess.Popen[bytes] | None = None
    started_in: float | None = None

    def __post_init__(self) -> None:
        self.http_port = self.http_port or free_port()
        self.management_port = self.management_port or free_port()
        while self.management_port == self.http_port:
            self.management_port = free_port()

    # -- URLs -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{REALM}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/admin/realms/{REALM}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "keycloak.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            with self.log_path.open(errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except OSError:
            return "(no log)"

    # -- lifecycle ------------------------------------------------------------------
    def _home(self) -> Path:
        """A private Keycloak home: the distribution's ``lib`` (read only), own ``data``."""
        home = self.workdir / "home"
        (home / "data" / "import").mkdir(parents=True, exist_ok=True)
        (home / "providers").mkdir(exist_ok=True)
        if not (home / "lib").exists():
            (home / "lib").symlink_to(self.distribution / "lib", target_is_directory=True)
        shutil.copyfile(self.realm_file, home / "data" / "import" / f"realm-{REALM}.json")
        return home

    def command(self, home: Path) -> list[str]:
        # setpriv (util-linux, on every Debian) sets the parent-death signal, then execs
        # kc.sh, which forwards SIGTERM to its java.
        setpriv = shutil.which("setpriv") if self.die_with_parent else None
        return [
            *([setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []),
            str(self.distribution / "bin/kc.sh"),
            f"-Dkc.home.dir={home}",  # kc.sh's own -Dkc.home.dir comes first; the last wins
            "start",
            "--optimized",
            "--import-realm",
            "--db=dev-file",
            "--cache=local",
            "--http-enabled=true",
            "--http-host=127.0.0.1",
            f"--http-port={self.http_port}",
            f"--http-management-port={self.management_port}",
            f"--hostname={self.base_url}",
            "--hostname-strict=true",
            "--hostname-backchannel-dynamic=false",
        ]

    def environment(self) -> dict[str, str]:
        java_home = self.java_home or find_java_home()
        if java_home is None:
            raise KeycloakError(f"no JDK {'/'.join(map(str, SUPPORTED_JAVA))} found")
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_", "QUARKUS"))
        }
        env.update(self.variables)
        env.update(
            JAVA_HOME=str(java_home),
            KC_BOOTSTRAP_ADMIN_USERNAME=self.admin_user,
            KC_BOOTSTRAP_ADMIN_PASSWORD=self.admin_password,
        )
        return env

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start and wait until the realm's discovery document names the expected issuer."""
        if self.process is not None:
            raise KeycloakError("already started")
        for port in (self.http_port, self.management_port):
            # Vert.x binds with SO_REUSEPORT: a second Keycloak on a busy port starts and
            # shares it, and the first one would answer our readiness check.
            if port_in_use(port):
                raise KeycloakError(f"port {port} on 127.0.0.1 is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        home = self._home()
        t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(home),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.workdir,
                start_new_session=True,  # its own process group: stop() ends kc.sh and java
            )
        try:
            self._wait_ready(t0 + timeout, timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        assert self.process is not None
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise KeycloakError(
                    f"Keycloak exited with status {code} before it was ready; last log lines:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(self.discovery_url, timeout=5) as resp:
                    issuer = json.load(resp).get("issuer")
                if issuer == self.issuer:
                    return
                raise KeycloakError(f"discovery names issuer {issuer!r}, not {self.issuer!r}")
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.5)
        raise KeycloakError(
            f"Keycloak did not serve {self.discovery_url} within {timeout:.0f} s ({last}); "
            f"last log lines:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to the process group, SIGKILL if it is still there after ``timeout``."""
        proc, self.process = self.process, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # kc.sh has exited; a java it started may linger in the group a moment
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return

    def __enter__(self) -> KeycloakServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- command line --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="real.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install", help="download, unpack and build Keycloak (once)")
    p.add_argument("--version", default=KEYCLOAK_VERSION)
    p = sub.add_parser("run", help="start Keycloak with the demo realm until Ctrl-C")
    p.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    p.add_argument("--hub-url", default="http://127.0.0.1:8000", help="fills ${HUB_URL}")
    args = parser.parse_args(argv)
    # Stop cleanly on SIGTERM, and on SIGINT even when started in the background by a
    # non-interactive shell (which starts Python with SIGINT ignored).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if args.command == "install":
            install(args.version)
            return 0
        dist = installed()
        if dist is None:
            raise KeycloakError("Keycloak is not installed: run `real.py install` first")
        with tempfile.TemporaryDirectory(prefix="keycloak-") as tmp:
            server = KeycloakServer(
                dist, Path(tmp), variables={"HUB_URL": args.hub_url}, http_port=args.port
            )
            with server:
                print(f"Keycloak {KEYCLOAK_VERSION} ready in {server.started_in:.1f} s")
                print(f"issuer {server.issuer}")
                print(f"admin console {server.base_url}/admin/ ({server.admin_user} / "
                      f"{server.admin_password})")  # fmt: skip
                try:
                    signal.pause()
                except KeyboardInterrupt:
                    pass
    except KeycloakError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
