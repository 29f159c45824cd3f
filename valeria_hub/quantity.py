"""Kubernetes resource quantities ("500m", "2Gi", "1e3") as exact Decimals. Pure.

The one quantity parser of the package (Kubernetes semantics: "G" is 10^9, "Gi" 2^30),
used by the spawner's caps and by the jobs service's profiles and checks.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIX = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(?:([eE][-+]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$"
)


def parse_quantity(value: Any) -> Decimal:
    """The quantity's value; ValueError for anything the API server would refuse."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"quantity {value!r} is not a finite number")
        if value < 0:
            raise ValueError(f"quantity {value!r} must not be negative")
        return Decimal(str(value))
    m = _QUANTITY.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"not a quantity: {value!r}")
    number, exponent, suffix = m.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"not a quantity: {value!r}") from None
    if exponent:
        return base * (Decimal(10) ** int(exponent[1:]))
    return base * _SUFFIX[suffix or ""]
