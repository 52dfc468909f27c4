"""Compared reports (``bitcore.breakdown``): every group's cohort table, funnel, lifecycle and
stickiness against a Python-set oracle on random data, a segment and a flag side by side."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import breakdown, funnel, lifecycle, periods, stickiness
from bitcore.cohort import engine
from bitcore.segments import SegmentStore

Mark = tuple[str, int, datetime]
BASE = datetime(2025, 3, 3)  # a Monday
when = st.integers(0, 20).map(lambda d: BASE + timedelta(days=d))
marks = st.lists(st.tuples(st.sampled_from("aabcc"), st.integers(0, 40), when), max_size=200)
flagged = st.sets(st.integers(0, 40), max_size=25)
GROUPS = ["segment:seg", "unique:premium", "segment:neg"]
BY = [None, "segment:seg", "flag:premium", "segment:neg"]


class Oracle:
    """Who did what in which day, and who is in each group in a period."""

    def __init__(self, written: list[Mark], premium: set[int]) -> None:
        self.did: dict[tuple[str, periods.Period], set[int]] = {}
        self.first: dict[int, datetime] = {}
        for event, uid, moment in written:
            for kind in ("day", "week"):
                self.did.setdefault((event, periods.period_of(kind, moment)), set()).add(uid)
            if event == "a":
                self.first[uid] = min(self.first.get(uid, moment), moment)
        self.premium = premium
        self.universe = {uid for _, uid, _ in written} | premium

    def users(self, event: str, period: periods.Period) -> set[int]:
        return self.did.get((event, period), set())

    def group(self, by: str | None, period: periods.Period) -> set[int] | None:
        if by is None:
            return None
        if by == "segment:seg":  # "c OR b": computed on Redis per period
            return self.users("c", period) | self.users("b", period)
        if by == "segment:neg":  # NOT is the universe's: everyone marked
            also = self.premium & (self.users("a", period) | self.users("b", period))
            return (self.universe - self.users("c", period)) ^ also
        return self.premium

    def within(self, users: set[int], by: str | None, period: periods.Period) -> set[int]:
        members = self.group(by, period)
        return users if members is None else users & members


def store(redis_client: redis.Redis, written: list[Mark], premium: set[int]) -> bitcore.BitCore:
    redis_client.flushall()
    b = bitcore.BitCore(redis_client)
    b.mark_many(written)
    b.mark_unique_many([("premium", uid) for uid in sorted(premium)])
    SegmentStore(b).save("seg", "c OR b")
    SegmentStore(b).save("neg", "NOT c XOR (unique(premium) AND (a OR b))")
    return b


SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(written=marks, premium=flagged, where=st.sampled_from(["client", "server", "auto"]))
def test_cohort_groups_match_the_oracle(
    redis_client: redis.Redis, written: list[Mark], premium: set[int], where: str
) -> None:
    b = store(redis_client, written, premium)
    oracle = Oracle(written, premium)
    before = set(redis_client.keys("*"))
    tables = engine.cohort_tables(
        b, "a", "b", None, None, "days", 5, 3, "2025-03-04", where=where,  # type: ignore[arg-type]
        groups=[g.token for g in breakdown.parse_groups(GROUPS)],
    )  # fmt: skip
    left = set(redis_client.keys("*")) - before
    assert all(redis_client.ttl(key) > 0 for key in left), "a report leaves no lasting key"
    assert [t.group for t in tables] == BY
    for table, by in zip(tables, BY, strict=True):
        for i in range(5):
            day = table.period(i)
            cohort = oracle.within(oracle.users("a", day), by, day)
            assert table.sizes[i] == len(cohort)
            expected = [len(cohort & oracle.users("b", periods.shift(day, k))) for k in range(4)]
            assert [c or 0 for c in table.cells[i]] == expected
            assert len(table.cell_users(i, 1)) == expected[1]
    plain = engine.cohort_table(b, "a", "b", None, None, "days", 5, 3, "2025-03-04")
    assert plain.cells == tables[0].cells and plain.sizes == tables[0].sizes


@SETTINGS
@given(written=marks, premium=flagged, start=st.integers(0, 8))
def test_funnel_groups_match_the_oracle(
    redis_client: redis.Redis, written: list[Mark], premium: set[int], start: int
) -> None:
    b = store(redis_client, written, premium)
    oracle = Oracle(written, premium)
    first = periods.period_of("day", BASE + timedelta(days=start))
    groups = breakdown.parse_groups(GROUPS)
    everyone, compared = funnel.funnel_groups(b, ["a", "b", "c"], first, 5, groups, trend=3)
    found = [everyone.funnels[-1], *compared]
    for report, by in zip(found, BY, strict=True):
        reached = [oracle.within(oracle.users("a", first), by, first), set(), set()]
        for p in funnel.window_periods(first, 5):
            for k, event in ((1, "b"), (2, "c")):
                reached[k] |= reached[k - 1] & oracle.users(event, p)
        assert [s.count for s in report.steps] == [len(r) for r in reached]
        assert len(report.step_users(3)) == len(reached[2])
    alone = funnel.funnel_trend(b, ["a", "b", "c"], first, 5, 3)
    assert [[s.count for s in f.steps] for f in alone.funnels] == [
        [s.count for s in f.steps] for f in everyone.funnels
    ]


@SETTINGS
@given(written=marks, premium=flagged)
def test_lifecycle_groups_match_the_oracle(
    redis_client: redis.Redis, written: list[Mark], premium: set[int]
) -> None:
    b = store(redis_client, written, premium)
    oracle = Oracle(written, premium)
    end = periods.period_of("day", BASE + timedelta(days=12))
    groups = breakdown.parse_groups(GROUPS)
    found = lifecycle.lifecycle_groups(b, "a", "day", 8, end, groups)
    for report, by in zip(found, BY, strict=True):
        for t, row in enumerate(report.periods):
            now = periods.shift(end, t - 7)
            before = periods.shift(now, -1)
            active, previous = oracle.users("a", now), oracle.users("a", before)
            new = {u for u in active if periods.period_of("day", oracle.first[u]) == now}
            assert row.as_dict() == {
                "period": periods.label(now),
                "new": len(oracle.within(new, by, now)),
                "returning": len(oracle.within(active & previous, by, now)),
                "resurrecting": len(oracle.within(active - previous - new, by, now)),
                "dormant": len(oracle.within(previous - active, by, before)),
            }
    assert found[0] == lifecycle.lifecycle(b, "a", "day", 8, end)


@SETTINGS
@given(written=marks, premium=flagged, week=st.integers(0, 2))
def test_stickiness_groups_match_the_oracle(
    redis_client: redis.Redis, written: list[Mark], premium: set[int], week: int
) -> None:
    b = store(redis_client, written, premium)
    oracle = Oracle(written, premium)
    period = periods.period_of("week", BASE + timedelta(weeks=week))
    groups = breakdown.parse_groups(GROUPS)
    found = stickiness.stickiness_groups(b, "a", period, groups)
    for report, by in zip(found, BY, strict=True):
        days: dict[int, int] = {}
        for day in stickiness.days_of(period):
            for uid in oracle.within(oracle.users("a", day), by, period):
                days[uid] = days.get(uid, 0) + 1
        assert report.histogram == [sum(1 for n in days.values() if n == k) for k in range(1, 8)]
    assert found[0] == stickiness.stickiness(b, "a", period)


def test_groups_are_segments_or_flags_and_at_most_five() -> None:
    assert breakdown.parse_groups(["", " flag:x ", "unique:x", "segment:y"]) == [
        breakdown.Group("flag:x", breakdown.Selection("flag", "x")),
        breakdown.Group("segment:y", breakdown.Selection("segment", "y")),
    ]
    with pytest.raises(breakdown.GroupError, match="at most 5"):
        breakdown.parse_groups([f"flag:f{k}" for k in range(6)])
    for bad in ("ios", "event:ios", "segment:", "flag"):
        with pytest.raises(breakdown.GroupError, match="not a group"):
            breakdown.parse_group(bad)


def test_a_groups_dormant_users_are_its_members_of_the_period_before(bc: bitcore.BitCore) -> None:
    """User 1 did "a" and "c" (the segment) on day 1 and nothing on day 2: dormant on day 2 in
    the segment's lifecycle, as it was in the segment when it was last active; user 2, active
    on day 1 outside it, is dormant but not the segment's (user 3 is in it on day 2 only)."""
    day1, day2 = BASE, BASE + timedelta(days=1)
    bc.mark_many([("a", 1, day1), ("c", 1, day1), ("a", 2, day1), ("c", 3, day2)])
    SegmentStore(bc).save("seg", "c")
    groups = breakdown.parse_groups(["segment:seg"])
    everyone, seg = lifecycle.lifecycle_groups(
        bc, "a", "day", 1, periods.period_of("day", day2), groups
    )
    assert everyone.periods[0].dormant == 2 and seg.periods[0].dormant == 1
