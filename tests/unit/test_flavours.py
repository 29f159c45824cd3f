"""Flavour choices and resource caps: pure checks behind the spawn form."""

import copy

import pytest

from valeria_hub.flavours import (
    DEFAULT_FLAVOURS,
    check_resources,
    validate_user_options,
)


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
