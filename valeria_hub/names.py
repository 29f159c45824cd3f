"""Names derived from usernames and from other objects' names. Pure.

The one owner of slugs: a username as a DNS label part (namespaces, owner labels), as a
path segment (NFS directories), and the names of the objects that belong to another
(a server's or a job's S3 Secret, a job's code ConfigMap). Every derived name carries a
hash of the exact input, so two different inputs never share one (kbatch-proxy mapped
``a.b`` and ``a-b`` to the same namespace).
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
# the characters Keycloak's default username policy allows, kept as they are in paths
_PATH_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._@-")


def user_hash(username: str, length: int = 8) -> str:
    """The first ``length`` hex digits of the username's SHA-256."""
    return hashlib.sha256(username.encode("utf-8")).hexdigest()[:length]


def dns_slug(text: str) -> str:
    """Lower case, every other character a '-', runs of '-' folded, no '-' at the ends."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")


def _escape(c: str) -> str:
    code = ord(c)
    return f"+{code:02x}" if code < 0x100 else f"+u{code:06x}"


def path_safe(name: str) -> str:
    """A username as one path segment, one-to-one: a-z, 0-9, '.', '_', '@' and '-' stay
    as they are (the names Keycloak allows by default map to themselves); every other
    character, and a leading '.', becomes '+' and its code in hex ('+e9' for 'é',
    '+u01f600' beyond U+00FF). '+' never stands for itself, so two names never share a
    directory ('josé' is 'jos+e9', 'jos-e9' stays 'jos-e9')."""
    out = "".join(c if c in _PATH_SAFE else _escape(c) for c in name)
    if out.startswith("."):
        out = _escape(".") + out[1:]
    return out or "+"


def path_name(segment: str) -> str:
    """The username a :func:`path_safe` segment stands for (its inverse)."""
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        if c != "+":
            out.append(c)
            i += 1
        elif segment[i + 1 : i + 2] == "u":
            out.append(chr(int(segment[i + 2 : i + 8], 16)))
            i += 8
        elif i + 1 < len(segment):
            out.append(chr(int(segment[i + 1 : i + 3], 16)))
            i += 3
        else:
            i += 1  # "+" alone: the empty name
    return "".join(out)


def dependent_name(kind: str, owner: str) -> str:
    """``<owner>-<kind>-<hash>``: the DNS-1123 name of an object that belongs to ``owner``
    (a pod or job name), e.g. its S3 Secret (``s3``) or code ConfigMap (``code``)."""
    digest = hashlib.sha256(owner.encode()).hexdigest()[:6]
    base = re.sub(r"[^a-z0-9-]", "-", owner.lower()).strip("-")[: 63 - len(kind) - 8]
    return f"{base.rstrip('-') or 'x'}-{kind}-{digest}"
