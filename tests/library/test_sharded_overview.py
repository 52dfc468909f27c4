"""The overview, an event's page, the flags and the untracked-event warnings on the three layouts
(single-flat, single-sharded, the cluster): the same numbers as a flat reference, each count the
sum of its shards', counted in one pipeline per node."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
import redis
from redis.client import Pipeline

import bitcore
from bitcore import overview, wire
from bitcore.segments import parse_expression
from bitcore.untracked import expression_warnings

SHARD = 1 << 20
#: Users in shards 0, 1 and 7 (holes between them), on three days of one week and two months.
USERS = [0, 5, SHARD, SHARD + 3, 7 * SHARD, 7 * SHARD + 9]
DAYS = [datetime(2024, 4, 30, 9), datetime(2024, 5, 6, 10), datetime(2024, 5, 7, 11)]
TODAY = date(2024, 5, 7)


def _mark(b: bitcore.BitCore) -> None:
    marks = [("song:played", u, DAYS[i % 3]) for i, u in enumerate(USERS)]
    marks += [("song:played", u, DAYS[2]) for u in USERS[::3]]
    marks += [("signup", u, DAYS[0]) for u in USERS[1::2]]
    b.mark_many(marks)
    for user in USERS[2:]:
        b.mark_unique("ios", user)
    b.mark_unique("song:played", USERS[-1])


def _answers(b: bitcore.BitCore) -> dict[str, Any]:
    page = overview.overview(b, TODAY)
    activity = overview.event_activity(b, "song:played", TODAY)
    flags, complete = overview.flags(b)
    tree = parse_expression("song:played AND NOT churned AND unique(ios) AND unique(none) OR ios")
    return {
        "rows": page.events,
        "flags": (page.flags, flags, complete),
        "activity": activity,
        "flag_size": overview.flag_size(b, "ios"),
        "has_flag": [overview.has_flag(b, "ios", u) for u in (*USERS, SHARD + 1)],
        "was_active": [overview.was_active(b, "song:played", u, TODAY) for u in USERS],
        "warnings": expression_warnings(b, tree),
    }


@pytest.fixture
def flat_answers(redis_client: redis.Redis) -> dict[str, Any]:
    reference = bitcore.BitCore(redis_client, key_prefix="flat_")
    _mark(reference)
    return _answers(reference)


def test_the_overview_and_flag_pages_give_the_flat_numbers(
    layout_bc: bitcore.BitCore, flat_answers: dict[str, Any]
) -> None:
    _mark(layout_bc)
    answers = _answers(layout_bc)
    assert answers == flat_answers
    rows = {row.name: row for row in answers["rows"]}
    assert rows["song:played"].today == 4  # USERS[2], USERS[5] (day 3) and USERS[0], USERS[3]
    assert rows["song:played"].this_week == 6 and rows["song:played"].this_month == 6
    assert rows["song:played"].trend[-8] == 2  # April 30: USERS[0], USERS[3]
    assert rows["song:played"].unique == 1 and rows["signup"].this_month == 0
    assert answers["activity"].users_last_30_days == 6
    assert answers["flag_size"] == 4 and sum(answers["has_flag"]) == 4
    assert len(answers["warnings"]) == 3  # churned, unique(none), ios used as a dated event


def test_the_counts_are_one_pipeline_per_node(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = bitcore.BitCore(redis_client, layout="sharded")
    _mark(b)
    b.register_shards(range(8))
    sizes: list[int] = []
    real = wire.round_trip
    monkeypatch.setattr(wire, "round_trip", lambda r, c: sizes.append(len(c)) or real(r, c))
    monkeypatch.setattr(Pipeline, "execute", lambda *_: pytest.fail("a pipeline of its own"))
    rows = overview.summaries(b, ["song:played", "signup"], TODAY)
    assert sizes == [8 * 2 * (2 + overview.TREND_DAYS + 1)]  # 8 shards x 2 names x 33 keys
    assert rows[0].today == 4
