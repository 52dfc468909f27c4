"""Event bitmaps: who did an event in one hour, day, ISO week, month or year, or ever (unique).

Names, arguments and behaviour follow bitmapist (``MonthEvents("active", 2024, 5)``, ``from_date``,
``prev``, ``next``, ``delta``, ``period_start``, ``period_end``). Arguments left out mean the
current period in the client's time zone (UTC by default).

Where they deliberately differ from bitmapist's (``from_date`` on an instance, impossible periods
refused, a date for the first field, ``timezone=``, ``UniqueEvents.delta``) is listed once, in
``docs/library.md``: "Differences from bitmapist".
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from bitcore import periods
from bitcore.bitmaps import Bitmap
from bitcore.periods import Kind, Period
from bitcore.validation import check_event_name

if TYPE_CHECKING:
    from redis.client import Pipeline

    from bitcore.client import BitCore


def resolve_system(cls: type[Bitmap], system: Any) -> tuple[Any, BitCore]:
    """``(system, client)`` for ``system``: a name from ``setup_redis``, a redis client or pipeline,
    or a ``BitCore``.

    ``None`` means the client a bound class belongs to (``b.MonthEvents``), else ``"default"``, so
    ``ev.system`` reads ``"default"`` as it does in bitmapist. Names and redis clients are looked
    up by the resolver the facade installed (``Bitmap.system_resolver``): nothing here imports the
    registry or the client.
    """
    bound = cls._bound_client
    if system is None:
        if bound is not None:
            return bound, bound
        system = "default"
    elif system is bound:
        return bound, bound
    resolver = Bitmap.system_resolver
    if resolver is None:
        raise RuntimeError("no registry of systems is installed: import bitcore first")
    return system, resolver(system)


def resolve_client(cls: type[Bitmap], system: Any) -> BitCore:
    """The ``BitCore`` for ``system`` (see ``resolve_system``)."""
    return resolve_system(cls, system)[1]


class _FromDate:
    """``from_date`` that works on the class, as in bitmapist, and on an instance, as bitmapist's
    README writes it.

    ``MonthEvents.from_date("active", dt)`` and ``MonthEvents("active").from_date(dt)`` give the
    same event.
    """

    def __get__(self, instance: Any, owner: type) -> Any:
        return functools.partial(_from_date, owner, instance)


def _from_date(cls: Any, instance: Any, *args: Any, **kwargs: Any) -> Any:
    if (
        instance is not None
        and (not args or not isinstance(args[0], str))
        and "event_name" not in kwargs
    ):
        moment = args[0] if args else kwargs.get("dt")
        return cls._at(instance.event_name, moment, instance.system)
    return cls._from_date_args(*args, **kwargs)


class UniqueEvents(Bitmap):
    """Users flagged by an event regardless of date (``trackist_<event>_u``): plans, A/B groups.

    >>> UniqueEvents("premium").redis_key  # doctest: +SKIP
    'trackist_premium_u'
    """

    from_date = _FromDate()

    def __init__(self, event_name: str, system: Any = None) -> None:
        self.event_name = check_event_name(event_name)
        self.system, self.client = resolve_system(type(self), system)
        self.redis_key = self.client.keys.unique_key(event_name)

    @classmethod
    def _from_date_args(cls, event_name: str, dt: Any = None, system: Any = None) -> UniqueEvents:
        return cls(event_name, system=system)

    @classmethod
    def _at(cls, event_name: str, moment: Any, system: Any) -> UniqueEvents:
        return cls(event_name, system=system)

    def next(self) -> UniqueEvents:
        return self

    def prev(self) -> UniqueEvents:
        return self

    def delta(self, value: int) -> UniqueEvents:
        return self


class GenericPeriodEvents(Bitmap):
    """Events of one period. Subclasses name the period kind and their positional fields."""

    kind: ClassVar[Kind]
    fields: ClassVar[tuple[str, ...]]
    period: Period
    from_date = _FromDate()

    def __init__(self, event_name: str, *values: Any, system: Any = None) -> None:
        """Generic form of the subclasses' ``(event_name, year, ..., system=None)``."""
        padded = (*values, *([None] * (len(self.fields) - len(values))))
        self._setup(event_name, system, padded)

    def _setup(self, event_name: str, system: Any, values: tuple[Any, ...]) -> None:
        """Resolve the client and the period; a date or datetime in place of the first field means
        the period that contains it."""
        self.event_name = check_event_name(event_name)
        self.system, self.client = resolve_system(type(self), system)
        if isinstance(values[0], date):
            period = periods.period_of(self.kind, periods.to_local(values[0], self.client.tz))
        elif any(v is None for v in values):
            current = periods.period_of(self.kind, self.client.now())
            given = dict(zip(self.fields, values, strict=True))
            filled = {f: getattr(current, f) if given[f] is None else given[f] for f in self.fields}
            period = self._period(**filled)
        else:
            period = self._period(**dict(zip(self.fields, values, strict=True)))
        self._set_period(period)

    def _set_period(self, period: Period) -> None:
        self.period = period
        for name in self.fields:
            setattr(self, name, getattr(period, name))
        self.redis_key = self.client.keys.event_key(self.event_name, period)

    @classmethod
    def _period(cls, **fields: int) -> Period:
        return Period(cls.kind, **fields)

    @classmethod
    def _from_date_args(
        cls, event_name: str, dt: date | datetime | None = None, system: Any = None
    ) -> GenericPeriodEvents:
        return cls._at(event_name, dt, system)

    @classmethod
    def _at(
        cls, event_name: str, moment: date | datetime | None, system: Any
    ) -> GenericPeriodEvents:
        if moment is None:
            return cls(event_name, system=system)
        return cls(event_name, moment, system=system)

    def _with_period(self, period: Period) -> GenericPeriodEvents:
        args = [getattr(period, f) for f in self.fields]
        return type(self)(self.event_name, *args, system=self.system)

    def delta(self, value: int) -> GenericPeriodEvents:
        """The same event ``value`` periods later (earlier when negative)."""
        return self._with_period(periods.shift(self.period, value))

    def next(self) -> GenericPeriodEvents:
        return self.delta(1)

    def prev(self) -> GenericPeriodEvents:
        return self.delta(-1)

    def period_start(self) -> datetime:
        return periods.start(self.period, self.client.tz_or_utc)

    def period_end(self) -> datetime:
        return periods.end(self.period, self.client.tz_or_utc)


class HourEvents(GenericPeriodEvents):
    """``HourEvents("active", 2024, 5, 7, 13)``: marked only when hourly tracking is on."""

    kind = "hour"
    fields = ("year", "month", "day", "hour")
    year: int
    month: int
    day: int
    hour: int

    def __init__(
        self,
        event_name: str,
        year: int | date | None = None,
        month: int | None = None,
        day: int | None = None,
        hour: int | None = None,
        system: Any = None,
    ) -> None:
        self._setup(event_name, system, (year, month, day, hour))


class DayEvents(GenericPeriodEvents):
    """``DayEvents("active", 2024, 5, 7)``."""

    kind = "day"
    fields = ("year", "month", "day")
    year: int
    month: int
    day: int

    def __init__(
        self,
        event_name: str,
        year: int | date | None = None,
        month: int | None = None,
        day: int | None = None,
        system: Any = None,
    ) -> None:
        self._setup(event_name, system, (year, month, day))


class WeekEvents(GenericPeriodEvents):
    """``WeekEvents("active", 2025, 1)``: ISO week 1 of ISO year 2025 (it starts on 2024-12-30).

    ``year`` is the ISO week-year, which differs from the calendar year around New Year.
    """

    kind = "week"
    fields = ("year", "week")
    year: int
    week: int

    def __init__(
        self,
        event_name: str,
        year: int | date | None = None,
        week: int | None = None,
        system: Any = None,
    ) -> None:
        self._setup(event_name, system, (year, week))


class MonthEvents(GenericPeriodEvents):
    """``MonthEvents("active", 2024, 5)``."""

    kind = "month"
    fields = ("year", "month")
    year: int
    month: int

    def __init__(
        self,
        event_name: str,
        year: int | date | None = None,
        month: int | None = None,
        system: Any = None,
    ) -> None:
        self._setup(event_name, system, (year, month))


class YearEvents(GenericPeriodEvents):
    """``YearEvents("active", 2024)``: the OR of the twelve months, as bitmapist computes it.

    Its key is bitmapist's ``trackist_bitop_OR_<the twelve month keys>``, a temporary key with a
    TTL, computed when the object is made and again whenever a read finds it gone.
    """

    kind = "year"
    fields = ("year",)
    derived = True

    def __init__(self, event_name: str, year: int | date | None = None, system: Any = None) -> None:
        self._setup(event_name, system, (year,))

    def _set_period(self, period: Period) -> None:
        self.period = period
        self.year = period.year
        self.months = [
            self.client.keys.event_key(self.event_name, m)
            for m in periods.months_of_year(period.year)
        ]
        self.redis_key = self.client.keys.bitop_key("OR", self.months)
        self.client.register_bitop(self)
        self.client.materialize(self)  # fresh as of now, like bitmapist's BitOpOr

    def build(self, pipe: Pipeline, ttl: int) -> None:
        pipe.bitop("OR", self.redis_key, *self.months)
        pipe.expire(self.redis_key, ttl)

    def leaves(self) -> Iterator[Bitmap]:
        yield self  # a year is open while any of its months is; its own period says so


#: bitmapist's README spells some classes differently; both spellings work.
DailyEvents = DayEvents
HourlyEvents = HourEvents
WeeklyEvents = WeekEvents
MonthlyEvents = MonthEvents
YearlyEvents = YearEvents
MonthEvent = MonthEvents
