"""Flavour choices, who may use them, and resource caps: pure checks behind the spawn
form."""

import copy
import re

import pytest

from valeria_hub.flavours import (
    DEFAULT_FLAVOURS,
    check_flavour_config,
    check_resources,
    flavour,
    parse_access,
    usable_flavours,
    validate_user_options,
)
from valeria_hub.restrictions import Membership


def initialized():
    profiles = copy.deepcopy(DEFAULT_FLAVOURS)
    return profiles


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"profile": "scipy"},
        {"profile": "scipy", "size": "large"},
        {"profile": "r", "size": "small"},
    ],
)
def test_listed_choices_pass(options):
    validate_user_options(options, initialized())


@pytest.mark.parametrize(
    "options, field",
    [
        ({"profile": "gpu"}, "profile"),
        ({"profile": "scipy", "size": "64-cpus"}, "size"),
        ({"profile": "scipy", "size--unlisted-choice": "64"}, "size"),
        ({"profile": "scipy", "image": "evil/image"}, "image"),
        ({"size": "huge"}, "size"),
    ],
)
def test_unlisted_values_are_refused_naming_the_field(options, field):
    with pytest.raises(ValueError) as e:
        validate_user_options(options, initialized())
    assert str(e.value).startswith(field)


def test_unlisted_choice_honours_the_operators_pattern():
    profiles = initialized()
    profiles[0]["profile_options"]["size"]["unlisted_choice"] = {
        "enabled": True,
        "validation_regex": r"[0-9]",
    }
    validate_user_options({"profile": "minimal", "size--unlisted-choice": "3"}, profiles)
    with pytest.raises(ValueError):
        validate_user_options({"profile": "minimal", "size--unlisted-choice": "33"}, profiles)


def test_caps():
    """Caps are Kubernetes quantities; requests are KubeSpawner's numbers (bytes, cores)."""
    caps = {"cpu": "4", "memory": "8Gi"}
    check_resources({"cpu_limit": 4.0, "mem_limit": 8 * 2**30}, caps)
    with pytest.raises(ValueError, match="cpu_limit"):
        check_resources({"cpu_limit": 64.0}, caps)
    with pytest.raises(ValueError, match="mem_limit"):
        check_resources({"mem_limit": 9 * 2**30}, caps)
    with pytest.raises(ValueError, match="cpu_guarantee"):
        check_resources({"cpu_guarantee": -1}, caps)
    with pytest.raises(ValueError, match="mem_guarantee"):
        check_resources({"mem_guarantee": float("inf")}, caps)


def test_every_flavour_fits_the_default_caps():
    """KubeSpawner's memory traits read a flavour's "8G" as 8 GiB (JupyterHub's
    ByteSpecification): the default caps, Kubernetes quantities, must hold every size."""
    from jupyterhub.traitlets import ByteSpecification
    from traitlets import Float, HasTraits

    from valeria_hub.spawner import ValeriaSpawner

    class Resources(HasTraits):  # the four traits as KubeSpawner declares them
        cpu_limit = Float(None, allow_none=True)
        cpu_guarantee = Float(None, allow_none=True)
        mem_limit = ByteSpecification(None)
        mem_guarantee = ByteSpecification(None)

    caps = ValeriaSpawner.class_traits()["resource_caps"].default()
    sizes = [
        choice["kubespawner_override"]
        for flavour in DEFAULT_FLAVOURS
        for choice in flavour["profile_options"]["size"]["choices"].values()
    ]
    assert sizes
    for size in sizes:
        held = Resources(**size)
        check_resources({k: getattr(held, k) for k in size}, caps)
    with pytest.raises(ValueError, match="mem_limit"):
        check_resources({"mem_limit": Resources(mem_limit="65G").mem_limit}, caps)


# -- who may use which flavour and size --------------------------------------------------
TEAM_A = Membership.of(["/researchers", "/team-a"], ["hub-user"])
OTHERS = Membership.of(["/researchers"], ["hub-user"])
STAFF = Membership.of([], ["staff"])
SIZES_ = ("small", "medium", "large")
ACCESS = {
    "tensorflow": {"allowed_groups": ["/team-a"]},
    "spark": {"allowed_roles": ["staff"]},
    "*": {"options": {"size": {"large": {"allowed_groups": ["team-a"]}}}},
}


def slugs(profiles):
    return [p["slug"] for p in profiles]


def sizes(profiles, slug):
    profile = next(p for p in profiles if p["slug"] == slug)
    return list(profile["profile_options"]["size"]["choices"])


def test_nothing_configured_keeps_every_flavour_for_everyone():
    assert usable_flavours(initialized(), Membership()) == initialized()


def test_each_person_gets_what_their_groups_and_roles_allow():
    access = parse_access(ACCESS)
    mine = usable_flavours(initialized(), TEAM_A, access)
    assert slugs(mine) == ["minimal", "scipy", "r", "tensorflow"]
    assert sizes(mine, "tensorflow") == ["small", "medium", "large"]
    theirs = usable_flavours(initialized(), OTHERS, access)
    assert slugs(theirs) == ["minimal", "scipy", "r"]
    assert sizes(theirs, "scipy") == ["small", "medium"]
    staff = usable_flavours(initialized(), STAFF, access)
    assert slugs(staff) == ["minimal", "scipy", "r", "spark"]
    assert initialized() == copy.deepcopy(DEFAULT_FLAVOURS)  # the configuration is untouched


def test_defaults_move_to_what_the_person_may_use():
    profiles = initialized()
    profiles[0]["allowed_groups"] = ["/staff-only"]  # minimal, the default flavour
    small = profiles[1]["profile_options"]["size"]["choices"]["small"]
    small["allowed_roles"] = ["staff"]  # scipy's default size
    mine = usable_flavours(profiles, OTHERS)
    assert mine[0]["slug"] == "scipy" and mine[0].get("default")
    assert sizes(mine, "scipy") == ["medium", "large"]
    assert mine[0]["profile_options"]["size"]["choices"]["medium"]["default"]
    validate_user_options({}, profiles, OTHERS)  # the default is one they may use


def test_a_flavour_without_any_size_for_the_person_is_left_out():
    access = parse_access(
        {"r": {"options": {"size": {s: {"allowed_roles": ["staff"]} for s in SIZES_}}}}
    )
    assert "r" not in slugs(usable_flavours(initialized(), OTHERS, access))
    with pytest.raises(ValueError, match="'r' is not available to you .none of its sizes"):
        validate_user_options({"profile": "r"}, initialized(), OTHERS, access)


def test_flavours_restricted_on_the_item_and_by_the_overlay_need_both():
    profiles = [
        flavour("gpu", "GPU", "CUDA", "gpu:1", allowed_groups=("/team-a",)),
        flavour("cpu", "CPU", "", "cpu:1"),
    ]
    for p in profiles:
        p.setdefault("default", p["slug"] == "cpu")
    access = parse_access({"gpu": {"allowed_roles": ["staff"]}})
    assert slugs(usable_flavours(profiles, TEAM_A, access)) == ["cpu"]
    both = Membership.of(["/team-a"], ["staff"])
    assert slugs(usable_flavours(profiles, both, access)) == ["gpu", "cpu"]


@pytest.mark.parametrize(
    "options, who, message",
    [
        (
            {"profile": "tensorflow"},
            OTHERS,
            "profile: 'tensorflow' is not available to you (it is for members of the "
            "groups team-a)",
        ),
        (
            {"profile": "spark", "size": "small"},
            TEAM_A,
            "profile: 'spark' is not available to you (it is for members of the roles staff)",
        ),
        (
            {"profile": "scipy", "size": "large"},
            OTHERS,
            "size: 'large' is not available to you (it is for members of the groups team-a)",
        ),
        ({"size": "large"}, OTHERS, "size: 'large' is not available to you"),
        # what does not exist at all is still "not one of", listing only what they may use
        ({"profile": "gpu-monster"}, OTHERS, "profile: 'gpu-monster' is not one of minimal, "),
        ({"profile": "scipy", "size": "huge"}, OTHERS, "size: 'huge' is not one of small, medium"),
        ({"profile": ["scipy"]}, OTHERS, "profile: must be a flavour's name"),
        ({"profile": "scipy", "size": ["large"]}, OTHERS, "size: must be one of small, medium"),
    ],
)
def test_forged_values_are_refused_naming_them(options, who, message):
    with pytest.raises(ValueError) as e:
        validate_user_options(options, initialized(), who, parse_access(ACCESS))
    assert str(e.value).startswith(message), str(e.value)


def test_allowed_values_pass():
    access = parse_access(ACCESS)
    validate_user_options({"profile": "tensorflow", "size": "large"}, initialized(), TEAM_A, access)
    validate_user_options({"profile": "spark", "size": "medium"}, initialized(), STAFF, access)
    validate_user_options({}, initialized(), OTHERS, access)


def test_nobody_without_any_flavour_gets_a_clear_refusal():
    access = parse_access({"*": {"allowed_groups": ["/staff"]}})
    assert usable_flavours(initialized(), OTHERS, access) == []
    with pytest.raises(ValueError, match="no notebook flavour is available to your account"):
        validate_user_options({}, initialized(), OTHERS, access)


@pytest.mark.parametrize(
    "raw, message",
    [
        ([], "flavour_access must be a mapping"),
        ({"gpu": ["/team-a"]}, "flavour_access['gpu'] must be a mapping"),
        ({"gpu": {"groups": ["/a"]}}, "flavour_access['gpu']: unknown keys ['groups']"),
        ({"gpu": {"allowed_groups": "/a"}}, "allowed_groups must be a list of names"),
        ({"gpu": {"options": ["size"]}}, "options must map option names"),
        ({"gpu": {"options": {"size": ["large"]}}}, "options['size'] must map choices"),
        (
            {"gpu": {"options": {"size": {"large": {"roles": ["x"]}}}}},
            "options['size']['large'] may only hold",
        ),
    ],
)
def test_malformed_overlays_are_refused_naming_the_entry(raw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_access(raw)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"tensorfow": {"allowed_groups": ["/a"]}}, "'tensorfow' names no flavour"),
        ({"scipy": {"options": {"size": {"huge": {}}}}}, "'scipy/size/huge' names no"),
        ({"*": {"options": {"gpus": {"1": {}}}}}, "'*/gpus/1' names no"),
    ],
)
def test_overlay_entries_naming_nothing_are_configuration_errors(raw, message):
    """A typo must never leave a flavour open to everyone."""
    with pytest.raises(ValueError, match=re.escape(message)):
        check_flavour_config(parse_access(raw), initialized())
    check_flavour_config(parse_access(ACCESS), initialized())


def test_malformed_restrictions_on_a_flavour_are_configuration_errors():
    profiles = initialized()
    profiles[2]["profile_options"]["size"]["choices"]["large"]["allowed_roles"] = "staff"
    with pytest.raises(ValueError, match="flavour 'r': size 'large': allowed_roles must be"):
        check_flavour_config({}, profiles)
