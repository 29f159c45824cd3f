"""ValeriaSpawner's own pieces, without a cluster: the environment and the pod manifest
it hands to KubeSpawner once Vault has answered, the storage check, and the flavours
each person is offered.

KubeSpawner loads a kubeconfig when it is made; the test gives it one (written by the
devstack's writer, pointing at a closed port) and makes no API call.
"""

from __future__ import annotations

import asyncio
import html
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import kube_config
from tornado.web import HTTPError
from traitlets import TraitError

from devstack.kube.kubeconfig import write_kubeconfig
from valeria_hub.restrictions import Membership
from valeria_hub.spawner import SpawnRefused, ValeriaSpawner
from valeria_hub.storage import STORAGE_CHECK_CONTAINER, StorageLayout
from valeria_hub.vault import UserProfile


def as_sent(pod) -> dict:
    """The pod as the API server receives it (camelCase JSON)."""
    return ApiClient().sanitize_for_serialization(pod)


ALICE = UserProfile("alice", "ent-1", 20001, 30001, "AKIAALICE", "alice-secret-key")


@pytest.fixture
async def make_spawner(tmp_path, monkeypatch):
    """ValeriaSpawner(**config) for alice (made inside the loop, as the hub makes it)."""
    config = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:9", "unused")
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
    storage = StorageLayout(
        nfs_server="nfs.example.org", nfs_path="/export", s3_endpoint_url="https://s3.example"
    )

    def make(**config) -> ValeriaSpawner:
        s = ValeriaSpawner(_mock=True, storage=storage, cmd=["jupyterhub-singleuser"], **config)
        s.user.name = "alice"
        return s

    return make


@pytest.fixture
async def spawner(make_spawner) -> ValeriaSpawner:
    return make_spawner()


def test_env_holds_nothing_before_vault_answers(spawner):
    env = spawner.get_env()
    assert not {"NB_UID", "HOME", "AWS_SECRET_ACCESS_KEY"} & set(env)


def test_env_is_the_workloads_with_keys_only_as_secret_references(spawner):
    spawner._profile = ALICE
    env = spawner.get_env()
    assert env["NB_USER"] == "alice" and env["NB_UID"] == "20001"
    assert env["HOME"] == "/home/alice"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ENDPOINT_URL"):
        assert env[key] == {
            "valueFrom": {"secretKeyRef": {"name": spawner.secret_name_s3, "key": key}}
        }
    assert "AKIAALICE" not in repr(env) and "alice-secret-key" not in repr(env)
    assert env["JUPYTERHUB_API_TOKEN"] == spawner.api_token  # KubeSpawner's own stay


async def test_pod_runs_as_the_person_with_their_storage(spawner):
    spawner._profile = ALICE
    pod = as_sent(await spawner.get_pod_manifest())
    spec = pod["spec"]
    assert spec["securityContext"]["runAsUser"] == 20001
    assert spec["securityContext"]["runAsGroup"] == 30001
    assert spec["securityContext"]["fsGroup"] == 30001
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    csc = container["securityContext"]
    assert csc["runAsUser"] == 20001 and csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"] and csc["privileged"] is False
    assert container["workingDir"] == "/home/alice"
    nfs = [v for v in spec["volumes"] if "nfs" in v]
    assert [(v["nfs"]["server"], v["nfs"]["path"]) for v in nfs] == [("nfs.example.org", "/export")]
    mounts = {m["mountPath"]: m["subPath"] for m in container["volumeMounts"]}
    assert mounts["/home/alice"] == "home/alice" and mounts["/scratch"] == "scratch/alice"
    env = {e["name"]: e for e in container["env"]}
    assert env["HOME"]["value"] == "/home/alice"
    ref = env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": spawner.secret_name_s3, "key": "AWS_SECRET_ACCESS_KEY"}
    assert "alice-secret-key" not in repr(pod)


async def test_operator_security_settings_never_loosen_the_identity(make_spawner):
    spawner = make_spawner(
        pod_security_context={"runAsUser": 0, "sysctls": [{"name": "a", "value": "1"}]},
        container_security_context={"runAsUser": 0, "readOnlyRootFilesystem": True},
    )
    spawner._profile = ALICE
    pod = as_sent(await spawner.get_pod_manifest())
    assert pod["spec"]["securityContext"]["runAsUser"] == 20001
    assert pod["spec"]["securityContext"]["sysctls"] == [{"name": "a", "value": "1"}]
    csc = pod["spec"]["containers"][0]["securityContext"]
    assert csc["runAsUser"] == 20001 and csc["readOnlyRootFilesystem"] is True


async def test_no_manifest_without_an_identity(spawner):
    with pytest.raises(SpawnRefused, match="identity was not resolved"):
        await spawner.get_pod_manifest()


# -- the storage check --------------------------------------------------------------------
async def test_an_init_container_checks_the_persons_directories_first(spawner):
    spawner._profile = ALICE
    spawner.cpu_limit, spawner.mem_limit = 2.0, "2G"
    pod = as_sent(await spawner.get_pod_manifest())
    (check,) = pod["spec"]["initContainers"]
    notebook = pod["spec"]["containers"][0]
    assert check["name"] == STORAGE_CHECK_CONTAINER
    assert check["image"] == notebook["image"]
    assert check["command"][:2] == ["sh", "-c"]
    assert check["command"][3:] == [
        STORAGE_CHECK_CONTAINER, "20001", "home", "/home/alice", "scratch", "/scratch",
    ]  # fmt: skip
    assert check["securityContext"] == notebook["securityContext"]
    assert check["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert check["resources"]["limits"] == notebook["resources"]["limits"]
    mounts = {m["mountPath"]: m["subPath"] for m in check["volumeMounts"]}
    assert mounts == {"/home/alice": "home/alice", "/scratch": "scratch/alice"}
    assert "env" not in check and "envFrom" not in check  # no S3 keys in the check


async def test_the_storage_check_can_be_turned_off_and_keeps_operator_init_containers(
    make_spawner,
):
    off = make_spawner(check_storage=False)
    off._profile = ALICE
    assert "initContainers" not in as_sent(await off.get_pod_manifest())["spec"]
    mine = {"name": "site-setup", "image": "busybox", "command": ["true"]}
    on = make_spawner(init_containers=[mine])
    on._profile = ALICE
    inits = as_sent(await on.get_pod_manifest())["spec"]["initContainers"]
    assert [c["name"] for c in inits] == [STORAGE_CHECK_CONTAINER, "site-setup"]


def failed_check(message: str = "", **terminated) -> dict:
    ended = {"exitCode": 78, "reason": "Error", **terminated}
    if message:
        ended["message"] = message
    return {
        "metadata": {"name": "jupyter-alice"},
        "status": {
            "phase": "Pending",
            "podIP": "10.0.0.1",
            "initContainerStatuses": [
                {"name": STORAGE_CHECK_CONTAINER, "state": {"terminated": ended}}
            ],
            "containerStatuses": [{"name": "notebook", "ready": False}],
        },
    }


def test_a_failed_check_ends_the_start_with_its_message(spawner):
    pod = failed_check(
        "valeria-hub storage check: your home directory /home/alice is not writable by "
        "your uid 20001 (it has uid 0, mode 755)\n"
    )
    assert spawner.is_pod_running(pod) is False  # not while no spawn is waiting
    spawner._watching_storage_check = True
    with pytest.raises(SpawnRefused) as e:
        spawner.is_pod_running(pod)
    assert e.value.status_code == 503 and e.value.reason == "storage"
    assert str(e.value) == (
        "Your server cannot start: your home directory /home/alice is not writable by your "
        "uid 20001 (it has uid 0, mode 755)."
    )
    assert "valeria-hub users onboard --nfs-root" in e.value.jupyterhub_html_message


# -- flavours by group and role ---------------------------------------------------------------
ACCESS = {
    "tensorflow": {"allowed_groups": ["/team-a"]},
    "spark": {"allowed_roles": ["staff"]},
    "*": {"options": {"size": {"large": {"allowed_groups": ["team-a"]}}}},
}


def logged_in(spawner, groups=(), roles=(), hub_groups=()):
    """The person's auth_state as KeycloakAuthenticator stores it, and their hub groups."""
    claims = {"groups": list(groups), "realm_access": {"roles": list(roles)}}

    state = {"access_token": "t", "oauth_user": claims}

    async def get_auth_state():
        return state

    spawner.user.get_auth_state = get_auth_state
    spawner.user.groups = [SimpleNamespace(name=g) for g in hub_groups]
    spawner.authenticator = SimpleNamespace(
        client_id="jupyterhub", user_auth_state_key="oauth_user"
    )
    return spawner


async def test_membership_is_the_logins_groups_and_roles_and_the_hub_groups(spawner):
    logged_in(spawner, ["/team-a"], ["hub-user"], hub_groups=["extra"])
    claims = (await spawner.user.get_auth_state())["oauth_user"]
    claims["resource_access"] = {"jupyterhub": {"roles": ["gpu"]}, "other": {"roles": ["x"]}}
    who = await spawner.membership()
    assert who.groups == {"team-a", "extra"}
    assert who.roles == {"hub-user", "gpu", "jupyterhub:gpu"}
    spawner.user.get_auth_state = lambda: asyncio.sleep(0)  # auth_state off: hub groups only
    assert await spawner.membership() == Membership.of(["extra"])


async def test_the_start_takes_the_auth_state_jupyterhub_hands_it_once(spawner):
    """JupyterHub decrypts the auth state and hands it to ``run_auth_state_hook`` just
    before ``start()``: the start takes that copy instead of decrypting it again; only
    once (a later start reads it anew), and a configured auth_state_hook still runs."""
    logged_in(spawner)
    hooked = []
    spawner.auth_state_hook = lambda sp, state: hooked.append(state)
    handed = {"access_token": "handed", "oauth_user": {}}
    await spawner.run_auth_state_hook(handed)
    assert hooked == [handed]

    async def no_decrypt():
        raise AssertionError("decrypted again")

    read_anew = spawner.user.get_auth_state
    spawner.user.get_auth_state = no_decrypt
    assert await spawner._take_spawn_auth_state() is handed
    spawner.user.get_auth_state = read_anew
    assert (await spawner._take_spawn_auth_state())["access_token"] == "t"


async def test_the_form_shows_each_person_only_what_they_may_use(make_spawner):
    bob = logged_in(make_spawner(flavour_access=ACCESS), ["/researchers"], ["hub-user"])
    form = await bob.options_form(bob)
    assert 'value="scipy"' in form and 'value="tensorflow"' not in form
    assert 'value="spark"' not in form and 'value="large"' not in form
    alice = logged_in(make_spawner(flavour_access=ACCESS), ["/team-a"])
    form = await alice.options_form(alice)
    assert 'value="tensorflow"' in form and 'value="large"' in form
    nobody = logged_in(make_spawner(flavour_access={"*": {"allowed_roles": ["staff"]}}))
    form = await nobody.options_form(nobody)
    assert "No notebook flavour is available to your account" in " ".join(form.split())


async def test_a_forged_form_value_is_a_400_naming_it(make_spawner):
    bob = logged_in(make_spawner(flavour_access=ACCESS), ["/researchers"])
    with pytest.raises(HTTPError) as e:
        await bob.run_options_from_form({"profile": ["tensorflow"]})
    assert e.value.status_code == 400
    assert "profile: 'tensorflow' is not available to you" in e.value.log_message
    with pytest.raises(HTTPError, match="size: 'large' is not available to you"):
        await bob.run_options_from_form(
            {"profile": ["scipy"], "profile-option-scipy--size": ["large"]}
        )
    assert await bob.run_options_from_form({"profile": ["scipy"]}) == {"profile": "scipy"}


async def test_options_through_the_api_are_checked_too_and_defaults_are_usable(make_spawner):
    bob = logged_in(make_spawner(flavour_access=ACCESS), ["/researchers"])
    bob.user_options = {"profile": "spark"}
    with pytest.raises(SpawnRefused, match="'spark' is not available to you") as e:
        await bob.load_user_options()
    assert e.value.status_code == 400
    first = {"*": {"options": {"size": {"small": {"allowed_roles": ["staff"]}}}}}
    carol = logged_in(make_spawner(flavour_access=first), ["/students"])
    carol.user_options = {}
    await carol.load_user_options()
    assert carol.image == "quay.io/jupyter/minimal-notebook:latest"
    assert carol.cpu_limit == 2.0  # "medium": "small" is not hers


async def test_an_overlay_naming_nothing_stops_every_spawn(make_spawner):
    typo = logged_in(make_spawner(flavour_access={"tensorfow": {"allowed_groups": ["/a"]}}))
    typo.user_options = {}
    with pytest.raises(SpawnRefused, match="misconfigured") as e:
        await typo.load_user_options()
    assert e.value.status_code == 503
    assert "'tensorfow' names no flavour" in html.unescape(e.value.jupyterhub_html_message)
    with pytest.raises(TraitError, match="unknown keys"):
        make_spawner(flavour_access={"gpu": {"groups": ["/a"]}})
