"""The labels and annotations by which the platform marks, finds and owns a person's
objects. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .naming import owner_label

OWNER_LABEL = "valeria.io/owner"
USERNAME_ANNOTATION = "valeria.io/username"
MANAGED_BY = {"app.kubernetes.io/managed-by": "valeria-jobs"}


def platform_labels(username: str) -> dict[str, str]:
    return {OWNER_LABEL: owner_label(username), **MANAGED_BY}


def owned_by(obj_meta: dict[str, Any], username: str, namespace: str) -> bool:
    """True when an object (camelCase or snake_case metadata) belongs to ``username``."""
    return Owner(username, namespace).owns_meta(obj_meta)


@dataclass(frozen=True)
class Owner:
    """:func:`owned_by` for many objects of one person: the owner label made once (a
    hash), not once per object of a 2,000-job list."""

    username: str
    namespace: str
    label: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", owner_label(self.username))

    def owns(self, obj: dict[str, Any]) -> bool:
        return self.owns_meta(obj["metadata"])

    def owns_meta(self, meta: dict[str, Any]) -> bool:
        return (
            meta.get("namespace") == self.namespace
            and (meta.get("labels") or {}).get(OWNER_LABEL) == self.label
            and (meta.get("annotations") or {}).get(USERNAME_ANNOTATION) == self.username
        )
