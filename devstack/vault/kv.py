"""The KV version 2 secrets engine as a plain in-memory model.

Keeps what Vault keeps per key: versions with created/deletion times and the destroyed
flag, current/oldest version, max_versions, cas_required, custom_metadata. Errors carry
Vault's own messages; no error message ever contains secret data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import VaultError

DEFAULT_MAX_VERSIONS = 10


def rfc3339(ts: float) -> str:
    """Vault's timestamp format (RFC 3339, UTC, fractional seconds, ``Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Version:
    data: dict[str, Any] | None
    created: float
    deleted: float | None = None
    destroyed: bool = False

    def meta(self, number: int, custom: dict | None) -> dict[str, Any]:
        return {
            "created_time": rfc3339(self.created),
            "custom_metadata": custom,
            "deletion_time": rfc3339(self.deleted) if self.deleted else "",
            "destroyed": self.destroyed,
            "version": number,
        }


@dataclass
class Entry:
    """One key: its versions and metadata."""

    created: float
    updated: float
    versions: dict[int, Version] = field(default_factory=dict)
    current: int = 0
    oldest: int = 0
    max_versions: int = 0
    cas_required: bool = False
    custom_metadata: dict[str, str] | None = None
    delete_version_after: str = "0s"


class KvV2:
    """One mounted KV v2 engine."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.entries: dict[str, Entry] = {}
        self.max_versions = 0
        self.cas_required = False
        self.delete_version_after = "0s"

    # -- helpers ------------------------------------------------------------
    @staticmethod
    def _key(path: str) -> str:
        key = path.strip("/")
        if not key:
            raise VaultError(400, ["missing path"])
        return key

    def exists(self, path: str) -> bool:
        """Vault's existence check for data/metadata writes (create vs update)."""
        return path.strip("/") in self.entries

    def _limit(self, entry: Entry) -> int:
        return entry.max_versions or self.max_versions or DEFAULT_MAX_VERSIONS

    # -- config ---------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        return {
            "cas_required": self.cas_required,
            "delete_version_after": self.delete_version_after,
            "max_versions": self.max_versions,
        }

    def write_config(self, body: dict[str, Any]) -> None:
        if "max_versions" in body:
            self.max_versions = _int(body["max_versions"], "max_versions")
        if "cas_required" in body:
            self.cas_required = _bool(body["cas_required"])
        if "delete_version_after" in body:
            self.delete_version_after = str(body["delete_version_after"])

    # -- data -----------------------------------------------------------------
    def read(self, path: str, version: int | None = None) -> dict[str, Any]:
        """``{"data": ..., "metadata": ...}``; VaultError 404 like Vault otherwise."""
        entry = self.entries.get(self._key(path))
        if entry is None:
            raise VaultError(404, [])
        number = version or entry.current
        ver = entry.versions.get(number)
        if ver is None:
            raise VaultError(404, [])
        meta = ver.meta(number, entry.custom_metadata)
        if ver.deleted is not None or ver.destroyed:
            # Vault answers 404 but still shows the version metadata (hvac reads it).
            raise VaultError(404, None, data={"data": None, "metadata": meta})
        return {"data": copy.deepcopy(ver.data), "metadata": meta}

    def write(self, path: str, data: Any, options: dict[str, Any] | None) -> dict[str, Any]:
        key = self._key(path)
        if not isinstance(data, dict):
            raise VaultError(400, ["no data provided"])
        options = options or {}
        entry = self.entries.get(key)
        cas = options.get("cas")
        required = self.cas_required or (entry is not None and entry.cas_required)
        if cas is None and required:
            raise VaultError(400, ["check-and-set parameter required for this call"])
        if cas is not None:
            current = entry.current if entry is not None else 0
            if _int(cas, "cas") != current:
                raise VaultError(400, ["check-and-set parameter did not match the current version"])
        now = self._clock()
        if entry is None:
            entry = Entry(created=now, updated=now)
            self.entries[key] = entry
        entry.current += 1
        entry.updated = now
        entry.versions[entry.current] = Version(copy.deepcopy(data), now)
        self._prune(entry)
        return entry.versions[entry.current].meta(entry.current, entry.custom_metadata)

    def patch(self, path: str, data: Any, options: dict[str, Any] | None) -> dict[str, Any]:
        """JSON merge patch of the current version into a new one (HTTP PATCH)."""
        key = self._key(path)
        entry = self.entries.get(key)
        if entry is None or entry.current not in entry.versions:
            raise VaultError(404, [])
        ver = entry.versions[entry.current]
        if ver.deleted is not None or ver.destroyed:
            raise VaultError(404, [])
        if not isinstance(data, dict):
            raise VaultError(400, ["no data provided"])
        merged = _merge_patch(copy.deepcopy(ver.data or {}), data)
        return self.write(path, merged, options)

    def _prune(self, entry: Entry) -> None:
        limit = self._limit(entry)
        while len(entry.versions) > limit:
            del entry.versions[min(entry.versions)]
        entry.oldest = min(entry.versions) if entry.versions else 0

    def delete_latest(self, path: str) -> None:
        entry = self.entries.get(self._key(path))
        if entry is None:
            return
        ver = entry.versions.get(entry.current)
        if ver is not None and ver.deleted is None and not ver.destroyed:
            ver.deleted = self._clock()

    def _versions(self, body: dict[str, Any]) -> list[int]:
        raw = body.get("versions")
        if isinstance(raw, int | str):
            raw = [raw]
        if not raw:
            raise VaultError(400, ["no version number provided"])
        return [_int(v, "versions") for v in raw]

    def delete_versions(self, path: str, body: dict[str, Any]) -> None:
        numbers = self._versions(body)
        entry = self.entries.get(self._key(path))
        if entry is None:
            return
        now = self._clock()
        for n in numbers:
            ver = entry.versions.get(n)
            if ver is not None and ver.deleted is None and not ver.destroyed:
                ver.deleted = now

    def undelete_versions(self, path: str, body: dict[str, Any]) -> None:
        numbers = self._versions(body)
        entry = self.entries.get(self._key(path))
        if entry is None:
            return
        for n in numbers:
            ver = entry.versions.get(n)
            if ver is not None and not ver.destroyed:
                ver.deleted = None

    def destroy_versions(self, path: str, body: dict[str, Any]) -> None:
        numbers = self._versions(body)
        entry = self.entries.get(self._key(path))
        if entry is None:
            return
        for n in numbers:
            ver = entry.versions.get(n)
            if ver is not None:
                ver.destroyed = True
                ver.data = None

    # -- metadata ---------------------------------------------------------------
    def read_metadata(self, path: str) -> dict[str, Any]:
        entry = self.entries.get(self._key(path))
        if entry is None:
            raise VaultError(404, [])
        return {
            "cas_required": entry.cas_required,
            "created_time": rfc3339(entry.created),
            "current_version": entry.current,
            "custom_metadata": entry.custom_metadata,
            "delete_version_after": entry.delete_version_after,
            "max_versions": entry.max_versions,
            "oldest_version": entry.oldest,
            "updated_time": rfc3339(entry.updated),
            "versions": {
                str(n): {
                    "created_time": rfc3339(v.created),
                    "deletion_time": rfc3339(v.deleted) if v.deleted else "",
                    "destroyed": v.destroyed,
                }
                for n, v in sorted(entry.versions.items())
            },
        }

    def write_metadata(self, path: str, body: dict[str, Any]) -> None:
        key = self._key(path)
        now = self._clock()
        entry = self.entries.setdefault(key, Entry(created=now, updated=now))
        if "max_versions" in body:
            entry.max_versions = _int(body["max_versions"], "max_versions")
        if "cas_required" in body:
            entry.cas_required = _bool(body["cas_required"])
        if "custom_metadata" in body:
            custom = body["custom_metadata"]
            if custom is not None and not isinstance(custom, dict):
                raise VaultError(400, ["custom_metadata must be a map of strings"])
            entry.custom_metadata = {str(k): str(v) for k, v in (custom or {}).items()}
        if "delete_version_after" in body:
            entry.delete_version_after = str(body["delete_version_after"])
        entry.updated = now
        self._prune(entry)

    def delete_metadata(self, path: str) -> None:
        self.entries.pop(self._key(path), None)

    def list(self, path: str) -> list[str]:
        """Keys directly under ``path``; folders end in ``/``. 404 when nothing is there."""
        prefix = path.strip("/")
        prefix = prefix + "/" if prefix else ""
        keys: set[str] = set()
        for key in self.entries:
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            head, sep, _ = rest.partition("/")
            keys.add(head + sep)
        if not keys:
            raise VaultError(404, [])
        return sorted(keys)


def _int(value: Any, name: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise VaultError(400, [f"invalid value for {name}: expected an integer"]) from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise VaultError(400, ["expected a boolean"])


def _merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            target[k] = _merge_patch(target[k], v)
        else:
            target[k] = v
    return target
