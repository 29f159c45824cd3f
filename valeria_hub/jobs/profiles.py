"""Job profiles: named resource sizes and node placement chosen by the operator. Pure.

The format is kbatch's (``image``, ``resources``, ``tolerations``,
``node_affinity_required``) plus ``description`` and ``node_selector``, so the kbatch
client can read ``GET /profiles/`` and merge a profile into the jobs it submits.

A profile may be restricted to hub groups with ``allowed_groups`` (valeria_hub.
restrictions; empty: everyone), as notebook flavours are. The service knows a caller's
groups (the hub's user model) but not their Keycloak roles, so ``allowed_roles`` is
refused here rather than ignored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ..quantity import parse_quantity
from ..restrictions import Membership, Restriction
from .shapes import normalize, prune

PROFILE_KEYS = {
    "description",
    "image",
    "resources",
    "tolerations",
    "node_affinity_required",
    "node_selector",
    "allowed_groups",
    "allowed_roles",  # refused with a message saying why (Restriction.from_mapping)
}


def _requirements(raw: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for item in raw or []:
        if not isinstance(item, dict) or not item.get("key") or not item.get("operator"):
            raise ValueError(f"{where}: each requirement needs key and operator")
        req = {"key": item["key"], "operator": item["operator"]}
        if item.get("values") is not None:
            req["values"] = list(item["values"])
        out.append(req)
    return out


def affinity_from_required(terms: Any, where: str) -> dict[str, Any]:
    """kbatch's ``node_affinity_required`` list as a pod ``affinity`` (camelCase)."""
    if not terms:
        return {}
    expressions: list[dict[str, Any]] = []
    fields: list[dict[str, Any]] = []
    for term in terms:
        if not isinstance(term, dict):
            raise ValueError(f"{where}: node_affinity_required entries must be mappings")
        for key, reqs in term.items():
            if key == "matchExpressions":
                expressions += _requirements(reqs, where)
            elif key == "matchFields":
                fields += _requirements(reqs, where)
            else:
                raise ValueError(f"{where}: key must be matchExpressions or matchFields")
    selector_term: dict[str, Any] = {}
    if expressions:
        selector_term["matchExpressions"] = expressions
    if fields:
        selector_term["matchFields"] = fields
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [selector_term]}
        }
    }


@dataclass(frozen=True)
class JobProfile:
    """One profile: default resources, optional default image, node placement."""

    name: str
    description: str = ""
    image: str | None = None
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    node_affinity_required: list[dict[str, Any]] = field(default_factory=list)
    access: Restriction = field(default_factory=Restriction)

    @classmethod
    def from_config(cls, name: str, raw: dict[str, Any]) -> JobProfile:
        """Parse the operator's profile; ValueError naming the problem."""
        where = f"profile {name!r}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be a mapping")
        unknown = set(raw) - PROFILE_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        resources = raw.get("resources") or {}
        if not isinstance(resources, dict) or set(resources) - {"requests", "limits"}:
            raise ValueError(f"{where}: resources may only hold requests and limits")
        sections = {s: resources.get(s) or {} for s in ("requests", "limits")}
        for section, values in sections.items():
            if not isinstance(values, dict):
                raise ValueError(f"{where}: resources.{section} must be a mapping")
            for key, value in values.items():
                try:
                    parse_quantity(value)
                except ValueError as e:
                    raise ValueError(f"{where}: {section}.{key}: {e}") from None
        requests = {k: str(v) for k, v in sections["requests"].items()}
        limits = {k: str(v) for k, v in sections["limits"].items()}
        affinity_from_required(raw.get("node_affinity_required"), where)
        access = Restriction.from_mapping(raw, where, roles=False)
        return cls(
            name=name,
            description=str(raw.get("description") or ""),
            image=raw.get("image") or None,
            requests=requests,
            limits=limits,
            node_selector={str(k): str(v) for k, v in (raw.get("node_selector") or {}).items()},
            tolerations=[dict(t) for t in raw.get("tolerations") or []],
            node_affinity_required=copy.deepcopy(list(raw.get("node_affinity_required") or [])),
            access=access,
        )

    def usable_by(self, who: Membership | None) -> bool:
        """May ``who`` submit with this profile? None (caller unknown): only when the
        profile is open to everyone."""
        return self.access.everyone or (who is not None and self.access.allows(who))

    def placement(self) -> dict[str, Any]:
        """nodeSelector / tolerations / affinity for the pod spec (camelCase, pruned)."""
        return prune(
            {
                "nodeSelector": dict(self.node_selector),
                "tolerations": normalize(copy.deepcopy(self.tolerations)),
                "affinity": affinity_from_required(self.node_affinity_required, self.name),
            }
        )

    def public(self) -> dict[str, Any]:
        """The profile as ``GET /profiles/`` shows it (kbatch's format)."""
        out: dict[str, Any] = {
            "description": self.description,
            "resources": {"requests": dict(self.requests), "limits": dict(self.limits)},
        }
        if self.image:
            out["image"] = self.image
        if self.tolerations:
            out["tolerations"] = copy.deepcopy(self.tolerations)
        if self.node_affinity_required:
            out["node_affinity_required"] = copy.deepcopy(self.node_affinity_required)
        if self.node_selector:
            out["node_selector"] = dict(self.node_selector)
        return out


def parse_profiles(raw: dict[str, Any]) -> dict[str, JobProfile]:
    return {name: JobProfile.from_config(name, spec) for name, spec in raw.items()}
