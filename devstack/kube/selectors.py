"""Label and field selectors, parsed and matched like the real API server does.

Pure functions: a selector string becomes a predicate over an object; a malformed
selector or an unsupported field raises ``ValueError`` with the server's wording
(the API answers 400 BadRequest with that message).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

_KEY_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)"
_KEY_RE = re.compile(
    rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_KEY_NAME}$"
)
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if self.op in ("gt", "lt"):
            try:
                have, want = int(value or ""), int(self.values[0])
            except ValueError:
                return False
            return have > want if self.op == "gt" else have < want
        return False


def _check_key(key: str) -> None:
    name = key.rsplit("/", 1)[-1]
    if not key or len(name) > 63 or not _KEY_RE.match(key):
        raise ValueError(
            f'unable to parse requirement: invalid label key "{key}": name part must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise ValueError(
            f'unable to parse requirement: invalid label value: "{value}": a valid label must be '
            "an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character"
        )


def _split_top_level(selector: str) -> list[str]:
    """Split on commas that are not inside ``( ... )``."""
    parts, depth, cur = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unable to parse requirement: unbalanced ')' in {selector!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ValueError(f"unable to parse requirement: missing ')' in {selector!r}")
    parts.append("".join(cur))
    return parts


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([^=!<>\s]+)\s*(==|=|!=|<|>)\s*(\S*)\s*$")


def parse_label_selector(selector: str | None) -> list[Requirement]:
    """Parse ``a=b,c!=d,e in (f,g),!h,i``; raises ValueError when malformed."""
    if not selector or not selector.strip():
        return []
    reqs = []
    for raw in _split_top_level(selector):
        part = raw.strip()
        if not part:
            raise ValueError(
                f"unable to parse requirement: found '', expected: identifier in {selector!r}"
            )
        if m := _SET_RE.match(part):
            key, op, inner = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in inner.split(",")) if inner.strip() else ()
            _check_key(key)
            if not values:
                raise ValueError(
                    f"unable to parse requirement: for '{op}' operator, values set can't be empty"
                )
            for v in values:
                _check_value(v)
            reqs.append(Requirement(key, op, values))
        elif m := _CMP_RE.match(part):
            key, op, value = m.group(1), m.group(2), m.group(3)
            _check_key(key)
            if op in ("<", ">"):
                if not value.lstrip("-").isdigit():
                    raise ValueError(
                        "unable to parse requirement: for 'gt', 'lt' operators, "
                        "the value must be an integer"
                    )
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
                continue
            _check_value(value)
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        elif part.startswith("!"):
            key = part[1:].strip()
            _check_key(key)
            reqs.append(Requirement(key, "!"))
        else:
            _check_key(part)
            reqs.append(Requirement(part, "exists"))
    return reqs


def labels_match(reqs: list[Requirement], obj: Obj) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


def label_selector_from_dict(selector: dict | None) -> list[Requirement]:
    """A ``LabelSelector`` object (matchLabels + matchExpressions) as requirements."""
    if not selector:
        return []
    reqs = [Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(
            Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ()))
        )
    return reqs


# -- field selectors ---------------------------------------------------------------


def _path(*keys: str) -> Callable[[Obj], str]:
    def get(obj: Obj) -> str:
        cur: Any = obj
        for k in keys:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(k)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


_COMMON = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

FIELDS: dict[str, dict[str, Callable[[Obj], str]]] = {
    "Pod": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: (
            "true" if (o.get("spec") or {}).get("hostNetwork") else "false"
        ),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "Event": {
        "involvedObject.kind": _path("involvedObject", "kind"),
        "involvedObject.namespace": _path("involvedObject", "namespace"),
        "involvedObject.name": _path("involvedObject", "name"),
        "involvedObject.uid": _path("involvedObject", "uid"),
        "involvedObject.apiVersion": _path("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": _path("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": _path("involvedObject", "fieldPath"),
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    "Secret": {"type": _path("type")},
    "Namespace": {"status.phase": _path("status", "phase")},
    "Node": {
        "spec.unschedulable": lambda o: (
            "true" if (o.get("spec") or {}).get("unschedulable") else "false"
        )
    },
    "Job": {"status.successful": _path("status", "successful")},
    "PersistentVolumeClaim": {},
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(selector: str | None, kind: str) -> list[FieldRequirement]:
    """Parse ``f=v,g!=w`` for a kind; an unsupported field raises ValueError."""
    if not selector or not selector.strip():
        return []
    supported = {**_COMMON, **FIELDS.get(kind, {})}
    reqs = []
    for part in _split_unescaped(selector, ","):
        part = part.strip()
        m = re.match(r"^([^=!]+)(==|!=|=)(.*)$", part)
        if not m:
            raise ValueError(f"invalid selector: '{selector}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3).strip())
        if field not in supported:
            raise ValueError(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", value))
    return reqs


def fields_match(reqs: list[FieldRequirement], obj: Obj, kind: str) -> bool:
    supported = {**_COMMON, **FIELDS.get(kind, {})}
    for r in reqs:
        have = supported[r.field](obj)
        if (have == r.value) != (r.op == "="):
            return False
    return True


def compile_selectors(
    label_selector: str | None, field_selector: str | None, kind: str
) -> Callable[[Obj], bool]:
    """One predicate for both selectors (ValueError when either is malformed)."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, kind)
    if not labels and not fields:
        return lambda obj: True
    return lambda obj: labels_match(labels, obj) and fields_match(fields, obj, kind)
