"""Golden keys: the exact Redis key layout bitmapist uses, so both libraries share one Redis."""

from __future__ import annotations

from datetime import datetime

import pytest
import redis

import bitcore
from bitcore import periods
from bitcore.keys import KeyLayout, glob_escape, period_suffix

YEAR_2024_OR = "trackist_bitop_OR_" + "-".join(f"trackist_active_2024-{m}" for m in range(1, 13))


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: bitcore.MonthEvents("active", 2024, 5), "trackist_active_2024-5"),
        (lambda: bitcore.MonthEvents("active", 2024, 12), "trackist_active_2024-12"),
        (lambda: bitcore.WeekEvents("active", 2025, 1), "trackist_active_W2025-1"),
        (lambda: bitcore.WeekEvents("active", 2020, 53), "trackist_active_W2020-53"),
        (lambda: bitcore.DayEvents("active", 2024, 5, 7), "trackist_active_2024-5-7"),
        (lambda: bitcore.DailyEvents("active", 2024, 5, 7), "trackist_active_2024-5-7"),
        (lambda: bitcore.HourEvents("active", 2024, 5, 7, 13), "trackist_active_2024-5-7-13"),
        (lambda: bitcore.HourEvents("active", 2024, 5, 7, 0), "trackist_active_2024-5-7-0"),
        (lambda: bitcore.UniqueEvents("premium"), "trackist_premium_u"),
        (lambda: bitcore.MonthEvents("song:played", 2024, 5), "trackist_song:played_2024-5"),
        (lambda: bitcore.MonthEvents("a_b", 2024, 5), "trackist_a_b_2024-5"),
        (lambda: bitcore.YearEvents("active", 2024), YEAR_2024_OR),
        (
            lambda: bitcore.BitOpAnd(
                bitcore.MonthEvents("active", 2024, 4), bitcore.MonthEvents("active", 2024, 5)
            ),
            "trackist_bitop_AND_trackist_active_2024-4-trackist_active_2024-5",
        ),
        (
            lambda: bitcore.BitOpOr(
                bitcore.WeekEvents("a", 2025, 1), bitcore.DayEvents("b", 2024, 5, 7)
            ),
            "trackist_bitop_OR_trackist_a_W2025-1-trackist_b_2024-5-7",
        ),
        (
            lambda: bitcore.BitOpXor(
                bitcore.UniqueEvents("a"),
                bitcore.BitOpAnd(bitcore.UniqueEvents("b"), bitcore.UniqueEvents("c")),
            ),
            "trackist_bitop_XOR_trackist_a_u-trackist_bitop_AND_trackist_b_u-trackist_c_u",
        ),
    ],
)
def test_golden_keys(default_system: redis.Redis, make: object, key: str) -> None:
    assert make().redis_key == key  # type: ignore[operator]


def test_year_events_are_bitmapists_or_of_twelve_months(default_system: redis.Redis) -> None:
    bitcore.mark_event("active", 1, now=datetime(2024, 1, 31))
    bitcore.mark_event("active", 2, now=datetime(2024, 12, 1))
    bitcore.mark_event("active", 3, now=datetime(2025, 1, 1))
    year = bitcore.YearEvents("active", 2024)
    assert year.redis_key == YEAR_2024_OR
    assert sorted(year) == [1, 2]
    assert default_system.exists(YEAR_2024_OR)


def test_the_not_key_is_a_bitop_key(default_system: redis.Redis) -> None:
    key = (~bitcore.MonthEvents("active", 2024, 5)).redis_key
    assert key == (
        "trackist_bitop_XOR_trackist__seen_u-"
        "trackist_bitop_AND_trackist__seen_u-trackist_active_2024-5"
    )


def test_mark_event_writes_exactly_bitmapists_keys(default_system: redis.Redis) -> None:
    bitcore.mark_event(
        "active", 7, now=datetime(2024, 12, 30, 13, 5), track_hourly=True, track_unique=True
    )
    assert {k.decode() for k in default_system.keys("trackist_*")} == {
        "trackist_active_2024-12",
        "trackist_active_W2025-1",
        "trackist_active_2024-12-30",
        "trackist_active_2024-12-30-13",
        "trackist_active_u",
        "trackist__seen_u",  # bitcore's universe, what ~x is taken against
    }
    # and, outside the prefix, bitcore's registry of event names, the event's ever set and
    # its first-time bitmaps (never seen by bitmapist, which reads trackist_*)
    assert set(default_system.keys("*")) - set(default_system.keys("trackist_*")) == {
        b"bitcore:event_names:trackist_",
        b"bitcore:ever:trackist_active",
        b"bitcore:first:trackist_active_2024-12",
        b"bitcore:first:trackist_active_W2025-1",
        b"bitcore:first:trackist_active_2024-12-30",
        b"bitcore:first:trackist_active_2024-12-30-13",
    }
    for key in default_system.keys("trackist_*"):
        assert default_system.getbit(key, 7) == 1
        assert default_system.bitcount(key) == 1


def test_mark_event_by_default_writes_month_week_and_day(default_system: redis.Redis) -> None:
    bitcore.mark_event("active", 1, now=datetime(2021, 1, 3, 23))
    assert {k.decode() for k in default_system.keys("trackist_active_*")} == {
        "trackist_active_2021-1",
        "trackist_active_W2020-53",
        "trackist_active_2021-1-3",
    }


def test_mark_unique_writes_the_u_key(default_system: redis.Redis) -> None:
    bitcore.mark_unique("premium", 3)
    assert default_system.zrange("bitcore:flag_names:trackist_", 0, -1) == [b"premium"]
    assert {k.decode() for k in default_system.keys("trackist_*")} == {
        "trackist_premium_u",
        "trackist__seen_u",
    }


def test_custom_key_prefix(redis_client: redis.Redis) -> None:
    b = bitcore.BitCore(redis_client, key_prefix="stats:")
    other = bitcore.BitCore(redis_client)
    b.mark_event("active", 1, now=datetime(2024, 5, 7, 13), track_hourly=True, track_unique=True)
    other.mark_event("active", 2, now=datetime(2024, 5, 7))
    assert {k.decode() for k in redis_client.keys("stats:*")} == {
        "stats:active_2024-5",
        "stats:active_W2024-19",
        "stats:active_2024-5-7",
        "stats:active_2024-5-7-13",
        "stats:active_u",
        "stats:_seen_u",
    }
    may, june = b.MonthEvents("active", 2024, 5), b.MonthEvents("active", 2024, 6)
    assert (may & june).redis_key == "stats:bitop_AND_stats:active_2024-5-stats:active_2024-6"
    assert b.YearEvents("active", 2024).redis_key.startswith("stats:bitop_OR_stats:active_2024-1-")
    assert list(may) == [1]
    assert list(other.MonthEvents("active", 2024, 5)) == [2]
    assert b.get_event_names() == ["active"]
    b.delete_all_events()
    assert not redis_client.keys("stats:*")
    assert list(other.MonthEvents("active", 2024, 5)) == [2]  # the other prefix is untouched


@pytest.mark.parametrize(
    ("period", "suffix"),
    [
        (periods.hour(2024, 5, 7, 13), "2024-5-7-13"),
        (periods.day(2024, 5, 7), "2024-5-7"),
        (periods.week(2025, 1), "W2025-1"),
        (periods.month(2024, 5), "2024-5"),
    ],
)
def test_period_suffix(period: periods.Period, suffix: str) -> None:
    assert period_suffix(period) == suffix


def test_years_have_no_key_of_their_own() -> None:
    with pytest.raises(ValueError, match="OR of its months"):
        period_suffix(periods.year(2024))


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("trackist_active_2024-5", ("active", "2024-5")),
        (b"trackist_active_W2025-1", ("active", "W2025-1")),
        ("trackist_song:played_2024-5-7", ("song:played", "2024-5-7")),
        ("trackist_a_b_c_2024-5-7-13", ("a_b_c", "2024-5-7-13")),
        ("trackist_premium_u", ("premium", "u")),
        ("trackist_bitop_AND_trackist_a_u-trackist_b_u", None),
        ("trackist_active_latest", None),  # not a period suffix
        ("trackist__u", None),  # no name
        ("other_active_2024-5", None),  # foreign prefix
    ],
)
def test_parse_event_key(key: str | bytes, parsed: tuple[str, str] | None) -> None:
    assert KeyLayout().parse_event_key(key) == parsed


def test_glob_characters_in_names_match_only_themselves() -> None:
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
    assert KeyLayout().event_keys_pattern("song*") == "trackist_song\\**"
    assert KeyLayout("p[1]_").bitop_keys_pattern() == "p\\[1\\]_bitop_*"
