"""The three PATCH formats of the Kubernetes API, as pure functions.

JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch for
the fields a hub touches: lists of containers, env, volumes, ports ... merge by their
key (the ``patchMergeKey`` of the Kubernetes types), other lists are replaced.
A bad patch raises :class:`PatchError`.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied (the API answers 422 or 400)."""


# -- JSON merge patch ----------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch -------------------------------------------------------

# field name -> merge key of its list items (the patchMergeKey tags of the API types)
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "secrets": "name",
    "resourceClaims": "name",
}
# lists of scalars with patchStrategy "merge": patch values are added to the list
MERGED_SCALAR_LISTS = {"finalizers"}


def _merge_key(field: str, items: list) -> str | None:
    if field == "ports":
        # container ports merge by containerPort, service ports by port
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (with the ``$patch`` directives) to an object."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    result = _smp_map(target if isinstance(target, dict) else {}, patch)
    return {} if result is None else result


def _smp_map(target: dict, patch: dict) -> dict | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive is not None:
        raise PatchError(f"Unknown patch type: {directive} in map: {patch}")
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in (value or [])]
            continue
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            cur = result.get(key)
            merged = _smp_map(cur if isinstance(cur, dict) else {}, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _smp_list(field: str, target: Any, patch: list) -> list:
    current = list(copy.deepcopy(target)) if isinstance(target, list) else []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in MERGED_SCALAR_LISTS:
        for item in patch:
            if item not in current:
                current.append(item)
        return current
    key = _merge_key(field, patch + current)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return copy.deepcopy(patch)
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        idx = next(
            (
                n
                for n, cur in enumerate(current)
                if isinstance(cur, dict) and cur.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                current.pop(idx)
            continue
        if idx is None:
            merged = _smp_map({}, item)
            if merged is not None:
                current.append(merged)
        else:
            merged = _smp_map(current[idx], item)
            if merged is None:
                current.pop(idx)
            else:
                current[idx] = merged
    return current


# -- JSON patch ---------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, dict):
            if part not in cur:
                raise PatchError(f"doc is missing path: {path!r}")
            cur = cur[part]
        elif isinstance(cur, list):
            cur = cur[_index(cur, part, path, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return cur


def _index(seq: list, part: str, path: str, *, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(seq)
    if not part.isdigit():
        raise PatchError(f"invalid array index {part!r} in {path!r}")
    idx = int(part)
    if idx > len(seq) or (idx == len(seq) and not allow_end):
        raise PatchError(f"array index out of bounds in {path!r}")
    return idx


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), copy.deepcopy(value))
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchError(f"doc is missing path: {path!r}")


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op.get("path")
        if path is None:
            raise PatchError(f"operation {kind!r} is missing 'path'")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {kind!r} is missing 'value'")
        if kind == "add":
            doc = _add(doc, path, op["value"])
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            parts = _pointer(path)
            if not parts:
                doc = copy.deepcopy(op["value"])
                continue
            _walk(doc, parts, path)  # must exist
            doc, _ = _remove(doc, path)
            doc = _add(doc, path, op["value"])
        elif kind in ("move", "copy"):
            src = op.get("from")
            if src is None:
                raise PatchError(f"operation {kind!r} is missing 'from'")
            if kind == "move":
                doc, value = _remove(doc, src)
            else:
                value = copy.deepcopy(_walk(doc, _pointer(src), src))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _walk(doc, _pointer(path), path) != op["value"]:
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc
