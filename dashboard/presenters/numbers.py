"""How every report writes a number: percentages with one decimal, counts with thousands
separators, "—" where there is no value (a rate over nobody). The cohort and funnel pages, their
CSV downloads and their charts all write numbers with these two functions.

>>> percent_text(40), percent_text(None), count_text(1234567)
('40.0%', '—', '1,234,567')
"""

from __future__ import annotations

#: What a page shows where there is no number (0 of 0 is no rate, not 0 %).
MISSING = "—"


def percent_text(value: float | None) -> str:
    """A percentage (already x 100) with one decimal: ``40.0%``."""
    return MISSING if value is None else f"{value:.1f}%"


def count_text(value: float | None) -> str:
    """A count with thousands separators: ``1,234``."""
    return MISSING if value is None else f"{value:,.0f}"
