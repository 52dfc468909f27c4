"""bitcore.funnel against a Python-set oracle, on the real test Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
import redis
from drill_support import reached_sets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import funnel, periods
from bitcore.bitmaps import Bitmap
from bitcore.selections import Selection

pytestmark = pytest.mark.all_layouts

START = periods.day(2024, 12, 30)  # the window crosses a calendar year and an ISO week


def moment(offset: int, base: periods.Period = START) -> datetime:
    """Noon of the day ``offset`` days after ``base``."""
    return periods.start(periods.shift(base, offset)).replace(tzinfo=None, hour=12)


def oracle(did: list[list[set[int]]], window: int) -> list[int]:
    """Step counts by the definition, walking each user: the earliest period that completes step k.

    ``did[k][p]`` is the set of users who did step ``k`` in window period ``p`` (0 = start period).
    """
    return [len(users) for users in reached_sets(did, window)]


def write(bc: bitcore.BitCore, names: list[str], did: list[list[set[int]]], shift: int = 0) -> None:
    """Mark ``did[k][p]`` as event ``names[k]`` on day ``p - shift`` from START."""
    bc.mark_many(
        (names[k], user, moment(p - shift))
        for k, per_period in enumerate(did)
        for p, users in enumerate(per_period)
        for user in users
    )


memberships = st.integers(2, 4).flatmap(
    lambda steps: st.integers(1, 4).flatmap(
        lambda window: st.lists(
            st.lists(
                st.sets(st.integers(0, 40), max_size=12), min_size=window + 2, max_size=window + 2
            ),
            min_size=steps,
            max_size=steps,
        ).map(lambda did: (window, did))
    )
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(memberships)
def test_counts_match_the_set_oracle(
    bc: bitcore.BitCore, redis_client: redis.Redis, case: tuple[int, list[list[set[int]]]]
) -> None:
    """Random memberships over the window plus one period either side (which must not count)."""
    window, did = case
    redis_client.flushall()
    names = [f"step{k}" for k in range(len(did))]
    # did[k][0] is the day before START and did[k][window + 1] the day after the window
    write(bc, names, did, shift=1)
    inside = [per_period[1 : window + 1] for per_period in did]
    before = set(redis_client.keys())

    result = funnel.funnel(bc, names, START, window)

    assert [s.count for s in result.steps] == oracle(inside, window)
    assert set(redis_client.keys()) == before


def test_step_rates_and_drop_off(bc: bitcore.BitCore) -> None:
    write(bc, ["a", "b", "c"], [[set(range(10))], [set(range(4))], [{0}]])
    steps = funnel.funnel(bc, ["a", "b", "c"], START, 1).steps
    assert [(s.count, s.of_first, s.of_previous, s.drop_off) for s in steps] == [
        (10, 1.0, 1.0, 0),
        (4, 0.4, 0.4, 6),
        (1, 0.1, 0.25, 3),
    ]


def test_empty_first_step_has_no_rates(bc: bitcore.BitCore) -> None:
    steps = funnel.funnel(bc, ["a", "b"], START, 3).steps
    assert [(s.count, s.of_first, s.of_previous) for s in steps] == [(0, None, None)] * 2


@pytest.mark.parametrize(
    ("second_step_offset", "window", "counted"),
    [
        (0, 1, True),  # same period as step 1
        (2, 3, True),  # last period of the window: included
        (3, 3, False),  # the period after the window: excluded
        (-1, 3, False),  # before the start period
        (89, 90, True),
        (90, 90, False),
    ],
)
def test_window_edges(
    bc: bitcore.BitCore, second_step_offset: int, window: int, counted: bool
) -> None:
    bc.mark_many([("signup", 7, moment(0)), ("buy", 7, moment(second_step_offset))])
    counts = [s.count for s in funnel.funnel(bc, ["signup", "buy"], START, window).steps]
    assert counts == [1, 1 if counted else 0]


def test_step_one_only_counts_the_start_period(bc: bitcore.BitCore) -> None:
    bc.mark_many([("signup", 1, moment(1)), ("buy", 1, moment(1))])
    assert [s.count for s in funnel.funnel(bc, ["signup", "buy"], START, 5).steps] == [0, 0]


def test_steps_in_one_period_count_in_any_order(bc: bitcore.BitCore) -> None:
    """Ordered by period, not timestamp: step 3 before step 2 on the same day still counts."""
    day = moment(1)
    bc.mark_many(
        [("a", 1, moment(0)), ("c", 1, day.replace(hour=8)), ("b", 1, day.replace(hour=20))]
    )
    assert [s.count for s in funnel.funnel(bc, ["a", "b", "c"], START, 2).steps] == [1, 1, 1]


def test_a_later_step_in_an_earlier_period_does_not_count(bc: bitcore.BitCore) -> None:
    bc.mark_many([("a", 1, moment(0)), ("c", 1, moment(0)), ("b", 1, moment(1))])
    assert [s.count for s in funnel.funnel(bc, ["a", "b", "c"], START, 3).steps] == [1, 1, 0]


@pytest.mark.parametrize(
    ("kind", "when", "later"),
    [
        ("hour", datetime(2024, 12, 31, 23), datetime(2025, 1, 1, 1)),
        ("week", datetime(2024, 12, 30), datetime(2025, 1, 13)),
        ("month", datetime(2024, 12, 15), datetime(2025, 2, 1)),
    ],
)
def test_other_period_kinds(
    make_bc: Callable[..., bitcore.BitCore],
    redis_client: redis.Redis,
    kind: periods.Kind,
    when: datetime,
    later: datetime,
) -> None:
    bc = make_bc(track_hourly=True)
    bc.mark_many([("a", 1, when), ("a", 2, when), ("b", 1, later)])
    start = periods.period_of(kind, when)
    within = periods.period_of(kind, later)
    needed = next(n for n in range(1, 10) if periods.shift(start, n - 1) == within)
    assert [s.count for s in funnel.funnel(bc, ["a", "b"], start, needed).steps] == [2, 1]
    assert [s.count for s in funnel.funnel(bc, ["a", "b"], start, needed - 1).steps] == [2, 0]


def test_trend_is_the_funnel_of_each_start_period(
    bc: bitcore.BitCore, redis_client: redis.Redis
) -> None:
    bc.mark_many(
        [("a", u, moment(d)) for d in range(-3, 1) for u in range(d + 4)]
        + [("b", u, moment(d + 1)) for d in range(-3, 1) for u in range(0, d + 4, 2)]
    )
    before = set(redis_client.keys())
    trend = funnel.funnel_trend(bc, ["a", "b"], START, 2, 4)
    assert set(redis_client.keys()) == before
    assert [periods.label(f.start) for f in trend.funnels] == [
        "2024-12-27",
        "2024-12-28",
        "2024-12-29",
        "2024-12-30",
    ]
    for report in trend.funnels:
        alone = funnel.funnel(bc, ["a", "b"], report.start, 2)
        assert report == alone
    assert [[s.count for s in f.steps] for f in trend.funnels] == [[1, 1], [2, 1], [3, 2], [4, 2]]


class BitOpSelection:
    """A step whose bitmap is a bit-op expression, as a saved segment's is (``a OR b`` here)."""

    def __init__(self, left: str, right: str) -> None:
        self.left, self.right = left, right

    token = property(lambda self: f"segment:{self.left}|{self.right}")
    label = property(lambda self: f"{self.left} or {self.right} (segment)")

    def bitmap(self, client: bitcore.BitCore, period: periods.Period) -> Bitmap:
        return client.event(self.left, period) | client.event(self.right, period)


def test_segment_steps_are_computed_and_their_keys_deleted(
    bc: bitcore.BitCore, redis_client: redis.Redis
) -> None:
    bc.mark_many(
        [
            ("signup", 1, moment(0)),
            ("signup", 2, moment(0)),
            ("signup", 3, moment(0)),
            ("ios", 1, moment(1)),
            ("android", 2, moment(2)),
            ("android", 3, moment(9)),
            ("buy", 1, moment(1)),
            ("buy", 2, moment(1)),  # before user 2 reached the segment step: not counted
        ]
    )
    before = set(redis_client.keys())
    steps: list[Any] = ["signup", BitOpSelection("ios", "android"), "buy"]
    result = funnel.funnel(bc, steps, START, 3)
    assert [s.count for s in result.steps] == [3, 2, 1]
    assert result.steps[1].label == "ios or android (segment)"
    assert set(redis_client.keys()) == before
    assert not list(redis_client.scan_iter(match="*trackist_bitop_*"))


@pytest.mark.flat_only("counts server calls with INFO commandstats on one Redis")
def test_small_bitmaps_take_two_round_trips(
    bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 12-period trend of a 10-step, 90-day funnel over small bitmaps: the lengths of its keys
    (one EVALSHA), then all of them in one MGET (both on the thread's own connection, the MGET
    received straight into numpy by ``bitcore.transfer``); nothing through redis-py's commands."""
    bc.mark_many([(f"s{k}", u, moment(k)) for k in range(10) for u in range(50)])
    steps = [f"s{k}" for k in range(10)]
    funnel.funnel_trend(bc, steps, START, 90, 12, where="client")  # loads the lengths script
    sent: list[str] = []
    real_execute = bc.redis.execute_command

    def recording(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return real_execute(*args, **kwargs)

    bc.redis.config_resetstat()
    monkeypatch.setattr(bc.redis, "execute_command", recording)
    monkeypatch.setattr(bc.redis, "pipeline", lambda *a, **k: pytest.fail("a pipeline"))
    trend = funnel.funnel_trend(bc, steps, START, 90, 12, where="client")
    monkeypatch.undo()
    assert sent == []
    calls = {name: stats["calls"] for name, stats in bc.redis.info("commandstats").items()}
    calls.pop("cmdstat_config", None)  # the RESETSTAT itself, on some versions
    assert calls == {"cmdstat_evalsha": 1, "cmdstat_strlen": calls["cmdstat_strlen"],
                     "cmdstat_mget": 1}  # fmt: skip
    assert [s.count for s in trend.funnels[-1].steps] == [50] * 10


@pytest.mark.parametrize(
    ("steps", "kind", "window", "trend", "message"),
    [
        (["a"], "day", 3, 1, "2 to 10 steps, got 1"),
        ([f"e{n}" for n in range(11)], "day", 3, 1, "got 11"),
        (["a", "b"], "year", 3, 1, "period kind"),
        (["a", "b"], "day", 0, 1, "1 to 90"),
        (["a", "b"], "day", 91, 1, "1 to 90"),
        (["a", "b"], "day", 3, 0, "trend"),
        (["a", "b"], "day", 3, 53, "trend"),
    ],
)
def test_bad_parameters_are_refused(
    steps: list[str], kind: str, window: int, trend: int, message: str
) -> None:
    with pytest.raises(funnel.FunnelError, match=message):
        funnel.check_funnel(steps, kind, window, trend)


def test_tokens_and_selections_are_the_same_step(bc: bitcore.BitCore) -> None:
    bc.mark_many([("song:played", 1, moment(0)), ("pay", 1, moment(0))])
    by_token = funnel.funnel(bc, ["event:song:played", "pay"], START, 1)
    by_selection = funnel.funnel(bc, [Selection("event", "song:played"), "pay"], START, 1)
    assert by_token == by_selection
    assert by_token.steps[0].label == "song:played"


def test_as_dict_is_json_ready(bc: bitcore.BitCore) -> None:
    bc.mark_many([("a", 1, moment(0)), ("b", 1, moment(1))])
    data = funnel.funnel(bc, ["a", "b"], START, 2).as_dict()
    assert data["start"] == "2024-12-30" and data["end"] == "2024-12-31"
    assert [s["count"] for s in data["steps"]] == [1, 1]
    assert data["conversion"] == 1.0


@pytest.mark.parametrize(
    ("period", "label"),
    [
        (periods.hour(2024, 5, 7, 3), "2024-05-07 03h"),
        (periods.day(2024, 5, 7), "2024-05-07"),
        (periods.week(2025, 1), "2025-W01"),
        (periods.month(2024, 5), "2024-05"),
    ],
)
def test_period_labels(period: periods.Period, label: str) -> None:
    assert periods.label(period) == label


def test_window_periods_include_both_ends() -> None:
    got = funnel.window_periods(periods.week(2024, 52), 3)
    assert got == [periods.week(2024, 52), periods.week(2025, 1), periods.week(2025, 2)]
    assert funnel.window_periods(START, 1) == [START]
    assert moment(0) - moment(-1) == timedelta(days=1)


def test_saved_segment_steps(bc: bitcore.BitCore, redis_client: redis.Redis) -> None:
    """Real saved segments (bitcore.segments), NOT included: same counts as the set oracle."""
    from bitcore.segments import SegmentStore

    store = SegmentStore(bc)
    store.save("mobile", "ios or android")
    store.save("not_mobile_buyer", "buy and not @mobile")
    did_signup = set(range(12))
    ios = [{0, 1, 2}, {3}, set()]
    android = [{4}, set(), {5, 6}]
    buy = [{0, 4, 7}, {1, 3, 8}, {5, 9}]
    bc.mark_many(
        [("signup", u, moment(0)) for u in did_signup]
        + [(name, u, moment(p)) for name, per in (("ios", ios), ("android", android), ("buy", buy))
           for p, users in enumerate(per) for u in users]
    )  # fmt: skip
    mobile = [i | a for i, a in zip(ios, android, strict=True)]
    # NOT is taken against the universe (every user ever marked), within each period
    not_mobile_buyer = [b - m for b, m in zip(buy, mobile, strict=True)]
    before = set(redis_client.keys())

    got = funnel.funnel(bc, ["signup", "segment:mobile", "buy"], START, 3)
    assert [s.count for s in got.steps] == oracle([[did_signup], mobile, buy], 3)
    got = funnel.funnel(bc, ["signup", "segment:not_mobile_buyer"], START, 3)
    assert [s.count for s in got.steps] == oracle([[did_signup], not_mobile_buyer], 3)
    assert set(redis_client.keys()) == before


def test_compiled_count_matches_numpy_over_many_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled step counts (every start at once, block by block) are numpy's, over rows of
    several blocks and a ragged last one: starts restricted to a group or not, a key with no
    bytes in the slice (it adds nobody), a start whose step 1 has none (all zeros), a group
    with none."""
    rng = np.random.default_rng(19)
    width = 2 * funnel.BLOCK_WORDS + 7
    words = rng.integers(0, 2**64, (12, width), dtype=np.uint64) & rng.integers(
        0, 2**64, (12, width), dtype=np.uint64
    )
    present = [1] * 12
    present[5] = present[9] = present[10] = 0
    window = [[1, 2], [3, 4], [5, 6], [7, 8], [2, 1]]  # per period, the rows of steps 2 and 3
    rows = [(0, window), (9, window), (11, window), (0, window)]
    plan = funnel._Plan([f"k{k}" for k in range(12)], {}, rows, [None, None, 7, 10])
    assert funnel._compiled_counter() is not None
    compiled = funnel._count_slice(plan, 3, words, present)
    monkeypatch.setattr(funnel, "_compiled_counter", lambda: None)
    assert (funnel._count_slice(plan, 3, words, present) == compiled).all()
    assert (compiled[0] > 0).all() and (compiled[2] > 0).all()
    assert not compiled[1].any() and not compiled[3].any()
