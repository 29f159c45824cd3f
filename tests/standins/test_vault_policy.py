"""Pure tests of the Vault stand-in's policy parser and ACL matcher."""

from __future__ import annotations

import pytest

from devstack.vault.policy import (
    DEFAULT_POLICY,
    Identity,
    PolicyError,
    TemplateError,
    build_acl,
    parse_policy,
    render_path,
)


def acl_of(*texts: str, identity: Identity | None = None):
    return build_acl([parse_policy(f"p{i}", t) for i, t in enumerate(texts)], identity)


# ------------------------------------------------------------------------ HCL parser
def test_hcl_with_all_comment_styles_and_several_paths() -> None:
    policy = parse_policy(
        "valeria",
        """
        # hash comment
        // slash comment
        /* block
           comment */
        path "valeria/data/users/{{identity.entity.id}}/*" {
          capabilities = ["create", "update", "read", "delete"]   # trailing
        }
        path "valeria/metadata/users/{{identity.entity.id}}/*" {
          capabilities = [
            "list",
          ]
        }
        """,
    )
    assert [r.path for r in policy.rules] == [
        "valeria/data/users/{{identity.entity.id}}/*",
        "valeria/metadata/users/{{identity.entity.id}}/*",
    ]
    assert policy.rules[0].capabilities == {"create", "update", "read", "delete"}
    assert policy.rules[1].capabilities == {"list"}
    assert policy.rules[0].templated


def test_json_policy_and_legacy_policy_keyword() -> None:
    policy = parse_policy("j", '{"path": {"secret/*": {"capabilities": ["read", "list"]}}}')
    assert policy.rules[0].capabilities == {"read", "list"}
    legacy = parse_policy("l", 'path "secret/x" { policy = "write" }')
    assert legacy.rules[0].capabilities == {"create", "read", "update", "delete", "list"}


def test_deny_replaces_other_capabilities_in_one_stanza() -> None:
    policy = parse_policy("d", 'path "a/b" { capabilities = ["read", "deny"] }')
    assert policy.rules[0].capabilities == {"deny"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('path "a" { capabilities = ["reed"] }', 'invalid capability "reed"'),
        ('path "a" { capabilites = ["read"] }', 'invalid key "capabilites"'),
        ('path "a" { capabilities = ["read"]', "missing '}'"),
        ('paths "a" { capabilities = ["read"] }', 'invalid key "paths"'),
        ("", "empty"),
        ('path "a" { capabilities = ["read"] } @', "illegal char"),
    ],
)
def test_invalid_policies_are_refused(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy("bad", text)


def test_default_policy_parses_and_grants_token_self_service() -> None:
    acl = build_acl([parse_policy("default", DEFAULT_POLICY)])
    assert acl.allows("read", "auth/token/lookup-self")
    assert acl.allows("update", "auth/token/renew-self")
    assert acl.allows("update", "auth/token/revoke-self")
    assert not acl.allows("update", "auth/token/create")
    assert not acl.allows("read", "secret/data/x")
    # Without an entity the templated identity paths are skipped entirely.
    assert not acl.allows("read", "identity/entity/id/")


# -------------------------------------------------------------------------- matcher
def test_exact_path_matches_only_itself() -> None:
    acl = acl_of('path "secret/foo" { capabilities = ["read"] }')
    assert acl.allows("read", "secret/foo")
    assert not acl.allows("read", "secret/food")
    assert not acl.allows("read", "secret/foo/bar")
    assert not acl.allows("update", "secret/foo")


def test_glob_is_a_prefix_and_dir_glob_excludes_the_dir_itself() -> None:
    acl = acl_of(
        'path "users/ID/*" { capabilities = ["read"] }',
        'path "zip-*" { capabilities = ["read"] }',
    )
    assert acl.allows("read", "users/ID/uid")
    assert acl.allows("read", "users/ID/a/b")
    assert not acl.allows("read", "users/ID")
    assert not acl.allows("read", "users/IDX/uid")
    assert acl.allows("read", "zip-zap/zong")
    assert not acl.allows("read", "zip/zap")


def test_plus_matches_exactly_one_segment() -> None:
    acl = acl_of('path "secret/+/teamb" { capabilities = ["read"] }')
    assert acl.allows("read", "secret/x/teamb")
    assert not acl.allows("read", "secret/teamb")
    assert not acl.allows("read", "secret/x/y/teamb")
    assert not acl.allows("read", "secret/x/teamb/more")


def test_priority_most_specific_wins_over_broader_glob() -> None:
    acl = acl_of(
        'path "secret/*" { capabilities = ["read", "update"] }',
        'path "secret/super-secret" { capabilities = ["deny"] }',
        'path "secret/team/*" { capabilities = ["list"] }',
    )
    assert acl.allows("update", "secret/other")
    assert not acl.allows("read", "secret/super-secret")
    # The longer glob is the only rule that applies: no read there.
    assert acl.allows("list", "secret/team/x")
    assert not acl.allows("read", "secret/team/x")


def test_priority_documented_example_glob_beats_later_wildcards() -> None:
    # Vault docs: "secret/*" vs "secret/+/+/foo/*" -> the latter has LOWER priority (rule 3).
    acl = acl_of(
        'path "secret/*" { capabilities = ["read"] }',
        'path "secret/+/+/foo/*" { capabilities = ["update"] }',
    )
    assert acl.capabilities("secret/a/b/foo/c") == {"read"}


def test_priority_later_wildcard_beats_earlier_one() -> None:
    # Rule 1: the first wildcard occurring later is more specific.
    acl = acl_of(
        'path "a/+/c/d" { capabilities = ["read"] }',
        'path "a/b/+/d" { capabilities = ["update"] }',
    )
    assert acl.capabilities("a/b/c/d") == {"update"}


def test_priority_non_glob_beats_glob_at_same_position() -> None:
    # Rule 2: ending in * is lower priority.
    acl = acl_of(
        'path "a/+/c*" { capabilities = ["read"] }',
        'path "a/+/c" { capabilities = ["update"] }',
    )
    assert acl.capabilities("a/b/c") == {"update"}
    assert acl.capabilities("a/b/cd") == {"read"}


def test_same_path_in_two_policies_is_a_union_and_deny_wins() -> None:
    union = acl_of(
        'path "kv/data/x" { capabilities = ["read"] }',
        'path "kv/data/x" { capabilities = ["update"] }',
    )
    assert union.capabilities("kv/data/x") == {"read", "update"}
    denied = acl_of(
        'path "kv/data/*" { capabilities = ["read", "update"] }',
        'path "kv/data/*" { capabilities = ["deny"] }',
    )
    assert not denied.allows("read", "kv/data/y")


def test_sudo_is_required_only_where_asked() -> None:
    acl = acl_of(
        'path "sys/auth/*" { capabilities = ["create", "update"] }',
        'path "sys/auth/jwt" { capabilities = ["update", "sudo"] }',
    )
    assert not acl.allows("update", "sys/auth/approle", sudo=True)
    assert acl.allows("update", "sys/auth/approle")
    assert acl.allows("update", "sys/auth/jwt", sudo=True)


def test_list_on_exact_path_accepts_the_trailing_slash() -> None:
    acl = acl_of('path "kv/metadata/team" { capabilities = ["list"] }')
    assert acl.allows("list", "kv/metadata/team/")
    assert not acl.allows("read", "kv/metadata/team/")


def test_root_policy_allows_everything() -> None:
    acl = build_acl([parse_policy("x", 'path "a" { capabilities = ["deny"] }'), _root()])
    assert acl.allows("delete", "anything/at/all", sudo=True)


def _root():
    from devstack.vault.policy import Policy

    return Policy("root", [])


# ----------------------------------------------------------------------- templating
ALICE = Identity(
    entity_id="e-1",
    entity_name="alice",
    metadata={"team": "bio"},
    aliases={"auth_jwt_1234abcd": {"id": "a-1", "name": "sub-alice", "metadata": {}}},
)


def test_templates_render_entity_fields() -> None:
    assert render_path("u/{{identity.entity.id}}/*", ALICE) == "u/e-1/*"
    assert render_path("u/{{ identity.entity.name }}", ALICE) == "u/alice"
    assert render_path("t/{{identity.entity.metadata.team}}", ALICE) == "t/bio"
    assert (
        render_path("s/{{identity.entity.aliases.auth_jwt_1234abcd.name}}", ALICE) == "s/sub-alice"
    )
    with pytest.raises(TemplateError):
        render_path("s/{{identity.entity.aliases.auth_other.name}}", ALICE)
    with pytest.raises(TemplateError):
        render_path("u/{{identity.entity.id}}", None)


def test_templated_path_is_per_entity_and_skipped_without_one() -> None:
    text = 'path "valeria/data/users/{{identity.entity.id}}/*" { capabilities = ["read"] }'
    alice = acl_of(text, identity=ALICE)
    assert alice.allows("read", "valeria/data/users/e-1/uid")
    assert not alice.allows("read", "valeria/data/users/e-2/uid")
    assert not alice.allows("read", "valeria/data/users/e-1")
    nobody = acl_of(text)
    assert not nobody.allows("read", "valeria/data/users/e-1/uid")
    # In particular the unfilled template must not degrade into a wildcard.
    assert not nobody.allows("read", "valeria/data/users//uid")
    assert nobody.exact == {} and nobody.patterns == {}
