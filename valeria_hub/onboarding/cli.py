"""``valeria-hub users onboard|check``: the operator's side of onboarding.

Credentials come from the environment or from files, never from command-line values
(they would land in shell history and ``ps``): VAULT_ROLE_ID / --role-id-file,
VAULT_SECRET_ID / --secret-id-file, KEYCLOAK_CLIENT_SECRET / --keycloak-client-secret-file.
Exit status: 0 all done, 1 some user failed (or is not provisioned), 2 bad input,
3 (check) Vault's answers cannot tell whether the user is provisioned.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .dirs import DEFAULT_HOME, DEFAULT_SCRATCH, DirError, UserDirs
from .keycloak import KeycloakUsers
from .plan import InputError, format_report, make_record, parse_csv, read_secret_file
from .run import check, onboard
from .vault import OnboardingVault, VaultCallError


class UsageError(Exception):
    """Missing or unreadable settings; exit status 2."""


def _from_file_or_env(path: str | None, env: Mapping[str, str], var: str, what: str) -> str:
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as e:
            raise UsageError(f"cannot read {what} from {path} ({e.strerror})") from None
    else:
        value = env.get(var, "").strip()
    if not value:
        raise UsageError(f"{what} is not set: set {var} or pass its file")
    return value


def _vault(args: argparse.Namespace, env: Mapping[str, str]) -> OnboardingVault:
    url = args.vault_url or env.get("VAULT_ADDR") or env.get("VAULT_URL") or ""
    if not url:
        raise UsageError("the Vault URL is not set: --vault-url or VAULT_ADDR")
    role_id = _from_file_or_env(args.role_id_file, env, "VAULT_ROLE_ID", "the AppRole role id")
    secret_id = _from_file_or_env(
        args.secret_id_file, env, "VAULT_SECRET_ID", "the AppRole secret id"
    )
    vault = OnboardingVault(
        url,
        kv_mount=args.kv_mount,
        jwt_mount=args.jwt_mount,
        approle_mount=args.approle_mount,
        timeout=args.timeout,
        verify=args.ca_bundle or True,
        namespace=env.get("VAULT_NAMESPACE", ""),
    )
    try:
        vault.login(role_id, secret_id)
    except VaultCallError:
        vault.close()
        raise
    return vault


def _keycloak(args: argparse.Namespace, env: Mapping[str, str]) -> KeycloakUsers | None:
    realm_url = args.keycloak_realm_url or env.get("KEYCLOAK_REALM_URL", "")
    if not realm_url:
        return None
    secret = _from_file_or_env(
        args.keycloak_client_secret_file,
        env,
        "KEYCLOAK_CLIENT_SECRET",
        "the onboarding client's secret",
    )
    try:
        return KeycloakUsers(
            realm_url,
            args.keycloak_client_id,
            secret,
            timeout=args.timeout,
            verify=args.ca_bundle or True,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _records(args: argparse.Namespace) -> tuple[list, list[tuple[str, str]]]:
    if args.from_csv:
        path = Path(args.from_csv)
        try:
            text = path.read_text()
        except OSError as e:
            raise UsageError(f"cannot read {path} ({e.strerror})") from None
        return parse_csv(text, path.parent)
    if not args.username:
        raise UsageError("give a USERNAME or --from-csv FILE")
    missing = [
        flag
        for flag, value in (
            ("--uid", args.uid),
            ("--s3-access-key", args.s3_access_key),
            ("--s3-secret-file", args.s3_secret_file),
        )
        if not value
    ]
    if missing:
        raise UsageError(f"onboarding {args.username} needs {', '.join(missing)}")
    secret = read_secret_file(Path(args.s3_secret_file))
    record = make_record(
        args.username,
        args.uid,
        args.s3_access_key,
        secret,
        gid=args.gid,
        keycloak_id=args.keycloak_id or "",
    )
    return [record], []


def _dirs(args: argparse.Namespace) -> UserDirs | None:
    if not args.nfs_root:
        return None
    try:
        return UserDirs(Path(args.nfs_root), args.home_sub_path, args.scratch_sub_path)
    except (DirError, ValueError) as e:
        raise UsageError(str(e)) from None


def run_onboard(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    from .plan import Plan

    try:
        records, bad = _records(args)
        dirs = _dirs(args)
        keycloak = _keycloak(args, env)
        vault = _vault(args, env)
    except (UsageError, InputError) as e:
        print(f"valeria-hub users onboard: {e}", file=sys.stderr)
        return 2
    except VaultCallError as e:
        print(f"valeria-hub users onboard: {e}", file=sys.stderr)
        return 1
    try:
        with vault:
            plans = onboard(
                records, vault, keycloak, force=args.force, dry_run=args.dry_run, dirs=dirs
            )
    except VaultCallError as e:
        print(f"valeria-hub users onboard: {e}", file=sys.stderr)
        return 1
    finally:
        if keycloak is not None:
            keycloak.http.close()
    plans = [Plan(user, "failed", why) for user, why in bad] + plans
    print(format_report(plans, args.format, dry_run=args.dry_run))
    return 1 if any(p.status == "failed" for p in plans) else 0


def run_check(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    try:
        keycloak = _keycloak(args, env)
        vault = _vault(args, env)
    except UsageError as e:
        print(f"valeria-hub users check: {e}", file=sys.stderr)
        return 2
    except VaultCallError as e:
        print(f"valeria-hub users check: {e}", file=sys.stderr)
        return 1
    try:
        with vault:
            result = check(args.username, args.keycloak_id or "", vault, keycloak)
    except VaultCallError as e:
        print(f"valeria-hub users check: {e}", file=sys.stderr)
        return 1
    finally:
        if keycloak is not None:
            keycloak.http.close()
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2))
    else:
        if not result.verifiable:
            state = "cannot verify"
        else:
            state = "provisioned" if result.provisioned else "NOT provisioned"
        print(f"{result.username}: {state}")
        for key, value in result.as_dict().items():
            if key not in ("username", "provisioned", "problems") and value not in ("", None):
                print(f"  {key}: {value}")
        for problem in result.problems:
            print(f"  problem: {problem}")
    if not result.verifiable:
        return 3
    return 0 if result.provisioned else 1


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Vault (AppRole)")
    g.add_argument("--vault-url", help="Vault's base URL (default: VAULT_ADDR or VAULT_URL)")
    g.add_argument("--role-id-file", help="file holding the AppRole role id (or VAULT_ROLE_ID)")
    g.add_argument(
        "--secret-id-file", help="file holding the AppRole secret id (or VAULT_SECRET_ID)"
    )
    g.add_argument("--approle-mount", default="approle", help="AppRole mount path")
    g.add_argument("--jwt-mount", default="jwt", help="JWT auth mount the hub logs users in at")
    g.add_argument("--kv-mount", default="valeria", help="KV v2 mount of the user secrets")
    g = p.add_argument_group("Keycloak (optional: look user ids up by username)")
    g.add_argument(
        "--keycloak-realm-url", help="e.g. https://sso/realms/valeria (or KEYCLOAK_REALM_URL)"
    )
    g.add_argument("--keycloak-client-id", default="valeria-onboarding")
    g.add_argument(
        "--keycloak-client-secret-file",
        help="file holding the onboarding client's secret (or KEYCLOAK_CLIENT_SECRET)",
    )
    p.add_argument("--ca-bundle", help="CA bundle for Vault's and Keycloak's TLS")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    p.add_argument("--format", choices=("table", "json"), default="table")


def add_users_parser(sub: argparse._SubParsersAction) -> None:
    """The ``users`` command group (registered by cli.py)."""
    users = sub.add_parser(
        "users",
        help="onboard users into Vault (uid, gid, S3 keys) and check them",
        description="Provision users for valeria-hub with a Vault AppRole that can write "
        "user secrets but never read them.",
    )
    commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    p = commands.add_parser(
        "onboard",
        help="create or update users' Vault entity, alias, uid and S3 keys",
        description="Idempotent: running it again changes nothing and says so. A changed "
        "uid/gid is refused unless --force (files on NFS belong to the old uid). With "
        "--nfs-root, also each person's home and scratch directories on the export. CSV "
        "columns: username, keycloak_id (optional with a Keycloak lookup), uid, gid "
        "(optional), s3_access_key, s3_secret_file (a file holding only the S3 secret key, "
        "relative to the CSV; secret keys never go in the CSV).",
    )
    p.add_argument("username", nargs="?", help="one user (or use --from-csv)")
    p.add_argument("--from-csv", metavar="FILE", help="onboard every user listed in FILE")
    p.add_argument("--keycloak-id", help="the user's Keycloak id (the token's sub)")
    p.add_argument("--uid", help="the user's POSIX uid")
    p.add_argument("--gid", help="the user's POSIX gid (optional)")
    p.add_argument("--s3-access-key", help="the user's S3 access key id")
    p.add_argument("--s3-secret-file", help="file holding only the user's S3 secret key")
    p.add_argument("--force", action="store_true", help="allow changing a stored uid/gid")
    p.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    g = p.add_argument_group("NFS directories (optional; run where the export is mounted)")
    g.add_argument(
        "--nfs-root",
        metavar="DIR",
        help="the NFS export's mount point: make each person's home and scratch below it, "
        "owned by their uid and gid (the uid when no gid), mode 0700; needs root and an "
        "export that does not squash it",
    )
    g.add_argument(
        "--home-sub-path",
        default=DEFAULT_HOME,
        help="home below the export, as c.StorageLayout.home_sub_path ({username}, {uid}; "
        "default %(default)s; users/home/{username} for the existing Valeria layout)",
    )
    g.add_argument(
        "--scratch-sub-path",
        default=DEFAULT_SCRATCH,
        help="scratch below the export, as c.StorageLayout.scratch_sub_path (default "
        "%(default)s; empty: none)",
    )
    _common(p)
    p.set_defaults(func=run_onboard)

    p = commands.add_parser(
        "check",
        help="is a user provisioned? (metadata only, never secret values)",
        description="Exit status 0 when the user's entity, alias, uid and S3 secrets exist.",
    )
    p.add_argument("username")
    p.add_argument("--keycloak-id", help="the user's Keycloak id, when not looked up")
    _common(p)
    p.set_defaults(func=run_check)
