"""The workload shape shared by notebooks and jobs: pure functions."""

import base64

import pytest

from valeria_hub.storage import (
    NfsMount,
    StorageLayout,
    nfs_volumes,
    path_safe,
    render_path,
    s3_secret_manifest,
    secret_name,
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
    assert render_path("/home/{username}", "Alice", 7) == "/home/alice"
    assert render_path("scratch/{uid}", "x", 1001) == "scratch/1001"
    assert path_safe("../etc") == "-..-2fetc"
    assert ".." not in render_path("home/{username}", "../../etc", 1).split("/")
    with pytest.raises(ValueError):
        render_path("home/../{username}", "a", 1)


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
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in w.env}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": "s3-alice", "key": "AWS_SECRET_ACCESS_KEY"}
    assert w.pod_security_context["runAsGroup"] == 2001


def test_secret_manifest_holds_base64_keys():
    m = s3_secret_manifest("s3-x", "ns", ALICE, "http://s3", labels={"a": "b"})
    assert base64.b64decode(m["data"]["AWS_ACCESS_KEY_ID"]).decode() == "AKIAALICE"
    assert base64.b64decode(m["data"]["S3_ENDPOINT_URL"]).decode() == "http://s3"
    assert m["metadata"]["labels"] == {"a": "b"}


def test_secret_names_are_dns_safe_and_distinct():
    a, b = secret_name("s3", "jupyter-a.b"), secret_name("s3", "jupyter-a-b")
    assert a != b
    for n in (a, b, secret_name("s3", "x" * 200)):
        assert len(n) <= 63 and n.replace("-", "").isalnum() and n == n.lower()


def test_layout_valeria_option_mirrors_existing_paths():
    layout = StorageLayout(nfs_server="nfs", nfs_path="/lustre", valeria_layout=True)
    _, vm = nfs_volumes(layout.mounts(), "alice", 1001)
    assert vm[0]["mountPath"] == "/users/home/alice" and vm[0]["subPath"] == "users/home/alice"
    assert StorageLayout().mounts() == []
