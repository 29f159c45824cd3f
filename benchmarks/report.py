"""The README's Performance table from the scenarios' JSON records. Pure."""

from __future__ import annotations

from typing import Any

SKIP = {"scenario", "quick", "cores", "loadavg_1m", "versions", "seconds"}


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested figures as ``a.b`` rows; lists of dicts keyed by their first field."""
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows += flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for item in value:
            first = next(iter(item))
            label = f"{prefix}[{first}={item[first]}]"
            rows += flatten({k: v for k, v in item.items() if k != first}, label)
        return rows
    return [(prefix, value)]


def markdown(records: list[dict[str, Any]]) -> str:
    """One table per scenario, headed by the machine and the versions."""
    if not records:
        return "(no results)"
    head = records[0]
    versions = ", ".join(f"{k} {v}" for k, v in head.get("versions", {}).items())
    lines = [f"Measured on {head.get('cores')} cores; {versions}.", ""]
    for rec in records:
        lines += [
            f"### {rec['scenario']} ({rec.get('seconds')} s, load {rec.get('loadavg_1m')})",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        figures = {k: v for k, v in rec.items() if k not in SKIP}
        for key, value in flatten(figures):
            lines.append(f"| {key} | {value} |")
        lines.append("")
    return "\n".join(lines)
