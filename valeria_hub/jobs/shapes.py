"""Spec shapes: the API's camelCase JSON versus the Python client's snake_case dicts. Pure.

The kbatch client sends ``to_dict()`` output (snake_case keys, every unset field as
None) and reads the same shape back; Kubernetes speaks camelCase. User-owned maps
(labels, annotations, resource lists, node selectors, ConfigMap data) keep their keys.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from kubernetes_asyncio.client import models as k8s_models

FREE_MAPS = {"labels", "annotations", "limits", "requests", "nodeSelector", "node_selector"}
FREE_MAPS |= {"data", "binaryData", "binary_data"}


def prune(value: Any) -> Any:
    """Drop None, empty lists and empty dicts, recursively (to compare specs)."""
    if isinstance(value, dict):
        out = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def camel(key: str) -> str:
    """``working_dir`` -> ``workingDir``; ``_exec`` -> ``exec``; camelCase unchanged."""
    head, *rest = key.lstrip("_").split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def normalize(value: Any, *, free: bool = False) -> Any:
    """snake_case keys -> camelCase and None dropped; user maps keep their keys."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None:
                continue
            key = str(k) if free else camel(str(k))
            out[key] = normalize(v, free=(key in FREE_MAPS) and not free)
        return out
    if isinstance(value, list):
        return [normalize(v) for v in value if v is not None]
    return value


def iso_datetimes(value: Any) -> Any:
    """datetime -> ``isoformat()`` text (``+00:00``, which every Python's fromisoformat
    reads, unlike ``Z``), recursively: kbatch parses ``start_time`` with it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: iso_datetimes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [iso_datetimes(v) for v in value]
    return value


_SCALARS = frozenset({"str", "int", "float", "bool", "object", "date", "bytearray"})


@functools.cache
def _fields(type_name: str) -> tuple[tuple[str, str, str], ...]:
    """(python attribute, JSON key, attribute type) of a client model, e.g. V1Job."""
    model = getattr(k8s_models, type_name)
    return tuple(
        (attr, model.attribute_map[attr], attr_type)
        for attr, attr_type in model.openapi_types.items()
    )


def client_shape(value: Any, type_name: str) -> Any:
    """Raw API JSON -> what the client's ``model.to_dict()`` gives, without building models.

    Pure and fast: deserializing a 2,000-job list into typed models and back took
    about a second of the service's event loop; this walk takes milliseconds. Every
    model attribute is present (None when absent), keys are snake_case, free-form
    maps keep their keys, and times are ``isoformat()`` text as :func:`iso_datetimes`
    writes them.
    """
    if value is None:
        return None
    if type_name.startswith("list["):
        inner = type_name[5:-1]
        return [client_shape(v, inner) for v in value]
    if type_name.startswith("dict("):
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        return {k: client_shape(v, inner) for k, v in value.items()}
    if type_name == "datetime":
        return _iso(value)
    if type_name in _SCALARS:
        return value
    return {attr: client_shape(value.get(key), t) for attr, key, t in _fields(type_name)}


def _iso(value: Any) -> Any:
    """'2026-11-22T11:26:31Z' -> '2026-11-22T11:26:31+00:00' (to_dict()'s datetime, as text)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
        except ValueError:
            return value
    return value
