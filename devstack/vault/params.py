"""Vault's parameter forms: durations ("1h30m", 3600) and comma-or-list strings."""

from __future__ import annotations

import re
from typing import Any

from .errors import bad_request


def parse_duration(value: Any, name: str = "ttl") -> int:
    """Seconds from Vault's duration forms: 3600, "3600", "1h", "1h30m", "90s"."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise bad_request(f"invalid {name}")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise bad_request(f"error parsing {name}: invalid duration {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(sum(float(n) * scale[u] for n, u in parts))


def str_list(value: Any) -> list[str]:
    """Vault's comma-string-or-list parameters."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    raise bad_request("expected a list of strings")
