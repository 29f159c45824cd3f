"""Spec shapes: the API's camelCase JSON versus the Python client's snake_case dicts. Pure.

The kbatch client sends ``to_dict()`` output (snake_case keys, every unset field as
None) and reads the same shape back; Kubernetes speaks camelCase. User-owned maps
(labels, annotations, resource lists, node selectors, ConfigMap data) keep their keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
