"""Who may use a flavour, a size or a job profile: the one pure decision."""

import pytest

from valeria_hub.restrictions import Membership, Restriction, allows_all, describe_all

ALICE = Membership.of(["/researchers", "/team-a"], ["hub-user"])
BOB = Membership.of(["researchers"], ["hub-user"])


def test_nothing_configured_is_everyone():
    open_ = Restriction.from_mapping({}, "flavour 'x'")
    assert open_.everyone and open_.allows(Membership()) and open_.describe() == "everyone"


def test_a_group_matches_with_or_without_keycloaks_leading_slash():
    for written in ("/team-a", "team-a"):
        rule = Restriction.from_mapping({"allowed_groups": [written]}, "x")
        assert rule.allows(ALICE)
        assert rule.allows(Membership.of(["team-a"]))  # a hub group name
        assert not rule.allows(BOB)


def test_a_sub_group_is_a_group_of_its_own():
    rule = Restriction.from_mapping({"allowed_groups": ["/team"]}, "x")
    assert not rule.allows(Membership.of(["/team/gpu"]))
    assert Restriction.from_mapping({"allowed_groups": ["/team/gpu"]}, "x").allows(
        Membership.of(["team/gpu"])
    )


def test_one_group_or_one_role_is_enough():
    rule = Restriction.from_mapping({"allowed_groups": ["/gpu"], "allowed_roles": ["staff"]}, "x")
    assert rule.allows(Membership.of(["/gpu"]))
    assert rule.allows(Membership.of([], ["staff"]))
    assert not rule.allows(ALICE)
    assert rule.describe() == "members of the groups gpu or the roles staff"


def test_several_restrictions_must_all_be_met():
    team = Restriction.from_mapping({"allowed_groups": ["team-a"]}, "x")
    staff = Restriction.from_mapping({"allowed_roles": ["staff"]}, "x")
    assert allows_all([], BOB)
    assert allows_all([team, Restriction()], ALICE)
    assert not allows_all([team, staff], ALICE)
    assert allows_all([team, staff], Membership.of(["team-a"], ["staff"]))
    assert describe_all([team, Restriction(), staff]) == (
        "members of the groups team-a and members of the roles staff"
    )


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"allowed_groups": "/gpu"}, "allowed_groups must be a list of names"),
        ({"allowed_roles": "staff"}, "allowed_roles must be a list of names"),
        ({"allowed_groups": ["/gpu", ""]}, "'' is not a name"),
        ({"allowed_groups": ["/"]}, "'/' is not a name"),
        ({"allowed_groups": [7]}, "7 is not a name"),
    ],
)
def test_malformed_restrictions_are_refused_naming_the_item(raw, message):
    with pytest.raises(ValueError, match=message) as e:
        Restriction.from_mapping(raw, "flavour 'gpu'")
    assert str(e.value).startswith("flavour 'gpu'")


def test_roles_are_refused_where_they_are_not_known():
    with pytest.raises(ValueError, match="allowed_roles is not supported here"):
        Restriction.from_mapping({"allowed_roles": ["staff"]}, "profile 'gpu'", roles=False)
    rule = Restriction.from_mapping({"allowed_groups": ["/gpu"]}, "profile 'gpu'", roles=False)
    assert rule.groups == {"gpu"}


def test_membership_ignores_empty_and_odd_values():
    who = Membership.of(["", "/", None, "/a"], ["", None, "r"])  # type: ignore[list-item]
    assert who == Membership(frozenset({"a"}), frozenset({"r"}))
