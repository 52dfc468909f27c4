"""The keyspace jobs on the sharded layout (issue 17): the first-time history and its rebuild,
the registry of names rebuilt from the keyspace, and the overview's union count, on single-flat,
single-sharded and the Redis Cluster (``layout_bc``), with the flat layout's answers."""

from __future__ import annotations

import contextlib
import functools
from datetime import datetime, timedelta

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from test_first_time import KINDS, START, oracle

import bitcore
from bitcore import event_names, first_time, periods, reading
from bitcore.cohort.engine import cohort_table
from bitcore.shards import primaries_of

SHARD = 1 << 20
#: Users of shards 0, 2 and 5: each event's history is split over shards, with gaps between.
USERS = st.sampled_from([0, 1, 7, 2 * SHARD, 2 * SHARD + 5, 5 * SHARD + 3, 6 * SHARD - 1])
MARKS = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), USERS, st.integers(0, 24 * 40)), min_size=1, max_size=60
)


def _empty(client: bitcore.BitCore) -> None:
    for node in primaries_of(client.redis):
        node.flushall()


def _fresh(client: bitcore.BitCore, **options: object) -> bitcore.BitCore:
    """A new client of ``client``'s layout on its Redis (or cluster)."""
    layout = None if client.layout == "flat" else "sharded"
    return bitcore.BitCore(client.redis, layout=layout, **options)  # type: ignore[arg-type]


def _first_times(client: bitcore.BitCore, event: str) -> dict[periods.Period, set[int]]:
    """Every period with first-time users of ``event``, read through the client (every shard),
    over the periods the marks can fall in."""
    found: dict[periods.Period, set[int]] = {}
    for kind in KINDS:
        period = periods.period_of(kind, START)
        end = periods.period_of(kind, START + timedelta(hours=24 * 40 + 1))
        while period <= end:
            users = set(client.iter_members(first_time.first_time_bitmap(client, event, period)))
            if users:
                found[period] = users
            period = periods.shift(period, 1)
    return found


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=MARKS)
def test_the_rebuild_from_history_matches_the_earliest_marks(
    layout_bc: bitcore.BitCore, history: list[tuple[str, int, int]]
) -> None:
    """``test_first_time``'s rebuild on every layout: data written without first-time keys, in
    any order; each user's earliest period per kind becomes their first time, in every shard."""
    _empty(layout_bc)
    plain = _fresh(layout_bc, track_first_time=False)
    plain.mark_many(
        [(e, uid, START + timedelta(hours=h)) for e, uid, h in history], track_hourly=True
    )
    b = _fresh(layout_bc)
    events = sorted({e for e, _, _ in history})
    found = first_time.history(b)
    assert sorted(found) == events
    progress: list[tuple[str, int, int]] = []
    done = first_time.rebuild_first_time(b, progress=lambda *step: progress.append(step))
    assert done.events == len(events) and done.skipped == 0
    assert progress == [(e, n, len(events)) for n, e in enumerate(events, 1)]
    expected = oracle([sorted(history, key=lambda m: m[2])])
    periods_found = sum(len(suffixes) for by in found.values() for suffixes in by.values())
    assert done.keys == periods_found, "one first-time bitmap per period of history, once"
    for event in ("a", "b"):
        assert _first_times(b, event) == expected.get(event, {})
        ever = {uid for e, uid, _ in history if e == event}
        assert set(b.iter_members(first_time.ever_bitmap(b, event))) == ever
    assert first_time.rebuild_first_time(b).events == 0
    assert first_time.rebuild_first_time(b).skipped == len(events)
    again = first_time.rebuild_first_time(b, restart=True)
    assert (again.events, again.keys) == (done.events, done.keys)


def _stop(stops: list[str], event: str, done: int, total: int) -> None:
    """A rebuild's progress that stops it (as Ctrl-C would) after its first event."""
    stops.append(event)
    raise KeyboardInterrupt


def test_history_and_a_stopped_rebuild_answer_as_flat(
    redis_client: redis.Redis, cluster_client: RedisCluster
) -> None:
    """The same history on the three layouts; older marks backfilled without first-time keys,
    then a rebuild stopped after its first event resumes with the second and moves every first
    time a week back, in every shard."""
    day = datetime(2024, 5, 6)
    marks = [("a", u, day + timedelta(days=u % 3)) for u in (1, 2, SHARD + 4, 3 * SHARD + 5)]
    marks += [("b", u, day + timedelta(days=1)) for u in (2, 3 * SHARD)]
    marks += [("b", u, day + timedelta(days=2)) for u in (1, SHARD + 4)]
    marks += [("a", 1, day + timedelta(days=2))]
    answers = []
    for client in (
        bitcore.BitCore(redis_client, key_prefix="flat_"),
        bitcore.BitCore(redis_client, layout="sharded"),
        bitcore.BitCore(cluster_client),
    ):
        client.mark_many(marks)
        written = cohort_table(
            client, "a", "b", None, None, "days", 3, 1, "2024-05-06", cohort_type="first_time"
        )
        plain = bitcore.BitCore(
            client.redis,  # type: ignore[arg-type]
            key_prefix=client.keys.prefix,
            layout=client.layout,
            track_first_time=False,
        )
        plain.mark_many([(e, u, moment - timedelta(days=7)) for e, u, moment in marks])
        stops: list[str] = []
        with contextlib.suppress(KeyboardInterrupt):
            first_time.rebuild_first_time(client, progress=functools.partial(_stop, stops))
        resumed = first_time.rebuild_first_time(client)
        rebuilt = cohort_table(
            client, "a", "b", None, None, "days", 3, 1, "2024-05-06", cohort_type="first_time"
        )
        earlier = cohort_table(
            client, "a", "b", None, None, "days", 3, 1, "2024-04-29", cohort_type="first_time"
        )
        history = first_time.history(client)
        answers.append(
            (
                {e: {k: sorted(s) for k, s in by.items()} for e, by in history.items()},
                stops,
                (resumed.events, resumed.keys, resumed.skipped),
                (written.sizes, written.cells),
                (rebuilt.sizes, rebuilt.cells),
                (earlier.sizes, earlier.cells),
            )
        )
    assert answers[0] == answers[1] == answers[2]
    history, stops, resumed, written, rebuilt, earlier = answers[0]
    assert history["a"]["day"] == ["2024-4-30", "2024-5-1", "2024-5-7", "2024-5-8"]
    assert stops == ["a"] and resumed == (1, 8, 1), "b's 8 periods rebuilt, a done before"
    assert written == ([0, 1, 3], [[None, None], [0, 1], [1, None]])  # user 1 new on day 2 ...
    assert rebuilt == ([0, 0, 0], [[None, None]] * 3), "seen a week earlier: nobody new"
    assert earlier == written, "the week before has the first times now"


def test_the_registry_of_names_is_rebuilt_from_every_shard(layout_bc: bitcore.BitCore) -> None:
    """Names whose keys are only in some shards (on a cluster: on some primaries) come back;
    a name marked only without a date is a flag; the universe is none of them."""
    day = datetime(2024, 5, 6)
    layout_bc.mark_many([("song:played", 1, day), ("signup", 4 * SHARD, day)])
    layout_bc.mark_many([("weird name", 9 * SHARD + 1, day)])
    layout_bc.mark_unique("premium", 2 * SHARD)
    registries = [layout_bc.keys.event_names_key(), layout_bc.keys.flag_names_key()]
    expected = (event_names.page(layout_bc).names, event_names.flag_page(layout_bc).names)
    assert expected == (["signup", "song:played", "weird name"], ["premium"])
    layout_bc.redis.delete(*registries[:1])
    layout_bc.redis.delete(*registries[1:])
    assert event_names.rebuild(layout_bc, batch=2) == 4
    assert (event_names.page(layout_bc).names, event_names.flag_page(layout_bc).names) == expected
    assert event_names.rebuild(layout_bc) == 0, "already there"
    assert layout_bc.redis.get(layout_bc.keys.event_names_rebuilt_key()) is not None


def test_the_union_of_day_keys_is_counted_per_shard(layout_bc: bitcore.BitCore) -> None:
    """``reading.count_union`` (the overview's 30-day users): a user is in one shard, so the
    shards' unions add up; a user on two days is counted once."""
    day = datetime(2024, 5, 6)
    users = [3, SHARD + 1, 4 * SHARD, 4 * SHARD + 7]
    layout_bc.mark_many([("a", u, day + timedelta(days=k % 2)) for k, u in enumerate(users)])
    layout_bc.mark_many([("a", u, day + timedelta(days=2)) for u in users[:3]])
    keys = [layout_bc.keys.event_key("a", periods.day(2024, 5, d)) for d in (5, 6, 7, 8)]
    assert reading.count_union(layout_bc, keys) == 4
    assert reading.count_union(layout_bc, keys[:2]) == 2 and reading.count_union(layout_bc, []) == 0
