"""Quantities for people: seconds as "1 h" or "5 min", bytes as "0 bytes" or "1.5 MiB", an ISO
time as "2 Dec 2026, 07:41 UTC".

Templates get these as plain functions (``negotiation.page(..., duration=units.duration)``); the
JSON twins keep the raw numbers.

>>> duration(3600.0), duration(90), duration(0.25), duration(86400 * 2)
('1 h', '1 min 30 s', '0.25 s', '2 days')
>>> size(0), size(1), size(1536), size(3 * 2**20)
('0 bytes', '1 byte', '1.5 KiB', '3 MiB')
>>> moment("2026-12-02T07:41:09+00:00"), moment("not a time")
('2 Dec 2026, 07:41 UTC', 'not a time')
"""

from __future__ import annotations

from datetime import datetime

_STEPS = ((86400, "day"), (3600, "h"), (60, "min"), (1, "s"))


def duration(seconds: float) -> str:
    """The two largest whole units of ``seconds`` ("1 h 30 min"); under a second, in seconds."""
    if seconds < 1:
        return f"{seconds:.3g} s"
    left = round(seconds)
    parts = []
    for length, unit in _STEPS:
        count, left = divmod(left, length)
        if count:
            plural = "s" if unit == "day" and count != 1 else ""
            parts.append(f"{count} {unit}{plural}")
    return " ".join(parts[:2])


def size(count: int) -> str:
    """Bytes with a binary unit (KiB, MiB, GiB), one decimal when it is not whole."""
    if count < 1024:
        return f"{count:,} byte{'' if count == 1 else 's'}"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def moment(iso: str) -> str:
    """An ISO 8601 time as ``2 Dec 2026, 07:41 UTC`` (to the minute); text that is none, as is."""
    try:
        when = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso
    zone = when.tzname() or ""
    zone = "UTC" if zone in ("UTC", "UTC+00:00") else zone
    return f"{when.day} {when:%b %Y, %H:%M} {zone}".rstrip()
