"""Strict validation against the Kubernetes OpenAPI schema (``kubernetes-validate``).

``kubernetes_validate.validate`` parses its 1.8 MB definitions file on every call;
this module reads the same schema files once and keeps one validator per kind, so a
check costs about a millisecond. The errors are sorted the way the real server
sorts them with ``fieldValidation=Strict``: unknown fields and wrong types are 400
BadRequest (the body cannot be decoded), missing required fields are 422 Invalid.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from typing import Any

from .errors import BadRequest
from .resources import NOT_IN_OPENAPI, Kind
from .validation import Cause, invalid_error, required

SCHEMA_VERSION = "1.33.0"


def available() -> bool:
    try:
        import jsonschema  # noqa: F401
        import kubernetes_validate  # noqa: F401
    except ImportError:
        return False
    return True


def _schema_dir() -> Any:
    return importlib.resources.files("kubernetes_validate").joinpath(
        "kubernetes-json-schema", f"v{SCHEMA_VERSION}-local-strict"
    )


@functools.cache
def _registry() -> Any:
    from referencing import Registry, Resource

    defs = json.loads(_schema_dir().joinpath("_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()


@functools.cache
def _validator(api_version: str, kind: str) -> Any:
    import jsonschema
    from referencing import Resource

    stem = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = json.loads(_schema_dir().joinpath(f"{kind.lower()}-{stem}.json").read_text())
    registry = Resource.from_contents(schema) @ _registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _field(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check(kind: Kind, obj: dict[str, Any]) -> None:
    """Raise BadRequest or Invalid when the object breaks the strict schema."""
    if kind.api_version in NOT_IN_OPENAPI:
        return  # OpenShift's kinds: their fields are checked by their own validation
    validator = _validator(kind.api_version, kind.kind)
    unknown: list[str] = []
    bad_type: list[str] = []
    missing: list[Cause] = []
    for err in validator.iter_errors(obj):
        where = _field(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = set((err.schema or {}).get("properties") or {})
            for extra in sorted(set(err.instance) - allowed):
                unknown.append(f"{where}.{extra}" if where else extra)
        elif err.validator == "required":
            missing_name = re.match(r"'([^']+)' is a required property", err.message)
            name = missing_name.group(1) if missing_name else "?"
            missing.append(required(f"{where}.{name}" if where else name))
        else:
            bad_type.append(f"{where or '<root>'}: {err.message}")
    head = f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}'
    if bad_type:
        raise BadRequest(f"{head}: {'; '.join(bad_type)}")
    if unknown:
        fields = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise BadRequest(f"{head}: strict decoding error: {fields}")
    if missing:
        name = (obj.get("metadata") or {}).get("name", "")
        raise invalid_error(kind, name, missing)
