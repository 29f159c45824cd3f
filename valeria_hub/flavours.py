"""Notebook flavours: the images users pick from and the resources each may ask for.

A flavour is a KubeSpawner profile; its CPU/memory sizes are profile_options choices,
so a form value that is not one of the listed choices is refused by KubeSpawner's own
validation, and :func:`check_resources` refuses anything above the server-side caps
(which also covers an operator's ``unlisted_choice``).
"""

from __future__ import annotations

import re
from typing import Any

SIZES = {
    "small": {"display_name": "1 CPU, 2 GB", "cpu": 1.0, "mem": "2G"},
    "medium": {"display_name": "2 CPU, 4 GB", "cpu": 2.0, "mem": "4G"},
    "large": {"display_name": "4 CPU, 8 GB", "cpu": 4.0, "mem": "8G"},
}


def size_choices(names: tuple[str, ...] = ("small", "medium", "large")) -> dict[str, Any]:
    return {
        name: {
            "display_name": SIZES[name]["display_name"],
            "default": i == 0,
            "kubespawner_override": {
                "cpu_limit": SIZES[name]["cpu"],
                "cpu_guarantee": SIZES[name]["cpu"] / 4,
                "mem_limit": SIZES[name]["mem"],
                "mem_guarantee": SIZES[name]["mem"],
            },
        }
        for i, name in enumerate(names)
    }


def flavour(slug: str, name: str, description: str, image: str, **extra: Any) -> dict[str, Any]:
    return {
        "slug": slug,
        "display_name": name,
        "description": description,
        "kubespawner_override": {"image": image, **extra},
        "profile_options": {"size": {"display_name": "Size", "choices": size_choices()}},
    }


DEFAULT_FLAVOURS = [
    flavour(
        "minimal", "Minimal", "Python and JupyterLab", "quay.io/jupyter/minimal-notebook:latest"
    ),
    flavour(
        "scipy",
        "SciPy",
        "NumPy, SciPy, pandas, matplotlib",
        "quay.io/jupyter/scipy-notebook:latest",
    ),
    flavour("r", "R", "R and the tidyverse", "quay.io/jupyter/r-notebook:latest"),
    flavour(
        "tensorflow", "TensorFlow", "TensorFlow (CPU)", "quay.io/jupyter/tensorflow-notebook:latest"
    ),
    flavour("spark", "Spark", "PySpark", "quay.io/jupyter/pyspark-notebook:latest"),
]
DEFAULT_FLAVOURS[0]["default"] = True

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_UNITS |= {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_bytes(value: Any) -> int:
    """'4G', '512Mi', 2e9 -> bytes."""
    if isinstance(value, int | float):
        return int(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]i?)?b?\s*", str(value).lower())
    if not m:
        raise ValueError(f"not a memory size: {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


def check_resources(requested: dict[str, Any], caps: dict[str, Any]) -> None:
    """Raise ValueError naming the field when a value exceeds a cap or is negative."""
    cpu_cap = float(caps.get("cpu", 0) or 0)
    mem_cap = parse_bytes(caps["memory"]) if caps.get("memory") else 0
    for field in ("cpu_limit", "cpu_guarantee"):
        value = requested.get(field)
        if value is None:
            continue
        if float(value) < 0:
            raise ValueError(f"{field} must not be negative")
        if cpu_cap and float(value) > cpu_cap:
            raise ValueError(f"{field} {value} exceeds the limit of {cpu_cap} CPUs")
    for field in ("mem_limit", "mem_guarantee"):
        value = requested.get(field)
        if value is None:
            continue
        if parse_bytes(value) < 0:
            raise ValueError(f"{field} must not be negative")
        if mem_cap and parse_bytes(value) > mem_cap:
            raise ValueError(f"{field} {value} exceeds the limit of {caps['memory']}")


def validate_user_options(options: dict[str, Any], profiles: list[dict[str, Any]]) -> None:
    """Refuse (ValueError naming the field) any option that is not a listed choice.

    ``profiles`` is KubeSpawner's initialized profile list (slugs filled in).
    KubeSpawner itself checks unlisted choices but not that a choice exists.
    """
    if not options:
        return
    slug = options.get("profile")
    if not profiles:
        if slug:
            raise ValueError(f"profile: {slug!r} is not offered here")
        return
    by_slug = {p["slug"]: p for p in profiles}
    if slug is None:
        slug = next((p["slug"] for p in profiles if p.get("default")), profiles[0]["slug"])
    if slug not in by_slug:
        raise ValueError(f"profile: {slug!r} is not one of {', '.join(by_slug)}")
    offered = by_slug[slug].get("profile_options", {})
    for key, value in options.items():
        if key == "profile":
            continue
        name = key.removesuffix("--unlisted-choice")
        option = offered.get(name)
        if option is None:
            raise ValueError(f"{key}: not an option of profile {slug!r}")
        if key.endswith("--unlisted-choice"):
            if not option.get("unlisted_choice", {}).get("enabled"):
                raise ValueError(f"{name}: free values are not allowed, pick a listed choice")
            pattern = option["unlisted_choice"].get("validation_regex")
            if pattern and not re.fullmatch(pattern, str(value)):
                raise ValueError(f"{name}: {value!r} is not an allowed value")
            continue
        choices = option.get("choices", {})
        if value not in choices:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")
