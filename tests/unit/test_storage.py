"""The workload shape shared by notebooks and jobs: pure functions."""

import base64

import pytest

from valeria_hub.names import DNS_LABEL, dependent_name, path_name, path_safe
from valeria_hub.storage import (
    NfsMount,
    StorageLayout,
    nfs_volumes,
    render_path,
    s3_secret_manifest,
    security_contexts,
    workload,
)
from valeria_hub.vault import UserProfile, VaultError, profile_from_secrets

ALICE = UserProfile("alice", "ent-1", 1001, 2001, "AKIAALICE", "alice-secret-key")


def test_profile_repr_hides_keys():
    text = repr(ALICE) + str(ALICE)
    assert "AKIAALICE" not in text and "alice-secret-key" not in text
    assert "1001" in text


def test_profile_from_secrets_parses_ids_and_keys():
    p = profile_from_secrets(
        "bob",
        "e2",
        {"uid": "1002", "gid": 3000},
        {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"},
    )
    assert (p.uid, p.gid, p.s3_access_key, p.s3_secret_key) == (1002, 3000, "a", "s")


@pytest.mark.parametrize(
    "uid_data, s3_data, reason",
    [
        ({}, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}, "not_provisioned"),
        ({"uid": "0"}, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}, "malformed"),
        ({"uid": "-5"}, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}, "malformed"),
        ({"uid": "abc"}, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}, "malformed"),
        ({"uid": "999"}, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}, "malformed"),
        (
            {"uid": "1001", "gid": "0"},
            {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"},
            "malformed",
        ),
        ({"uid": "1001"}, {"AWS_ACCESS_KEY_ID": "a"}, "not_provisioned"),
    ],
)
def test_profile_from_secrets_refuses_unusable_data(uid_data, s3_data, reason):
    with pytest.raises(VaultError) as e:
        profile_from_secrets("bob", "e2", uid_data, s3_data, min_id=1000)
    assert e.value.reason == reason


def test_paths_are_per_user_and_cannot_climb():
    assert render_path("/home/{username}", "alice", 7) == "/home/alice"
    assert render_path("/home/{username}", "jean-luc.o_b@x", 7) == "/home/jean-luc.o_b@x"
    assert render_path("scratch/{uid}", "x", 1001) == "scratch/1001"
    assert path_safe("../etc") == "+2e.+2fetc"
    assert ".." not in render_path("home/{username}", "../../etc", 1).split("/")
    with pytest.raises(ValueError):
        render_path("home/../{username}", "a", 1)


@pytest.mark.parametrize(
    "names",
    [("josé", "jos-e9", "jos+e9", "jos-E9"), ("Alice", "alice"), (".x", "+2ex"), ("a/b", "a-2fb")],
)
def test_user_directories_are_one_to_one(names):
    segments = [path_safe(n) for n in names]
    assert len(set(segments)) == len(names), segments
    for name, segment in zip(names, segments, strict=True):
        assert path_name(segment) == name
        assert "/" not in segment and segment not in ("", ".", "..")


def test_path_names_round_trip_for_any_text():
    import random

    rng = random.Random(7)
    alphabet = "az09._@-+/ -é€😀ÅA\x00"
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        segment = path_safe(name)
        assert path_name(segment) == name, (name, segment)
        assert "/" not in segment and segment not in (".", "..")


def test_nfs_volumes_share_one_volume_per_export():
    mounts = [
        NfsMount("home", "nfs.example", "/export", "/home/{username}", "home/{username}"),
        NfsMount("scratch", "nfs.example", "/export", "/scratch", "scratch/{username}"),
    ]
    volumes, vm = nfs_volumes(mounts, "alice", 1001)
    assert volumes == [{"name": "nfs-home", "nfs": {"server": "nfs.example", "path": "/export"}}]
    assert vm == [
        {"name": "nfs-home", "mountPath": "/home/alice", "subPath": "home/alice"},
        {"name": "nfs-home", "mountPath": "/scratch", "subPath": "scratch/alice"},
    ]


def test_security_contexts_are_hardened_and_never_root():
    pod, container = security_contexts(1001, 2001, fs_group=2001, supplemental_groups=[100])
    assert pod["runAsUser"] == 1001 and pod["runAsNonRoot"] is True
    assert pod["fsGroup"] == 2001 and pod["supplementalGroups"] == [100]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    with pytest.raises(ValueError):
        security_contexts(0, None)


def test_workload_env_references_the_secret_only():
    w = workload(ALICE, [], "s3-alice")
    text = repr(w)
    assert "AKIAALICE" not in text and "alice-secret-key" not in text
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in w.env if "valueFrom" in e}
    assert set(refs) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ENDPOINT_URL"}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": "s3-alice", "key": "AWS_SECRET_ACCESS_KEY"}
    plain = {e["name"]: e["value"] for e in w.env if "value" in e}
    assert plain == {"NB_USER": "alice", "NB_UID": "1001"}  # no home mounted: no HOME
    assert w.pod_security_context["runAsGroup"] == 2001


def test_home_is_derived_once_for_env_and_working_directory():
    layout = StorageLayout(nfs_server="nfs", nfs_path="/export", home_mount_path="/u/{uid}")
    w = layout.workload(ALICE, "s3-alice")
    assert w.home == "/u/1001"
    assert {"name": "HOME", "value": "/u/1001"} in w.env
    assert layout.layout().workload(ALICE, "s3-alice") == w


def test_secret_manifest_holds_base64_keys():
    m = s3_secret_manifest("s3-x", "ns", ALICE, "http://s3", labels={"a": "b"})
    assert base64.b64decode(m["data"]["AWS_ACCESS_KEY_ID"]).decode() == "AKIAALICE"
    assert base64.b64decode(m["data"]["S3_ENDPOINT_URL"]).decode() == "http://s3"
    assert m["metadata"]["labels"] == {"a": "b"}


def test_secret_names_are_dns_safe_and_distinct():
    a, b = dependent_name("s3", "jupyter-a.b"), dependent_name("s3", "jupyter-a-b")
    assert a != b
    for n in (a, b, dependent_name("s3", "x" * 200), dependent_name("s3", "-X_")):
        assert len(n) <= 63 and DNS_LABEL.fullmatch(n), n


def test_layout_valeria_option_mirrors_existing_paths():
    layout = StorageLayout(nfs_server="nfs", nfs_path="/lustre", valeria_layout=True)
    _, vm = nfs_volumes(layout.mounts(), "alice", 1001)
    assert vm[0]["mountPath"] == "/users/home/alice" and vm[0]["subPath"] == "users/home/alice"
    assert StorageLayout().mounts() == []


def test_an_entry_without_gid_never_gets_group_zero():
    """Entries of the original Valeria script hold only a uid."""
    s3 = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    legacy = profile_from_secrets("dora", "e", {"uid": "4001"}, s3, min_id=1000)
    assert legacy.gid == 4001
    work = workload(legacy, [], "s3-dora")
    assert work.pod_security_context["runAsGroup"] == 4001
    assert work.pod_security_context["fsGroup"] == 4001
    assert work.container_security_context["runAsGroup"] == 4001
    chosen = profile_from_secrets("dora", "e", {"uid": "4001"}, s3, min_id=1000, default_gid=5000)
    assert chosen.gid == 5000
    with pytest.raises(VaultError, match="default_gid"):
        profile_from_secrets("dora", "e", {"uid": "4001"}, s3, min_id=1000, default_gid=0)
