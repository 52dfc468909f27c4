"""Compared groups (``by=``: saved segments and flags) on the sharded layout (issue 17): the
cohort table, funnel, lifecycle and stickiness of every group give on single-sharded and on the
Redis Cluster what they give on single-flat, and what a Python-set oracle says
(``test_breakdown.Oracle``). Each shard's view builds its groups' segments in its own slot and
the shards' counts add up."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from cluster_support import LocalCluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from test_breakdown import BASE, BY, GROUPS, Oracle

import bitcore
from bitcore import breakdown, funnel, lifecycle, periods, stickiness
from bitcore.cohort import engine
from bitcore.segments import SegmentNotFound, SegmentStore
from bitcore.shards import primaries_of

SHARD = 1 << 20
#: Where user k of the oracle's 0..40 lives: shards 0, 1 and 3, so every group crosses shards
#: and leaves an empty shard between them.
SPREAD = (0, SHARD, 3 * SHARD)
USER = st.integers(0, 40).map(lambda k: SPREAD[k % 3] + k)
WHEN = st.integers(0, 20).map(lambda d: BASE + timedelta(days=d))
MARKS = st.lists(st.tuples(st.sampled_from("aabcc"), USER, WHEN), max_size=150)
PREMIUM = st.sets(USER, max_size=20)
Mark = tuple[str, int, datetime]


def _clients(redis_client: redis.Redis, cluster: RedisCluster) -> list[bitcore.BitCore]:
    """Single-flat, single-sharded (another prefix: both on one Redis) and the cluster."""
    return [
        bitcore.BitCore(redis_client),
        bitcore.BitCore(redis_client, layout="sharded", key_prefix="sh_"),
        bitcore.BitCore(cluster),
    ]


def _store(client: bitcore.BitCore, written: list[Mark], premium: set[int]) -> None:
    """``test_breakdown.store``'s data and segments, written through ``client``."""
    client.mark_many(written)
    if premium:
        client.mark_unique_many([("premium", uid) for uid in sorted(premium)])
    SegmentStore(client).save("seg", "c OR b")
    SegmentStore(client).save("neg", "NOT c XOR (unique(premium) AND (a OR b))")


def _reports(client: bitcore.BitCore, where: str, start: int, week: int) -> dict[str, Any]:
    """Every compared report, as plain numbers (and drill-down sizes)."""
    groups = breakdown.parse_groups(GROUPS)
    tables = engine.cohort_tables(
        client, "a", "b", None, None, "days", 5, 3, "2025-03-04", where=where,  # type: ignore[arg-type]
        groups=[g.token for g in groups],
    )  # fmt: skip
    first = periods.period_of("day", BASE + timedelta(days=start))
    everyone, compared = funnel.funnel_groups(client, ["a", "b", "c"], first, 5, groups, trend=3)
    end = periods.period_of("day", BASE + timedelta(days=12))
    cycles = lifecycle.lifecycle_groups(client, "a", "day", 8, end, groups)
    week_period = periods.period_of("week", BASE + timedelta(weeks=week))
    sticky = stickiness.stickiness_groups(client, "a", week_period, groups)
    return {
        "tables": [(t.group, t.sizes, t.cells) for t in tables],
        "drilled cells": [len(t.cell_users(i, 1)) for t in tables for i in (0, 2)],
        "funnels": [[s.count for s in f.steps] for f in (*everyone.funnels, *compared)],
        "drilled steps": [len(f.step_users(3)) for f in compared],
        "lifecycles": [[p.as_dict() for p in report.periods] for report in cycles],
        "stickiness": [report.histogram for report in sticky],
    }


def _check_oracle(found: dict[str, Any], oracle: Oracle, start: int, week: int) -> None:
    """The flat answers against the oracle (``test_breakdown``'s definitions, abridged)."""
    for (by, sizes, cells), expected_by in zip(found["tables"], BY, strict=True):
        assert by == expected_by
        for i in range(5):
            day = periods.day(2025, 3, 4 + i)
            cohort = oracle.within(oracle.users("a", day), by, day)
            assert sizes[i] == len(cohort)
            later = [len(cohort & oracle.users("b", periods.shift(day, k))) for k in range(4)]
            assert [c or 0 for c in cells[i]] == later
    first = periods.period_of("day", BASE + timedelta(days=start))
    for counts, by in zip(found["funnels"][2:], BY, strict=True):
        reached = [oracle.within(oracle.users("a", first), by, first), set(), set()]
        for p in funnel.window_periods(first, 5):
            for k, event in ((1, "b"), (2, "c")):
                reached[k] |= reached[k - 1] & oracle.users(event, p)
        assert counts == [len(r) for r in reached]
    period = periods.period_of("week", BASE + timedelta(weeks=week))
    for histogram, by in zip(found["stickiness"], BY, strict=True):
        days: dict[int, int] = {}
        for day in stickiness.days_of(period):
            for uid in oracle.within(oracle.users("a", day), by, period):
                days[uid] = days.get(uid, 0) + 1
        assert histogram == [sum(1 for n in days.values() if n == k) for k in range(1, 8)]
    end = periods.period_of("day", BASE + timedelta(days=12))
    for rows, by in zip(found["lifecycles"], BY, strict=True):
        for t, row in enumerate(rows):
            now = periods.shift(end, t - 7)
            before = periods.shift(now, -1)
            active, previous = oracle.users("a", now), oracle.users("a", before)
            new = {u for u in active if periods.period_of("day", oracle.first[u]) == now}
            assert (row["new"], row["returning"], row["dormant"]) == (
                len(oracle.within(new, by, now)),
                len(oracle.within(active & previous, by, now)),
                len(oracle.within(previous - active, by, before)),
            )


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    written=MARKS,
    premium=PREMIUM,
    where=st.sampled_from(["client", "server", "auto"]),
    start=st.integers(0, 8),
    week=st.integers(0, 2),
)
def test_compared_reports_agree_on_the_three_layouts(
    redis_client: redis.Redis,
    redis_cluster: LocalCluster,
    cluster_client: RedisCluster,
    written: list[Mark],
    premium: set[int],
    where: str,
    start: int,
    week: int,
) -> None:
    redis_client.flushall()
    redis_cluster.flushall()
    answers = []
    for client in _clients(redis_client, cluster_client):
        _store(client, written, premium)
        answers.append(_reports(client, where, start, week))
    _check_oracle(answers[0], Oracle(written, premium), start, week)
    assert answers[1] == answers[0], "single-sharded"
    assert answers[2] == answers[0], "the cluster"


def test_groups_over_many_shards_answer_as_flat(
    redis_client: redis.Redis, cluster_client: RedisCluster
) -> None:
    """Seven shards, a first-time cohort and a segment step compared by a segment and a flag,
    a funnel trend; each number the flat client's, and not all of them zero."""
    day = datetime(2025, 3, 3)
    users = [shard * SHARD + k for shard in range(7) for k in (1, 9)]
    marks: list[Mark] = [("a", u, day) for u in users]
    marks += [("b", u, day + timedelta(days=1)) for u in users[::2]]
    marks += [("c", u, day + timedelta(days=2)) for u in users[::3]]
    marks += [("a", u, day + timedelta(days=1)) for u in (8 * SHARD, 8 * SHARD + 4)]
    answers = []
    for client in _clients(redis_client, cluster_client):
        client.mark_many(marks)
        client.mark_unique_many([("premium", u) for u in users[1::2]])
        SegmentStore(client).save("bc", "b OR c")
        by = ["segment:bc", "flag:premium"]
        first = engine.cohort_tables(
            client, "a", "b", None, None, "days", 2, 1, "2025-03-03",
            cohort_type="first_time", groups=by,
        )  # fmt: skip
        of_segment = engine.cohort_tables(
            client, "segment:bc", "c", None, None, "days", 3, 1, "2025-03-03", groups=by[1:]
        )
        groups = breakdown.parse_groups(by)
        everyone, compared = funnel.funnel_groups(
            client, ["a", "segment:bc"], periods.day(2025, 3, 3), 3, groups, trend=2
        )
        answers.append(
            (
                [(t.sizes, t.cells) for t in (*first, *of_segment)],
                [[s.count for s in f.steps] for f in (*everyone.funnels, *compared)],
                sorted(compared[1].step_users(2)),
            )
        )
    assert answers[0] == answers[1] == answers[2]
    tables, funnels, premium_converted = answers[0]
    assert tables[0] == ([14, 2], [[None, 7], [0, None]])  # everyone's first times: 2 on day 2
    assert tables[2] == ([7, 0], [[None, 0], [None, None]])  # premium: the k=9 users, none in b
    assert tables[3] == ([0, 7, 5], [[None, None], [None, 3], [5, None]])  # cohorts of b OR c
    assert tables[4] == ([0, 0, 2], [[None, None], [None, None], [2, None]])  # ... premium's
    assert funnels == [[0, 0], [14, 9], [0, 0], [7, 2]]  # 3/2, 3/3; by bc (none on 3/3), premium
    assert premium_converted == sorted(set(users[1::2]) & (set(users[::2]) | set(users[::3])))


def test_a_group_naming_no_segment_is_refused_on_every_layout(
    layout_bc: bitcore.BitCore,
) -> None:
    """Even with no shard in use (nothing marked yet), as the flat layout refuses it."""
    missing = breakdown.parse_groups(["segment:nope"])
    week, day = periods.week(2025, 10), periods.day(2025, 3, 3)
    calls = [
        lambda: engine.cohort_tables(layout_bc, "a", "b", now=BASE, groups=["segment:nope"]),
        lambda: funnel.funnel_groups(layout_bc, ["a", "b"], day, 2, missing),
        lambda: lifecycle.lifecycle_groups(layout_bc, "a", "week", 2, week, missing),
        lambda: stickiness.stickiness_groups(layout_bc, "a", week, missing),
    ]
    for marked in (False, True):
        if marked:
            layout_bc.mark_event("a", 5 * SHARD, now=BASE)
        for call in calls:
            with pytest.raises(SegmentNotFound):
                call()
    everyone, flagged = stickiness.stickiness_groups(
        layout_bc, "a", week, breakdown.parse_groups(["flag:none"])
    )
    assert everyone.histogram[0] == 1 and flagged.users == 0


def test_a_compared_report_leaves_no_lasting_key(layout_bc: bitcore.BitCore) -> None:
    """Each shard's segment results are private to the read and unlinked after it; what is
    left (shared bit-op results) expires."""
    users = [1, SHARD + 2, 4 * SHARD + 3]
    layout_bc.mark_many([(e, u, BASE) for e in ("a", "b") for u in users])
    SegmentStore(layout_bc).save("seg", "a AND NOT b OR b")
    nodes = primaries_of(layout_bc.redis)
    before = {key for node in nodes for key in node.keys("*")}
    groups = breakdown.parse_groups(["segment:seg"])
    _, seg = lifecycle.lifecycle_groups(layout_bc, "a", "day", 1, periods.day(2025, 3, 3), groups)
    assert seg.periods[0].new == 3
    for node in nodes:
        for key in set(node.keys("*")) - before:
            assert node.ttl(key) > 0, key
