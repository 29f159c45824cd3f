"""Onboarding users into Vault: what to do for each user, decided without I/O.

An operator's AppRole may create and update user secrets but never read them, so
"is this already done?" cannot be answered by comparing secret values. Instead the
tool keeps its own bookkeeping in the Vault *entity's* metadata (which the onboarding
policy may update and read back through ``identity/lookup/entity``): the uid and gid it
wrote, the S3 access key id and a salted fingerprint of the S3 secret key. KV metadata
(versions, never values) tells whether the secrets still exist.

A uid (or gid) never changes silently: files on NFS are owned by the old one, so a
change is refused unless forced. S3 keys may be rotated freely.

The I/O lives in vault.py (Vault), keycloak.py (Keycloak) and
cli.py (the ``valeria-hub users`` command); run.py joins them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

META_UID = "valeria_uid"
META_GID = "valeria_gid"
META_USERNAME = "keycloak_username"
META_ACCESS_KEY = "s3_access_key_id"
META_FINGERPRINT = "s3_secret_fingerprint"
BOOKKEEPING = (META_UID, META_GID, META_USERNAME, META_ACCESS_KEY, META_FINGERPRINT)

CSV_COLUMNS = ("username", "keycloak_id", "uid", "gid", "s3_access_key", "s3_secret_file")
REQUIRED_COLUMNS = ("username", "uid", "s3_access_key", "s3_secret_file")
USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,255}$")


class InputError(ValueError):
    """A user record or a CSV line that cannot be onboarded as written."""


@dataclass(frozen=True)
class UserRecord:
    """One user to onboard. The S3 secret key never appears in repr()."""

    username: str
    uid: int
    s3_access_key: str
    s3_secret_key: str = field(repr=False)
    gid: int | None = None
    keycloak_id: str = ""


@dataclass(frozen=True)
class VaultState:
    """What Vault says about a user, without any secret value.

    ``entity`` is the entity found through the user's alias on the JWT mount;
    ``named`` the entity of the same name when no alias exists (or None);
    ``uid_exists``/``ceph_exists`` come from KV metadata (a live current version), or
    are None when the policy may not read KV metadata: then the bookkeeping decides.
    """

    entity: Mapping[str, Any] | None
    named: Mapping[str, Any] | None
    uid_exists: bool | None
    ceph_exists: bool | None
    jwt_accessor: str


@dataclass
class Plan:
    """The calls to make for one user and the outcome to report."""

    username: str
    status: str  # created | updated | unchanged | failed
    reason: str = ""
    entity_id: str = ""
    create_entity: bool = False
    create_alias: bool = False
    write_uid: bool = False
    # 0: write the uid only if no version exists (Vault refuses otherwise). Set when the
    # policy cannot tell whether one exists: a uid written by other means must never be
    # replaced silently, files on NFS belong to it.
    uid_cas: int | None = None
    write_ceph: bool = False
    metadata: dict[str, str] | None = None  # new entity metadata, None: unchanged
    changes: list[str] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return bool(
            self.create_entity
            or self.create_alias
            or self.write_uid
            or self.write_ceph
            or self.metadata is not None
        )


# -- parsing --------------------------------------------------------------------------
def parse_id(value: Any, what: str) -> int:
    """A POSIX uid/gid: decimal, 1..2147483647 (never root)."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) <= 2**31 - 1:
        raise InputError(f"{what} must be a number from 1 to 2147483647, got {text!r}")
    return int(text)


def read_secret_file(path: Path) -> str:
    """The S3 secret key from its own file, which must not be readable by everyone."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as e:
        raise InputError(f"cannot read the S3 secret file {path} ({e.strerror})") from None
    if mode & stat.S_IROTH:
        raise InputError(f"the S3 secret file {path} is world-readable; chmod 600 it")
    if not text or "\n" in text:
        raise InputError(f"the S3 secret file {path} must hold exactly one non-empty line")
    return text


def make_record(
    username: str,
    uid: Any,
    s3_access_key: str,
    s3_secret_key: str,
    gid: Any = None,
    keycloak_id: str = "",
) -> UserRecord:
    username = (username or "").strip()
    if not USERNAME.match(username):
        raise InputError(f"invalid username {username!r}")
    access = (s3_access_key or "").strip()
    if not access or any(c.isspace() for c in access):
        raise InputError("s3_access_key is empty or contains spaces")
    if not s3_secret_key:
        raise InputError("the S3 secret key is empty")
    return UserRecord(
        username=username,
        uid=parse_id(uid, "uid"),
        gid=parse_id(gid, "gid") if str(gid or "").strip() else None,
        s3_access_key=access,
        s3_secret_key=s3_secret_key,
        keycloak_id=(keycloak_id or "").strip(),
    )


def parse_csv(text: str, base_dir: Path) -> tuple[list[UserRecord], list[tuple[str, str]]]:
    """Records from a CSV (header line required), and (line/user, problem) for bad lines.

    Columns: username, keycloak_id (optional: looked up in Keycloak when empty), uid,
    gid (optional), s3_access_key, s3_secret_file (a file holding only the S3 secret
    key, relative to the CSV's directory; secret keys are never written in the CSV).
    """
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if unknown:
            parts.append(f"unknown columns {unknown} (secret keys go in s3_secret_file)")
        raise InputError("CSV header: " + "; ".join(parts) + f"; expected {list(CSV_COLUMNS)}")
    records, problems = [], []
    seen: set[str] = set()
    for lineno, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k}
        if not any(row.values()):
            continue
        label = row.get("username") or f"line {lineno}"
        try:
            if row["username"] in seen:
                raise InputError("appears twice in the CSV")
            secret_path = Path(row["s3_secret_file"])
            if not secret_path.is_absolute():
                secret_path = base_dir / secret_path
            record = make_record(
                row["username"],
                row["uid"],
                row["s3_access_key"],
                read_secret_file(secret_path) if row["s3_secret_file"] else "",
                gid=row.get("gid"),
                keycloak_id=row.get("keycloak_id", ""),
            )
        except InputError as e:
            problems.append((label, f"line {lineno}: {e}"))
            continue
        seen.add(record.username)
        records.append(record)
    return records, problems


# -- deciding -------------------------------------------------------------------------
def fingerprint(entity_id: str, access_key: str, secret_key: str) -> str:
    """A salted digest of the S3 keys: tells "same keys" apart without storing them."""
    text = f"valeria-onboarding\0{entity_id}\0{access_key}\0{secret_key}"
    digest = hashlib.sha256(text.encode())
    return digest.hexdigest()[:32]


def _jwt_alias(entity: Mapping[str, Any], accessor: str) -> Mapping[str, Any] | None:
    for alias in entity.get("aliases") or []:
        if alias.get("mount_accessor") == accessor:
            return alias
    return None


def _bookkeeping(record: UserRecord, entity_id: str) -> dict[str, str]:
    return {
        META_UID: str(record.uid),
        META_GID: "" if record.gid is None else str(record.gid),
        META_USERNAME: record.username,
        META_ACCESS_KEY: record.s3_access_key,
        META_FINGERPRINT: fingerprint(entity_id, record.s3_access_key, record.s3_secret_key),
    }


def plan_user(record: UserRecord, sub: str, state: VaultState, force: bool = False) -> Plan:
    """What to do for ``record`` whose Keycloak id is ``sub``, given Vault's ``state``."""
    name = record.username
    if state.entity is None:
        named = state.named
        if named is not None:
            other = _jwt_alias(named, state.jwt_accessor)
            if other is not None:
                return Plan(
                    name,
                    "failed",
                    f"the Vault entity {named.get('name')!r} is linked to another Keycloak "
                    f"user ({other.get('name')}); remove that alias first",
                )
            policies = [p for p in named.get("policies") or [] if p]
            if policies:
                return Plan(
                    name,
                    "failed",
                    f"the Vault entity {named.get('name')!r} has policies ({', '.join(policies)}): "
                    "linking it to this Keycloak user would give them to that person; remove "
                    "them from the entity first",
                )
            entity_id = str(named["id"])
            plan = Plan(name, "created", entity_id=entity_id, create_alias=True)
            plan.changes.append("alias")
            current = dict(named.get("metadata") or {})
        else:
            plan = Plan(name, "created", create_entity=True, create_alias=True)
            plan.changes += ["entity", "alias"]
            entity_id, current = "", {}
    else:
        entity_id = str(state.entity["id"])
        plan = Plan(name, "unchanged", entity_id=entity_id)
        current = dict(state.entity.get("metadata") or {})

    wanted = _bookkeeping(record, entity_id or "{entity_id}")
    uid_exists = META_UID in current if state.uid_exists is None else state.uid_exists
    ceph_exists = META_FINGERPRINT in current if state.ceph_exists is None else state.ceph_exists
    if not uid_exists:
        plan.write_uid = True
        plan.changes.append("uid")
        if state.uid_exists is None and not force:
            plan.uid_cas = 0
    elif (current.get(META_UID), current.get(META_GID, "")) != (wanted[META_UID], wanted[META_GID]):
        if META_UID not in current:
            why = "a uid is stored already but not by this tool, so it cannot be compared"
        else:
            old = current.get(META_UID), current.get(META_GID) or "-"
            why = f"uid/gid would change from {old[0]}/{old[1]} to {record.uid}/{record.gid or '-'}"
        if not force:
            return Plan(
                name,
                "failed",
                f"{why}; files on NFS belong to the stored uid. Use --force to overwrite",
                entity_id=entity_id,
            )
        plan.write_uid = True
        plan.changes.append("uid (forced)")
    keys_same = (current.get(META_ACCESS_KEY), current.get(META_FINGERPRINT)) == (
        wanted[META_ACCESS_KEY],
        wanted[META_FINGERPRINT],
    )
    if not ceph_exists or not keys_same:
        plan.write_ceph = True
        plan.changes.append("s3 keys")
    merged = {**current, **wanted}
    if merged != current:
        plan.metadata = merged
        if plan.status == "unchanged":
            plan.changes.append("bookkeeping")
    if plan.status == "unchanged" and plan.writes:
        plan.status = "updated"
    return plan


def finish_metadata(plan: Plan, entity_id: str, record: UserRecord) -> dict[str, str] | None:
    """The metadata to write once a new entity has its id (the fingerprint is salted by it)."""
    if plan.metadata is None:
        return None
    return {**plan.metadata, **_bookkeeping(record, entity_id)}


def uid_secret(record: UserRecord) -> dict[str, str]:
    """The ``.../uid`` secret in the layout the spawner reads (vault.py)."""
    data = {"uid": str(record.uid)}
    if record.gid is not None:
        data["gid"] = str(record.gid)
    return data


def ceph_secret(record: UserRecord) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": record.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": record.s3_secret_key,
    }


# -- reporting ------------------------------------------------------------------------
def report_rows(plans: list[Plan]) -> list[dict[str, str]]:
    return [
        {
            "username": p.username,
            "status": p.status,
            "entity_id": p.entity_id,
            "changes": ", ".join(p.changes),
            "reason": p.reason,
        }
        for p in plans
    ]


def format_report(plans: list[Plan], fmt: str = "table", dry_run: bool = False) -> str:
    """A table or JSON of what happened (or would happen); never a secret value."""
    rows = report_rows(plans)
    counts: dict[str, int] = {}
    for p in plans:
        counts[p.status] = counts.get(p.status, 0) + 1
    if fmt == "json":
        return json.dumps({"dry_run": dry_run, "users": rows, "summary": counts}, indent=2)
    headers = ["username", "status", "entity_id", "changes", "reason"]
    widths = {h: max([len(h)] + [len(r[h]) for r in rows]) for h in headers}
    lines = ["  ".join(h.upper().ljust(widths[h]) for h in headers).rstrip()]
    lines += ["  ".join(r[h].ljust(widths[h]) for h in headers).rstrip() for r in rows]
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no users"
    lines.append(("dry run, nothing written: " if dry_run else "") + summary)
    return os.linesep.join(lines)
