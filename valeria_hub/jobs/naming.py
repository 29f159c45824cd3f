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
# shared mode: "-u" and 10 hex digits of the person's hash end every name the service makes
TAG_PREFIX = "u"
TAG_LENGTH = len(TAG_PREFIX) + 10


class InvalidName(ValueError):
    """A name that cannot be used; the message names the problem."""


def owner_label(username: str) -> str:
    """The ``valeria.io/owner`` label value: readable part plus a hash, collision-free."""
    slug = dns_slug(username)[:40].strip("-")
    return f"{slug}-{user_hash(username, 10)}" if slug else f"u-{user_hash(username, 10)}"


def name_tag(username: str) -> str:
    """The person's tag in shared mode: ``u`` and 10 hex digits of their hash.

    Always a letter in it, so a name ending in ``-<tag>`` never ends like a CronJob's run
    (``<cronjob>-<minutes since the epoch>``, digits only).
    """
    return TAG_PREFIX + user_hash(username, TAG_LENGTH - len(TAG_PREFIX))


def personal_name(name: str, username: str, max_length: int, what: str = "metadata.name") -> str:
    """``<name>-<tag>``: the name a shared namespace gives one person's ``name``.

    Everyone's names end with their own tag, so a name someone else holds is as free
    as any other, a 409 only ever concerns one's own objects, and nobody can make the
    name of another person's CronJob run. A name that already ends with the person's
    own tag (a manifest read back and resubmitted) is kept as it is.
    """
    tag = name_tag(username)
    if name.endswith(f"-{tag}"):
        return check_object_name(name, max_length, what)
    room = max_length - len(tag) - 1
    if len(name) > room:
        raise InvalidName(
            f"{what} {name!r} is longer than {room} characters (the shared namespace "
            f"appends -{tag} to your names)"
        )
    return check_object_name(f"{name}-{tag}", max_length, what)


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
