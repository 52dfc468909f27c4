"""bitcore.cohort against a Python-set oracle, bitmapist's row semantics, ISO weeks and a clean
keyspace."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
import bitcore.cohort as cohort
from bitcore import periods
from bitcore.cohort import engine
from bitcore.segments import SegmentStore

pytestmark = pytest.mark.all_layouts

KIND = {"days": "day", "weeks": "week", "months": "month", "years": "year"}
#: Both ways of reading: one fetch + numpy (default), and byte slices of every key (0: narrowest).
#: How a table may be counted: fetched in one round trip, in the narrowest slices, or on the
#: server (BITOP + BITCOUNT); every way must give the oracle's numbers.
ENGINES: list[dict[str, Any]] = [
    {"max_fetch_bytes": engine.DEFAULT_MAX_FETCH_BYTES, "where": "client"},
    {"max_fetch_bytes": 0, "where": "client"},
    {"where": "server"},
]
ENGINE_IDS = ["one-fetch", "sliced", "server"]

Oracle = dict[tuple[str, periods.Period], set[int]]


def mark(bc: bitcore.BitCore, marks: list[tuple[str, int, datetime]]) -> Oracle:
    """Write ``marks`` and return who did what in every day, week, month and year they touch."""
    bc.mark_many(marks)
    oracle: Oracle = {}
    for event, uid, when in marks:
        for kind in ("day", "week", "month", "year"):
            oracle.setdefault((event, periods.period_of(kind, when)), set()).add(uid)  # type: ignore[arg-type]
    return oracle


def expected_rows(
    oracle: Oracle,
    starts: list[datetime],
    time_group: str,
    selections: tuple[str, str | None, str, str | None],
    num_of_rows: int,
    as_percent: bool,
) -> list[list[Any]]:
    """bitmapist's algorithm, on Python sets: '' for an empty cohort or an empty return set."""
    s1, s1b, s2, s2b = selections

    def users(event: str | None, period: periods.Period) -> set[int] | None:
        return None if not event else oracle.get((event, period), set())

    def both(a: str, b: str | None, period: periods.Period) -> set[int]:
        first, second = users(a, period), users(b, period)
        assert first is not None
        return first if second is None else first & second

    rows = []
    for start in starts:
        period = periods.period_of(KIND[time_group], start)  # type: ignore[arg-type]
        cohort_users = both(s1, s1b, period)
        row: list[Any] = [start, len(cohort_users)]
        for t in range(num_of_rows + 1):
            returned = both(s2, s2b, periods.shift(period, t))
            if not cohort_users or not returned:
                row.append("")
                continue
            count = len(cohort_users & returned)
            if count == 0:
                row.append(0.0)
            elif as_percent:
                row.append((float(count) / float(len(cohort_users))) * 100)
            else:
                row.append(count)
        rows.append(row)
    return rows


def random_marks(
    seed: int, days: int, users: int, start: datetime
) -> list[tuple[str, int, datetime]]:
    rng = random.Random(seed)
    marks = []
    for offset in range(days):
        when = start + timedelta(days=offset, hours=rng.randrange(24))
        for event, share in (("active", 0.5), ("play", 0.3), ("ios", 0.4)):
            marks += [(event, u, when) for u in range(users) if rng.random() < share]
    return marks


TABLES = [
    ("days", 10, 4, "2024-12-24"),
    ("weeks", 6, 3, "2024-12-02"),
    ("months", 4, 2, "2024-11-15"),
    ("years", 3, 1, "2025-03-01"),
]
SELECTIONS: list[tuple[str, str | None, str, str | None]] = [
    ("active", None, "play", None),
    ("active", "ios", "play", None),
    ("play", None, "active", "ios"),
    ("active", "ios", "active", "ios"),
]


@pytest.mark.parametrize("how", ENGINES, ids=ENGINE_IDS)
def test_rows_match_a_set_oracle(
    bc: bitcore.BitCore, redis_client: redis.Redis, how: dict[str, Any]
) -> None:
    """Every time group x selection shape x percent/counts, on one data set (written once: it is
    slow)."""
    oracle = mark(bc, random_marks(3, 70, 60, datetime(2024, 11, 20)))
    before = set(redis_client.keys("*"))
    for time_group, num_results, num_of_rows, start_date in TABLES:
        for selections in SELECTIONS:
            table = cohort.cohort_table(
                selections[0], selections[2], selections[1], selections[3], time_group, bc,
                num_results, num_of_rows, start_date, **how,
            )  # fmt: skip
            for as_percent in (True, False):
                expected = expected_rows(
                    oracle, table.starts, time_group, selections, num_of_rows, as_percent
                )
                assert table.bitmapist_rows(as_percent) == expected, (time_group, selections)
            assert any(c for row in table.cells for c in row), "the data must give real overlaps"
    assert set(redis_client.keys("*")) == before


def marks_strategy(
    uids: st.SearchStrategy[int], days: int, most: int
) -> st.SearchStrategy[list[tuple[str, int, datetime]]]:
    """Up to ``most`` marks of events a, b and c by ``uids`` on the ``days`` + 1 days from
    2024-12-15."""
    when = st.integers(0, days).map(lambda d: datetime(2024, 12, 15) + timedelta(days=d))
    return st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), uids, when), max_size=most)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    marks=marks_strategy(st.integers(0, 200), days=40, most=120),
    time_group=st.sampled_from(["days", "weeks", "months"]),
    extra=st.sampled_from([None, "c"]),
    how=st.sampled_from(ENGINES),
)
def test_property_matches_sets(
    bc: bitcore.BitCore,
    redis_client: redis.Redis,
    marks: list[tuple[str, int, datetime]],
    time_group: str,
    extra: str | None,
    how: dict[str, Any],
) -> None:
    redis_client.flushall()
    oracle = mark(bc, marks)
    table = cohort.cohort_table("a", "b", extra, None, time_group, bc, 8, 3, "2024-12-15", **how)
    selections = ("a", extra, "b", None)
    assert table.bitmapist_rows() == expected_rows(
        oracle, table.starts, time_group, selections, 3, True
    )


def test_blank_versus_zero_as_bitmapist_documents(bc: bitcore.BitCore) -> None:
    """'' = no cohort, or nobody at all returned that period; 0.0 = people returned, none of the
    cohort."""
    day = datetime(2024, 5, 6)
    bc.mark_many(
        [
            ("active", 1, day),
            ("active", 2, day),
            ("play", 3, day),
            ("play", 1, day + timedelta(days=2)),
        ]
    )
    rows = cohort.get_dates_data("active", "play", system=bc, num_results=2, num_of_rows=3,
                                 start_date="2024-05-06")  # fmt: skip
    assert rows[0][1:] == [2, 0.0, "", 50.0, ""]
    assert rows[1][1:] == [0, "", "", "", ""]
    counts = cohort.get_dates_data("active", "play", system=bc, num_results=1, num_of_rows=2,
                                   start_date="2024-05-06", as_percent="0")  # fmt: skip
    assert counts[0][1:] == [2, 0.0, "", 1]
    assert isinstance(counts[0][4], int)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 12, 29), periods.week(2024, 52)),  # Sunday: still 2024-W52
        (datetime(2024, 12, 30), periods.week(2025, 1)),  # Monday: ISO year 2025
        (datetime(2021, 1, 3), periods.week(2020, 53)),  # a 53-week ISO year
        (datetime(2026, 1, 1), periods.week(2026, 1)),
    ],
)
def test_week_rows_use_iso_week_years(moment: datetime, expected: periods.Period) -> None:
    assert engine.period_for("weeks", moment) == expected


def test_weeks_across_new_year(bc: bitcore.BitCore) -> None:
    bc.mark_many(
        [("active", u, datetime(2020, 12, 31)) for u in range(4)]  # 2020-W53
        + [("play", u, datetime(2021, 1, 4)) for u in range(3)]  # 2021-W01: one week later
        + [("play", 0, datetime(2021, 1, 3))]  # Sunday: still 2020-W53
    )
    table = cohort.cohort_table("active", "play", time_group="weeks", system=bc, num_results=1,
                                num_of_rows=2, start_date="2020-12-31")  # fmt: skip
    assert engine.period_for("weeks", table.starts[0]) == periods.week(2020, 53)
    assert table.sizes == [4]
    assert table.cells == [[1, 3, None]]


@pytest.mark.parametrize(
    ("time_group", "num_results", "start_date", "expected"),
    [
        ("days", 3, "2024-05-07", [date(2024, 5, 7), date(2024, 5, 8), date(2024, 5, 9)]),
        ("weeks", 3, "2024-05-07", [date(2024, 4, 25), date(2024, 5, 2), date(2024, 5, 9)]),
        ("months", 3, "2024-05-31", [date(2024, 4, 1), date(2024, 5, 1), date(2024, 6, 1)]),
        ("months", 1, "2024-03-31", [date(2024, 3, 1)]),
        ("years", 1, "2024-02-29", [date(2022, 2, 28), date(2023, 2, 28), date(2024, 2, 28)]),
        ("days", 0, "2024-05-07", []),
    ],
)
def test_row_starts_follow_bitmapist(
    time_group: str, num_results: int, start_date: str, expected: list[date]
) -> None:
    starts = engine.row_starts(time_group, num_results, start_date)  # type: ignore[arg-type]
    assert [s.date() for s in starts] == expected
    assert all(s.tzinfo is UTC for s in starts)


def test_no_start_date_ends_today(bc: bitcore.BitCore) -> None:
    now = datetime(2024, 5, 9, 15, 30, tzinfo=UTC)
    starts = engine.row_starts("days", 3, None, now)
    assert starts == [now - timedelta(days=2), now - timedelta(days=1), now]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_group": "hours"}, "time_group"),
        ({"num_results": -1}, "num_results"),
        ({"num_of_rows": -2}, "num_of_rows"),
    ],
)
def test_bad_arguments_raise_clear_errors(
    bc: bitcore.BitCore, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cohort.get_dates_data("active", "play", system=bc, **kwargs)


@pytest.mark.flat_only("custom handlers are refused on the sharded layout (docs/cluster.md)")
@pytest.mark.parametrize("how", ENGINES, ids=ENGINE_IDS)
def test_custom_handlers_and_segments_leave_no_keys(
    bc: bitcore.BitCore,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    how: dict[str, Any],
) -> None:
    oracle = mark(bc, random_marks(5, 20, 40, datetime(2024, 5, 1)))
    SegmentStore(bc).save("ios_players", "ios AND play")
    monkeypatch.setattr(cohort, "CUSTOM_HANDLERS", {})
    cohort.set_custom_handler(
        "active_or_ios", lambda key, cls, args: cls("active", *args) | cls("ios", *args)
    )
    before = set(redis_client.keys("*"))
    table = cohort.cohort_table("active_or_ios", "segment:ios_players", system=bc, num_results=5,
                                num_of_rows=3, start_date="2024-05-03",
                                **how)  # fmt: skip
    assert set(redis_client.keys("*")) == before
    for offset in range(20):
        period = periods.day(2024, 5, 1 + offset)
        active, ios, play = (oracle.get((e, period), set()) for e in ("active", "ios", "play"))
        oracle[("active_or_ios", period)] = active | ios
        oracle[("ios_players", period)] = ios & play
    selections = ("active_or_ios", None, "ios_players", None)
    assert table.bitmapist_rows() == expected_rows(
        oracle, table.starts, "days", selections, 3, True
    )
    assert any(c not in (None, 0) for row in table.cells for c in row)


@pytest.mark.flat_only("the module-level bitmapist facade: flat")
def test_module_facade_uses_the_default_system(default_system: redis.Redis) -> None:
    bitcore.mark_event("active", 1, now=datetime(2024, 5, 6))
    bitcore.mark_event("play", 1, now=datetime(2024, 5, 7))
    rows = cohort.get_dates_data(
        "active", "play", num_results=1, num_of_rows=1, start_date="2024-05-06"
    )
    assert rows[0][1:] == [1, "", 100.0]


def test_bitmapist_renderers(bc: bitcore.BitCore) -> None:
    start = datetime(2024, 5, 6, tzinfo=UTC)
    rows = [[start, 4, 100.0, 0.0, ""], [start + timedelta(days=1), 0, "", "", ""]]
    assert cohort.render_csv_data(rows, num_of_rows=2) == (
        "Date,Total,0,1,2\n06 May 2024,4,100.0,0.0,\n07 May 2024,0,,,\n"
    )
    html = cohort.render_html_data(rows, num_of_rows=2)
    assert html.count("<tr>") == 4 and "100.0%" in html and "06 May, 2024" in html
    assert (
        '<td class="avg_row">100.0%</td>' in html
    )  # the mean of the non-blank cells, as bitmapist
    form = cohort.render_html_form(
        "/c?x=<b>", [("<Active>", "active"), ("Play", "play")], select1="active", select2="play",
        time_group="weeks", as_percent=0, num_results=28,
    )  # fmt: skip
    assert "&lt;Active&gt;" in form and "<Active>" not in form and 'action="/c?x=&lt;b&gt;"' in form
    assert '<option value="active" selected="selected">' in form
    assert '<option value="weeks" selected="selected">' in form
    assert '<option value="28" selected="selected">' in form
    assert '<option value="0" selected="selected">No</option>' in form
    assert 'name="select1b"' in form and '<option value="">------</option>' in form
