"""Notebook flavours: the images users pick from and the resources each may ask for.

A flavour is a KubeSpawner profile; its CPU/memory sizes are profile_options choices,
so a form value that is not one of the listed choices is refused by KubeSpawner's own
validation, and :func:`check_resources` refuses anything above the server-side caps
(which also covers an operator's ``unlisted_choice``).

Flavours and their choices may be restricted to Keycloak groups or roles
(valeria_hub.restrictions): on the item itself (``allowed_groups``/``allowed_roles``
keys of a flavour or of a choice) and through the operator's overlay
``c.ValeriaSpawner.flavour_access`` (:func:`parse_access`). A person is shown only what
they may use (:func:`usable_flavours`) and a form value for anything else is refused
naming it (:func:`validate_user_options`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from .quantity import parse_quantity
from .restrictions import RESTRICTION_KEYS, Membership, Restriction, allows_all, describe_all

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


def flavour(
    slug: str,
    name: str,
    description: str,
    image: str,
    *,
    allowed_groups: tuple[str, ...] = (),
    allowed_roles: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A flavour with the standard sizes; ``allowed_*`` restrict it (empty: everyone)."""
    out: dict[str, Any] = {
        "slug": slug,
        "display_name": name,
        "description": description,
        "kubespawner_override": {"image": image, **extra},
        "profile_options": {"size": {"display_name": "Size", "choices": size_choices()}},
    }
    if allowed_groups:
        out["allowed_groups"] = list(allowed_groups)
    if allowed_roles:
        out["allowed_roles"] = list(allowed_roles)
    return out


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


# -- who may use what ----------------------------------------------------------------------
Access = dict[tuple[str, ...], Restriction]
ACCESS_KEYS = frozenset({*RESTRICTION_KEYS, "options"})
EVERY_FLAVOUR = "*"


def parse_access(raw: Mapping[str, Any]) -> Access:
    """``c.ValeriaSpawner.flavour_access`` as restrictions keyed ``(flavour,)`` or
    ``(flavour, option, choice)``; ``"*"`` as the flavour means every flavour.

    ValueError naming the entry for anything malformed (checked when the setting is
    loaded: a typo must stop the hub, not leave a flavour open).
    """
    if not isinstance(raw, Mapping):
        raise ValueError("flavour_access must be a mapping of flavour slugs")
    out: Access = {}
    for slug, entry in raw.items():
        where = f"flavour_access[{slug!r}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be a mapping")
        unknown = sorted(set(entry) - ACCESS_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; use {sorted(ACCESS_KEYS)}")
        out[(slug,)] = Restriction.from_mapping(entry, where)
        options = entry.get("options") or {}
        if not isinstance(options, Mapping):
            raise ValueError(f"{where}: options must map option names to their choices")
        for option, choices in options.items():
            if not isinstance(choices, Mapping):
                raise ValueError(f"{where}: options[{option!r}] must map choices to restrictions")
            for choice, rule in choices.items():
                here = f"{where}: options[{option!r}][{choice!r}]"
                if not isinstance(rule, Mapping) or set(rule) - set(RESTRICTION_KEYS):
                    raise ValueError(f"{here} may only hold {list(RESTRICTION_KEYS)}")
                out[(slug, option, choice)] = Restriction.from_mapping(rule, here)
    return out


def check_flavour_config(access: Access, profiles: list[dict[str, Any]]) -> None:
    """ValueError naming an overlay entry that matches no flavour, option or choice, or a
    flavour or choice whose own ``allowed_groups``/``allowed_roles`` are malformed."""
    for profile in profiles:
        flavour_rules(profile, {})
        for name, option in (profile.get("profile_options") or {}).items():
            for choice in option.get("choices") or {}:
                choice_rules(profile, name, choice, {})
    known = {(p["slug"],) for p in profiles} | {
        (p["slug"], name, choice)
        for p in profiles
        for name, option in (p.get("profile_options") or {}).items()
        for choice in option.get("choices") or {}
    }
    anywhere = {(EVERY_FLAVOUR, *key[1:]) for key in known}
    for key in access:
        if key not in known and key not in anywhere:
            path = "/".join(key)
            raise ValueError(f"flavour_access: {path!r} names no flavour, option or choice")


def flavour_rules(profile: dict[str, Any], access: Access) -> list[Restriction]:
    """Every restriction on a flavour: its own keys and the overlay's entries."""
    slug = profile["slug"]
    rules = [Restriction.from_mapping(profile, f"flavour {slug!r}")]
    rules += [access[k] for k in ((EVERY_FLAVOUR,), (slug,)) if k in access]
    return rules


def choice_rules(
    profile: dict[str, Any], option: str, choice: str, access: Access
) -> list[Restriction]:
    """Every restriction on one choice of one of a flavour's options."""
    slug = profile["slug"]
    item = profile["profile_options"][option]["choices"][choice]
    rules = [Restriction.from_mapping(item, f"flavour {slug!r}: {option} {choice!r}")]
    rules += [
        access[k] for k in ((EVERY_FLAVOUR, option, choice), (slug, option, choice)) if k in access
    ]
    return rules


def usable_flavours(
    profiles: list[dict[str, Any]], who: Membership, access: Access | None = None
) -> list[dict[str, Any]]:
    """The flavours ``who`` may start, with only the choices they may pick (a copy).

    ``profiles`` is KubeSpawner's initialized list (slugs filled in). A flavour left
    with an option that has no choice for this person is left out. Defaults move to
    the first usable flavour or choice when the configured one is not usable.
    """
    access = access or {}
    out = []
    for profile in profiles:
        if not allows_all(flavour_rules(profile, access), who):
            continue
        mine = copy.deepcopy(profile)
        usable = True
        for name, option in (mine.get("profile_options") or {}).items():
            choices = option.get("choices") or {}
            if not choices:
                continue
            kept = {
                key: choice
                for key, choice in choices.items()
                if allows_all(choice_rules(profile, name, key, access), who)
            }
            if not kept and not (option.get("unlisted_choice") or {}).get("enabled"):
                usable = False
                break
            if kept and not any(c.get("default") for c in kept.values()):
                next(iter(kept.values()))["default"] = True
            option["choices"] = kept
        if usable:
            out.append(mine)
    if out and not any(p.get("default") for p in out):
        out[0]["default"] = True
    return out


def validate_user_options(
    options: dict[str, Any],
    profiles: list[dict[str, Any]],
    who: Membership | None = None,
    access: Access | None = None,
    usable: list[dict[str, Any]] | None = None,
) -> None:
    """Refuse (ValueError naming the field) any option that is not a listed choice, or
    that ``who`` may not use (naming the flavour or choice and who it is for).

    ``profiles`` is KubeSpawner's initialized profile list (slugs filled in), all of
    it: what exists but is not for this person is told apart from what does not exist.
    ``who`` None: restrictions are not looked at (choice checks only). ``usable``: what
    :func:`usable_flavours` gave for ``who`` already (a spawn needs it too; a rush of
    100 spawns ran it twice each in one stretch of the hub's loop).
    KubeSpawner itself checks unlisted choices but not that a choice exists.
    """
    everything = {p["slug"]: p for p in profiles}
    if usable is None:
        usable = profiles if who is None else usable_flavours(profiles, who, access)
    by_slug = {p["slug"]: p for p in usable}
    slug = (options or {}).get("profile")
    if not profiles:
        if slug:
            raise ValueError(f"profile: {slug!r} is not offered here")
        return
    if not usable:
        raise ValueError("profile: no notebook flavour is available to your account")
    if slug is None:
        slug = next((p["slug"] for p in usable if p.get("default")), usable[0]["slug"])
    if not isinstance(slug, str):
        raise ValueError("profile: must be a flavour's name")
    if slug not in by_slug:
        if slug in everything and who is not None:
            rules = flavour_rules(everything[slug], access or {})
            if not allows_all(rules, who):
                raise ValueError(
                    f"profile: {slug!r} is not available to you (it is for {describe_all(rules)})"
                )
            raise ValueError(f"profile: {slug!r} is not available to you (none of its sizes is)")
        raise ValueError(f"profile: {slug!r} is not one of {', '.join(by_slug)}")
    offered = by_slug[slug].get("profile_options", {})
    for key, value in (options or {}).items():
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
        if not isinstance(value, str):
            raise ValueError(f"{name}: must be one of {', '.join(choices)}")
        if value not in choices:
            all_choices = (
                everything[slug].get("profile_options", {}).get(name, {}).get("choices", {})
            )
            if who is not None and value in all_choices:
                rules = choice_rules(everything[slug], name, value, access or {})
                raise ValueError(
                    f"{name}: {value!r} is not available to you (it is for {describe_all(rules)})"
                )
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")
