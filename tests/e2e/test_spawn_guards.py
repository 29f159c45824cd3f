"""What a person may start, and a storage that is not ready, end to end: the real hub on
the repository's config (with the flavour restrictions in its extra config file),
Keycloak's groups and realm roles from the stand-in's realm, and the Kubernetes
stand-in's kubelet running the storage check's init container as the person's uid.

Demo realm: alice is in /researchers and /team-a, bob in /researchers, admin holds
the realm role hub-admin.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time

import pytest

from devstack.stack import DEMO_STORAGE, NFS_EXPORT
from tests.helpers.e2e import (
    browser,
    progress_events,
    require_root,
    running_hub,
    running_stack,
    spawn,
    stack_objects,
    wait_for_lab,
)
from valeria_hub.onboarding.dirs import UserDirs

UIDS = {d.username: (d.uid, d.gid) for d in DEMO_STORAGE}
EXTRA_CONFIG = """
c.ValeriaSpawner.flavour_access = {
    "tensorflow": {"allowed_groups": ["/team-a"]},
    "spark": {"allowed_roles": ["hub-admin"]},
    "*": {"options": {"size": {"large": {"allowed_groups": ["team-a"]}}}},
}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spawn-guards")
    extra = tmp / "extra_config.py"
    extra.write_text(EXTRA_CONFIG)
    with (
        running_stack(tmp) as stack,
        running_hub(stack, tmp / "hub", JUPYTERHUB_EXTRA_CONFIG=str(extra)) as hub,
    ):
        yield stack, hub


def offered(form: str) -> tuple[set[str], set[str]]:
    """The flavours and the sizes a spawn form offers."""
    flavours = set(re.findall(r'name="profile" id="profile-[^"]+" value="([^"]+)"', form))
    sizes = set(re.findall(r'<option value="([^"]+)"', form))
    return flavours, sizes


def pods_of(stack, user: str) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in stack_objects(stack, "v1/pods")
        if user in p["metadata"]["name"]
    ]


def secrets_of(stack, user: str) -> list[str]:
    return [
        s["metadata"]["name"]
        for s in stack_objects(stack, "v1/secrets")
        if s["metadata"].get("labels", {}).get("component") == "s3-credentials"
        and user in s["metadata"]["name"]
    ]


def stop(client, hub, user: str, stack) -> None:
    xsrf = client.cookies.get("_xsrf", path="/hub/")
    client.delete(
        f"{hub.public_url}/hub/api/users/{user}/server",
        headers={"X-XSRFToken": xsrf or "", "Referer": f"{hub.public_url}/hub/home"},
    )
    gone(stack, user)


def gone(stack, user: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pods_of(stack, user) and not secrets_of(stack, user):
            return
        time.sleep(0.3)
    raise AssertionError(f"left behind: {pods_of(stack, user)} {secrets_of(stack, user)}")


def failed_spawn(client, hub, user: str) -> str:
    """Start the default server and return the failure's message. A failure within the
    hub's slow_spawn_timeout is the spawn request's own answer (503); a later one ends
    the progress stream."""
    resp = spawn(client, hub)
    if resp.status_code != 200:
        assert resp.status_code == 503, resp.text[:500]
        return html.unescape(resp.text)
    url = f"{hub.public_url}/hub/api/users/{user}/server/progress"
    headers = {"Accept": "text/event-stream", "Referer": f"{hub.public_url}/hub/"}
    events = []
    with client.stream("GET", url, headers=headers, timeout=100) as stream:
        if stream.status_code == 400:
            # it failed between the spawn's answer and this request (a loaded machine):
            # the page the person is sent to then says why
            deadline = time.monotonic() + 60
            while True:  # until the page stops reloading itself: the failure is known
                page = client.get(f"{hub.public_url}/hub/spawn-pending/{user}", timeout=30)
                if "window.location.reload" not in page.text or time.monotonic() > deadline:
                    return html.unescape(page.text)
                time.sleep(0.5)
        assert stream.status_code == 200, stream.read()[:300]
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("ready") or events[-1].get("failed"):
                    break
    assert events and events[-1].get("failed"), [e.get("message") for e in events]
    return events[-1]["message"]


# -- flavours by group and role ---------------------------------------------------------------
def test_each_person_is_offered_what_their_groups_and_roles_allow(env):
    stack, hub = env
    seen = {}
    for user in ("alice", "bob", "admin"):
        page = browser(hub, user).get(f"{hub.public_url}/hub/spawn")
        assert page.status_code == 200
        seen[user] = offered(page.text)
    everyone = {"minimal", "scipy", "r"}
    assert seen["alice"] == (everyone | {"tensorflow"}, {"small", "medium", "large"})
    assert seen["bob"] == (everyone, {"small", "medium"})
    assert seen["admin"] == (everyone | {"spark"}, {"small", "medium"})


def test_forged_values_are_refused_naming_them_and_nothing_is_created(env):
    stack, hub = env
    client = browser(hub, "bob")
    client.get(f"{hub.public_url}/hub/spawn")
    for form, message in (
        ({"profile": "tensorflow"}, "profile: 'tensorflow' is not available to you"),
        ({"profile": "spark"}, "profile: 'spark' is not available to you (it is for members "
         "of the roles hub-admin)"),
        (
            {"profile": "scipy", "profile-option-scipy--size": "large"},
            "size: 'large' is not available to you (it is for members of the groups team-a)",
        ),
    ):  # fmt: skip
        resp = spawn(client, hub, form)
        assert resp.status_code == 400, resp.text[:300]
        assert message in html.unescape(resp.text)
    # the REST API (no form) is checked the same way
    xsrf = client.cookies.get("_xsrf", path="/hub/")
    resp = client.post(
        f"{hub.public_url}/hub/api/users/bob/server",
        json={"profile": "tensorflow", "size": "small"},
        headers={"X-XSRFToken": xsrf or "", "Referer": f"{hub.public_url}/hub/home"},
    )
    assert resp.status_code == 400, resp.text
    assert "'tensorflow' is not available to you" in resp.json()["message"]
    assert not pods_of(stack, "bob") and not secrets_of(stack, "bob")


def test_a_member_starts_the_restricted_flavour_in_the_restricted_size(env):
    stack, hub = env
    client = browser(hub, "alice")
    client.get(f"{hub.public_url}/hub/spawn")
    resp = spawn(client, hub, {"profile": "tensorflow", "profile-option-tensorflow--size": "large"})
    assert resp.status_code == 200, resp.text[:300]
    events = progress_events(client, hub, "alice")
    assert events[-1].get("ready"), [e.get("message") for e in events]
    (pod,) = [
        p for p in stack_objects(stack, "v1/pods") if p["metadata"]["name"] == "jupyter-alice"
    ]
    notebook = pod["spec"]["containers"][0]
    assert notebook["image"] == "quay.io/jupyter/tensorflow-notebook:latest"
    assert str(notebook["resources"]["limits"]["cpu"]) in ("4", "4.0")
    check = pod["spec"]["initContainers"][0]
    assert check["name"] == "check-storage"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    wait_for_lab(client, hub, "alice")
    stop(client, hub, "alice", stack)


# -- home and scratch that are not ready ----------------------------------------------------------
def test_a_missing_home_fails_within_seconds_naming_it_then_onboarding_fixes_it(env):
    stack, hub = env
    require_root("the notebook running as the person's uid")
    export = stack.state_dir / "nfs" / NFS_EXPORT.lstrip("/")
    shutil.rmtree(export / "home" / "bob")
    client = browser(hub, "bob")
    started = time.monotonic()
    message = failed_spawn(client, hub, "bob")
    took = time.monotonic() - started
    uid = UIDS["bob"][0]
    problem = f"your home directory /home/bob is not writable by your uid {uid} (it has uid 0,"
    assert problem in message, message
    assert took < 60, f"the failure took {took:.1f}s"  # was 120 s and more ("didn't respond")
    page = client.get(f"{hub.public_url}/hub/spawn-pending/bob")
    assert page.status_code == 503
    text = html.unescape(page.text)
    assert problem in text and "valeria-hub users onboard --nfs-root" in text
    gone(stack, "bob")  # the pod and its S3 Secret went with the failed spawn

    # what the operator runs where the export is mounted; the notebook then starts
    shutil.rmtree(export / "home" / "bob")  # the root-owned one the kubelet left
    assert UserDirs(export).ensure("bob", *UIDS["bob"], dry_run=False) == ["home/bob created"]
    assert spawn(client, hub).status_code == 200
    events = progress_events(client, hub, "bob")
    assert events[-1].get("ready"), [e.get("message") for e in events]
    stop(client, hub, "bob", stack)


def test_a_home_of_another_uid_fails_naming_the_owner(env):
    stack, hub = env
    require_root("changing the owner of a home directory")
    home = stack.state_dir / "nfs" / NFS_EXPORT.lstrip("/") / "home" / "alice"
    os.chown(home, 4242, 4242)
    try:
        message = failed_spawn(browser(hub, "alice"), hub, "alice")
        uid = UIDS["alice"][0]
        assert (
            f"your home directory /home/alice is not writable by your uid {uid} "
            "(it has uid 4242, mode 700)"
        ) in message
        gone(stack, "alice")
    finally:
        os.chown(home, *UIDS["alice"])
