"""Figures as people read them: amounts of money and waits of hours.

Python's own formats fail both at their ends: `f"{0.000042:.4f}"` is 0.0000 and
`f"{0.000042:g}"` is 4.2e-05, while a spent budget's wait of 25025 s says little until
it is hours and minutes. Machine output (JSON, CSV, headers) keeps the raw numbers.
"""

from __future__ import annotations

import math

SMALLEST = 1e-8
"""Below this an amount is shown as less than it: no price is that fine."""


def counted(number: int, noun: str) -> str:
    """`number` things, as a reader says it: 1 group, 2 groups."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def money(amount: float) -> str:
    """Cents for an amount (never negative) of a cent or more; a smaller one to its first
    two significant digits, never in exponent notation: 5.00, 0.50, 0.0042, 0.000042."""
    if amount == 0 or amount >= 0.01:
        return f"{amount:.2f}"
    if amount < SMALLEST:
        return f"<{SMALLEST:.8f}"
    places = 1 - math.floor(math.log10(amount))
    return f"{amount:.{places}f}"


def money_column(amounts: list[float]) -> list[str]:
    """Amounts in one column, each to the places the most exact of them needs (two at
    least, eight at most), so that the lines a reader adds up make the total they sit
    over: 0.125 and 0.015 are not shown as 0.12 and 0.01 under a total of 0.14."""
    places = 2
    while places < 8 and any(round(a, places) != round(a, 8) for a in amounts):
        places += 1
    return [f"{a:.{places}f}" for a in amounts]


def shown_amount(text: str) -> float:
    """The amount a `money` text shows (for one below the smallest, that bound): what a
    reader adds up, which the amounts behind the texts may not."""
    return float(text.lstrip("<"))


def hours(seconds: float) -> str:
    """A wait in hours and minutes, rounded up to the minute: 6h57m, 2m, 720h0m."""
    minutes = math.ceil(seconds / 60)
    whole_hours, rest = divmod(minutes, 60)
    return f"{whole_hours}h{rest}m" if whole_hours else f"{rest}m"
