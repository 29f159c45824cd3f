"""Notebook flavours: the images users pick from and the resources each may ask for.

A flavour is a KubeSpawner profile; its CPU/memory sizes are profile_options choices,
so a form value that is not one of the listed choices is refused by KubeSpawner's own
validation, and :func:`check_resources` refuses anything above the server-side caps
(which also covers an operator's ``unlisted_choice``).
"""

from __future__ import annotations

import re
from typing import Any

from .quantity import parse_quantity

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


def check_resources(requested: dict[str, Any], caps: dict[str, Any]) -> None:
    """Raise ValueError naming the field when a value exceeds a cap or is negative.

    ``requested`` holds KubeSpawner's values once its traits have read them (cores, and
    bytes: KubeSpawner reads "2G" as 2 GiB); ``caps`` are Kubernetes quantities
    ({"cpu": "16", "memory": "64Gi"}), read by the one quantity parser.
    """
    cpu_cap = parse_quantity(caps["cpu"]) if caps.get("cpu") else None
    mem_cap = parse_quantity(caps["memory"]) if caps.get("memory") else None
    for field, cap, unit in (
        ("cpu_limit", cpu_cap, "CPUs"),
        ("cpu_guarantee", cpu_cap, "CPUs"),
        ("mem_limit", mem_cap, "bytes"),
        ("mem_guarantee", mem_cap, "bytes"),
    ):
        value = requested.get(field)
        if value is None:
            continue
        try:
            amount = parse_quantity(value)
        except ValueError:
            raise ValueError(f"{field} {value!r} is not a number or quantity") from None
        if cap is not None and amount > cap:
            raise ValueError(f"{field} {value} exceeds the limit of {cap} {unit}")


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
