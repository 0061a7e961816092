"""Money in chat text: "$2,499", "1.5k", "3 grand" as numbers, for budgets and prices."""

from __future__ import annotations

import math

from service.extraction.models import MAX_AMOUNT


def amount(number: str, mult: str | None) -> float | None:
    """A money amount, or None when it is not a plausible one (too many digits to be a
    price, or beyond ``MAX_AMOUNT``)."""
    digits = number.replace(",", "")
    if len(digits) > 12:
        return None
    try:
        value = float(digits)
    except ValueError:
        return None
    if mult and mult.lower() in ("k", "thousand", "grand"):
        value *= 1000
    return value if math.isfinite(value) and 0 <= value <= MAX_AMOUNT else None


def format_amount(value: float) -> str:
    """A budget as a preference value: "2000", "1499.50"."""
    return str(int(value)) if value == int(value) else f"{value:.2f}"
