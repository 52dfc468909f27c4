"""``BitCore.mark_many``: the same bits as repeated ``mark_event``, atomically, or nothing at all.

Also the two pieces the bulk path and the iteration path are built from: ``bulk.pack_offsets`` and
``bitmaps.set_bits`` (checked against Python sets).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from cluster_support import stored_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import bulk, one_mark, periods, planning, wire
from bitcore.bitmaps import set_bits

pytestmark = pytest.mark.all_layouts

MAY_7 = datetime(2024, 5, 7, 13, 30)
NEW_YEAR = datetime(2024, 12, 30, 23, 59)  # ISO week 1 of 2025, still calendar year 2024
MAX_ID = 2**32 - 1


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key on the server with its value: what a write did, byte for byte (the registry of
    event names as its sorted members, the sharded layout's registry of shards as its members)."""
    read = {b"zset": lambda key: client.zrange(key, 0, -1), b"set": client.smembers}
    return {key: read.get(client.type(key), client.get)(key) for key in client.keys("*")}


def by_mark_event(bc: bitcore.BitCore, marks: list[Any], **flags: Any) -> dict[bytes, Any]:
    bc.redis.flushdb()
    for event, uuid, *when in marks:
        bc.mark_event(event, uuid, when[0] if when else None, **flags)
    return snapshot(bc.redis)


def by_mark_many(bc: bitcore.BitCore, marks: list[Any], **flags: Any) -> dict[bytes, Any]:
    bc.redis.flushdb()
    assert bc.mark_many(marks, **flags) == len(marks)
    return snapshot(bc.redis)


def keys_left(bc: bitcore.BitCore) -> list[bytes]:
    """Every key on the server but the sharded layout's registry of shards, which a write joins
    before it sets a bit (so a reader never misses a written shard: docs/cluster.md)."""
    registry = getattr(bc.keys, "shards_key", lambda: "")().encode()
    return sorted(key for key in bc.redis.keys("*") if key != registry)


MARKS = [
    ("active", 1, MAY_7),
    ("active", 1, MAY_7),  # the same mark twice is one bit
    ("active", 0, MAY_7 + timedelta(hours=1)),
    ("signup", 2**20 + 3, MAY_7),
    ("song:played", 77, date(2024, 5, 8)),
    ("active", 12, NEW_YEAR),
    ("active", 9, NEW_YEAR + timedelta(minutes=1)),  # next year, same ISO week
]


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"track_hourly": True},
        {"track_unique": True},
        {"track_hourly": True, "track_unique": True},
    ],
)
def test_mark_many_writes_what_mark_event_writes(
    bc: bitcore.BitCore, flags: dict[str, bool]
) -> None:
    expected = by_mark_event(bc, MARKS, **flags)
    assert by_mark_many(bc, MARKS, **flags) == expected
    universe = stored_key(bc, bc.keys.unique_key(bc.universe)).encode()
    assert universe in expected, "the universe key is set by both"


def test_client_defaults_and_time_zone_apply_as_in_mark_event(
    make_bc: Callable[..., bitcore.BitCore],
) -> None:
    bc = make_bc(track_hourly=True, timezone="America/New_York")
    aware = [("active", 5, datetime(2024, 5, 8, 2, 0, tzinfo=UTC))]  # 22:00 on May 7 in New York
    assert by_mark_many(bc, aware) == by_mark_event(bc, aware)
    assert 5 in bc.HourEvents("active", 2024, 5, 7, 22)


def test_marks_without_a_time_land_now(bc: bitcore.BitCore) -> None:
    before = bc.now()
    bc.mark_many([("active", 3)])
    after = bc.now()
    assert any(3 in bc.DayEvents("active", moment) for moment in (before, after))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    marks=st.lists(
        st.tuples(
            st.sampled_from(["a", "b:c"]),
            st.integers(0, 5000),
            st.sampled_from([MAY_7, NEW_YEAR, date(2024, 2, 29)]),
        ),
        max_size=40,
    ),
    hourly=st.booleans(),
)
def test_mark_many_matches_mark_event_on_any_marks(
    bc: bitcore.BitCore, marks: list[tuple[str, int, date]], hourly: bool
) -> None:
    """Byte for byte, first-time keys included: a batch's first time for a user is its earliest
    mark, as when the marks are written one by one in time order."""
    in_time_order = sorted(marks, key=lambda m: m[2].timetuple()[:4])
    assert by_mark_many(bc, marks, track_hourly=hourly) == by_mark_event(
        bc, in_time_order, track_hourly=hourly
    )
    day_members = {uuid for event, uuid, when in marks if event == "a" and when == MAY_7}
    assert list(bc.DayEvents("a", MAY_7)) == sorted(day_members)


def test_offsets_using_all_four_bytes_reach_the_right_bit(bc: bitcore.BitCore) -> None:
    high = 2**25 + 2**17 + 2**9 + 3  # every byte of the packed offset is non-zero (a 4 MiB key)
    bc.mark_many([("big", high, MAY_7), ("big", 1, MAY_7)])
    assert list(bc.DayEvents("big", MAY_7)) == [1, high]


def test_accepts_any_iterable_and_counts_marks(bc: bitcore.BitCore) -> None:
    assert bc.mark_many(("active", uuid, MAY_7) for uuid in range(2500)) == 2500
    assert len(bc.MonthEvents("active", 2024, 5)) == 2500
    assert list(bc.universe_bitmap()) == list(range(2500))


def test_no_marks_write_nothing(bc: bitcore.BitCore) -> None:
    assert bc.mark_many([]) == 0
    assert bc.redis.dbsize() == 0


@pytest.mark.parametrize(
    ("bad_mark", "error"),
    [
        (("active", -1), ValueError),
        (("active", 2**32), ValueError),
        (("active", "7"), TypeError),
        (("active", 7.0), TypeError),
        (("active", True), TypeError),
        (("active", None), TypeError),
        (("", 7), ValueError),
        ((7, 7), TypeError),
        (("bitop_x", 7), ValueError),
        (("active", 7, "2024-05-07"), TypeError),
        (("active", 7, 1715083200), TypeError),
        (("active",), ValueError),
    ],
)
def test_one_bad_mark_writes_nothing(
    bc: bitcore.BitCore, bad_mark: tuple[Any, ...], error: type[Exception]
) -> None:
    good = [("active", uuid, MAY_7) for uuid in range(100)]
    with pytest.raises(error):
        bc.mark_many([*good, bad_mark, *good])
    assert bc.redis.dbsize() == 0


def test_a_key_of_another_type_makes_the_whole_batch_fail(bc: bitcore.BitCore) -> None:
    """MULTI/EXEC would have written the other keys; the script checks every key first."""
    clash = stored_key(bc, bc.MonthEvents("signup", 2024, 5).redis_key)
    bc.redis.rpush(clash, "not a bitmap")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        bc.mark_many([("active", 1, MAY_7), ("signup", 2, MAY_7)])
    assert keys_left(bc) == [clash.encode()]


@pytest.mark.parametrize("offsets", [set(), {0}, {1, 258, MAX_ID}, set(range(0, 100_000, 7))])
def test_pack_offsets_is_big_endian_highest_first(offsets: set[int]) -> None:
    packed = bulk.pack_offsets(offsets)
    assert list(struct.unpack(f">{len(offsets)}I", packed)) == sorted(offsets, reverse=True)


@given(ids=st.sets(st.integers(0, 4000)), first_id=st.sampled_from([0, 8, 2**32 - 4008]))
def test_set_bits_finds_exactly_the_set_bits(ids: set[int], first_id: int) -> None:
    chunk = bytearray(501)
    for uuid in ids:
        chunk[uuid >> 3] |= 0x80 >> (uuid & 7)
    assert set_bits(bytes(chunk), first_id) == sorted(uuid + first_id for uuid in ids)


def test_set_bits_of_nothing() -> None:
    assert set_bits(b"") == []
    assert set_bits(bytes(1 << 20), 99) == []


def test_unaware_and_aware_times_use_wall_clock_fields_without_a_time_zone(
    bc: bitcore.BitCore,
) -> None:
    plus_two = timezone(timedelta(hours=2))
    marks = [("active", 1, datetime(2024, 5, 7, 23, 30, tzinfo=plus_two)), ("active", 2, MAY_7)]
    assert by_mark_many(bc, marks, track_hourly=True) == by_mark_event(bc, marks, track_hourly=True)
    assert list(bc.DayEvents("active", 2024, 5, 7)) == [1, 2]


def test_large_batches_are_split_into_bounded_calls(
    bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch over one call's bound is written whole, in several calls, none over the bound."""
    monkeypatch.setattr(bulk, "MAX_BITS_PER_CALL", 7)
    sizes: list[int] = []
    real_transactions = wire.execute_transactions

    def counting(client: Any, transactions: list[list[bytes]]) -> None:
        for commands in transactions:
            sizes.append(sum(c.count(b"$3\r\nSET\r\n$2\r\nu1\r\n") for c in commands))
        real_transactions(client, transactions)

    monkeypatch.setattr(wire, "execute_transactions", counting)
    marks = [("active", uuid, MAY_7) for uuid in range(25)]  # 100 bits: 4 keys each
    assert by_mark_many(bc, marks) == by_mark_event(bc, marks)
    assert sum(sizes) == 100
    assert max(sizes) == 7 and len(sizes) == 15


def test_split_batch_with_a_wrong_type_key_writes_nothing(
    bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "MAX_BITS_PER_CALL", 3)
    oops = stored_key(bc, bc.keys.unique_key("oops"))
    bc.redis.lpush(oops, "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        bc.mark_many([("active", u, MAY_7) for u in range(10)] + [("oops", 1)], track_unique=True)
    assert keys_left(bc) == [oops.encode()]


@pytest.mark.flat_only("the flat writer's own scripts (the lean one-mark script, the gate)")
def test_a_flushed_script_cache_is_loaded_again(bc: bitcore.BitCore) -> None:
    bc.redis.script_flush()
    assert bc.mark_many([("active", 5, MAY_7)]) == 1  # one mark: the lean script
    assert bc.redis.script_exists(one_mark.ONE_MARK_SHA) == [True]
    assert bc.mark_many([("active", 6, MAY_7), ("active", 7, MAY_7)]) == 2  # the gate
    assert bc.redis.script_exists(bulk.GATE_SHA) == [True]
    assert list(bc.DayEvents("active", 2024, 5, 7)) == [5, 6, 7]


@pytest.mark.flat_only("raw commands on one connection of a single Redis")
@pytest.mark.parametrize(
    ("bad", "ran"),
    [
        (("SETBIT", "k"), None),  # refused when queued: EXECABORT, nothing runs
        (("SETBIT", "k2", "not-a-number", 1), b"v"),  # fails when run: the rest runs
    ],
)
def test_an_error_reply_leaves_the_pooled_connection_clean(
    bc: bitcore.BitCore, bad: tuple[str, ...], ran: bytes | None
) -> None:
    """Every reply is read before the first error is raised: the next user of the connection
    must not read this transaction's leftovers."""
    with pytest.raises(redis.ResponseError):
        wire.execute_transaction(bc.redis, [wire.encode("SET", "k", "v"), wire.encode(*bad)])
    assert bc.redis.get("k") == ran
    assert bc.mark_many([("active", uuid, MAY_7) for uuid in range(100)]) == 100
    assert bc.redis.ping() and bc.DayEvents("active", 2024, 5, 7).get_count() == 100


def test_the_slot_memory_is_bounded_and_forgetting_changes_nothing(
    bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "MAX_REMEMBERED_SLOTS", 2)
    marks = [("active", h, datetime(2024, 5, 7, h)) for h in range(6)] * 2
    assert by_mark_many(bc, marks, track_hourly=True) == by_mark_event(bc, marks, track_hourly=True)
    assert len(bc._planner._slot_keys) <= 2


@pytest.mark.flat_only("a client made from a pipeline is flat only (docs/cluster.md)")
def test_on_a_pipeline_the_bits_wait_for_the_callers_execute(bc: bitcore.BitCore) -> None:
    """A client made from a caller's pipeline (bitmapist's ``system=pipe``) queues its bits."""
    marks = [("active", uuid, MAY_7) for uuid in range(300)]  # past SCRIPT_MAX_BITS
    with bc.redis.pipeline() as pipe:
        queued = bitcore.BitCore(pipe)
        assert queued.mark_many(marks) == 300
        assert bc.redis.dbsize() == 0
        pipe.execute()
    assert list(bc.DayEvents("active", 2024, 5, 7)) == list(range(300))
    with pytest.raises(ValueError, match="pipeline"):
        bulk.set_bits_atomically(bc.redis.pipeline(), {"k": {1}}, bulk.Quota("q", 1, 1))


@pytest.mark.parametrize("clash", ["universe", "ever", "first time", "registry"])
def test_one_mark_with_a_key_of_another_type_writes_nothing(
    bc: bitcore.BitCore, clash: str
) -> None:
    """A single mark goes through the lean script (``bitcore.one_mark``): it too checks every
    key before it sets a bit or registers a name (on the sharded layout the registry, in
    another slot, is checked before the shards' scripts run: ``BitCore._check_registry``)."""
    key = {
        "universe": stored_key(bc, bc.keys.unique_key(bc.universe)),
        "ever": stored_key(bc, bc.keys.ever_key("active")),
        "first time": stored_key(bc, bc.keys.first_time_key("active", periods.day(2024, 5, 7))),
        "registry": bc.keys.event_names_key(),  # one key on every layout
    }[clash]
    bc.redis.rpush(key, "not a bitmap")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        bc.mark_event("active", 1, MAY_7)
    assert keys_left(bc) == [key.encode()]


def test_one_mark_sets_first_times_only_the_first_time(bc: bitcore.BitCore) -> None:
    bc.mark_event("active", 3, MAY_7)
    bc.mark_event("active", 3, MAY_7 + timedelta(days=1))  # not a first time: no first bits
    firsts = [
        stored_key(bc, bc.keys.first_time_key("active", periods.day(2024, 5, d)), 3) for d in (7, 8)
    ]
    assert [bc.redis.getbit(key, 3) for key in firsts] == [1, 0]
    assert bc.redis.zscore(bc.keys.event_names_key(), "active") is not None
    assert list(bc.DayEvents("active", 2024, 5, 8)) == [3]
