"""Uploaded code: a zip archive sent base64-encoded, checked here, unpacked in the pod.

Two body shapes are accepted for ``code``: a base64 string, or the ConfigMap dict that
the kbatch client sends (``binary_data.code`` / ``binaryData.code``, base64).

A small archive can stand for a lot of work: a 471-byte bzip2 member inflates to 400 MB
and takes seconds to read, a 1 MB archive of such members an hour. So an archive is
walked member by member, counting the bytes that really come out (never the sizes its
headers claim), under limits of total size, member count and time, with stored and
deflated members only. :func:`scan_zip` is that walk, pure; the service runs it in a
separate, niced process, held to its CPU time limit by itself and by the kernel and
killed if it overruns (:func:`check_code`): the event loop never decompresses anything.
The init container's :data:`UNPACK_SCRIPT` enforces the same rules again while it
writes the files, and the ``code`` volume has a ``sizeLimit`` as well.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import logging
import os
import posixpath
import re
import signal
import stat
import struct
import subprocess
import sys
import time
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the checking process starts in half the time
    import asyncio

log = logging.getLogger(__name__)

MiB = 1024 * 1024
CHUNK = 64 * 1024  # bytes inflated between two looks at the limits
ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
METHOD_NAMES = {
    1: "shrink",
    6: "implode",
    9: "deflate64",
    12: "bzip2",
    14: "lzma",
    93: "zstandard",
    95: "xz",
    98: "ppmd",
    99: "AES encryption",
}
DRIVE = re.compile(r"^[A-Za-z]:")
# at most this many checking processes at once per event loop; the others wait
CONCURRENT_CHECKS = 4
# the checking process is killed after twice its CPU time limit plus this, in wall-clock
# seconds: time to start, to answer, and to get the CPU on a busy node
STARTUP_GRACE = 2.0
CHECKER_MEMORY = 512 * MiB  # address space of the checking process

# Run by the init container as ``python3 -c UNPACK_SCRIPT [--max-unpacked-bytes=N]
# [--max-members=N] ZIP DEST``: the same rules as scan_zip, enforced while writing, in
# whatever Python 3 the job's image has (so: standard library, no newer syntax).
UNPACK_SCRIPT = """\
import os, posixpath, re, stat, sys, zipfile
MAX_UNPACKED, MAX_MEMBERS = 64 * 1024 * 1024, 2000
args = sys.argv[1:]
while args and args[0].startswith("--"):
    key, _, value = args.pop(0).partition("=")
    if key == "--max-unpacked-bytes":
        MAX_UNPACKED = int(value)
    elif key == "--max-members":
        MAX_MEMBERS = int(value)
    else:
        sys.exit("unknown option %s" % key)
src, dest = args


def refuse(why):
    sys.exit("refusing the code archive: %s" % why)


with zipfile.ZipFile(src) as z:
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        refuse("%d members, more than the limit of %d" % (len(infos), MAX_MEMBERS))
    files, dirs = set(), set()
    for m in infos:
        name, kind = m.filename, stat.S_IFMT(m.external_attr >> 16)
        parts = name.rstrip("/").split("/")
        if (not name or "\\\\" in name or "\\0" in name or name.startswith("/")
                or re.match("[A-Za-z]:", name) or ".." in parts
                or posixpath.normpath(name) in (".", "/")):
            refuse("member %r points outside the code directory" % name)
        if m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            refuse("member %r uses compression method %d" % (name, m.compress_type))
        if m.flag_bits & 1:
            refuse("member %r is encrypted" % name)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            refuse("member %r is a link or a special file" % name)
        norm = posixpath.normpath(name)
        parents = [posixpath.dirname(norm)]
        while parents[-1]:
            parents.append(posixpath.dirname(parents[-1]))
        if norm in files or (not m.is_dir() and norm in dirs) or files & set(parents):
            refuse("member %r is there twice, or both a file and a directory" % name)
        (dirs if m.is_dir() else files).add(norm)
        dirs.update(parents)
    total = 0
    for m in infos:
        target = os.path.join(dest, *posixpath.normpath(m.filename).split("/"))
        if m.is_dir():
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        mode = 0o755 if (m.external_attr >> 16) & 0o111 else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        size = 0
        with z.open(m) as f, os.fdopen(os.open(target, flags, mode), "wb") as out:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                total += len(chunk)
                if total > MAX_UNPACKED:
                    refuse("it unpacks to more than the limit of %d bytes" % MAX_UNPACKED)
                out.write(chunk)
        if size != m.file_size:
            refuse("member %r declares %d bytes but holds %d" % (m.filename, m.file_size, size))
print("unpacked %d members, %d bytes, into %s" % (len(infos), total, dest))
"""


class UploadError(ValueError):
    """An upload that is refused: ``status`` 413 for the size, member and time limits,
    503 when the service is too busy checking others, 422 otherwise."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CodeLimits:
    """What an upload may cost (JobsServiceApp's code_* traits)."""

    max_bytes: int = 1_000_000  # the archive as sent, decoded
    max_unpacked_bytes: int = 64 * MiB  # every member's data together, as inflated
    max_members: int = 2000
    check_seconds: float = 5.0


@dataclass(frozen=True)
class ArchiveSummary:
    members: int
    unpacked_bytes: int


def unpack_command(limits: CodeLimits) -> tuple[str, ...]:
    """The init container's command (ZIP and DEST get appended) with the same limits."""
    return (
        "python3",
        "-c",
        UNPACK_SCRIPT,
        f"--max-unpacked-bytes={limits.max_unpacked_bytes}",
        f"--max-members={limits.max_members}",
    )


# -- pure ---------------------------------------------------------------------------------------
def encoded_payload(code: Any) -> str | None:
    """The base64 text from either accepted shape; None when there is no code."""
    if code is None or code == "":
        return None
    if isinstance(code, str):
        return code
    if isinstance(code, dict):
        data = code.get("binaryData") or code.get("binary_data") or {}
        if isinstance(data, dict) and isinstance(data.get("code"), str):
            return data["code"]
        raise UploadError("code: a ConfigMap-shaped upload needs binaryData.code (base64)")
    raise UploadError("code: must be a base64 string (a zip archive) or null")


def decode_archive(code: Any, max_bytes: int) -> bytes | None:
    """The archive's bytes, within ``max_bytes``, not yet looked into."""
    text = encoded_payload(code)
    if text is None:
        return None
    # base64 grows data by 4/3: refuse before decoding what is clearly too big
    if len(text) > (max_bytes * 4) // 3 + 8:
        raise UploadError(f"code: the archive is larger than the limit of {max_bytes} bytes", 413)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError("code: not valid base64") from None
    if len(data) > max_bytes:
        raise UploadError(f"code: the archive is larger than the limit of {max_bytes} bytes", 413)
    return data


def decode_code(code: Any, max_bytes: int, limits: CodeLimits | None = None) -> bytes | None:
    """The archive's bytes, fully checked in this thread (the service uses check_code)."""
    data = decode_archive(code, max_bytes)
    if data is not None:
        scan_zip(data, limits or CodeLimits(max_bytes=max_bytes))
    return data


def _size(n: int) -> str:
    return f"{n} bytes ({n / MiB:g} MiB)" if n >= MiB else f"{n} bytes"


def name_problem(name: str) -> str | None:
    """Why a member's name cannot be written inside the code directory, or None."""
    if "\\" in name:
        return "has a backslash in its name"
    if "\0" in name:
        return "has a NUL byte in its name"
    if name.startswith("/"):
        return "is an absolute path"
    if DRIVE.match(name):
        return "starts with a drive letter"
    if ".." in name.rstrip("/").split("/"):
        return "climbs out of the code directory ('..')"
    if not name or posixpath.normpath(name) == ".":
        return "has no name"
    return None


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member is refused whatever its data (name, method, encryption, type)."""
    why = name_problem(info.filename)
    if why:
        return why
    if info.compress_type not in ALLOWED_METHODS:
        method = METHOD_NAMES.get(info.compress_type, "unknown")
        allowed = " or ".join(ALLOWED_METHODS.values())
        return f"uses compression method {info.compress_type} ({method}); only {allowed} is allowed"
    if info.flag_bits & 0x1:
        return "is encrypted"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a special file (device, pipe or socket)"
    return None


def _parents(path: str) -> list[str]:
    out = []
    while path := posixpath.dirname(path):
        out.append(path)
    return out


def check_names(infos: Sequence[zipfile.ZipInfo]) -> None:
    """Every member alone and together: no refused member, no name twice, no name that is
    both a file and a directory (whichever came first would be overwritten)."""
    files: set[str] = set()
    dirs: set[str] = set()
    for info in infos:
        why = member_problem(info)
        if why:
            raise UploadError(f"code: archive member {info.filename!r} {why}")
        norm = posixpath.normpath(info.filename)
        parents = _parents(norm)
        if norm in files or (not info.is_dir() and norm in dirs) or files.intersection(parents):
            raise UploadError(
                f"code: archive member {info.filename!r} is there twice, or both a file and a "
                "directory"
            )
        (dirs if info.is_dir() else files).add(norm)
        dirs.update(parents)


def member_data(data: bytes, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """A member's data as it really comes out, in chunks of at most CHUNK bytes: from its
    local header on, inflated until the deflate stream ends, whatever size the headers
    state (zipfile would stop at the stated size). BadZipFile if it cannot be read."""
    at = info.header_offset
    header = data[at : at + 30]
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"no local header for {info.filename!r}")
    name_length, extra_length = struct.unpack_from("<HH", header, 26)
    name = data[at + 30 : at + 30 + name_length]
    if name.decode("utf-8" if info.flag_bits & 0x800 else "cp437") != info.orig_filename:
        raise zipfile.BadZipFile(f"two names for {info.filename!r}")  # the unzipper's check
    start = at + 30 + name_length + extra_length
    raw = memoryview(data)[start : start + info.compress_size]
    if len(raw) < info.compress_size:
        raise zipfile.BadZipFile(f"{info.filename!r} is cut short")
    if info.compress_type == zipfile.ZIP_STORED:
        for i in range(0, len(raw), CHUNK):
            yield bytes(raw[i : i + CHUNK])
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending, fed = b"", 0
    while not inflater.eof:
        if not pending:
            if fed >= len(raw):
                raise zipfile.BadZipFile(f"the deflate stream of {info.filename!r} is cut short")
            pending = raw[fed : fed + CHUNK]
            fed += len(pending)
        out = inflater.decompress(pending, CHUNK)
        pending = inflater.unconsumed_tail
        if out:
            yield out


def scan_zip(
    data: bytes, limits: CodeLimits, clock: Callable[[], float] = time.process_time
) -> ArchiveSummary:
    """Walk the archive as the init container will unpack it: every member's data read in
    chunks and counted as it comes out, stopping at the first limit passed; UploadError
    (413 for limits, 422 for anything else) naming the member or the limit. The time
    limit is on ``clock``: CPU time by default, the work done, however busy the node."""
    deadline = clock() + limits.check_seconds
    too_slow = UploadError(
        f"code: checking the archive took longer than the limit of {limits.check_seconds:g} "
        "seconds; send a smaller archive with fewer members",
        413,
    )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:  # the central directory only
            infos = z.infolist()
        if len(infos) > limits.max_members:
            raise UploadError(
                f"code: the archive has {len(infos)} members, more than the limit of "
                f"{limits.max_members}",
                413,
            )
        check_names(infos)
        total = 0
        for info in infos:
            if clock() > deadline:
                raise too_slow
            if info.is_dir():
                continue
            size = crc = 0
            for chunk in member_data(data, info):
                size += len(chunk)
                total += len(chunk)
                if total > limits.max_unpacked_bytes:
                    raise UploadError(
                        "code: the archive unpacks to more than the limit of "
                        f"{_size(limits.max_unpacked_bytes)}",
                        413,
                    )
                if clock() > deadline:
                    raise too_slow
                crc = zlib.crc32(chunk, crc)
            if size != info.file_size:
                raise UploadError(
                    f"code: archive member {info.filename!r} declares {info.file_size} bytes "
                    f"but inflates to {size}"
                )
            if crc != info.CRC:
                raise UploadError(f"code: archive member {info.filename!r} fails its CRC check")
    except UploadError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as e:
        # a bad CRC, a truncated stream, a broken header: nothing an unpacker can trust
        detail = str(e) if isinstance(e, zipfile.BadZipFile | zlib.error) else "unreadable"
        raise UploadError(f"code: not a zip archive, or a corrupt one ({detail})") from None
    return ArchiveSummary(len(infos), total)


# -- the checking process ---------------------------------------------------------------------
def checker_command(limits: CodeLimits) -> list[str]:
    """The service's own Python, isolated from the environment, running checker_main."""
    root = str(Path(__file__).resolve().parents[2])
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from valeria_hub.jobs.upload import checker_main; checker_main(sys.argv[2])"
    )
    return [sys.executable, "-I", "-c", script, root, json.dumps(asdict(limits))]


def checker_main(limits_json: str) -> None:
    """The checking process: the archive on stdin, the verdict as JSON on stdout. Niced,
    with its CPU time and memory capped by the kernel as well as by the walk's deadline."""
    import resource

    limits = CodeLimits(**json.loads(limits_json))
    try:
        os.nice(10)
        cpu = int(limits.check_seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (CHECKER_MEMORY, CHECKER_MEMORY))
    except (OSError, ValueError):
        pass  # a platform without them: the parent's kill still holds
    data = sys.stdin.buffer.read(limits.max_bytes + 1)
    try:
        summary = scan_zip(data, limits)
        verdict: dict[str, Any] = {"ok": True, **asdict(summary)}
    except UploadError as e:
        verdict = {"ok": False, "status": e.status, "message": str(e)}
    except MemoryError:
        verdict = {"ok": False, "status": 413, "message": "code: the archive needs more "
                   f"than {_size(CHECKER_MEMORY)} of memory to check"}  # fmt: skip
    sys.stdout.write(json.dumps(verdict))


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _loop_slots() -> asyncio.Semaphore:
    import asyncio

    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots[loop] = asyncio.Semaphore(CONCURRENT_CHECKS)
    return _slots[loop]


async def check_code(code: Any, limits: CodeLimits) -> bytes | None:
    """The archive's bytes once checked in a separate process; UploadError otherwise."""
    data = decode_archive(code, limits.max_bytes)
    if data is None:
        return None
    # the end record only (a search of at most 64 KiB): what is no zip at all costs no process
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise UploadError("code: not a zip archive")
    await check_isolated(data, limits)
    return data


async def check_isolated(
    data: bytes,
    limits: CodeLimits,
    command: Sequence[str] | None = None,
    grace: float = STARTUP_GRACE,
) -> ArchiveSummary:
    """scan_zip in a process of its own, which stops itself after ``check_seconds`` of CPU
    time, is stopped by the kernel a second later (RLIMIT_CPU), and killed if it has not
    answered after twice that time plus ``grace`` seconds: a thread could not be
    stopped, would share the GIL with the event loop, and could not be held to a memory
    limit."""
    import asyncio

    slots = _loop_slots()
    try:
        await asyncio.wait_for(slots.acquire(), limits.check_seconds)
    except TimeoutError:
        raise UploadError(
            "code: too many uploads are being checked right now; retry in a moment", 503
        ) from None
    try:
        run = functools.partial(
            run_checker, data, limits, command or checker_command(limits), grace
        )
        return await asyncio.get_running_loop().run_in_executor(_launchers, run)
    finally:
        slots.release()


# The threads that start the checking processes and wait for their answers. Started from
# the event loop, a process held it for up to 140 ms on a busy node (fork and exec, then
# asyncio's child watcher starting a thread); a thread blocked on a pipe costs it nothing.
_launchers = ThreadPoolExecutor(CONCURRENT_CHECKS, thread_name_prefix="code-check")


def run_checker(
    data: bytes, limits: CodeLimits, command: Sequence[str], grace: float
) -> ArchiveSummary:
    """Start the checking process, hand it the archive, read its verdict. Blocking."""
    too_slow = UploadError(
        f"code: checking the archive took longer than the limit of {limits.check_seconds:g} "
        "seconds; send a smaller archive with fewer members",
        413,
    )
    try:
        # an empty environment: the service's tokens stay out of a process that parses
        # hostile input
        done = subprocess.run(
            command,
            input=data,
            capture_output=True,
            env={},
            timeout=2 * limits.check_seconds + grace,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise too_slow from None  # killed and reaped by subprocess.run
    if done.returncode in (-signal.SIGKILL, -signal.SIGXCPU):  # the kernel's CPU limit
        raise too_slow
    try:
        verdict = json.loads(done.stdout)
    except ValueError:
        verdict = None
    if done.returncode != 0 or not isinstance(verdict, dict):
        detail = done.stderr[-2000:].decode("utf-8", "replace")
        log.error("code checker failed (exit %s): %s", done.returncode, detail)
        raise UploadError("code: the archive could not be checked")
    if not verdict.get("ok"):
        raise UploadError(str(verdict.get("message")), int(verdict.get("status", 422)))
    return ArchiveSummary(int(verdict["members"]), int(verdict["unpacked_bytes"]))
