"""File names of the reports' downloads: the report, what it selects, its period kind and dates.

``cohort.csv`` ten times over in a downloads folder tells nothing apart; ``cohort-signup-login-
day-2026-11-01-2026-11-30.csv`` does. Names are ASCII letters, digits, ``.``, ``_`` and ``-``
only, so they need no quoting in a ``Content-Disposition`` header and are valid on every file
system; an event or segment name is cut to a few dozen characters.

>>> from bitcore import periods
>>> download_name("funnel", "signup", "segment:ios users", "week", periods.week(2025, 2))
'funnel-signup-segment-ios-users-week-2025-W02'
"""

from __future__ import annotations

import re

from bitcore import periods

_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")
#: The longest a part of a name (one event or segment) may be.
PART_CHARS = 40
#: The longest a whole name may be, before its extension.
NAME_CHARS = 160


def _part(value: str | periods.Period) -> str:
    text = periods.label(value) if isinstance(value, periods.Period) else value
    return _UNSAFE.sub("-", text).strip("-.")[:PART_CHARS].strip("-.")


def download_name(report: str, *parts: str | periods.Period) -> str:
    """``report`` and ``parts`` joined by ``-``, each made safe (see the module's docstring)."""
    words = [word for word in (_part(p) for p in (report, *parts)) if word]
    return "-".join(words)[:NAME_CHARS].strip("-.") or report
