"""Container shim: run inside ``unshare --mount --propagation private`` as root.

Bind-mounts each volume at its mountPath (read-only where asked), drops to the
container's uid/gid/groups, changes to the working directory and execs the command.
Started as ``python -I shim.py SPEC_JSON`` with the container's environment; it
imports nothing from the package (the container's env must not break it).

Missing mount points: when the deepest existing ancestor of a mountPath may be
shadowed (not ``/``, not a system directory, not on the way to the interpreter, the
PATH or a volume's source), a tmpfs is mounted over it in this namespace; otherwise
the first missing directory is created on the host (empty, the only trace left) and
a tmpfs mounted over it. The mount namespace, and every mount in it, goes away with
the process.
"""

import ctypes
import json
import os
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 32, 4096, 16384
SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/proc", "/sys", "/dev")
SYSTEM += ("/run", "/var", "/tmp", "/boot", "/root")

_libc = ctypes.CDLL(None, use_errno=True)
_ours = []  # mount targets made here: creating directories below them is free


def _mount(source, target, fstype, flags, data=None):
    def b(s):
        return s.encode() if s is not None else None

    if _libc.mount(b(source), b(target), b(fstype), ctypes.c_ulong(flags), b(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _within(path, base):
    return path == base or path.startswith(base.rstrip("/") + "/")


def _protected(path, protected):
    if path == "/" or any(_within(p, path) or _within(path, p) for p in SYSTEM):
        return True
    return any(_within(p, path) for p in protected)


def _tmpfs(path):
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    _ours.append(path)


def ensure_dir(path, protected):
    """Make ``path`` exist in this namespace without writing into the host's directories."""
    if os.path.isdir(path):
        return
    ancestor, child = path, path
    while not os.path.exists(ancestor):
        ancestor, child = os.path.dirname(ancestor), ancestor
    if not any(_within(ancestor, o) for o in _ours):
        if _protected(ancestor, protected):
            os.mkdir(child, 0o755)
            _tmpfs(child)
        else:
            _tmpfs(ancestor)
    os.makedirs(path, exist_ok=True)


def ensure_file(path, protected):
    ensure_dir(os.path.dirname(path), protected)
    if not os.path.exists(path):
        with open(path, "a"):
            pass


def mount_all(mounts, protected):
    for m in sorted(mounts, key=lambda m: m["target"].rstrip("/").count("/")):
        source, target = m["source"], os.path.normpath(m["target"])
        if os.path.isdir(source):
            ensure_dir(target, protected)
        else:
            ensure_file(target, protected)
        _mount(source, target, None, MS_BIND | MS_REC)
        if m.get("readOnly"):
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        _ours.append(target)


def main():
    spec = json.loads(sys.argv[1])
    protected = [os.path.realpath(p) for p in spec.get("protected", [])] + spec.get("protected", [])
    try:
        mount_all(spec.get("mounts", []), protected)
        cwd = spec.get("cwd") or "/"
        ensure_dir(cwd, protected)
        if spec.get("uid") is not None:
            gid = spec.get("gid") or 0
            os.setgroups(spec.get("groups") or [gid])
            os.setgid(gid)
            os.setuid(spec["uid"])
        os.chdir(cwd)
    except OSError as e:
        sys.stderr.write(f"devstack container setup failed: {e}\n")
        sys.exit(128)
    argv = spec["argv"]
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        sys.stderr.write(f'exec: "{argv[0]}": {e.strerror}\n')
        sys.exit(127)


if __name__ == "__main__":
    main()
