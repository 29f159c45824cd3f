"""``users onboard --nfs-root``: each person's home and scratch on the export, owned by
their uid and gid, mode 0700, idempotently (the decision, and the directories made for
real as root in a temporary directory)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from tests.helpers.e2e import require_root
from valeria_hub.onboarding.dirs import DirError, DirState, UserDirs, plan_dir
from valeria_hub.storage import StorageLayout

UID, GID = 21001, 31001


# -- the decision ------------------------------------------------------------------------
def test_plan_dir():
    assert plan_dir(None, UID, GID).action == "create"
    assert plan_dir(DirState("dir", UID, GID, 0o700), UID, GID).action == "keep"
    fix = plan_dir(DirState("dir", UID, 0, 0o755), UID, GID)
    assert (fix.action, fix.chgrp, fix.chmod) == ("fix", True, True)
    other = plan_dir(DirState("dir", 0, 0, 0o755), UID, GID)
    assert other.action == "refuse" and "belongs to uid 0, not 21001" in other.reason
    assert plan_dir(DirState("link"), UID, GID).action == "refuse"
    assert plan_dir(DirState("other"), UID, GID).reason == "exists and is not a directory"


# -- on disk, as root ----------------------------------------------------------------------
@pytest.fixture
def export(tmp_path: Path) -> Path:
    require_root("giving directories to other uids")
    for top in ("home", "scratch"):
        (tmp_path / top).mkdir()
    return tmp_path


def owner_mode(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_made_owned_by_the_person_mode_0700_and_a_second_run_changes_nothing(export):
    dirs = UserDirs(export)
    assert dirs.ensure("alice", UID, GID, dry_run=False) == [
        "home/alice created",
        "scratch/alice created",
    ]
    for top in ("home", "scratch"):
        assert owner_mode(export / top / "alice") == (UID, GID, 0o700)
    (export / "home" / "alice" / "notes.txt").write_text("kept")
    assert dirs.ensure("alice", UID, GID, dry_run=False) == []
    assert (export / "home" / "alice" / "notes.txt").read_text() == "kept"


def test_names_are_the_spawners_subpaths(export):
    """The same mapping of usernames to path segments as the pod's NFS subPath."""
    layout = StorageLayout(nfs_server="nfs", nfs_path="/export")
    dirs = UserDirs(export)
    dirs.ensure("josé", UID, None, dry_run=False)
    subpaths = {m.sub_path.format(username="jos+e9") for m in layout.mounts()}
    assert subpaths == {"home/jos+e9", "scratch/jos+e9"}
    for sub in subpaths:
        assert owner_mode(export / sub) == (UID, UID, 0o700)  # no gid: the uid, as Vault does
    custom = UserDirs(export, "users/home/{username}", "")
    (export / "users" / "home").mkdir(parents=True)
    assert custom.ensure("bob", UID + 1, None, dry_run=False) == ["users/home/bob created"]


def test_a_wrong_group_or_mode_of_the_directory_itself_is_set_right(export):
    home = export / "home" / "alice"
    home.mkdir(mode=0o755)
    os.chown(home, UID, 0)
    os.chmod(home, 0o755)
    (home / "data").write_text("x")
    os.chown(home / "data", UID, 0)
    changes = UserDirs(export, scratch="").ensure("alice", UID, GID, dry_run=False)
    assert changes == [f"home/alice group 0->{GID}, mode 755->700"]
    assert owner_mode(home) == (UID, GID, 0o700)
    assert owner_mode(home / "data")[:2] == (UID, 0)  # nothing below it is touched


def test_dry_run_reports_and_changes_nothing(export):
    assert UserDirs(export).ensure("alice", UID, GID, dry_run=True) == [
        "home/alice created",
        "scratch/alice created",
    ]
    assert not (export / "home" / "alice").exists()


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: (p.mkdir(), os.chown(p, 4242, 4242)), "belongs to uid 4242, not 21001"),
        (lambda p: p.symlink_to("/etc"), "is a symbolic link"),
        (lambda p: p.write_text(""), "exists and is not a directory"),
    ],
)
def test_someone_elses_directory_a_link_or_a_file_is_refused_and_left_alone(export, make, reason):
    home = export / "home" / "alice"
    make(home)
    before = os.lstat(home)
    with pytest.raises(DirError, match=reason) as e:
        UserDirs(export).ensure("alice", UID, GID, dry_run=False)
    assert str(e.value).startswith("home/alice ")
    assert os.lstat(home) == before
    # the other directory of the person is still made
    assert owner_mode(export / "scratch" / "alice") == (UID, GID, 0o700)
    assert owner_mode(Path("/etc"))[0] == 0


def test_an_export_that_is_not_mounted_is_refused(tmp_path):
    with pytest.raises(DirError, match="is not a directory: is the export mounted"):
        UserDirs(tmp_path / "missing")
    with pytest.raises(DirError, match="home/alice: .* does not exist: is the export mounted"):
        UserDirs(tmp_path).ensure("alice", UID, GID, dry_run=False)
    with pytest.raises(ValueError, match="'..'"):
        UserDirs(tmp_path, "../{username}")


def test_without_root_the_refusal_says_what_is_needed():
    """An operator without root (or with root squashed by the NFS server)."""
    require_root("acting as another uid")
    base = Path(tempfile.mkdtemp(prefix="valeria-dirs-"))
    try:
        base.chmod(0o755)
        (base / "home").mkdir(mode=0o755)
        os.seteuid(4343)
        try:
            with pytest.raises(DirError) as e:
                UserDirs(base, scratch="").ensure("alice", UID, GID, dry_run=False)
        finally:
            os.seteuid(0)
        assert str(e.value).startswith("home/alice: cannot create or open it: Permission denied")
        assert "run as root" in str(e.value) and "no_root_squash" in str(e.value)
        assert not (base / "home" / "alice").exists()
    finally:
        shutil.rmtree(base)
