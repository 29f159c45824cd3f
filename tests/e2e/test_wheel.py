"""The product's wheel: built from the sources as a user would build it, it holds the
``valeria_hub`` package and its data and nothing else (no devstack stand-in, no test, no
benchmark), and once installed with its dependencies in a fresh virtualenv, away from the
checkout, its entry points load: JupyterHub's own loader resolves ``valeria-keycloak`` and
``valeria-kubespawner``, and the ``valeria-hub`` command runs.

``[build-system]`` asks for ``setuptools>=77``: the SPDX ``license = "BSD-3-Clause"`` string
needs it. The wheel is also built with exactly setuptools 77.0.3, and setuptools 76 is shown
to refuse the project's metadata, so the floor is the right one.

The builds and the install download from PyPI (pip's cache makes repeated runs faster).
Without PyPI the tests are skipped, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import configparser
import email.parser
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.e2e import IN_CI

# building, creating a virtualenv and installing the dependencies from PyPI: more than the
# suite's default 300 s per test, for a slow network (the install alone is ~45 s uncached)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PACKAGE = "valeria_hub"
NOT_PRODUCT = ("devstack", "tests", "benchmarks")
STAND_IN_MARKERS = ("standin", "stand_in", "stand-in", "devstack")
ENTRY_POINTS = {
    "console_scripts": {"valeria-hub": "valeria_hub.cli:main"},
    "jupyterhub.authenticators": {"valeria-keycloak": "valeria_hub.auth:KeycloakAuthenticator"},
    "jupyterhub.spawners": {"valeria-kubespawner": "valeria_hub.spawner:ValeriaSpawner"},
}
LOWEST_SETUPTOOLS = "77.0.3"
TOO_OLD_SETUPTOOLS = "76.1.0"
PIP_TIMEOUT = 600  # seconds, for one pip command (the dependencies' install is the long one)

# what pip prints when it cannot reach the package index (as opposed to a build that fails)
NETWORK_ERRORS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "Max retries exceeded",
)

# Copied into the throwaway source tree: everything but version control, virtualenvs, node
# modules, build leftovers and local state. devstack/, tests/ and benchmarks/ are copied on
# purpose: the wheel must leave them out although they sit beside the package.
ROOT_IGNORED = {
    ".git",
    ".node",
    ".devstack",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "dist",
    "node_modules",
}


def _ignore(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n == "__pycache__"}
    if Path(directory) == REPO_ROOT:
        ignored |= {
            n
            for n in names
            if n in ROOT_IGNORED or n.startswith(".venv") or n.endswith(".egg-info")
        }
    return ignored


def _pip(*args: str, what: str, cwd: Path, env: dict | None = None, expect_ok: bool = True):
    """``python -m pip ARGS`` of the test's own interpreter; a missing PyPI skips the test,
    except under CI, where it fails; a failed build fails the test (if ``expect_ok``)."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--no-input", *args],
            cwd=cwd,
            env=env if env is not None else _pip_env(),
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what}: pip took more than {PIP_TIMEOUT} s\n{_tail(exc.stdout, exc.stderr)}")
    result.seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    if result.returncode != 0 and any(marker in output for marker in NETWORK_ERRORS):
        message = f"{what}: PyPI is unreachable, pip could not download\n{_tail(output)}"
        if IN_CI:
            pytest.fail(f"{message}\n(CI=true: a test that needs PyPI fails without it)")
        pytest.skip(message)
    if expect_ok and result.returncode != 0:
        pytest.fail(f"{what} failed (exit {result.returncode})\n{_tail(output)}")
    return result


def _tail(*texts, lines: int = 60) -> str:
    text = "".join(t if isinstance(t, str) else (t or b"").decode(errors="replace") for t in texts)
    return "\n".join(text.splitlines()[-lines:])


def _pip_env(**extra: str) -> dict:
    """The environment without anything that would put the checkout on a path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHON") and k not in ("VIRTUAL_ENV", "PIP_CONSTRAINT")
    }
    env.update(extra)
    return env


def _build(source: Path, out: Path, *pip_args: str, what: str, env: dict | None = None):
    out.mkdir(parents=True, exist_ok=True)
    result = _pip(
        "wheel",
        "--no-deps",
        "-w",
        str(out),
        *pip_args,
        str(source),
        what=what,
        cwd=out.parent,
        env=env,
    )
    wheels = sorted(out.glob("valeria_hub-*.whl"))
    assert len(wheels) == 1, f"{what}: expected one wheel in {out}, found {wheels}"
    return wheels[0], result


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def _read(wheel: Path, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(f".dist-info/{suffix}")]
        return zf.read(name).decode()


def _entry_points(wheel: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # entry point names keep their case
    parser.read_string(_read(wheel, "entry_points.txt"))
    return {group: dict(parser[group]) for group in parser.sections()}


def _base_python() -> str:
    """The Python the test's virtualenv was made from (not the virtualenv's own)."""
    candidates = [
        getattr(sys, "_base_executable", None),
        Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}",
        Path(sys.base_prefix) / "bin" / "python3",
    ]
    for exe in filter(None, candidates):
        if Path(exe).is_file() and os.access(exe, os.X_OK):
            return str(exe)
    pytest.fail(f"no base Python found for {sys.executable} among {candidates}")


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory) -> Path:
    """A clean copy of the checkout. pip builds a local directory in place: building the
    repository itself would write build/ and the egg-info into the shared work tree, and
    leftovers in an old build/lib/ would end up in the wheel."""
    copy = tmp_path_factory.mktemp("wheel-src") / "valeria-hub"
    shutil.copytree(REPO_ROOT, copy, ignore=_ignore, symlinks=True)
    return copy


@pytest.fixture(scope="module")
def wheel(source_tree, tmp_path_factory) -> Path:
    """The wheel, built with build isolation: pip installs [build-system] requires from PyPI."""
    out = tmp_path_factory.mktemp("wheel-dist")
    built, result = _build(source_tree, out, what="pip wheel (isolated build)")
    print(f"\nwheel built in {result.seconds:.1f} s: {built.name}")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtualenv of the base Python, with the wheel and its dependencies (from PyPI)."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    started = time.monotonic()
    subprocess.run(
        [_base_python(), "-m", "venv", "--without-pip", str(venv)],
        check=True,
        cwd=venv.parent,
        env=_pip_env(),
        timeout=120,
    )
    created = time.monotonic() - started
    # pip of the test's own interpreter, run for the new environment (`pip --python`): the
    # virtualenv does not need a pip of its own, which saves its bootstrap
    result = _pip(
        "--python",
        str(venv / "bin" / "python"),
        "install",
        str(wheel),
        what="pip install of the wheel with its dependencies into a fresh virtualenv",
        cwd=venv.parent,
    )
    print(
        f"\nfresh virtualenv: created in {created:.1f} s, wheel and dependencies installed "
        f"in {result.seconds:.1f} s"
    )
    return venv


def _venv_env(venv: Path) -> dict:
    """Nothing of the test's environment that points at the checkout or its virtualenv."""
    env = _pip_env(PYTHONNOUSERSITE="1", VIRTUAL_ENV=str(venv))
    own_bin = Path(sys.prefix) / "bin"
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != own_bin]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    return env


def _run_in_venv(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(argv), cwd=cwd, env=_venv_env(venv), capture_output=True, text=True, timeout=120
    )


# -- the wheel's contents ---------------------------------------------------------------------


def test_wheel_holds_only_the_product(wheel, source_tree):
    names = _names(wheel)
    dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
    assert dist_info.startswith("valeria_hub-"), dist_info
    tops = {n.split("/")[0] for n in names}
    assert tops == {PACKAGE, dist_info}, f"unexpected top-level entries: {tops}"
    assert _read(wheel, "top_level.txt").split() == [PACKAGE]

    for name in names:
        parts = PurePosixPath(name).parts
        assert not set(parts) & set(NOT_PRODUCT), f"{name}: not part of the product"
        assert not any(m in name.lower() for m in STAND_IN_MARKERS), f"{name}: a stand-in?"

    # exactly the package's modules: none missing (a subpackage left out by the package
    # finder), none extra (a stale build/ leftover or a generated file)
    in_wheel = {n for n in names if n.endswith(".py")}
    in_source = {
        p.relative_to(source_tree).as_posix()
        for p in (source_tree / PACKAGE).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert in_wheel == in_source, (
        f"missing from the wheel: {sorted(in_source - in_wheel)}; "
        f"not in the sources: {sorted(in_wheel - in_source)}"
    )


def test_wheel_ships_the_package_data(wheel, source_tree):
    names = set(_names(wheel))
    pyproject = tomllib.loads((source_tree / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"][PACKAGE]
    for pattern in patterns:
        matches = [p for p in (source_tree / PACKAGE).glob(pattern) if p.is_file()]
        assert matches, f"package-data pattern {pattern!r} matches no file in the sources"
        for path in matches:
            name = path.relative_to(source_tree).as_posix()
            assert name in names, f"{name} (package data {pattern!r}) is not in the wheel"
    # what the product loads by name: JupyterHub's page overrides, KubeSpawner's profile
    # form (valeria_hub.templates.FORM_DIR) and the jobs UI (valeria_hub.jobs.routers.ui)
    for name in (
        "valeria_hub/templates/page.html",
        "valeria_hub/templates/login.html",
        "valeria_hub/templates/not_running.html",
        "valeria_hub/templates/kubespawner/form.html",
        "valeria_hub/jobs/web/index.html",
        "valeria_hub/jobs/web/app.js",
        "valeria_hub/jobs/web/style.css",
    ):
        assert name in names, f"{name} is not in the wheel"


def test_wheel_declares_the_entry_points_and_the_spdx_license(wheel):
    declared = _entry_points(wheel)
    for group, expected in ENTRY_POINTS.items():
        assert declared.get(group) == expected, f"[{group}] in entry_points.txt: {declared}"

    metadata = email.parser.Parser().parsestr(_read(wheel, "METADATA"))
    assert metadata["Name"] == "valeria-hub"
    assert metadata["License-Expression"] == "BSD-3-Clause", metadata.items()
    assert tuple(map(int, metadata["Metadata-Version"].split("."))) >= (2, 4)


# -- the [build-system] floor -----------------------------------------------------------------


def test_the_lowest_allowed_setuptools_builds_the_same_wheel(source_tree, wheel, tmp_path):
    """``setuptools>=77`` is honest: exactly 77.0.3, installed by pip's isolated build from
    PyPI through a build constraint, builds a wheel with the same files and metadata."""
    constraint = tmp_path / "build-constraints.txt"
    constraint.write_text(f"setuptools=={LOWEST_SETUPTOOLS}\n")
    wheel_help = _pip("wheel", "--help", what="pip wheel --help", cwd=tmp_path).stdout
    if "--build-constraint" in wheel_help:
        args, env = ["--build-constraint", str(constraint)], None
    else:  # pip before 25.3 applied PIP_CONSTRAINT to build dependencies too
        args, env = [], _pip_env(PIP_CONSTRAINT=str(constraint))
    built, _ = _build(
        source_tree,
        tmp_path / "dist",
        *args,
        env=env,
        what=f"pip wheel with setuptools=={LOWEST_SETUPTOOLS}",
    )

    # the proof that the constraint took: setuptools writes its version into WHEEL
    assert f"Generator: setuptools ({LOWEST_SETUPTOOLS})" in _read(built, "WHEEL")
    assert sorted(_names(built)) == sorted(_names(wheel))
    assert _entry_points(built) == _entry_points(wheel)
    metadata = email.parser.Parser().parsestr(_read(built, "METADATA"))
    assert metadata["License-Expression"] == "BSD-3-Clause"


def test_setuptools_76_rejects_the_spdx_license(source_tree, tmp_path):
    """Why the floor is 77: setuptools 76 refuses ``license = "BSD-3-Clause"`` (a copy of the
    sources whose [build-system] asks for setuptools 76, nothing else changed)."""
    old = tmp_path / "valeria-hub"
    shutil.copytree(source_tree, old, symlinks=True)
    pyproject = old / "pyproject.toml"
    text = pyproject.read_text()
    requires = 'requires = ["setuptools>=77"]'
    assert requires in text, "[build-system] requires changed: update this test"
    pyproject.write_text(text.replace(requires, f'requires = ["setuptools=={TOO_OLD_SETUPTOOLS}"]'))

    out = tmp_path / "dist"
    out.mkdir()
    result = _pip(
        "wheel",
        "--no-deps",
        "-w",
        str(out),
        str(old),
        cwd=tmp_path,
        expect_ok=False,
        what=f"pip wheel with setuptools=={TOO_OLD_SETUPTOOLS}",
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, "setuptools 76 built the wheel: the floor could be lower"
    assert "`project.license`" in output, f"failed, but not on the license:\n{_tail(output)}"
    assert not list(out.glob("*.whl"))


# -- the installed wheel, in a fresh virtualenv -----------------------------------------------

CHECK = textwrap.dedent(
    """
    import importlib, importlib.metadata as md, importlib.resources, json, pkgutil, sys
    from pathlib import Path

    facts = {"sys_path": sys.path, "entry_points": {}, "stand_ins": {}}
    import valeria_hub
    facts["valeria_hub"] = valeria_hub.__file__
    facts["dist_files"] = [str(f) for f in md.distribution("valeria-hub").files]

    from kubespawner import KubeSpawner
    from oauthenticator.generic import GenericOAuthenticator
    bases = {
        "jupyterhub.authenticators": GenericOAuthenticator,
        "jupyterhub.spawners": KubeSpawner,
    }
    loaded = {}
    for group, names in json.loads(sys.argv[1]).items():
        found = {ep.name: ep for ep in md.entry_points(group=group)}
        for name in names:
            ep = found.get(name)
            if ep is None:
                facts["entry_points"][name] = {"missing": sorted(found)}
                continue
            obj = ep.load()
            loaded[name] = obj
            facts["entry_points"][name] = {
                "value": ep.value,
                "loaded": f"{obj.__module__}:{obj.__qualname__}",
                "dist": ep.dist.name if ep.dist else None,
                "subclass": isinstance(obj, type) and issubclass(obj, bases[group])
                if group in bases else callable(obj),
            }

    # JupyterHub's own loader (EntryPointType): what c.JupyterHub.*_class = "name" does
    from jupyterhub.app import JupyterHub
    hub = JupyterHub(authenticator_class="valeria-keycloak", spawner_class="valeria-kubespawner")
    facts["hub_authenticator"] = hub.authenticator_class is loaded.get("valeria-keycloak")
    facts["hub_spawner"] = hub.spawner_class is loaded.get("valeria-kubespawner")

    # every module of the package imports with the declared dependencies only
    errors = {}
    for mod in pkgutil.walk_packages(valeria_hub.__path__, "valeria_hub."):
        if mod.name.rsplit(".", 1)[-1] != "__main__":
            try:
                importlib.import_module(mod.name)
            except Exception as exc:
                errors[mod.name] = repr(exc)
    facts["import_errors"] = errors

    from valeria_hub.templates import FORM_DIR, TEMPLATES_DIR
    web = importlib.resources.files("valeria_hub.jobs").joinpath("web")
    facts["data"] = {
        "templates": sorted(p.name for p in Path(TEMPLATES_DIR).glob("*.html")),
        "form": (Path(FORM_DIR) / "form.html").is_file(),
        "web_index": len(web.joinpath("index.html").read_text(encoding="utf-8")),
    }

    for name in ("devstack", "devstack.keycloak", "benchmarks"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            facts["stand_ins"][name] = f"ModuleNotFoundError: {exc}"
        else:
            facts["stand_ins"][name] = f"imported from {module.__file__}"
    facts["leaked_modules"] = sorted(
        m for m in sys.modules if m.split(".")[0] in ("devstack", "tests", "benchmarks")
    )
    print(json.dumps(facts))
    """
)


@pytest.fixture(scope="module")
def venv_facts(fresh_venv, tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("wheel-run")
    script = workdir / "check_entry_points.py"
    script.write_text(CHECK)
    groups = {group: list(names) for group, names in ENTRY_POINTS.items()}
    # -I: no PYTHON* variables, no user site, no script or current directory on sys.path
    result = _run_in_venv(
        fresh_venv,
        str(fresh_venv / "bin" / "python"),
        "-I",
        str(script),
        json.dumps(groups),
        cwd=workdir,
    )
    assert result.returncode == 0, f"the check script failed:\n{_tail(result.stderr)}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_fresh_venv_does_not_see_the_checkout(fresh_venv, venv_facts):
    repo = str(REPO_ROOT)
    assert not [p for p in venv_facts["sys_path"] if p.startswith(repo)], venv_facts["sys_path"]
    assert venv_facts["valeria_hub"].startswith(str(fresh_venv)), venv_facts["valeria_hub"]
    for pth in fresh_venv.glob("lib/python*/site-packages/*.pth"):
        assert repo not in pth.read_text(), f"{pth} puts the checkout on the path"
    # what pip installed for valeria-hub: the package, its dist-info and the command
    others = [
        f
        for f in venv_facts["dist_files"]
        if not f.startswith((f"{PACKAGE}/", f"{PACKAGE}-")) and Path(f).name != "valeria-hub"
    ]
    assert not others, f"valeria-hub installed files outside its package: {others}"


def test_entry_points_load_in_a_fresh_venv(venv_facts):
    eps = venv_facts["entry_points"]
    for group, expected in ENTRY_POINTS.items():
        for name, target in expected.items():
            assert "missing" not in eps[name], f"{name} not in [{group}]: {eps[name]}"
            assert eps[name]["value"] == target
            # the object may be defined in a submodule and re-exported (valeria_hub.auth)
            module, attr = target.split(":")
            loaded_module, loaded_name = eps[name]["loaded"].split(":")
            assert loaded_name == attr, f"{name} loaded {eps[name]['loaded']}"
            assert loaded_module == module or loaded_module.startswith(f"{module}."), (
                f"{name} loaded {eps[name]['loaded']}"
            )
            assert eps[name]["dist"] == "valeria-hub"
            assert eps[name]["subclass"], f"{name}: {eps[name]['loaded']} has the wrong base"
    assert venv_facts["hub_authenticator"], "JupyterHub does not resolve 'valeria-keycloak'"
    assert venv_facts["hub_spawner"], "JupyterHub does not resolve 'valeria-kubespawner'"
    assert venv_facts["import_errors"] == {}, "modules that need more than the dependencies"
    data = venv_facts["data"]
    assert {"login.html", "page.html", "not_running.html"} <= set(data["templates"]), data
    assert data["form"] and data["web_index"] > 0, data


def test_stand_ins_are_not_installed(fresh_venv, venv_facts, tmp_path):
    for name, outcome in venv_facts["stand_ins"].items():
        assert outcome.startswith("ModuleNotFoundError"), f"import {name}: {outcome}"
    assert venv_facts["leaked_modules"] == []
    # and plainly, as a user would try it, from a directory that is not the checkout
    python = str(fresh_venv / "bin" / "python")
    result = _run_in_venv(fresh_venv, python, "-c", "import devstack", cwd=tmp_path)
    assert result.returncode != 0, "import devstack works in the fresh virtualenv"
    assert "No module named 'devstack'" in result.stderr, result.stderr


def test_valeria_hub_command_runs_in_a_fresh_venv(fresh_venv, tmp_path):
    command = fresh_venv / "bin" / "valeria-hub"
    assert command.is_file(), "pip did not install the valeria-hub command"
    assert command.read_text().splitlines()[0] == f"#!{fresh_venv / 'bin' / 'python'}"
    result = _run_in_venv(fresh_venv, str(command), "--help", cwd=tmp_path)
    assert result.returncode == 0, f"valeria-hub --help: exit {result.returncode}\n{result.stderr}"
    # argparse lists the subcommands under COMMAND, one per line, indented by four spaces
    commands = {
        line.split()[0]
        for line in result.stdout.splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    }
    assert {"jobs", "users"} <= commands, result.stdout
    assert not commands & {"demo", "devstack"}, result.stdout
    assert "devstack" not in result.stdout
