"""Each person's home and scratch directories on the NFS export (``--nfs-root``).

``valeria-hub users onboard --nfs-root DIR`` runs where the export is mounted, as root
(the export must not squash that host's root): for each person it makes
``home/<name>`` and ``scratch/<name>`` below DIR, owned by their uid and gid, mode
0700. The names come from the same subPath templates and the same mapping of
usernames to path segments as the notebook's and the jobs' NFS mounts
(:class:`valeria_hub.storage.StorageLayout`, :func:`valeria_hub.names.path_safe`), so
the directory made here is the one the pod mounts.

Idempotent: a directory that exists with the person's uid, gid and mode 0700 is left
alone and reported unchanged. A wrong group or mode of the directory itself is set
right (nothing below it is touched). A directory owned by another uid, a symbolic
link or a file in the way is refused and left as it is: its files may belong to
someone else, which only a person can decide. ``plan_dir`` decides; the rest is I/O,
done on an open file descriptor of the directory (never following a link), so what is
checked is what is changed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..storage import StorageLayout, render_path

MODE = 0o700
DEFAULT_HOME = StorageLayout.class_traits()["home_sub_path"].default_value
DEFAULT_SCRATCH = StorageLayout.class_traits()["scratch_sub_path"].default_value


class DirError(Exception):
    """A directory that cannot be made or set right; the message names it and why."""


@dataclass(frozen=True)
class DirState:
    """What is at a directory's path: ``kind`` is "dir", "link" or "other"."""

    kind: str
    uid: int = -1
    gid: int = -1
    mode: int = 0  # permission bits (and setuid/setgid/sticky)


@dataclass(frozen=True)
class DirPlan:
    """What to do with one directory: create, fix (group/mode), keep or refuse."""

    action: str
    reason: str = ""
    chgrp: bool = False
    chmod: bool = False


def plan_dir(state: DirState | None, uid: int, gid: int) -> DirPlan:
    """The decision for one directory that must belong to ``uid``:``gid``, mode 0700."""
    if state is None:
        return DirPlan("create")
    if state.kind == "link":
        return DirPlan("refuse", "is a symbolic link; it is not followed, remove or fix it")
    if state.kind != "dir":
        return DirPlan("refuse", "exists and is not a directory")
    if state.uid != uid:
        return DirPlan(
            "refuse",
            f"belongs to uid {state.uid}, not {uid}: its files may be someone else's; "
            f"if they are this person's, `chown -R {uid}:{gid}` it by hand",
        )
    chgrp, chmod = state.gid != gid, state.mode != MODE
    if chgrp or chmod:
        return DirPlan("fix", chgrp=chgrp, chmod=chmod)
    return DirPlan("keep")


def describe(rel: str, plan: DirPlan, state: DirState | None, gid: int) -> str:
    """The report's words for a planned change ("" when there is none)."""
    if plan.action == "create":
        return f"{rel} created"
    if plan.action != "fix" or state is None:
        return ""
    parts = []
    if plan.chgrp:
        parts.append(f"group {state.gid}->{gid}")
    if plan.chmod:
        parts.append(f"mode {state.mode:o}->{MODE:o}")
    return f"{rel} {', '.join(parts)}"


def _state(path: Path) -> DirState | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "other"
    return DirState(kind, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


def _why(e: OSError) -> str:
    if e.errno in (errno.EPERM, errno.EACCES):
        return (
            f"{e.strerror}: run as root where the export is mounted, and the export must "
            "not squash this host's root (no_root_squash)"
        )
    return e.strerror or type(e).__name__


class UserDirs:
    """Makes and checks people's directories below an NFS export mounted at ``root``."""

    def __init__(
        self, root: Path, home: str = DEFAULT_HOME, scratch: str = DEFAULT_SCRATCH
    ) -> None:
        self.root = Path(root)
        self.templates = [t for t in (home, scratch) if t]
        if not self.root.is_dir():
            raise DirError(f"--nfs-root {self.root} is not a directory: is the export mounted?")
        for template in self.templates:
            render_path(template, "probe", 1)  # '..' and unknown fields fail here, once

    def paths(self, username: str, uid: int) -> list[str]:
        """The directories' paths below the root, as the pods' subPaths name them."""
        return [render_path(t, username, uid).strip("/") for t in self.templates]

    def ensure(self, username: str, uid: int, gid: int | None, *, dry_run: bool) -> list[str]:
        """Make or set right each directory; the changes in words. DirError on refusal
        (the other directories of the person are still done first)."""
        gid = uid if gid is None else gid
        changes, problems = [], []
        for rel in self.paths(username, uid):
            try:
                change = self._one(rel, uid, gid, dry_run)
            except DirError as e:
                problems.append(str(e))
                continue
            if change:
                changes.append(change)
        if problems:
            raise DirError("; ".join(problems))
        return changes

    def _one(self, rel: str, uid: int, gid: int, dry_run: bool) -> str:
        path = self.root / rel
        if not path.parent.is_dir():
            raise DirError(
                f"{rel}: {path.parent} does not exist: is the export mounted at {self.root}? "
                "(on a new export, create it once by hand, owned by root, mode 0755)"
            )
        state = _state(path)
        plan = plan_dir(state, uid, gid)
        if plan.action == "refuse":
            raise DirError(f"{rel} {plan.reason}")
        change = describe(rel, plan, state, gid)
        if dry_run or plan.action == "keep":
            return change
        try:
            if plan.action == "create":
                os.mkdir(path, MODE)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileExistsError:
            raise DirError(f"{rel} appeared while it was being created; run again") from None
        except OSError as e:
            raise DirError(f"{rel}: cannot create or open it: {_why(e)}") from None
        try:
            st = os.fstat(fd)
            if st.st_uid != uid and plan.action != "create":
                raise DirError(f"{rel} changed owner while it was being checked; run again")
            os.fchown(fd, uid, gid)
            os.fchmod(fd, MODE)
        except OSError as e:
            if plan.action == "create":  # nothing half-made: an empty directory of ours
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            raise DirError(f"{rel}: cannot give it to {uid}:{gid}: {_why(e)}") from None
        finally:
            os.close(fd)
        return change
