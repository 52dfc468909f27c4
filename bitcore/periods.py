"""Period math: which hour, day, ISO week, month or year a moment falls in, and how to walk
between them.

Pure functions over a small immutable ``Period`` value, so the calendar rules (ISO week-years that
differ from calendar years around New Year, leap days, month lengths) are tested without Redis.

>>> from datetime import datetime
>>> p = period_of("week", datetime(2024, 12, 30))
>>> (p.year, p.week)
(2025, 1)
>>> shift(p, -1).week
52
"""

from __future__ import annotations

import calendar
import functools
import operator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal

Kind = Literal["hour", "day", "week", "month", "year"]
KINDS: tuple[Kind, ...] = ("hour", "day", "week", "month", "year")


@dataclass(frozen=True, order=True)
class Period:
    """One calendar period. For ``week`` periods ``year`` is the ISO week-year.

    Fields that a kind does not use stay at their neutral value (``month=1, day=1, hour=0,
    week=0``), so two equal periods always compare equal.

    Unlike bitmapist, which formats whatever it is given into a key, an impossible period (month 13,
    February 30, ISO week 53 of a 52-week year, a year outside 1..9999) raises ``ValueError`` and a
    non-integer field raises ``TypeError``, so no odd key is ever written or read.
    """

    kind: Kind
    year: int
    month: int = 1
    day: int = 1
    hour: int = 0
    week: int = 0

    def __post_init__(self) -> None:
        """Refuse impossible periods up front, naming the bad value, instead of writing odd keys."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown period kind {self.kind!r}; expected one of {KINDS}")
        for name in ("year", "month", "day", "hour", "week"):
            value = getattr(self, name)
            if type(value) is int:  # the usual case (a bool's type is bool): nothing to convert
                continue
            if isinstance(value, bool) or not hasattr(value, "__index__"):
                raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
            object.__setattr__(self, name, operator.index(value))  # numpy ints become plain ints
        if not 1 <= self.year <= 9999:
            raise ValueError(f"year {self.year!r} is out of range 1..9999")
        if self.kind == "week":
            try:
                date.fromisocalendar(self.year, self.week, 1)
            except ValueError:
                raise ValueError(f"ISO year {self.year} has no week {self.week}") from None
            return
        try:
            date(self.year, self.month, self.day)
        except ValueError as exc:  # month 13, February 30, ...
            where = f"year={self.year}, month={self.month}, day={self.day}"
            raise ValueError(f"no such {self.kind}: {where} ({exc})") from None
        if not 0 <= self.hour <= 23:
            raise ValueError(f"hour {self.hour!r} is out of range 0..23")


def hour(year: int, month: int, day: int, hour_: int) -> Period:
    return Period("hour", year, month, day, hour_)


def day(year: int, month: int, day_: int) -> Period:
    return Period("day", year, month, day_)


def week(iso_year: int, iso_week: int) -> Period:
    return Period("week", iso_year, week=iso_week)


def month(year: int, month_: int) -> Period:
    return Period("month", year, month_)


def year(year_: int) -> Period:
    return Period("year", year_)


def period_of(kind: Kind, moment: date | datetime) -> Period:
    """The period of ``kind`` that contains ``moment``, read from its wall-clock fields.

    As in bitmapist, an aware datetime is not converted (``to_local`` does that, when asked).
    """
    if kind == "hour":
        hour_ = moment.hour if isinstance(moment, datetime) else 0
        return hour(moment.year, moment.month, moment.day, hour_)
    if kind == "day":
        return day(moment.year, moment.month, moment.day)
    if kind == "week":
        iso_year, iso_week, _ = moment.isocalendar()
        return week(iso_year, iso_week)
    if kind == "month":
        return month(moment.year, moment.month)
    if kind == "year":
        return year(moment.year)
    raise ValueError(f"unknown period kind {kind!r}; expected one of {KINDS}")


@functools.lru_cache(maxsize=4096)
def shift(period: Period, steps: int) -> Period:
    """The period ``steps`` periods of the same kind later (earlier when negative). Kept for the
    next call (periods are values): a report's plan shifts dozens, a third of its time."""
    if period.kind == "hour":
        moment = datetime(period.year, period.month, period.day, period.hour) + timedelta(
            hours=steps
        )
        return period_of("hour", moment)
    if period.kind == "day":
        return period_of("day", date(period.year, period.month, period.day) + timedelta(days=steps))
    if period.kind == "week":
        monday = date.fromisocalendar(period.year, period.week, 1) + timedelta(weeks=steps)
        return period_of("week", monday)
    if period.kind == "month":
        years, month0 = divmod(period.year * 12 + (period.month - 1) + steps, 12)
        return month(years, month0 + 1)
    return year(period.year + steps)


def count_between(first: Period, last: Period) -> int:
    """How many periods ``first`` .. ``last`` (one kind) cover, both included; 0 when ``last`` is
    earlier.

    >>> count_between(month(2024, 11), month(2025, 2)), count_between(week(2025, 2), week(2025, 1))
    (4, 0)
    """
    if last < first:
        return 0
    if first.kind == "month":
        return (last.year - first.year) * 12 + last.month - first.month + 1
    if first.kind == "year":
        return last.year - first.year + 1
    elapsed = start(last) - start(first)
    if first.kind == "hour":
        return int(elapsed.total_seconds()) // 3600 + 1
    return elapsed.days // (7 if first.kind == "week" else 1) + 1


def start(period: Period, tz: tzinfo = UTC) -> datetime:
    """The first microsecond of ``period`` in ``tz``."""
    if period.kind == "week":
        monday = date.fromisocalendar(period.year, period.week, 1)
        return datetime(monday.year, monday.month, monday.day, tzinfo=tz)
    return datetime(period.year, period.month, period.day, period.hour, tzinfo=tz)


def end(period: Period, tz: tzinfo = UTC) -> datetime:
    """The last microsecond of ``period`` in ``tz`` (bitmapist's ``period_end``: ``…59.999999``)."""
    last = timedelta(microseconds=1)
    if period.kind == "hour":
        return start(period, tz) + timedelta(hours=1) - last
    if period.kind == "day":
        return start(period, tz) + timedelta(days=1) - last
    if period.kind == "week":
        return start(period, tz) + timedelta(weeks=1) - last
    if period.kind == "month":
        days = calendar.monthrange(period.year, period.month)[1]
        return start(period, tz) + timedelta(days=days) - last
    return datetime(period.year, 12, 31, 23, 59, 59, 999999, tzinfo=tz)


def label(period: Period) -> str:
    """How a period is written for people (forms, tables, exports), zero-padded so labels sort.

    >>> label(week(2025, 1)), label(hour(2024, 5, 7, 13)), label(month(2024, 5))
    ('2025-W01', '2024-05-07 13h', '2024-05')
    """
    if period.kind == "hour":
        return f"{period.year:04d}-{period.month:02d}-{period.day:02d} {period.hour:02d}h"
    if period.kind == "day":
        return f"{period.year:04d}-{period.month:02d}-{period.day:02d}"
    if period.kind == "week":
        return f"{period.year:04d}-W{period.week:02d}"
    if period.kind == "month":
        return f"{period.year:04d}-{period.month:02d}"
    return f"{period.year:04d}"


def months_of_year(year_: int) -> list[Period]:
    """The twelve months whose union is a year (bitmapist stores no year keys: it ORs months)."""
    return [month(year_, m) for m in range(1, 13)]


def to_local(moment: date | datetime, tz: tzinfo | None) -> date | datetime:
    """Moment as wall-clock fields in ``tz``.

    ``tz=None`` keeps bitmapist's rule: the fields are used as given, aware or not. With a zone, an
    aware moment is converted into it and a naive one is taken to be in it already.
    """
    if tz is None or not isinstance(moment, datetime) or moment.tzinfo is None:
        return moment
    return moment.astimezone(tz)
