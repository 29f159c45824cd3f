"""Kubernetes resource quantities ("500m", "2Gi", "1e3") as exact Decimals. Pure.

The one quantity parser of the package (Kubernetes semantics: "G" is 10^9, "Gi" 2^30),
used by the spawner's caps and by the jobs service's profiles and checks.

Every refusal is a ValueError, whatever the input: quantities come from people (spawn
forms, job specs), and an ArithmeticError or a slow parse would surface as a server
error. No meaningful quantity is lost by the bounds: Kubernetes holds 1n to 2^63-1 (it
silently caps larger amounts, so they are refused here), which needs neither more than
100 characters nor an exponent beyond 1000 (the API server keeps exponent and scale in
int32s and wraps near 2^31: "1e-999999999999" would be 1e727379969 there). The
arithmetic runs in a private decimal context, so no caller ever holds a Decimal that
its own (default-context) arithmetic cannot handle.
"""

from __future__ import annotations

import math
import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, DecimalException
from typing import Any

MAX_TEXT = 100  # characters of a quantity written as text
MAX_EXPONENT = 1000  # "1eN": 1n to 2^63-1 in MAX_TEXT characters needs |N| <= 9 + MAX_TEXT
MAX_AMOUNT = Decimal(2**63 - 1)  # the largest amount Go's resource.Quantity holds
_CONTEXT = Context(prec=64, Emax=MAX_EMAX, Emin=MIN_EMIN)
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


def shown(value: Any, width: int = 40) -> str:
    """``repr(value)`` cut to ``width`` characters, for messages (values come from users)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a deep nest
        return f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 3] + "..."


def parse_quantity(value: Any) -> Decimal:
    """The quantity's value; ValueError for anything the API server would refuse, misread
    or cap, and for negative amounts, which no resource may have."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"quantity {shown(value)} is not a finite number")
    if isinstance(value, int | float):
        amount = Decimal(value) if isinstance(value, int) else Decimal(str(value))
    else:
        amount = _parse_text(value)
    if amount < 0:
        raise ValueError(f"quantity {shown(value)} must not be negative")
    if amount > MAX_AMOUNT:
        raise ValueError(f"quantity {shown(value)} is larger than Kubernetes holds (2^63-1)")
    return amount if amount else Decimal(0)  # "0e2147483647" holds a huge exponent


def _parse_text(value: Any) -> Decimal:
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        raise ValueError(f"not a quantity: {shown(value)} is longer than {MAX_TEXT} characters")
    if text.startswith("-") and _QUANTITY.fullmatch(text[1:]):
        raise ValueError(f"quantity {shown(value)} must not be negative")
    m = _QUANTITY.fullmatch(text)
    if not m:
        raise ValueError(f"not a quantity: {shown(value)}")
    number, exponent, suffix = m.groups()
    try:
        if exponent:
            power = int(exponent[1:])
            if abs(power) > MAX_EXPONENT:
                raise ValueError(f"quantity {shown(value)}: the exponent is out of range")
            return _CONTEXT.multiply(Decimal(number), _CONTEXT.power(Decimal(10), power))
        return _CONTEXT.multiply(Decimal(number), _SUFFIX[suffix or ""])
    except DecimalException:
        raise ValueError(f"not a quantity: {shown(value)}") from None
