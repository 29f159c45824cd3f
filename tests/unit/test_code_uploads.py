"""Code uploads: the archive walk (scan_zip), the checking process (check_isolated) and the
init container's UNPACK_SCRIPT refuse the same hostile archives; the limits reach the
pod (the code volume's sizeLimit, the unpack command) and the default profiles carry
ephemeral storage."""

from __future__ import annotations

import asyncio
import base64
import itertools
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.helpers.zipcraft import (
    Member,
    MiB,
    bzip2_bomb,
    craft,
    honest_bomb,
    liar_bomb,
    zipped,
)
from valeria_hub.jobs import upload
from valeria_hub.jobs.config import DEFAULT_PROFILES, JobsServiceApp
from valeria_hub.jobs.manifests import Target, build_manifest
from valeria_hub.jobs.policy import check_submission
from valeria_hub.jobs.upload import (
    UNPACK_SCRIPT,
    ArchiveSummary,
    CodeLimits,
    UploadError,
    check_code,
    check_isolated,
    decode_code,
    scan_zip,
)
from valeria_hub.quantity import parse_quantity
from valeria_hub.storage import StorageLayout
from valeria_hub.vault import UserProfile

LIMITS = CodeLimits(max_bytes=1_000_000, max_unpacked_bytes=8 * MiB, max_members=50)
GOOD = zipped({"main.py": b"print('hi')\n", "pkg/__init__.py": b"", "pkg/data.txt": b"42\n"})
LINK = stat.S_IFLNK | 0o777

# (archive, status, words the message must hold): everything both the service's walk
# and the init container's script must refuse
HOSTILE = {
    "liar bomb (declares 465 bytes, inflates to 400 MB)": (liar_bomb(), 413, "8 MiB"),
    "honest bomb (400 MB of zeros)": (honest_bomb(), 413, "8 MiB"),
    "many members over the total": (
        zipped({f"f{i}.bin": b"\0" * MiB for i in range(9)}),
        413,
        "limit of 8388608 bytes",
    ),
    "too many members": (zipped({f"f{i}": b"" for i in range(51)}), 413, "limit of 50"),
    "parent directory": (zipped({"../evil.py": b"x"}), 422, "'..'"),
    "nested parent directory": (zipped({"a/../../evil.py": b"x"}), 422, "'..'"),
    "absolute path": (craft([Member("/etc/cron.d/evil", b"x")]), 422, "absolute"),
    "backslashes": (craft([Member("..\\evil.py", b"x")]), 422, "backslash"),
    "drive letter": (craft([Member("C:evil.py", b"x")]), 422, "drive letter"),
    "symlink": (craft([Member("home", b"/home/alice", mode=LINK)]), 422, "symbolic link"),
    "symlink then write through it": (
        craft([Member("d", b"/tmp", mode=LINK), Member("d/evil", b"x")]),
        422,
        "symbolic link",
    ),
    "fifo": (craft([Member("pipe", b"", mode=stat.S_IFIFO | 0o644)]), 422, "special file"),
    "bzip2 (method 12)": (bzip2_bomb(40 * MiB), 422, "method 12 (bzip2)"),
    "lzma (method 14)": (zipped({"a.py": b"x" * 100}, zipfile.ZIP_LZMA), 422, "method 14"),
    "encrypted": (craft([Member("a.py", b"x", flags=0x801)]), 422, "encrypted"),
    "same name twice": (craft([Member("a.py", b"1"), Member("a.py", b"2")]), 422, "twice"),
    "file then directory of the same name": (
        craft([Member("a", b"1"), Member("a/b.py", b"2")]),
        422,
        "both a file and a directory",
    ),
    "central name differs from local name": (
        craft([Member("a.py", b"1")], central_names=["b.py"]),
        422,
        "two names",
    ),
}


def refusal(data: bytes, limits: CodeLimits = LIMITS) -> UploadError:
    with pytest.raises(UploadError) as info:
        scan_zip(data, limits)
    return info.value


# -- the walk ------------------------------------------------------------------------------------
def test_a_good_archive_passes_with_its_real_size():
    assert scan_zip(GOOD, LIMITS) == ArchiveSummary(members=3, unpacked_bytes=15)
    text = base64.b64encode(GOOD).decode()
    assert decode_code(text, 10_000) == GOOD
    assert decode_code({"binaryData": {"code": text}}, 10_000) == GOOD
    stored = zipped({"a.txt": b"x" * 300_000, "empty/": b""}, zipfile.ZIP_STORED)
    assert scan_zip(stored, LIMITS).unpacked_bytes == 300_000


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_archives_are_refused_naming_the_problem(case):
    data, status, words = HOSTILE[case]
    error = refusal(data)
    assert error.status == status, error
    assert words in str(error) and str(error).startswith("code: ")


def test_a_bomb_is_stopped_at_the_limit_in_a_fraction_of_its_cost():
    data = liar_bomb()  # 400 MB behind a 465-byte claim
    start = time.perf_counter()
    error = refusal(data, CodeLimits())
    elapsed = time.perf_counter() - start
    assert error.status == 413 and "67108864 bytes (64 MiB)" in str(error)
    assert elapsed < 2.0, elapsed  # 64 MiB inflated, not 400


def test_sizes_that_lie_either_way_are_refused():
    # claims more than it holds: zipfile would give short data without a word
    short = craft([Member("a.bin", b"x" * 10, file_size=1000)])
    assert "declares 1000 bytes but inflates to 10" in str(refusal(short))
    # claims less than it holds, under the limit: zipfile would cut it at the claim
    member = liar_bomb(MiB, declared=100)
    assert "declares 100 bytes but inflates to 1048576" in str(refusal(member))
    crc = craft([Member("a.bin", b"hello", crc=1234)])
    assert "CRC" in str(refusal(crc))


@pytest.mark.parametrize(
    "data, words",
    [
        (b"plain text", "not a zip"),
        (GOOD[:-30], "not a zip"),  # the end of central directory cut off
        (craft([Member("a.bin", b"\xff" * 20, zipfile.ZIP_DEFLATED, 20)]), "not a zip"),
        (craft([Member("a.bin", liar_bomb(MiB)[40:80], zipfile.ZIP_DEFLATED, MiB)]), "not a"),
    ],
)
def test_broken_archives_are_422(data, words):
    error = refusal(data)
    assert error.status == 422 and words in str(error)


def test_the_time_limit_is_checked_between_chunks():
    ticks = itertools.count(step=1.0)  # every look at the clock takes a second
    limits = CodeLimits(max_unpacked_bytes=64 * MiB, check_seconds=5)
    with pytest.raises(UploadError) as info:
        scan_zip(honest_bomb(32 * MiB), limits, clock=lambda: next(ticks))
    assert info.value.status == 413
    assert "longer than the limit of 5 seconds" in str(info.value)
    assert next(ticks) < 10  # stopped at the deadline, not after 512 chunks


def test_the_time_limit_on_a_real_clock():
    limits = CodeLimits(max_unpacked_bytes=64 * MiB, check_seconds=0.005)
    error = refusal(honest_bomb(60 * MiB), limits)  # under the size limit, too slow
    assert error.status == 413 and "0.005 seconds" in str(error)


# -- the checking process --------------------------------------------------------------------
async def test_the_checking_process_gives_the_same_verdicts():
    assert await check_isolated(GOOD, LIMITS) == scan_zip(GOOD, LIMITS)
    for case in (
        "liar bomb (declares 465 bytes, inflates to 400 MB)",
        "symlink",
        "lzma (method 14)",
    ):
        data, status, words = HOSTILE[case]
        with pytest.raises(UploadError) as info:
            await check_isolated(data, LIMITS)
        assert info.value.status == status and words in str(info.value), case
    assert await check_code(base64.b64encode(GOOD).decode(), LIMITS) == GOOD
    assert await check_code(None, LIMITS) is None


async def test_what_is_no_zip_at_all_costs_no_process(monkeypatch):
    monkeypatch.setattr(upload, "run_checker", None)  # calling it would fail
    for data in (b"plain text", b"\0" * 100_000, GOOD[:-22]):
        with pytest.raises(UploadError) as info:
            await check_code(base64.b64encode(data).decode(), LIMITS)
        assert info.value.status == 422 and "not a zip" in str(info.value)


async def test_a_checker_that_overruns_is_killed_at_the_time_limit(tmp_path):
    pid_file = tmp_path / "pid"
    script = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    hang = [sys.executable, "-c", script, str(pid_file)]
    start = time.monotonic()
    with pytest.raises(UploadError) as info:
        await check_isolated(GOOD, CodeLimits(check_seconds=0.5), command=hang, grace=0.5)
    assert time.monotonic() - start < 3
    assert info.value.status == 413 and "longer than the limit of 0.5 seconds" in str(info.value)
    pid = int(pid_file.read_text())  # noqa: ASYNC240 (a test: a few bytes, once)
    assert not Path(f"/proc/{pid}").exists()  # noqa: ASYNC240 (killed and reaped)


async def test_a_checker_that_crashes_fails_closed():
    crash = [sys.executable, "-c", "import sys; sys.exit('boom')"]
    with pytest.raises(UploadError) as info:
        await check_isolated(GOOD, LIMITS, command=crash)
    assert info.value.status == 422 and "could not be checked" in str(info.value)


async def test_checks_beyond_the_concurrency_cap_wait_then_get_503(monkeypatch):
    monkeypatch.setattr(upload, "CONCURRENT_CHECKS", 1)
    upload._slots.clear()
    slow = [sys.executable, "-c", "import time; time.sleep(1)"]
    limits = CodeLimits(check_seconds=0.3)
    first = asyncio.create_task(check_isolated(GOOD, limits, command=slow, grace=5))
    await asyncio.sleep(0.05)
    with pytest.raises(UploadError) as info:
        await check_isolated(GOOD, limits)
    assert info.value.status == 503
    with pytest.raises(UploadError):  # exits 0 with no verdict: fails closed
        await first


# -- the init container's script ------------------------------------------------------------
def unpack(tmp_path: Path, data: bytes, limits: CodeLimits = LIMITS):
    tmp_path.mkdir(exist_ok=True)
    archive = tmp_path / "code.zip"
    archive.write_bytes(data)
    dest = tmp_path / "sandbox" / "code"
    dest.mkdir(parents=True)
    command = [sys.executable, "-I", *upload.unpack_command(limits)[1:], str(archive), str(dest)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return result, dest


def test_the_unpack_script_writes_a_good_archive(tmp_path):
    data = craft([Member("run.sh", b"echo hi\n", mode=stat.S_IFREG | 0o755)])
    result, dest = unpack(tmp_path, zipped({"main.py": b"print(1)\n", "pkg/d.txt": b"42\n"}))
    assert result.returncode == 0, result.stderr
    assert (dest / "main.py").read_bytes() == b"print(1)\n"
    assert (dest / "pkg" / "d.txt").read_bytes() == b"42\n"
    result, dest = unpack(tmp_path / "x", data)
    assert result.returncode == 0 and (dest / "run.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("case", HOSTILE)
def test_the_unpack_script_refuses_the_same_archives(tmp_path, case):
    data, _, _ = HOSTILE[case]
    result, dest = unpack(tmp_path, data)
    assert result.returncode != 0, result.stdout
    assert not (tmp_path / "sandbox" / "evil.py").exists()
    assert [p.name for p in (tmp_path / "sandbox").iterdir()] == ["code"]
    written = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert written <= LIMITS.max_unpacked_bytes
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_the_unpack_script_without_options_has_the_default_limits(tmp_path):
    archive = tmp_path / "code.zip"
    archive.write_bytes(honest_bomb(100 * MiB))
    command = ["python3", "-c", UNPACK_SCRIPT, str(archive), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "67108864 bytes" in result.stderr


# -- the limits in the pod and the profiles ---------------------------------------------------
def test_limits_reach_the_code_volume_and_the_unpack_command():
    app = JobsServiceApp(code_max_unpacked_bytes=32 * MiB, code_max_members=100)
    settings = app.settings()
    assert settings.code_limits == CodeLimits(1_000_000, 32 * MiB, 100, 5.0)
    rules = settings.rules
    checked = check_submission(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"generateName": "hello-"},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "j", "image": "python", "command": ["true"]}]}
                }
            },
        },
        "Job",
        rules,
        "ns",
    )
    storage = StorageLayout(nfs_server="nfs.example", nfs_path="/export")
    profile = UserProfile("alice", "ent-1", 20001, 30001, "AKIA", "secret")
    workload = storage.workload(profile, "hello-x-s3")
    target = Target("alice", "ns", "hello-x", "hello-x-s3", "hello-x-code", workload)
    pod = build_manifest(checked, target, rules)["spec"]["template"]["spec"]
    assert {"name": "code", "emptyDir": {"sizeLimit": "32Mi"}} in pod["volumes"]
    command = pod["initContainers"][0]["command"]
    assert command[3:5] == [f"--max-unpacked-bytes={32 * MiB}", "--max-members=100"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["ephemeral-storage"] == "2Gi"
    assert resources["requests"]["ephemeral-storage"] == "1Gi"
    custom = JobsServiceApp(unpack_command=["unzip-it"]).settings().rules
    assert custom.unpack_command == ("unzip-it",)


def test_default_profiles_carry_ephemeral_storage_under_the_caps():
    caps = JobsServiceApp().max_resources
    for name, profile in DEFAULT_PROFILES.items():
        requests, limits = profile["resources"]["requests"], profile["resources"]["limits"]
        assert set(requests) == set(limits) == {"cpu", "memory", "ephemeral-storage"}, name
        for key in limits:
            assert parse_quantity(requests[key]) <= parse_quantity(limits[key]), (name, key)
            assert parse_quantity(limits[key]) <= parse_quantity(caps[key]), (name, key)
        # the unpacked code fits in the smallest disk, with room to spare
        assert parse_quantity(limits["ephemeral-storage"]) >= 4 * 64 * MiB


@pytest.mark.parametrize(
    "trait, value",
    [("code_max_unpacked_bytes", 0), ("code_max_members", -1), ("code_check_seconds", 0.0)]
    + [("code_check_seconds", float("nan")), ("code_check_seconds", float("inf"))],
)
def test_limits_must_be_positive(trait, value):
    with pytest.raises(Exception, match="positive"):
        JobsServiceApp(**{trait: value})
