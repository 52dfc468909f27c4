"""bitmapist's cohort API on bitcore: the same functions, arguments and rows, in two round trips.

``import bitcore.cohort as bitmapist_cohort`` runs bitmapist cohort code unchanged::

    rows = bitmapist_cohort.get_dates_data("active", "song:play", time_group="weeks")
    html = bitmapist_cohort.render_html_data(rows, time_group="weeks")

Each row is ``[start datetime, cohort size, cell_0, ..., cell_num_of_rows]``. A cell is ``''`` when
the cohort is empty or nobody at all did the return event in that period (a future period, say),
``0.0`` when people did but none of the cohort, else a percentage (float) or, with ``as_percent=0``,
a count (int). Selections are event names or ``bitcore.selections`` tokens (``"segment:ios
users"``). Weeks are ISO weeks. The raw counts behind a table are ``cohort_table(...)`` (a
``CohortTable``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from bitcore import events
from bitcore.bitmaps import Bitmap
from bitcore.cohort.engine import (
    COHORT_TYPES,
    DEFAULT_MAX_FETCH_BYTES,
    TIME_GROUPS,
    CohortTable,
    TimeGroup,
    Where,
    row_starts,
)
from bitcore.cohort.engine import cohort_table as _cohort_table
from bitcore.cohort.render import render_csv_data, render_html_data, render_html_form
from bitcore.cohort.retention import RETENTIONS
from bitcore.periods import Period
from bitcore.systems import client_for

__all__ = [
    "COHORT_TYPES", "CUSTOM_HANDLERS", "RETENTIONS", "TIME_GROUPS", "CohortTable", "TimeGroup",
    "Where", "cohort_table",
    "get_dates_data", "render_csv_data", "render_html_data", "render_html_form", "row_starts",
    "set_custom_handler",
]  # fmt: skip

#: ``name -> callback(key, cls, cls_args)``, consulted before events and segments (bitmapist's
#: registry).
CUSTOM_HANDLERS: dict[str, Callable[..., Any]] = {}

_CLASSES: dict[str, type[events.GenericPeriodEvents]] = {
    "day": events.DayEvents,
    "week": events.WeekEvents,
    "month": events.MonthEvents,
    "year": events.YearEvents,
}


def set_custom_handler(event_name: str, callback: Callable[..., Any]) -> None:
    """Make ``event_name`` mean whatever ``callback(key, cls, cls_args)`` returns, e.g. active on
    web or iOS::

        def active_web_ios(key, cls, cls_args):
            return cls("active", *cls_args) & (cls("web", *cls_args) | cls("ios", *cls_args))

        set_custom_handler("active_web_ios", active_web_ios)

    ``cls`` is ``DayEvents``/``WeekEvents``/``MonthEvents``/``YearEvents`` and ``cls_args`` its
    arguments after the event name, ending with the system, exactly as bitmapist passes them.
    """
    CUSTOM_HANDLERS[event_name] = callback


def _handler_resolver(system: Any) -> Callable[[str, Period], Bitmap | None]:
    def resolve(token: str, period: Period) -> Bitmap | None:
        handler = CUSTOM_HANDLERS.get(token)
        if handler is None:
            return None
        cls = _CLASSES[period.kind]
        if period.kind == "day":
            cls_args: tuple[Any, ...] = (period.year, period.month, period.day, system)
        elif period.kind == "week":
            cls_args = (period.year, period.week, system)
        elif period.kind == "month":
            cls_args = (period.year, period.month, system)
        else:
            cls_args = (period.year, system)
        bitmap = handler(token, cls, cls_args)
        if not isinstance(bitmap, Bitmap):
            raise TypeError(f"custom handler for {token!r} returned {bitmap!r}, not a bitmap")
        return bitmap

    return resolve


def cohort_table(
    select1: str,
    select2: str,
    select1b: str | None = None,
    select2b: str | None = None,
    time_group: str = "days",
    system: Any = "default",
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | date | None = None,
    max_fetch_bytes: int = DEFAULT_MAX_FETCH_BYTES,
    max_bytes: int | None = None,
    where: Where = "auto",
    cohort_type: str = "recurring",
    retention: str = "on",
) -> CohortTable:
    """The counts behind ``get_dates_data`` (cohort sizes and overlaps), for callers that want both
    views. ``cohort_type="first_time"`` (a bitcore addition): row t is who did ``select1`` for
    the first time ever in period t. ``retention="on_or_after"`` (also one): column k counts who
    did ``select2`` in period t + k or any later one up to now, not in t + k alone.

    Bitmaps wider in all than ``max_fetch_bytes`` are read in byte slices of at most that much per
    round trip (``0``: the narrowest slices); more than ``max_bytes`` to read (``None``: no limit)
    raises ``bitcore.reading.ReportTooCostly``. ``where="server"`` counts it by BITOPs on Redis
    (for a Redis far away) instead of fetching the bitmaps into numpy (the default, faster here).
    """
    if isinstance(start_date, date):
        start_date = start_date.strftime("%Y-%m-%d")
    return _cohort_table(
        client_for(system),
        select1,
        select2,
        select1b or None,
        select2b or None,
        time_group,
        int(num_results),
        int(num_of_rows),
        start_date or None,
        resolve=_handler_resolver(system) if CUSTOM_HANDLERS else None,
        max_fetch_bytes=max_fetch_bytes,
        max_bytes=max_bytes,
        where=where,
        cohort_type=cohort_type,
        retention=retention,
    )


def get_dates_data(
    select1: str,
    select2: str,
    select1b: str | None = None,
    select2b: str | None = None,
    time_group: str = "days",
    system: Any = "default",
    as_percent: Any = True,
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | date | None = None,
    *,
    cohort_type: str = "recurring",
    retention: str = "on",
) -> list[list[Any]]:
    """bitmapist's ``get_dates_data``: the same rows, in two round trips instead of ~1,000.
    ``cohort_type="first_time"`` (keyword only, a bitcore addition) makes row t the users who
    did ``select1`` for the first time ever in period t; ``retention="on_or_after"`` (keyword
    only, too) makes column k who did ``select2`` in period t + k or any later one up to now.

    ``as_percent`` also takes what a form sends (``"0"`` means counts, where bitmapist would read
    the non-empty string as true); anything else is read by truthiness.
    """
    if isinstance(as_percent, str):
        as_percent = as_percent.strip() not in ("", "0", "false", "False")
    table = cohort_table(
        select1,
        select2,
        select1b,
        select2b,
        time_group,
        system,
        num_results,
        num_of_rows,
        start_date,
        cohort_type=cohort_type,
        retention=retention,
    )
    return table.bitmapist_rows(bool(as_percent))
