"""Numbers written the way people write them in a table: no ``1.234e+04``, thousands grouped,
large counts with k/M/G, a sign on changes.

- :func:`decimal`: ``significant`` digits without exponent (``83.835 -> "83.84"``,
  ``0.0012345 -> "0.001235"``, ``12345.6 -> "12,346"``);
- :func:`count`: whole numbers, exact below 10,000 (``"9,801"``), then 3 significant digits
  with k/M/G (``787905 -> "788k"``, ``17055744 -> "17.1M"``);
- :func:`percent`: ``+4.5%`` (one decimal; more only when it would round to zero).
"""
from __future__ import annotations

import math

_UNITS = ((1e9, "G"), (1e6, "M"), (1e3, "k"))


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return None


def decimal(value: float, significant: int = 4, *, sign: bool = False) -> str:
    special = _special(float(value))
    if special is not None:
        return special
    plus = "+" if sign else ""
    if value == 0:
        return f"{plus}0" if not sign else "0"
    digits = math.floor(math.log10(abs(value))) + 1  # digits before the point (<= 0 for small numbers)
    places = max(0, significant - digits)
    text = f"{value:{plus},.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def count(value: float, *, sign: bool = False) -> str:
    special = _special(float(value))
    if special is not None:
        return special
    plus = "+" if sign and value != 0 else ""
    if abs(value) < 10_000:
        return f"{round(value):{plus},d}"
    rounded = float(f"{value:.3g}")  # 999,999 -> 1e6: the unit follows the rounded value
    scale, unit = next((s, u) for s, u in _UNITS if abs(rounded) >= s)
    return decimal(rounded / scale, 3, sign=sign) + unit


def percent(value: float) -> str:
    special = _special(float(value))
    if special is not None:
        return special
    places = 1
    while places < 4 and value != 0 and round(abs(value), places) == 0:
        places += 1
    return "0%" if value == 0 else f"{value:+,.{places}f}%"
