"""Compared reports by dated segments in a few round trips: every period's segment program is
queued in a few bounded pipelines (``bitcore.reading.opened``), not computed period by period.

Round trips are counted as redis-py sends them (``send_packed_command``: one per command or
pipeline), as ``bench/reports.py`` does. The answers are checked against reports of the same
users written as flags, and no key is left behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

import bitcore
from bitcore import breakdown, funnel, lifecycle, periods, reading, stickiness
from bitcore.cohort import engine
from bitcore.segments import SegmentStore, SegmentTooCostly
from tests.private_redis import private_redis

BASE = datetime(2025, 3, 3)  # a Monday
#: Three dated segments, one with a NOT (the universe) and one with a XOR.
SEGMENTS = {"s1": "b OR c", "s2": "b AND NOT c", "s3": "(a XOR c) AND unique(premium)"}
GROUPS = [f"segment:{name}" for name in SEGMENTS]
UNTIL = BASE + timedelta(days=35)  # "on or after" counts returns up to this day
#: A compared report by three dated segments may take this many round trips at most.
MOST_ROUND_TRIPS = 10


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """One entry per command or pipeline redis-py sends from now on."""
    log: list[int] = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        log.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    yield log


def write(b: bitcore.BitCore, days: int = 40, users: int = 300) -> None:
    """Every user does a, b and c on some days, by a fixed rule; a third are premium."""
    marks = [
        (event, uid, BASE + timedelta(days=day))
        for day in range(days)
        for uid in range(users)
        for event, every in (("a", 3), ("b", 4), ("c", 5))
        if (uid * 7 + day * (every + 1)) % every == 0
    ]
    b.mark_many(marks)
    b.mark_unique_many([("premium", uid) for uid in range(0, users, 3)])
    store = SegmentStore(b)
    for name, expression in SEGMENTS.items():
        store.save(name, expression)


def cohort(b: bitcore.BitCore) -> list[engine.CohortTable]:
    """20 daily cohorts x 9 columns, on or after, by the three segments."""
    return engine.cohort_tables(
        b, "a", "b", None, None, "days", 20, 8, "2025-03-04", groups=GROUPS,
        retention="on_or_after", until=UNTIL,
    )  # fmt: skip


def reports(b: bitcore.BitCore) -> dict[str, Callable[[], object]]:
    groups = breakdown.parse_groups(GROUPS)
    day = periods.period_of("day", BASE + timedelta(days=2))
    return {
        "cohort": lambda: cohort(b),
        "lifecycle": lambda: lifecycle.lifecycle_groups(
            b, "a", "day", 20, periods.shift(day, 20), groups
        ),
        "stickiness": lambda: stickiness.stickiness_groups(
            b, "a", periods.period_of("week", BASE), groups
        ),
        "funnel": lambda: funnel.funnel_groups(b, ["a", "b", "c"], day, 7, groups, trend=3),
        # segments as a report's own steps, read the same way
        "cohort of segments": lambda: engine.cohort_table(
            b, "segment:s1", "segment:s2", "segment:s3", None, "days", 20, 8, "2025-03-04"
        ),
        "funnel of segments": lambda: funnel.funnel_trend(
            b, ["segment:s1", "segment:s2", "segment:s3"], day, 7, 3, where="client"
        ),
    }


REPORTS = ["cohort", "lifecycle", "stickiness", "funnel"]
REPORTS += ["cohort of segments", "funnel of segments"]


@pytest.mark.parametrize("report", REPORTS)
def test_a_report_compared_by_three_dated_segments_takes_a_few_round_trips(
    bc: bitcore.BitCore, redis_client: redis.Redis, sent: list[int], report: str
) -> None:
    write(bc)
    before = set(redis_client.keys("*"))
    sent.clear()
    reports(bc)[report]()
    assert len(sent) <= MOST_ROUND_TRIPS
    assert set(redis_client.keys("*")) == before, "a compared report leaves no key behind"


def test_segments_computed_in_pipelines_count_what_they_did_period_by_period(
    bc: bitcore.BitCore, redis_client: redis.Redis
) -> None:
    """Each group's numbers are those of the same segment computed alone in each period
    (``SegmentStore.bitmap``), here for the cohort table: its cohort sizes and cells."""
    write(bc)
    tables = cohort(bc)
    store, last = SegmentStore(bc), periods.period_of("day", UNTIL)
    for table, name in zip(tables[1:], SEGMENTS, strict=True):
        for i in range(20):
            day = table.period(i)
            members = set(bc.event("a", day)) & set(store.bitmap(name, day))
            assert table.sizes[i] == len(members)
            for k, cell in enumerate(table.cells[i]):  # b in day + k or any day up to the last
                returned: set[int | str] = set()
                for later in range(periods.count_between(periods.shift(day, k), last)):
                    returned |= set(bc.event("b", periods.shift(day, k + later)))
                assert (cell or 0) == len(members & returned)


def test_pipelines_are_cut_where_their_bitops_would_hold_redis_too_long(
    bc: bitcore.BitCore, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget of one BITOP's bytes per pipeline, every pipeline walks at most that (or
    one BITOP), the answers unchanged."""
    write(bc)
    expected = reports(bc)["lifecycle"]()
    walked: list[int] = []
    real = reading.run_builds

    def tiny(client: bitcore.BitCore, builds: Any, budget: int = 0) -> list[int]:
        walked.extend(real(client, builds, 40))
        return walked

    monkeypatch.setattr(reading, "run_builds", tiny)
    assert reports(bc)["lifecycle"]() == expected
    assert len(walked) > 10 and max(walked) <= 40 * 2  # one BITOP of two 38-byte keys


def test_a_segment_too_costly_is_refused_before_anything_is_written(
    bc: bitcore.BitCore, redis_client: redis.Redis
) -> None:
    write(bc)
    tight = bitcore.BitCore(redis_client, segment_max_bytes=40)  # keys are 38 bytes long
    before = set(redis_client.keys("*"))
    with pytest.raises(SegmentTooCostly):
        reports(tight)["lifecycle"]()
    assert set(redis_client.keys("*")) == before


def test_a_full_redis_is_a_clean_error_and_leaves_no_key(tmp_path: Path) -> None:
    """Redis at ``maxmemory`` refuses the pipelines' BITOPs: the error reaches the caller (the
    dashboard answers it) and every scratch and private key is deleted at once."""
    with private_redis(tmp_path) as server:
        client = server.client()
        b = bitcore.BitCore(client)
        write(b)
        before = set(client.keys("*"))
        client.config_set("maxmemory", "1")
        for run in reports(b).values():
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                run()
            assert set(client.keys("*")) == before
        client.close()
