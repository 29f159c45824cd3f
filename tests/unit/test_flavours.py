"""Flavour choices and resource caps: pure checks behind the spawn form."""

import copy

import pytest

from valeria_hub.flavours import (
    DEFAULT_FLAVOURS,
    check_resources,
    parse_bytes,
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
    caps = {"cpu": 4, "memory": "8G"}
    check_resources({"cpu_limit": 4, "mem_limit": "8G"}, caps)
    with pytest.raises(ValueError, match="cpu_limit"):
        check_resources({"cpu_limit": 64}, caps)
    with pytest.raises(ValueError, match="mem_limit"):
        check_resources({"mem_limit": "9Gi"}, caps)
    with pytest.raises(ValueError, match="cpu_guarantee"):
        check_resources({"cpu_guarantee": -1}, caps)
    assert parse_bytes("512Mi") == 512 * 2**20 and parse_bytes("2G") == 2 * 10**9
    with pytest.raises(ValueError):
        parse_bytes("lots")
