"""Job profiles restricted to groups: the same decision as notebook flavours
(valeria_hub.restrictions), applied by the pure submission check."""

from __future__ import annotations

import pytest

from valeria_hub.jobs.policy import PolicyError, Rules, check_submission
from valeria_hub.jobs.profiles import parse_profiles
from valeria_hub.restrictions import Membership

NS = "valeria-jobs-alice-12345678"
GPU_PLACEMENT = {"node_selector": {"gpu": "a100"}}
PROFILES = {
    "small": {"resources": {"limits": {"cpu": "1", "memory": "2Gi"}}},
    "gpu": {
        "resources": {"limits": {"cpu": "4", "memory": "8Gi"}},
        "allowed_groups": ["/gpu-users"],
        **GPU_PLACEMENT,
    },
}
TEAM = Membership.of(["gpu-users"])  # the hub group synced from Keycloak's /gpu-users
OTHER = Membership.of(["researchers"])


def job(**pod_extra) -> dict:
    container = {"name": "job", "image": "python:3.11", "command": ["python", "-c", "1"]}
    pod = {"restartPolicy": "Never", "containers": [container], **pod_extra}
    return {"metadata": {"generateName": "hello-"}, "spec": {"template": {"spec": pod}}}


def rules(default: str = "small") -> Rules:
    return Rules(profiles=parse_profiles(PROFILES), default_profile=default)


def test_a_member_may_use_the_profile_and_anyone_the_open_ones():
    checked = check_submission(job(), "Job", rules(), NS, "gpu", caller=TEAM)
    assert checked.profile.name == "gpu"
    for who in (TEAM, OTHER, None):
        assert check_submission(job(), "Job", rules(), NS, "small", caller=who).profile.name


@pytest.mark.parametrize("who", [OTHER, Membership(), None])
def test_anyone_else_is_refused_naming_the_profile(who):
    with pytest.raises(PolicyError) as e:
        check_submission(job(), "Job", rules(), NS, "gpu", caller=who)
    assert e.value.field == "profile"
    assert str(e.value) == (
        "profile: 'gpu' is not available to you (it is for members of the groups "
        "gpu-users); see GET /profiles/"
    )


def test_a_restricted_default_or_a_copied_placement_is_refused_too():
    """kbatch merges a profile's placement into the job: the profile is inferred."""
    with pytest.raises(PolicyError, match=r"'gpu' \(the default\) is not available"):
        check_submission(job(), "Job", rules(default="gpu"), NS, None, caller=OTHER)
    with pytest.raises(PolicyError, match="'gpu' is not available"):
        check_submission(job(nodeSelector={"gpu": "a100"}), "Job", rules(), NS, caller=OTHER)
    inferred = check_submission(job(nodeSelector={"gpu": "a100"}), "Job", rules(), NS, caller=TEAM)
    assert inferred.profile.name == "gpu"


def test_restricted_profiles_are_not_shown_with_their_groups():
    assert "allowed_groups" not in parse_profiles(PROFILES)["gpu"].public()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"allowed_roles": ["staff"]}, "allowed_roles is not supported here"),
        ({"allowed_groups": "/gpu-users"}, "allowed_groups must be a list of names"),
    ],
)
def test_malformed_restrictions_stop_the_configuration(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_profiles({"gpu": raw})
