"""The hub image and the deployment's page templates.

No container engine is installed on the project's machines or in CI (and no base image can
be pulled there), so the Containerfile is checked against the repository and the OpenShift
template instead of built: every copied path exists, the configuration and templates land
where the template's container command looks for them, the user is non-root and the hub's
writable directories belong to group 0, the command is the template's. With
VALERIA_TEST_CONTAINER_BUILD=1 on a Debian machine with podman and debootstrap, one more test
builds the image on a bootstrapped Debian and starts the hub in it under an arbitrary uid.

The template loading order (deployment templates/ first, then the package's defaults) is
checked by executing jupyterhub_config.py the way JupyterHub does, and by a real hub that
serves an operator's edited copies of templates/.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml
from traitlets.config.loader import PyFileConfigLoader

from tests.helpers import DEPLOYMENT_ENV, REPO_ROOT
from tests.helpers.e2e import browser, progress_events, running_hub, running_stack, spawn
from valeria_hub.templates import FORM_DIR, TEMPLATES_DIR

CONTAINERFILE = REPO_ROOT / "Containerfile"
HUB_TEMPLATE = REPO_ROOT / "openshift" / "valeria-hub-template.yaml"
DEPLOYMENT_TEMPLATES = REPO_ROOT / "templates"
PACKAGE_PARENT = str(Path(TEMPLATES_DIR).parent.parent)


# -- the Containerfile, parsed --------------------------------------------------------------
def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        result.append((word.upper(), " ".join(rest.split())))
    assert not pending, "the Containerfile ends inside a continued line"
    return result


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


class Image:
    """What the Containerfile makes: base, files, environment, user, command."""

    def __init__(self, text: str) -> None:
        self.steps = instructions(text)
        self.args: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.copies: list[tuple[list[str], str]] = []  # (sources, destination)
        self.runs: list[str] = []
        self.froms: list[str] = []
        self.user = self.workdir = None
        self.expose: set[int] = set()
        self.entrypoint: list[str] = []
        self.cmd: list[str] = []
        for word, args in self.steps:
            if word == "ARG":
                name, _, default = args.partition("=")
                self.args[name] = default
            elif word == "FROM":
                self.froms.append(self.expand(args.split()[0]))
            elif word == "ENV":
                for item in shlex.split(args):
                    name, _, value = item.partition("=")
                    self.env[name] = self.expand(value)
            elif word in ("COPY", "ADD"):
                parts = [p for p in shlex.split(args) if not p.startswith("--")]
                assert not any(p.startswith("--from") for p in shlex.split(args)), args
                self.copies.append((parts[:-1], parts[-1]))
            elif word == "RUN":
                self.runs.append(args)
            elif word == "USER":
                self.user = args
            elif word == "WORKDIR":
                self.workdir = args
            elif word == "EXPOSE":
                self.expose |= {int(p.split("/")[0]) for p in args.split()}
            elif word == "ENTRYPOINT":
                self.entrypoint = exec_form(args)
            elif word == "CMD":
                self.cmd = exec_form(args)

    def expand(self, value: str) -> str:
        def sub(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            return self.env.get(name, self.args.get(name, ""))

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, value)

    def destination_of(self, source: str) -> str:
        for sources, dest in self.copies:
            if source in sources:
                # a directory's contents go into the destination; a file into dest/ keeps its name
                if dest.endswith("/") and not (REPO_ROOT / source).is_dir():
                    return dest + Path(source).name
                return dest.rstrip("/")
        raise AssertionError(f"{source} is not copied into the image")

    def command(self) -> list[str]:
        return self.entrypoint + self.cmd


@pytest.fixture(scope="module")
def image() -> Image:
    return Image(CONTAINERFILE.read_text())


def hub_container() -> tuple[dict, dict[str, str]]:
    """The template's hub container, and the template's parameter defaults."""
    template = yaml.safe_load(HUB_TEMPLATE.read_text())
    params = {p["name"]: p.get("value") for p in template["parameters"]}
    deployment = next(o for o in template["objects"] if o["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container, params


def substitute(value: str, params: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], value)


def config_path_of(command: list[str]) -> str:
    assert command[0] == "jupyterhub", command
    for i, arg in enumerate(command):
        if arg in ("-f", "--config"):
            return command[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"no configuration file in {command}")


def test_every_copied_path_exists_and_only_the_product_is_copied(image):
    assert image.copies, "the Containerfile copies nothing"
    for sources, _dest in image.copies:
        for source in sources:
            assert not any(c in source for c in "*?["), f"no globs, please: {source}"
            path = REPO_ROOT / source
            assert path.exists(), f"COPY {source}: no such path in the repository"
            assert path.resolve().is_relative_to(REPO_ROOT.resolve())
            top = Path(source).parts[0]
            assert top not in {".", "tests", "devstack", "benchmarks", ".venv", ".node"}, source


def test_base_image_is_a_python_image_the_package_supports(image):
    assert len(image.froms) == 1, image.froms
    base = image.froms[0]
    assert re.search(r"python[-:]3\.1[12]", base), base
    assert base.count("/") >= 1 and not base.startswith("localhost/"), base


def test_configuration_and_templates_are_where_the_template_command_looks(image):
    container, params = hub_container()
    config = substitute(config_path_of(container["command"] + container.get("args", [])), params)
    assert config == params["HUB_CONFIG_FILE"]
    assert image.destination_of("jupyterhub_config.py") == config
    # jupyterhub_config.py looks for the deployment's templates/ next to itself
    assert image.destination_of("templates") == str(Path(config).parent / "templates")
    # the image's own command is the template's, so `podman run IMAGE` starts the same hub
    assert image.command()[0] == "jupyterhub"
    assert config_path_of(image.command()) == config
    assert image.workdir == container["workingDir"]
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports <= image.expose, (ports, image.expose)


def test_runs_as_non_root_with_group_zero_writable_directories(image):
    assert image.user is not None and re.fullmatch(r"\d+(:0)?", image.user), image.user
    assert int(image.user.split(":")[0]) != 0
    runs = " && ".join(image.runs)
    writable = {image.workdir, image.env.get("HOME")}
    assert None not in writable
    for directory in writable:
        assert re.search(rf"chgrp -R 0 (\S+ )*{re.escape(directory)}\b", runs), directory
        assert re.search(rf"chmod -R g=u (\S+ )*{re.escape(directory)}\b", runs), directory
    # the template mounts emptyDirs there too, and the hub writes nowhere else
    container, _ = hub_container()
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert image.workdir in mounts and "/tmp" in mounts


def test_the_package_is_installed_from_the_repository_without_extras(image):
    pyproject = image.destination_of("pyproject.toml")
    source_dir = str(Path(pyproject).parent)
    package = image.destination_of("valeria_hub")
    assert package == f"{source_dir}/valeria_hub"
    # pyproject's readme is part of the build
    assert image.destination_of("README.md") == f"{source_dir}/README.md"
    installs = [r for r in image.runs if re.search(r"\bpip install\b", r)]
    assert len(installs) == 1, installs
    words = installs[0].split("pip install", 1)[1].split("&&")[0].split()
    assert words == [source_dir], f"installs {words}, not the repository alone"
    # `jupyterhub` (the command) comes from that environment
    venv = re.search(r"python3? -m venv (\S+)", installs[0]).group(1)
    assert f"{venv}/bin" in image.env["PATH"].split(":")
    assert f"{venv}/bin/pip install" in installs[0]


def test_configurable_http_proxy_is_installed_and_on_the_path(image):
    runs = [r for r in image.runs if "configurable-http-proxy" in r]
    assert len(runs) == 1, runs
    m = re.search(r"npm install .*--prefix (\S+) .*configurable-http-proxy@\^4", runs[0])
    assert m, runs[0]
    assert f"{m.group(1)}/node_modules/.bin" in image.env["PATH"].split(":")
    # Node stays (the proxy runs on it); only npm is removed
    assert re.search(r"apt-get install .*\bnodejs\b", runs[0])
    purged = re.search(r"apt-get purge (.*?)(&&|$)", runs[0])
    assert purged is None or "nodejs" not in purged.group(1)


def test_the_build_instructions_are_the_ones_written():
    readme = (REPO_ROOT / "openshift" / "README.md").read_text()
    assert "podman build -f Containerfile -t " in readme
    build = re.search(r"podman build -f Containerfile -t \S+ \.", readme)
    assert build, "openshift/README.md must build from the repository root"
    assert "templates/" in readme
    assert "test_containerfile.py" in (REPO_ROOT / "README.md").read_text()


# -- template loading order -------------------------------------------------------------------
def load_config(monkeypatch, config_file: Path, **env: str):
    monkeypatch.delenv("VALERIA_TEMPLATES_DIR", raising=False)
    for name, value in {**DEPLOYMENT_ENV, **env}.items():
        monkeypatch.setenv(name, value)
    return PyFileConfigLoader(config_file.name, str(config_file.parent)).load_config()


def test_deployment_templates_come_before_the_package_defaults(monkeypatch):
    config = load_config(monkeypatch, REPO_ROOT / "jupyterhub_config.py")
    assert config.JupyterHub.template_paths == [
        str(DEPLOYMENT_TEMPLATES),
        TEMPLATES_DIR,
        PACKAGE_PARENT,
    ]
    assert config.KubeSpawner.additional_profile_form_template_paths == [
        str(DEPLOYMENT_TEMPLATES / "kubespawner"),
        FORM_DIR,
        PACKAGE_PARENT,
    ]


def test_without_the_folder_only_the_package_defaults(monkeypatch, tmp_path, capsys):
    # as in a bare `pip install` with the configuration copied alone
    shutil.copy(REPO_ROOT / "jupyterhub_config.py", tmp_path / "jupyterhub_config.py")
    config = load_config(monkeypatch, tmp_path / "jupyterhub_config.py")
    assert config.JupyterHub.template_paths == [TEMPLATES_DIR, PACKAGE_PARENT]
    assert config.KubeSpawner.additional_profile_form_template_paths == [FORM_DIR, PACKAGE_PARENT]
    assert "VALERIA_TEMPLATES_DIR" not in capsys.readouterr().err
    # a variable naming a folder that is not there: said on stderr, defaults used
    missing = tmp_path / "no-such-templates"
    config = load_config(
        monkeypatch, REPO_ROOT / "jupyterhub_config.py", VALERIA_TEMPLATES_DIR=str(missing)
    )
    assert config.JupyterHub.template_paths == [TEMPLATES_DIR, PACKAGE_PARENT]
    assert f"VALERIA_TEMPLATES_DIR {missing} is not a directory" in capsys.readouterr().err
    # and one that is there comes first
    config = load_config(
        monkeypatch, REPO_ROOT / "jupyterhub_config.py", VALERIA_TEMPLATES_DIR=str(tmp_path)
    )
    assert config.JupyterHub.template_paths[:2] == [str(tmp_path), TEMPLATES_DIR]


def test_every_deployment_template_extends_the_package_page_of_its_name():
    pages = sorted(p for p in DEPLOYMENT_TEMPLATES.rglob("*.html"))
    names = {str(p.relative_to(DEPLOYMENT_TEMPLATES)) for p in pages}
    assert names == {"page.html", "login.html", "not_running.html", "kubespawner/form.html"}
    for page in pages:
        name = page.relative_to(DEPLOYMENT_TEMPLATES)
        default = f"valeria_hub/templates/{name}"
        assert (Path(PACKAGE_PARENT) / default).is_file(), default
        assert re.search(rf'{{%-? (extends|include) "{re.escape(default)}"', page.read_text())
    readme = (DEPLOYMENT_TEMPLATES / "README.md").read_text()
    for name in names:
        assert f"`{name}`" in readme, name


# -- a real hub with an operator's templates ----------------------------------------------------
def operator_edit(folder: Path) -> None:
    """Edit copies of templates/ the way templates/README.md says: inside the blocks."""

    def edit(name: str, after: str, text: str) -> None:
        path = folder / name
        body = path.read_text()
        assert body.count(after) >= 1, (name, after)
        path.write_text(body.replace(after, after + text, 1))

    edit("page.html", "{% block footer %}\n  {{ super() }}", '<footer id="op-footer">Op U</footer>')
    edit("login.html", "{% block login %}\n  {{ super() }}", '<p id="op-login">Op IT rules</p>')
    edit(
        "not_running.html",
        "{% block message %}\n  {{ super() }}",
        '{% if failed %}<p id="op-refusal">Ask Op</p>{% endif %}',
    )
    form = folder / "kubespawner" / "form.html"
    form.write_text('<p id="op-form">Op GPU rules</p>\n' + form.read_text())


def test_a_real_hub_serves_the_operators_pages_over_the_package_defaults(tmp_path):
    folder = tmp_path / "operator-templates"
    shutil.copytree(DEPLOYMENT_TEMPLATES, folder)
    operator_edit(folder)
    with (
        running_stack(tmp_path) as stack,
        running_hub(stack, tmp_path / "hub", VALERIA_TEMPLATES_DIR=str(folder)) as hub,
    ):
        login = httpx.get(f"{hub.public_url}/hub/login", timeout=30)
        assert login.status_code == 200
        for expected in ('id="op-login"', 'id="op-footer"', 'id="valeria-sign-in"'):
            assert expected in login.text, expected
        # the frame is still the package's too: its services menu names the jobs service
        client = browser(hub, "bob")
        home = client.get(f"{hub.public_url}/hub/home")
        assert 'id="op-footer"' in home.text and "Batch jobs" in home.text
        form = client.get(f"{hub.public_url}/hub/spawn")
        assert form.status_code == 200
        assert 'id="op-form"' in form.text and 'id="valeria-flavours"' in form.text
        # a refusal: the package's message and the operator's help below it
        client = browser(hub, "carol")
        spawn(client, hub)
        assert progress_events(client, hub, "carol")[-1].get("failed")
        page = client.get(f"{hub.public_url}/hub/spawn-pending/carol")
        assert 'class="valeria-refusal-page"' in page.text
        assert 'id="op-refusal"' in page.text and "no storage identity yet" in page.text


# -- opt-in: build the image and start the hub in it ----------------------------------------
BUILD = os.environ.get("VALERIA_TEST_CONTAINER_BUILD") == "1"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _build_and_run_the_image() -> None:
    """About 5 minutes: debootstrap a Debian bookworm with Python 3.11 (no registry needed),
    build the Containerfile on it, run the hub as uid 1000970000 in group 0."""
    for tool in ("podman", "debootstrap", "runc"):
        assert shutil.which(tool), f"{tool} is missing (apt-get install podman debootstrap runc)"
    # not under pytest's basetemp: other pytest sessions on the machine rotate it away
    tmp_path = Path(tempfile.mkdtemp(prefix="valeria-image-"))
    (tmp_path / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n'
        'cgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(tmp_path / "containers.conf")}
    podman = ["podman", "--root", str(tmp_path / "storage"), "--runroot", str(tmp_path / "run")]

    def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)
        assert done.returncode == 0, f"{cmd[:6]}... failed:\n{done.stderr[-3000:]}"
        return done

    rootfs = tmp_path / "rootfs"
    try:
        run(
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv",
            "bookworm",
            str(rootfs),
            "http://deb.debian.org/debian",
            timeout=900,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(*podman, "import", "-", "localhost/valeria-base:bookworm", stdin=tar.stdout)
        tar.stdout.close()
        assert tar.wait() == 0
        # the machine's CA bundle, for networks that inspect TLS (npm and pip check it)
        trust = (
            [
                f"--volume={CA_BUNDLE}:/host-ca.crt:ro",
                "--env=NODE_EXTRA_CA_CERTS=/host-ca.crt",
                "--env=PIP_CERT=/host-ca.crt",
            ]
            if CA_BUNDLE.exists()
            else []
        )
        run(
            *podman,
            "build",
            "--isolation",
            "chroot",
            *trust,
            "--build-arg",
            "BASE_IMAGE=localhost/valeria-base:bookworm",
            "-f",
            str(CONTAINERFILE),
            "-t",
            "localhost/valeria-hub:test",
            str(REPO_ROOT),
            timeout=900,
        )
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
            "users: [{name: u, user: {token: x}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u, namespace: valeria}}]\n"
        )
        kubeconfig.chmod(0o644)
        ports = [str(p) for p in _free_ports(4)]
        key = secrets.token_hex(32)
        hub_env = {
            **DEPLOYMENT_ENV,
            "JUPYTERHUB_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",
            "JUPYTERHUB_BIND_URL": f"http://127.0.0.1:{ports[0]}",
            "JUPYTERHUB_HUB_BIND_URL": f"http://127.0.0.1:{ports[1]}",
            "JUPYTERHUB_PROXY_API_URL": f"http://127.0.0.1:{ports[2]}",
            "JOBS_SERVICE_PORT": ports[3],
            "JUPYTERHUB_CRYPT_KEY": key,
            "JUPYTERHUB_COOKIE_SECRET": key,
            "KUBECONFIG": "/etc/valeria-kubeconfig",
            "KUBERNETES_NAMESPACE": "valeria",
        }
        run(
            *podman,
            "--runtime",
            "runc",
            "--cgroup-manager=cgroupfs",
            "run",
            "-d",
            "--name",
            "valeria-hub-test",
            "--net",
            "host",
            "--user",
            "1000970000:0",
            f"--volume={kubeconfig}:/etc/valeria-kubeconfig:ro",
            *[f"--env={k}={v}" for k, v in hub_env.items()],
            "localhost/valeria-hub:test",
            timeout=120,
        )
        deadline = time.monotonic() + 90
        login = None
        while time.monotonic() < deadline:
            try:
                login = httpx.get(f"http://127.0.0.1:{ports[0]}/hub/login", timeout=5)
                if login.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        logs = subprocess.run(
            [*podman, "logs", "valeria-hub-test"], env=env, capture_output=True, text=True
        ).stdout
        assert login is not None and login.status_code == 200, logs[-3000:]
        assert 'id="valeria-sign-in"' in login.text
        owner = run(
            *podman,
            "exec",
            "valeria-hub-test",
            "stat",
            "-c",
            "%u:%g",
            "/srv/jupyterhub/jupyterhub.sqlite",
        ).stdout.strip()
        assert owner == "1000970000:0"
    finally:
        subprocess.run([*podman, "rm", "-f", "valeria-hub-test"], env=env, capture_output=True)
        subprocess.run([*podman, "system", "reset", "--force"], env=env, capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)


def _free_ports(n: int) -> list[int]:
    from devstack.hub import free_port

    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


# Collected only when asked for (VALERIA_TEST_CONTAINER_BUILD=1): CI has no container engine,
# and a test that always skips there would look like coverage it is not.
if BUILD:
    test_the_image_builds_and_runs_the_hub_under_an_arbitrary_uid = pytest.mark.timeout(1200)(
        _build_and_run_the_image
    )
