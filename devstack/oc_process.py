"""Processing OpenShift Templates the way `oc process` does. Pure.

`oc process` replaces ``${NAME}`` inside strings and a whole-field ``${{NAME}}`` by the
value parsed as JSON/YAML (numbers, booleans, lists); ``generate: expression`` parameters
get a value made from their ``from`` pattern when none is given. Lives in devstack (not
tests) because the stack applies the templates of ``openshift/`` to the Kubernetes
stand-in (:mod:`devstack.deployment`); the tests import it from here too.
"""

from __future__ import annotations

import copy
import re
import secrets
from pathlib import Path
from typing import Any

import yaml

OPENSHIFT = Path(__file__).resolve().parents[1] / "openshift"
REF = re.compile(r"\$\{\{?([A-Za-z0-9_]+)\}?\}")
WHOLE = re.compile(r"^\$\{\{([A-Za-z0-9_]+)\}\}$")
PLAIN = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
GENERATE = re.compile(r"^\[([^\]]+)\]\{(\d+)\}$")


class TemplateError(Exception):
    """The template cannot be processed with the given values."""


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((OPENSHIFT / name).read_text())


def references(template: dict[str, Any]) -> set[str]:
    """Every parameter name used anywhere in the objects (and the message)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            found.update(REF.findall(node))

    walk(template.get("objects", []))
    walk(template.get("message", ""))
    walk(template.get("labels", {}))
    return found


def required_without_default(template: dict[str, Any]) -> set[str]:
    return {
        p["name"]
        for p in template.get("parameters", [])
        if p.get("required") and "value" not in p and p.get("generate") != "expression"
    }


def _generate(pattern: str) -> str:
    m = GENERATE.match(pattern)
    if not m:
        raise TemplateError(f"unsupported generate expression {pattern!r}")
    chars = ""
    spec = m.group(1)
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            chars += "".join(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            chars += spec[i]
            i += 1
    return "".join(secrets.choice(chars) for _ in range(int(m.group(2))))


def parameter_values(template: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """The value of every parameter, as `oc process` settles them, or TemplateError."""
    declared = {p["name"]: p for p in template.get("parameters", [])}
    unknown = set(given) - set(declared)
    if unknown:
        raise TemplateError(f"unknown parameters: {sorted(unknown)}")
    values, missing = {}, []
    for name, p in declared.items():
        if name in given:
            value = given[name]
        elif p.get("generate") == "expression":
            value = _generate(p["from"])
        else:
            value = p.get("value", "")
        if p.get("required") and value == "":
            missing.append(name)
        values[name] = value
    if missing:
        raise TemplateError(f"required parameters without a value: {sorted(missing)}")
    return values


def substitute(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {substitute(k, values): substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, values) for v in node]
    if isinstance(node, str):
        whole = WHOLE.match(node)
        if whole:
            return yaml.safe_load(values[whole.group(1)])
        if "${{" in node:
            raise TemplateError(f"${{{{...}}}} must be a whole field: {node!r}")
        return PLAIN.sub(lambda m: values[m.group(1)], node)
    return node


def process(template: dict[str, Any], given: dict[str, str]) -> list[dict[str, Any]]:
    """The template's objects with parameters substituted and template labels added."""
    values = parameter_values(template, given)
    undefined = references(template) - set(values)
    if undefined:
        raise TemplateError(f"undefined parameters: {sorted(undefined)}")
    labels = substitute(template.get("labels") or {}, values)
    out = []
    for obj in substitute(copy.deepcopy(template["objects"]), values):
        meta = obj.setdefault("metadata", {})
        meta["labels"] = {**labels, **(meta.get("labels") or {})}
        out.append(obj)
    return out
