"""Period math, with no Redis: ISO week-years, leap days, year ends, period bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitcore import periods
from bitcore.periods import Period, day, hour, month, period_of, shift, week, year

US = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (date(2024, 12, 30), week(2025, 1)),  # Monday of ISO 2025-W1, still calendar 2024
        (date(2024, 12, 29), week(2024, 52)),
        (date(2021, 1, 3), week(2020, 53)),  # Sunday of ISO 2020-W53, already calendar 2021
        (date(2021, 1, 4), week(2021, 1)),
        (date(2020, 12, 31), week(2020, 53)),
        (date(2015, 12, 31), week(2015, 53)),
        (date(2016, 1, 3), week(2015, 53)),
        (date(2026, 1, 1), week(2026, 1)),
        (date(2027, 1, 1), week(2026, 53)),
        (date(2008, 12, 29), week(2009, 1)),
        (datetime(2025, 1, 5, 23, 59, 59), week(2025, 1)),
        (datetime(2025, 1, 6), week(2025, 2)),
    ],
)
def test_iso_week_of_a_date(moment: date, expected: Period) -> None:
    assert period_of("week", moment) == expected


@pytest.mark.parametrize(
    ("kind", "moment", "expected"),
    [
        ("hour", datetime(2024, 5, 7, 13, 59), hour(2024, 5, 7, 13)),
        ("hour", date(2024, 5, 7), hour(2024, 5, 7, 0)),  # a date is its first hour
        ("day", datetime(2024, 2, 29, 23, 59), day(2024, 2, 29)),
        ("month", datetime(2024, 12, 31, 23), month(2024, 12)),
        ("year", date(2024, 12, 31), year(2024)),
        # bitmapist reads wall-clock fields: an aware datetime is not converted
        ("day", datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=5))), day(2024, 1, 1)),
    ],
)
def test_period_of(kind: periods.Kind, moment: date, expected: Period) -> None:
    assert period_of(kind, moment) == expected


ISO_YEARS_WITH_53_WEEKS = {2004, 2009, 2015, 2020, 2026, 2032, 2037}


@pytest.mark.parametrize("iso_year", range(2000, 2041))
def test_week_53_exists_only_in_long_iso_years(iso_year: int) -> None:
    if iso_year in ISO_YEARS_WITH_53_WEEKS:
        assert week(iso_year, 53).week == 53
        assert shift(week(iso_year, 53), 1) == week(iso_year + 1, 1)
    else:
        with pytest.raises(ValueError, match=f"ISO year {iso_year} has no week 53"):
            week(iso_year, 53)
        assert shift(week(iso_year, 52), 1) == week(iso_year + 1, 1)


@pytest.mark.parametrize(
    ("start", "steps", "expected"),
    [
        # leap day, every kind
        (hour(2024, 2, 28, 23), 1, hour(2024, 2, 29, 0)),
        (hour(2024, 2, 29, 23), 1, hour(2024, 3, 1, 0)),
        (day(2024, 2, 29), 1, day(2024, 3, 1)),
        (day(2024, 2, 29), -1, day(2024, 2, 28)),
        (day(2024, 2, 29), 365, day(2025, 2, 28)),
        (day(2024, 2, 29), 366, day(2025, 3, 1)),
        (day(2023, 2, 28), 1, day(2023, 3, 1)),
        (month(2024, 2), 1, month(2024, 3)),
        (month(2024, 2), -1, month(2024, 1)),
        (month(2024, 2), 12, month(2025, 2)),
        (month(2024, 2), -12, month(2023, 2)),
        (year(2024), 1, year(2025)),
        (year(2024), -1, year(2023)),
        (week(2024, 9), 1, week(2024, 10)),  # the week of 2024-02-29
        # year ends, every kind, both directions
        (hour(2024, 12, 31, 23), 1, hour(2025, 1, 1, 0)),
        (hour(2025, 1, 1, 0), -1, hour(2024, 12, 31, 23)),
        (day(2024, 12, 31), 1, day(2025, 1, 1)),
        (day(2025, 1, 1), -1, day(2024, 12, 31)),
        (week(2024, 52), 1, week(2025, 1)),
        (week(2025, 1), -1, week(2024, 52)),
        (week(2020, 53), 1, week(2021, 1)),
        (week(2021, 1), -1, week(2020, 53)),
        (week(2026, 53), 1, week(2027, 1)),
        (week(2025, 1), 52, week(2026, 1)),
        (week(2026, 1), 52, week(2026, 53)),
        (month(2024, 12), 1, month(2025, 1)),
        (month(2025, 1), -1, month(2024, 12)),
        (month(2024, 5), -17, month(2022, 12)),
        (month(2024, 5), 20, month(2026, 1)),
        (year(2024), 0, year(2024)),
    ],
)
def test_shift(start: Period, steps: int, expected: Period) -> None:
    assert shift(start, steps) == expected
    assert shift(expected, -steps) == start


@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        (hour(2024, 5, 7, 13), datetime(2024, 5, 7, 13), datetime(2024, 5, 7, 13, 59, 59, 999999)),
        (day(2024, 2, 29), datetime(2024, 2, 29), datetime(2024, 2, 29, 23, 59, 59, 999999)),
        (week(2025, 1), datetime(2024, 12, 30), datetime(2025, 1, 5, 23, 59, 59, 999999)),
        (week(2020, 53), datetime(2020, 12, 28), datetime(2021, 1, 3, 23, 59, 59, 999999)),
        (month(2024, 2), datetime(2024, 2, 1), datetime(2024, 2, 29, 23, 59, 59, 999999)),
        (month(2023, 2), datetime(2023, 2, 1), datetime(2023, 2, 28, 23, 59, 59, 999999)),
        (month(2024, 12), datetime(2024, 12, 1), datetime(2024, 12, 31, 23, 59, 59, 999999)),
        (year(2024), datetime(2024, 1, 1), datetime(2024, 12, 31, 23, 59, 59, 999999)),
    ],
)
def test_period_start_and_end(period: Period, first: datetime, last: datetime) -> None:
    assert periods.start(period) == first.replace(tzinfo=UTC)
    assert periods.end(period) == last.replace(tzinfo=UTC)
    berlin = ZoneInfo("Europe/Berlin")
    assert periods.start(period, berlin) == first.replace(tzinfo=berlin)
    assert periods.end(period, berlin) == last.replace(tzinfo=berlin)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: month(2024, 13), "month=13"),
        (lambda: month(2024, 0), "month=0"),
        (lambda: day(2023, 2, 29), "day=29"),
        (lambda: day(2024, 4, 31), "day=31"),
        (lambda: hour(2024, 5, 7, 24), "hour 24"),
        (lambda: hour(2024, 5, 7, -1), "hour -1"),
        (lambda: week(2024, 53), "no week 53"),
        (lambda: week(2024, 0), "no week 0"),
        (lambda: year(0), "year 0"),
        (lambda: year(10000), "year 10000"),
        (lambda: Period("decade", 2020), "decade"),  # type: ignore[arg-type]
    ],
)
def test_impossible_periods_raise_value_error(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


@pytest.mark.parametrize("bad", ["2024", 2024.0, True, None])
def test_non_integer_fields_raise_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=repr(bad).replace(".", r"\.")):
        month(bad, 5)  # type: ignore[arg-type]


def test_numpy_integers_are_accepted_as_plain_ints() -> None:
    np = pytest.importorskip("numpy")
    p = month(np.int64(2024), np.int32(5))
    assert p == month(2024, 5)
    assert type(p.year) is int


def test_years_are_the_or_of_twelve_months() -> None:
    assert periods.months_of_year(2024) == [month(2024, m) for m in range(1, 13)]


def test_to_local() -> None:
    ny = ZoneInfo("America/New_York")
    aware = datetime(2024, 1, 1, 3, tzinfo=UTC)
    naive = datetime(2024, 1, 1, 3)
    assert periods.to_local(aware, None) is aware  # bitmapist's rule: fields as given
    assert periods.to_local(aware, ny) == datetime(2023, 12, 31, 22, tzinfo=ny)
    assert periods.to_local(naive, ny) is naive  # naive is taken to be in the zone already
    assert periods.to_local(date(2024, 1, 1), ny) == date(2024, 1, 1)


moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31))


@given(moment=moments, kind=st.sampled_from(periods.KINDS))
def test_a_period_contains_the_moment_it_was_made_from(
    moment: datetime, kind: periods.Kind
) -> None:
    p = period_of(kind, moment)
    assert periods.start(p) <= moment.replace(tzinfo=UTC) <= periods.end(p)


@given(moment=moments, kind=st.sampled_from(periods.KINDS), steps=st.integers(-400, 400))
def test_shifted_periods_are_contiguous_and_reversible(
    moment: datetime, kind: periods.Kind, steps: int
) -> None:
    p = period_of(kind, moment)
    assert periods.end(p) + US == periods.start(shift(p, 1))
    assert periods.start(p) - US == periods.end(shift(p, -1))
    assert shift(shift(p, steps), -steps) == p
    assert shift(shift(p, steps), 1) == shift(p, steps + 1)


@given(moment=moments)
def test_iso_week_matches_the_standard_library(moment: datetime) -> None:
    iso_year, iso_week, _ = moment.isocalendar()
    assert period_of("week", moment) == week(iso_year, iso_week)
