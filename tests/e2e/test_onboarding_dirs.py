"""``valeria-hub users onboard --nfs-root``: the command against the Vault and Keycloak
stand-ins, making each person's home and scratch where the export is mounted (a
temporary directory here, the command running as root)."""

from __future__ import annotations

import json
import os
import stat

from tests.e2e.test_onboarding import (
    USERS,
    Env,
    env,  # noqa: F401 - the stand-ins fixture
    run,
    write_csv,
)
from tests.helpers.e2e import require_root


def owner_mode(path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_onboarding_makes_each_persons_directories_once(env: Env, capsys):  # noqa: F811
    require_root("giving directories to the people's uids")
    export = env.tmp / "export"
    for top in ("home", "scratch"):
        (export / top).mkdir(parents=True)
    csv_path = write_csv(env)
    argv = ["users", "onboard", "--from-csv", str(csv_path), "--nfs-root", str(export)]
    code, out = run(capsys, *argv, "--format", "json", *env.flags())
    assert code == 0, out
    report = {u["username"]: u for u in json.loads(out)["users"]}
    for user, (uid, gid) in USERS.items():
        assert report[user]["status"] == "created"
        assert f"home/{user} created" in report[user]["changes"]
        assert f"scratch/{user} created" in report[user]["changes"]
        for top in ("home", "scratch"):
            assert owner_mode(export / top / user) == (uid, gid or uid, 0o700)
        # what the notebook will run as, read back from Vault with the person's token
        profile = env.profile(user)
        assert owner_mode(export / "home" / user)[:2] == (profile.uid, profile.gid)

    code, out = run(capsys, *argv, *env.flags())
    assert code == 0, out
    assert "3 unchanged" in out and "created" not in out.split("\n", 1)[1]

    # someone removed bob's scratch and opened alice's home: set right, reported
    (export / "scratch" / "bob").rmdir()
    os.chmod(export / "home" / "alice", 0o755)
    code, out = run(capsys, *argv, "--format", "json", *env.flags())
    assert code == 0, out
    report = {u["username"]: u for u in json.loads(out)["users"]}
    assert (report["bob"]["status"], report["bob"]["changes"]) == ("updated", "scratch/bob created")
    assert report["alice"]["changes"] == "home/alice mode 755->700"
    assert report["carol"]["status"] == "unchanged"
    assert owner_mode(export / "home" / "alice")[2] == 0o700


def test_a_directory_of_another_uid_fails_that_person_only(env: Env, capsys):  # noqa: F811
    require_root("giving directories to the people's uids")
    export = env.tmp / "export"
    for top in ("home", "scratch"):
        (export / top).mkdir(parents=True)
    (export / "home" / "bob").mkdir()
    os.chown(export / "home" / "bob", 4242, 4242)
    code, out = run(
        capsys,
        "users", "onboard", "--from-csv", str(write_csv(env)), "--nfs-root", str(export),
        "--format", "json", *env.flags(),
    )  # fmt: skip
    assert code == 1, out
    report = {u["username"]: u for u in json.loads(out)["users"]}
    assert report["bob"]["status"] == "failed"
    assert report["bob"]["reason"].startswith("home/bob belongs to uid 4242, not 21002")
    assert owner_mode(export / "home" / "bob")[:2] == (4242, 4242)
    assert owner_mode(export / "scratch" / "bob")[:2] == (21002, 31002)
    assert report["alice"]["status"] == report["carol"]["status"] == "created"


def test_a_missing_mount_is_a_usage_error_before_anything_is_written(env: Env, capsys):  # noqa: F811
    code, out = run(
        capsys,
        "users", "onboard", "--from-csv", str(write_csv(env)),
        "--nfs-root", str(env.tmp / "not-mounted"), *env.flags(),
    )  # fmt: skip
    assert code == 2
    assert "is not a directory: is the export mounted?" in out
    assert env.vault.call(lambda: dict(env.vault.model.entities)) == {}
