"""The jobs service's names: user namespaces, owner labels, job names. Pure.

Slugs and hashes come from :mod:`valeria_hub.names`: every name derived from a username
carries a hash of the exact username, so two users never share one.
"""

from __future__ import annotations

import re
import secrets

from ..names import DNS_LABEL, dns_slug, user_hash

SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
SYSTEM_PREFIXES = ("kube-", "openshift", "default-")
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the API server's generateName alphabet
MAX_JOB_NAME = 63  # the job-name label on its pods must stay a valid label value
MAX_CRONJOB_NAME = 52  # the CronJob controller appends an 11-character suffix


class InvalidName(ValueError):
    """A name that cannot be used; the message names the problem."""


def owner_label(username: str) -> str:
    """The ``valeria.io/owner`` label value: readable part plus a hash, collision-free."""
    slug = dns_slug(username)[:40].strip("-")
    return f"{slug}-{user_hash(username, 10)}" if slug else f"u-{user_hash(username, 10)}"


def is_system_namespace(namespace: str) -> bool:
    return namespace in SYSTEM_NAMESPACES or namespace.startswith(SYSTEM_PREFIXES)


def user_namespace(prefix: str, username: str) -> str:
    """``<prefix><slug>-<hash>``: a DNS-1123 label, never a system namespace."""
    if not prefix or not DNS_LABEL.fullmatch(prefix.rstrip("-") or "x"):
        raise InvalidName(f"namespace prefix {prefix!r} must start a DNS-1123 label")
    digest = user_hash(username)
    room = 63 - len(prefix) - len(digest) - 1
    slug = dns_slug(username)[: max(room, 0)].strip("-")
    name = f"{prefix}{slug}-{digest}" if slug else f"{prefix.rstrip('-')}-{digest}"
    if len(name) > 63 or not DNS_LABEL.fullmatch(name):
        raise InvalidName(f"namespace prefix {prefix!r} is too long")
    if is_system_namespace(name):
        raise InvalidName(f"namespace {name!r} would be a system namespace")
    return name


def check_shared_namespace(namespace: str) -> str:
    if not DNS_LABEL.fullmatch(namespace) or len(namespace) > 63:
        raise InvalidName(f"shared namespace {namespace!r} is not a DNS-1123 label")
    if is_system_namespace(namespace):
        raise InvalidName(f"shared namespace {namespace!r} is a system namespace")
    return namespace


def check_object_name(name: str, max_length: int = MAX_JOB_NAME, what: str = "name") -> str:
    """A DNS-1123 label of at most ``max_length`` characters, or InvalidName."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} must be a non-empty string")
    if len(name) > max_length:
        raise InvalidName(f"{what} {name!r} is longer than {max_length} characters")
    if not DNS_LABEL.fullmatch(name):
        raise InvalidName(
            f"{what} {name!r} must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character"
        )
    return name


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(GENERATE_ALPHABET) for _ in range(length))


def generated_name(prefix: str, suffix: str, max_length: int = MAX_JOB_NAME) -> str:
    """What the API server does with generateName, done here so that dependent objects
    (Secret, ConfigMap) can be named before the Job exists."""
    prefix = re.sub(r"[^a-z0-9-]", "-", (prefix or "job-").lower()).lstrip("-") or "job-"
    prefix = prefix[: max_length - len(suffix)]
    return check_object_name(prefix + suffix, max_length, "generated name")
