"""Event classes: current-period defaults, from_date, walking periods, reads, identity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

import bitcore
from bitcore import (
    BitCore,
    DayEvents,
    HourEvents,
    MonthEvents,
    UniqueEvents,
    WeekEvents,
    YearEvents,
)

pytestmark = pytest.mark.usefixtures("default_system")

US = timedelta(microseconds=1)


def _now_key(make: Callable[[datetime], Any]) -> set[str]:
    """The key(s) ``make`` gives for now, allowing for a period boundary passing during the test."""
    return {make(datetime.now(UTC)).redis_key}


@pytest.mark.parametrize(
    ("default", "explicit"),
    [
        (lambda: HourEvents("a"), lambda n: HourEvents("a", n.year, n.month, n.day, n.hour)),
        (lambda: DayEvents("a"), lambda n: DayEvents("a", n.year, n.month, n.day)),
        (lambda: WeekEvents("a"), lambda n: WeekEvents("a", *n.isocalendar()[:2])),
        (lambda: MonthEvents("a"), lambda n: MonthEvents("a", n.year, n.month)),
        (lambda: YearEvents("a"), lambda n: YearEvents("a", n.year)),
        (lambda: MonthEvents("a", month=3), lambda n: MonthEvents("a", n.year, 3)),
        (lambda: DayEvents("a", 2020, 1), lambda n: DayEvents("a", 2020, 1, n.day)),
    ],
)
def test_omitted_fields_mean_the_current_period_in_utc(
    default: Callable[[], Any], explicit: Callable[[datetime], Any]
) -> None:
    before = _now_key(explicit)
    key = default().redis_key
    assert key in before | _now_key(explicit)


def test_current_week_uses_the_iso_week_year() -> None:
    iso_year, iso_week, _ = datetime.now(UTC).isocalendar()
    assert WeekEvents("a").year in {iso_year, iso_year + 1}
    assert WeekEvents("a").redis_key.startswith("trackist_a_W")


DT = datetime(2024, 12, 30, 13, 45)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (HourEvents, "trackist_a_2024-12-30-13"),
        (DayEvents, "trackist_a_2024-12-30"),
        (WeekEvents, "trackist_a_W2025-1"),
        (MonthEvents, "trackist_a_2024-12"),
        (YearEvents, "trackist_bitop_OR_trackist_a_2024-1-"),
        (UniqueEvents, "trackist_a_u"),
    ],
)
def test_from_date_on_the_class_and_on_an_instance(cls: Any, expected: str) -> None:
    on_class = cls.from_date("a", DT)
    on_instance = cls("a").from_date(DT)  # bitmapist's README form
    by_keyword = cls.from_date(event_name="a", dt=DT, system="default")
    assert on_class.redis_key.startswith(expected)
    assert on_class == on_instance == by_keyword
    assert cls.from_date("a") == cls("a")  # no date: now
    assert cls("a").from_date() == cls("a")


def test_a_date_can_stand_in_for_the_fields() -> None:
    assert DayEvents("a", date(2024, 2, 29)).redis_key == "trackist_a_2024-2-29"
    assert WeekEvents("a", DT).redis_key == "trackist_a_W2025-1"
    assert HourEvents("a", DT).hour == 13


@pytest.mark.parametrize(
    ("make", "fields"),
    [
        (lambda: HourEvents("a", 2024, 5, 7, 13), {"year": 2024, "month": 5, "day": 7, "hour": 13}),
        (lambda: DayEvents("a", 2024, 5, 7), {"year": 2024, "month": 5, "day": 7}),
        (lambda: WeekEvents("a", 2025, 1), {"year": 2025, "week": 1}),
        (lambda: MonthEvents("a", 2024, 5), {"year": 2024, "month": 5}),
        (lambda: YearEvents("a", 2024), {"year": 2024}),
    ],
)
def test_fields_are_attributes_as_in_bitmapist(
    make: Callable[[], Any], fields: dict[str, int]
) -> None:
    event = make()
    for name, value in fields.items():
        assert getattr(event, name) == value
    assert event.event_name == "a"
    assert event.system == "default"


@pytest.mark.parametrize(
    ("make", "prev", "next_"),
    [
        (lambda: HourEvents("a", 2024, 12, 31, 23), "2024-12-31-22", "2025-1-1-0"),
        (lambda: DayEvents("a", 2024, 3, 1), "2024-2-29", "2024-3-2"),
        (lambda: DayEvents("a", 2024, 12, 31), "2024-12-30", "2025-1-1"),
        (lambda: WeekEvents("a", 2025, 1), "W2024-52", "W2025-2"),
        (lambda: WeekEvents("a", 2021, 1), "W2020-53", "W2021-2"),
        (lambda: MonthEvents("a", 2025, 1), "2024-12", "2025-2"),
    ],
)
def test_prev_next_and_delta(make: Callable[[], Any], prev: str, next_: str) -> None:
    event = make()
    assert event.prev().redis_key == f"trackist_a_{prev}"
    assert event.next().redis_key == f"trackist_a_{next_}"
    assert event.delta(-1) == event.prev()
    assert event.delta(1) == event.next()
    assert event.delta(0) == event
    assert event.next().prev() == event
    assert event.delta(-30).delta(30) == event
    assert type(event.next()) is type(event)


def test_years_walk_by_years() -> None:
    year = YearEvents("a", 2024)
    assert (year.prev().year, year.next().year, year.delta(-10).year) == (2023, 2025, 2014)
    assert year.next().redis_key.startswith("trackist_bitop_OR_trackist_a_2025-1-")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: DayEvents("a", 2024, 2, 29).delta(1), "2024-3-1"),
        (lambda: DayEvents("a", 2024, 2, 29).delta(-1), "2024-2-28"),
        (lambda: DayEvents("a", 2024, 2, 29).delta(365), "2025-2-28"),
        (lambda: MonthEvents.from_date("a", date(2024, 2, 29)).delta(1), "2024-3"),
        (lambda: MonthEvents.from_date("a", date(2024, 2, 29)).delta(-1), "2024-1"),
        (lambda: MonthEvents.from_date("a", date(2024, 2, 29)).delta(12), "2025-2"),
        (lambda: WeekEvents.from_date("a", date(2024, 2, 29)).delta(1), "W2024-10"),
        (lambda: HourEvents("a", 2024, 2, 29, 23).delta(1), "2024-3-1-0"),
    ],
)
def test_delta_over_leap_days(make: Callable[[], Any], expected: str) -> None:
    assert make().redis_key == f"trackist_a_{expected}"


def test_unique_events_have_no_time() -> None:
    u = UniqueEvents("premium")
    assert u.prev() is u
    assert u.next() is u
    assert u.delta(-5) is u


@pytest.mark.parametrize(
    ("make", "start", "end"),
    [
        (lambda: HourEvents("a", 2024, 5, 7, 13), (2024, 5, 7, 13), (2024, 5, 7, 13, 59)),
        (lambda: DayEvents("a", 2024, 2, 29), (2024, 2, 29), (2024, 2, 29, 23, 59)),
        (lambda: WeekEvents("a", 2025, 1), (2024, 12, 30), (2025, 1, 5, 23, 59)),
        (lambda: WeekEvents("a", 2020, 53), (2020, 12, 28), (2021, 1, 3, 23, 59)),
        (lambda: MonthEvents("a", 2024, 2), (2024, 2, 1), (2024, 2, 29, 23, 59)),
        (lambda: MonthEvents("a", 2023, 2), (2023, 2, 1), (2023, 2, 28, 23, 59)),
        (lambda: YearEvents("a", 2024), (2024, 1, 1), (2024, 12, 31, 23, 59)),
    ],
)
def test_period_start_and_end(
    make: Callable[[], Any], start: tuple[int, ...], end: tuple[int, ...]
) -> None:
    event = make()
    assert event.period_start() == datetime(*start, tzinfo=UTC)
    assert event.period_end() == datetime(*end, 59, 999999, tzinfo=UTC)
    assert event.next().period_start() == event.period_end() + US


@pytest.mark.all_layouts
def test_reads_count_membership_iteration_and_delete(bc: BitCore) -> None:
    ids = [0, 7, 8, 123, 70_000, 2**20 + 3]
    for uid in reversed(ids):
        bc.mark_event("active", uid, now=DT)
    ev = bc.DayEvents("active", 2024, 12, 30)
    assert len(ev) == ev.get_count() == len(ids)
    assert list(ev) == ids  # ascending
    assert list(ev.get_uuids()) == ids
    assert all(uid in ev for uid in ids)
    assert 1 not in ev and 124 not in ev and 2**32 - 1 not in ev
    assert -1 not in ev and "7" not in ev and 7.0 not in ev  # not ids: never members
    assert ev.has_events_marked()
    assert list(bc.WeekEvents("active", 2025, 1)) == ids
    assert list(bc.MonthEvents("active", 2024, 12)) == ids
    assert list(bc.YearEvents("active", 2024)) == ids
    assert not bc.DayEvents("active", 2024, 12, 31).has_events_marked()
    assert list(bc.DayEvents("active", 2024, 12, 31)) == []
    assert len(bc.DayEvents("active", 2024, 12, 31)) == 0

    ev.delete()
    assert not ev.has_events_marked()
    assert list(ev) == [] and len(ev) == 0
    assert len(bc.MonthEvents("active", 2024, 12)) == len(ids)  # other periods keep their marks


def test_the_module_level_classes_read_what_the_facade_marked(default_system: redis.Redis) -> None:
    """bitmapist's module functions and classes on the ``default`` system (flat by nature)."""
    ids = [0, 8, 70_000]
    for uid in ids:
        bitcore.mark_event("active", uid, now=DT)
    ev = DayEvents("active", 2024, 12, 30)
    assert list(ev) == ids and len(ev) == 3 and 8 in ev
    ev.delete()
    assert not default_system.exists(ev.redis_key)
    assert list(MonthEvents("active", 2024, 12)) == ids


@pytest.mark.all_layouts
def test_unmark_event_clears_every_period(bc: BitCore) -> None:
    bc.mark_event("active", 5, now=DT, track_hourly=True, track_unique=True)
    bc.mark_event("active", 6, now=DT, track_hourly=True, track_unique=True)
    bc.unmark_event("active", 5, now=DT, track_hourly=True, track_unique=True)
    for ev in (
        bc.HourEvents.from_date("active", DT),
        bc.DayEvents.from_date("active", DT),
        bc.WeekEvents.from_date("active", DT),
        bc.MonthEvents.from_date("active", DT),
        bc.UniqueEvents("active"),
    ):
        assert 5 not in ev and list(ev) == [6]


def test_equality_and_hashing_follow_the_key() -> None:
    a = MonthEvents("a", 2024, 5)
    assert a == MonthEvents("a", 2024, 5)
    assert a != MonthEvents("a", 2024, 6)
    assert a != MonthEvents("b", 2024, 5)
    assert a != "trackist_a_2024-5"
    assert a != DayEvents("a", 2024, 5, 1)
    assert len({a, MonthEvents("a", 2024, 5), MonthEvents("a", 2024, 6)}) == 2
    assert {a: 1}[MonthEvents.from_date("a", date(2024, 5, 31))] == 1
    assert hash(a) == hash("trackist_a_2024-5")
    assert DayEvents("a", 2024, 5, 7) == bitcore.DailyEvents("a", 2024, 5, 7)
    assert repr(a) == "<MonthEvents trackist_a_2024-5>"


def test_bitmapist_spellings() -> None:
    assert bitcore.DailyEvents is DayEvents
    assert bitcore.HourlyEvents is HourEvents
    assert bitcore.WeeklyEvents is WeekEvents
    assert bitcore.MonthlyEvents is MonthEvents
    assert bitcore.MonthEvent is MonthEvents
    assert bitcore.YearlyEvents is YearEvents


@pytest.mark.all_layouts
def test_time_zone_option(make_bc: Callable[..., BitCore]) -> None:
    ny = make_bc(timezone="America/New_York")
    plain = make_bc()
    midnight_utc = datetime(2024, 1, 1, 3, tzinfo=UTC)  # 22:00 on Dec 31 in New York
    ny.mark_event("tz", 1, now=midnight_utc)
    assert 1 in ny.DayEvents("tz", 2023, 12, 31)
    assert ny.DayEvents.from_date("tz", midnight_utc).redis_key == "trackist_tz_2023-12-31"
    ny.mark_event("tz", 2, now=datetime(2024, 1, 1, 3))  # naive: already New York time
    assert 2 in ny.DayEvents("tz", 2024, 1, 1)
    # without a zone, bitmapist's rule: the wall-clock fields as given
    plain.mark_event("tz", 3, now=midnight_utc.astimezone(ZoneInfo("America/New_York")))
    assert 3 in plain.DayEvents("tz", 2023, 12, 31)
    plain.mark_event("tz", 4, now=datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=9))))
    assert 4 in plain.DayEvents("tz", 2024, 1, 1)
    ny_start = ny.MonthEvents("tz", 2024, 1).period_start()
    assert ny_start == datetime(2024, 1, 1, tzinfo=ZoneInfo("America/New_York"))
    now_ny = datetime.now(ZoneInfo("America/New_York"))
    assert ny.DayEvents("tz").day in {now_ny.day, (now_ny + timedelta(minutes=1)).day}
