"""Onboarding, step by step: resolve each user's Keycloak id, read Vault's state, plan
(onboarding.plan_user), then make exactly the planned calls. One user's failure is
reported and does not stop the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .dirs import DirError, UserDirs
from .keycloak import KeycloakLookupError, KeycloakUsers
from .plan import (
    META_ACCESS_KEY,
    META_FINGERPRINT,
    META_GID,
    META_UID,
    META_USERNAME,
    Plan,
    UserRecord,
    VaultState,
    ceph_secret,
    finish_metadata,
    plan_user,
    uid_secret,
)
from .vault import OnboardingVault, VaultCallError

UID_PATH = "users/{entity_id}/uid"
CEPH_PATH = "users/{entity_id}/ceph"


class LookupFailed(Exception):
    """The user's Keycloak id could not be settled."""


def resolve_sub(record: UserRecord, keycloak: KeycloakUsers | None) -> str:
    """The Keycloak user id: from the record, checked against Keycloak when we can."""
    if keycloak is None:
        if not record.keycloak_id:
            raise LookupFailed("no keycloak_id given and no Keycloak lookup configured")
        return record.keycloak_id
    try:
        if record.keycloak_id:
            user = keycloak.user_by_id(record.keycloak_id)
            if user is None:
                raise LookupFailed(f"Keycloak has no user with id {record.keycloak_id}")
            if str(user.get("username", "")).lower() != record.username.lower():
                raise LookupFailed(
                    f"Keycloak id {record.keycloak_id} belongs to {user.get('username')!r}"
                )
            return record.keycloak_id
        user = keycloak.user_by_username(record.username)
    except KeycloakLookupError as e:
        raise LookupFailed(str(e)) from None
    if user is None:
        raise LookupFailed(f"Keycloak has no user named {record.username!r}")
    return str(user["id"])


def vault_state(vault: OnboardingVault, sub: str, username: str, accessor: str) -> VaultState:
    entity = vault.entity_by_alias(sub, accessor)
    named = None if entity is not None else vault.entity_by_name(username)
    found = entity or named
    uid_exists: bool | None = False
    ceph_exists: bool | None = False
    if found is not None:
        eid = found["id"]
        uid_exists = vault.secret_exists(UID_PATH.format(entity_id=eid))
        ceph_exists = vault.secret_exists(CEPH_PATH.format(entity_id=eid))
    return VaultState(entity, named, uid_exists, ceph_exists, accessor)


def apply_plan(
    vault: OnboardingVault, plan: Plan, record: UserRecord, sub: str, accessor: str
) -> None:
    """Make the planned calls; secrets first, bookkeeping last (a crash re-plans safely)."""
    if plan.create_entity:
        plan.entity_id = vault.create_entity(record.username, {META_USERNAME: record.username})
    entity_id = plan.entity_id
    if plan.create_alias:
        vault.create_alias(sub, entity_id, accessor)
    if plan.write_uid:
        try:
            vault.write_secret(
                UID_PATH.format(entity_id=entity_id), uid_secret(record), cas=plan.uid_cas
            )
        except VaultCallError as e:
            if plan.uid_cas is None or e.status != 400 or "check-and-set" not in str(e):
                raise
            raise VaultCallError(
                409,
                "a uid is stored already but not by this tool, so it cannot be compared; "
                "files on NFS belong to the stored uid. Use --force to overwrite",
            ) from None
    if plan.write_ceph:
        vault.write_secret(CEPH_PATH.format(entity_id=entity_id), ceph_secret(record))
    metadata = finish_metadata(plan, entity_id, record)
    if metadata is not None:
        vault.set_entity_metadata(entity_id, metadata)


def ensure_dirs(plan: Plan, record: UserRecord, dirs: UserDirs, dry_run: bool) -> None:
    """The person's NFS directories, once their identity is in Vault; what was made or
    set right joins the report, a refusal fails the person with its reason."""
    try:
        changes = dirs.ensure(record.username, record.uid, record.gid, dry_run=dry_run)
    except DirError as e:
        plan.status, plan.reason = "failed", str(e)
        return
    plan.changes += changes
    if changes and plan.status == "unchanged":
        plan.status = "updated"


def onboard(
    records: list[UserRecord],
    vault: OnboardingVault,
    keycloak: KeycloakUsers | None,
    *,
    force: bool = False,
    dry_run: bool = False,
    dirs: UserDirs | None = None,
) -> list[Plan]:
    """Onboard each record (Vault, then with ``dirs`` the NFS directories); one plan per
    record, failures included, in order."""
    accessor = vault.jwt_accessor()
    plans = []
    uid_owner: dict[int, str] = {}
    for record in records:
        other = uid_owner.setdefault(record.uid, record.username)
        if other != record.username:  # two people, one uid: their files would be shared
            reason = f"uid {record.uid} is given to {other!r} in this run already"
            plans.append(Plan(record.username, "failed", reason))
            continue
        try:
            sub = resolve_sub(record, keycloak)
            plan = plan_user(record, sub, vault_state(vault, sub, record.username, accessor), force)
            if plan.status != "failed" and not dry_run:
                apply_plan(vault, plan, record, sub, accessor)
            if plan.status != "failed" and dirs is not None:
                ensure_dirs(plan, record, dirs, dry_run)
        except LookupFailed as e:
            plan = Plan(record.username, "failed", str(e))
        except VaultCallError as e:
            plan = Plan(record.username, "failed", str(e))
        plans.append(plan)
    return plans


@dataclass
class CheckResult:
    """Whether a user is provisioned, from identity data and KV metadata only."""

    username: str
    provisioned: bool
    keycloak_id: str = ""
    entity_id: str = ""
    uid_secret: bool = False
    s3_secret: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    verifiable: bool = True  # False: Vault would not tell (no read on KV metadata)

    def as_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "provisioned": self.provisioned if self.verifiable else None,
            "keycloak_id": self.keycloak_id,
            "entity_id": self.entity_id,
            "uid_secret": self.uid_secret,
            "s3_secret": self.s3_secret,
            **self.details,
            "problems": self.problems,
        }


def check(
    username: str, keycloak_id: str, vault: OnboardingVault, keycloak: KeycloakUsers | None
) -> CheckResult:
    result = CheckResult(username, False)
    record = UserRecord(username, 1, "-", "-", keycloak_id=keycloak_id)
    try:
        result.keycloak_id = resolve_sub(record, keycloak)
    except LookupFailed as e:
        result.problems.append(str(e))
        return result
    entity = vault.entity_by_alias(result.keycloak_id, vault.jwt_accessor())
    if entity is None:
        result.problems.append("no Vault entity has this Keycloak id as its JWT alias")
        return result
    result.entity_id = str(entity["id"])
    uid = vault.secret_exists(UID_PATH.format(entity_id=result.entity_id))
    s3 = vault.secret_exists(CEPH_PATH.format(entity_id=result.entity_id))
    meta = entity.get("metadata") or {}
    # without read on KV metadata, only the onboarding bookkeeping can answer
    result.details["verified_in_kv"] = uid is not None and s3 is not None
    result.uid_secret = bool(meta.get(META_UID)) if uid is None else uid
    result.s3_secret = bool(meta.get(META_FINGERPRINT)) if s3 is None else s3
    unknown = (uid is None and not meta.get(META_UID)) or (
        s3 is None and not meta.get(META_FINGERPRINT)
    )
    ours = bool(meta.get(META_USERNAME))  # made by this tool: its records are complete
    if unknown and not ours and not (uid is False or s3 is False):
        # e.g. people onboarded by the original Valeria script, under a policy that may
        # not read KV metadata: absent bookkeeping proves nothing
        result.verifiable = False
        result.problems.append(
            "cannot verify: the policy may not read KV metadata and this tool has no record "
            "of the user's secrets (grant read on <mount>/metadata/users/* to check them)"
        )
        return result
    if meta.get(META_UID):
        result.details["uid"] = int(meta[META_UID])
    if meta.get(META_GID):
        result.details["gid"] = int(meta[META_GID])
    if meta.get(META_ACCESS_KEY):
        result.details["s3_access_key_id"] = meta[META_ACCESS_KEY]
    if not result.uid_secret:
        result.problems.append("no uid secret")
    if not result.s3_secret:
        result.problems.append("no S3 keys secret")
    result.provisioned = result.uid_secret and result.s3_secret
    return result
