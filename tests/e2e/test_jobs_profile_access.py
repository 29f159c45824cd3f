"""Job profiles restricted to groups, end to end: the jobs service learns the caller's
groups from the hub's user model (groups the authenticator syncs from Keycloak; here
set through the hub's API by an admin) and refuses a profile the caller may not use."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.jobs_stack import hub_login, jobs_stack, user_token
from valeria_hub.jobs.config import DEFAULT_PROFILES

pytestmark = pytest.mark.e2e

BIG = {
    "description": "4 CPU, for the GPU team",
    "resources": {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "4", "memory": "4Gi"},
    },
    "allowed_groups": ["/gpu-users"],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    profiles = {**DEFAULT_PROFILES, "big": BIG}
    with jobs_stack(tmp_path_factory.mktemp("jobs-profiles"), profiles=profiles) as s:
        for name in ("alice", "bob"):
            hub_login(s.hub_url, name)
        with httpx.Client(timeout=15) as admin:
            hub_login(s.hub_url, "admin", admin)
            xsrf = admin.cookies.get("_xsrf") or ""
            headers = {"X-XSRFToken": xsrf, "Referer": f"{s.hub_url}/hub/home"}
            api = f"{s.hub_url}/hub/api/groups/gpu-users"
            assert admin.post(api, headers=headers).status_code in (201, 409)
            resp = admin.post(f"{api}/users", json={"users": ["alice"]}, headers=headers)
            assert resp.status_code == 200, resp.text
        yield s


def submit(stack, user: str, profile: str | None) -> httpx.Response:
    container = {"name": "job", "image": "python:3.11", "command": ["sh", "-c", "true"]}
    job = {
        "metadata": {"generateName": "p-"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }
    body = {"job": job, **({"profile": profile} if profile else {})}
    token = user_token(stack.hub_url, user)
    return httpx.post(
        f"{stack.service.url}jobs/",
        json=body,
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )


def jobs_of(stack) -> list[str]:
    return [j["metadata"]["name"] for j in stack.kube.dump().get("batch/v1/jobs", [])]


def test_someone_outside_the_group_is_refused_naming_the_profile(stack):
    before = stack.kube.dump()
    resp = submit(stack, "bob", "big")
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"] == (
        "profile: 'big' is not available to you (it is for members of the groups "
        "gpu-users); see GET /profiles/"
    )
    after = stack.kube.dump()
    for kind in ("v1/secrets", "v1/configmaps", "batch/v1/jobs", "v1/namespaces"):
        assert after.get(kind, []) == before.get(kind, []), kind
    assert submit(stack, "bob", "small").status_code == 201  # the open ones stay open


def test_a_member_of_the_group_may_use_it(stack):
    resp = submit(stack, "alice", "big")
    assert resp.status_code == 201, resp.text
    container = resp.json()["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["cpu"] == "4"


def test_the_profile_list_shows_each_person_what_they_may_use(stack):
    """GET /profiles/ with a token lists the profiles its owner may use; the big one
    only for alice (in gpu-users)."""

    def names(user: str) -> set[str]:
        token = user_token(stack.hub_url, user)
        resp = httpx.get(
            f"{stack.service.url}profiles/",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return set(resp.json())

    assert "big" in names("alice")
    assert names("bob") == set(DEFAULT_PROFILES)
