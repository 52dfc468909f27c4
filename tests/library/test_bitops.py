"""Bit operations against Python sets as the oracle; iteration in slices; TTLs and cleanup."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitcore
from bitcore import BitCore, bitmaps

pytestmark = pytest.mark.all_layouts

WHEN = datetime(2024, 5, 7, 12)
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def id_sets(draw: st.DrawFn, count: int) -> list[frozenset[int]]:
    """``count`` sets of ids on one scale: one byte, a few hundred bytes, or up to 2**20 (128 KiB
    bitmaps), so most examples are cheap and a third reach far."""
    top = draw(st.sampled_from([15, 4095, 2**20]))
    return [draw(st.frozensets(st.integers(0, top), max_size=30)) for _ in range(count)]


def mark_all(bc: BitCore, event: str, uids: Iterable[int], when: datetime = WHEN) -> None:
    """Mark every id in one round trip, through bitmapist's queue-on-a-pipeline form (a flat
    client made from a pipeline); on the sharded layout, which takes no pipeline, in one batch."""
    if bc.layout == "sharded":
        bc.mark_many([(event, uid, when) for uid in uids])
        return
    with bc.redis.pipeline(transaction=False) as pipe:
        writer = BitCore(pipe, key_prefix=bc.keys.prefix)
        for uid in uids:
            writer.mark_event(event, uid, now=when, use_pipeline=False)
        pipe.execute()


def assert_is(bitmap: Any, expected: set[int] | frozenset[int]) -> None:
    """``bitmap`` holds exactly ``expected``: iteration (ascending), count and membership agree."""
    assert list(bitmap) == sorted(expected)
    assert len(bitmap) == len(expected)
    probes = {min(expected, default=0), max(expected, default=0), 1, max(expected, default=0) + 1}
    for uid in probes:
        assert (uid in bitmap) == (uid in expected)


@PROPERTY_SETTINGS
@given(sets=id_sets(3))
def test_bit_operations_match_python_sets(bc: BitCore, sets: list[frozenset[int]]) -> None:
    a, b, c = sets
    bc.redis.flushdb()
    for name, members in (("a", a), ("b", b), ("c", c)):
        mark_all(bc, name, members)
    A, B, C = (bc.MonthEvents(name, 2024, 5) for name in "abc")
    universe = a | b | c  # every id marked: what ~ is taken against
    cases: list[tuple[Any, frozenset[int]]] = [
        (A, a),
        (bc.BitOpAnd(A, B), a & b),
        (bc.BitOpOr(A, B), a | b),
        (bc.BitOpXor(A, B), a ^ b),
        (bc.BitOpAnd(A, B, C), a & b & c),
        (bc.BitOpOr(A, B, C), a | b | c),
        (bc.BitOpXor(A, B, C), a ^ b ^ c),  # odd number of operands
        (bc.BitOpNot(A), universe - a),
        (A & B, a & b),
        (A | B, a | b),
        (A ^ B, a ^ b),
        (~A, universe - a),
        (~~A, a),
        (bc.BitOpOr(bc.BitOpAnd(A, B), ~C), (a & b) | (universe - c)),
        (~(A | B) ^ C, (universe - (a | b)) ^ c),
        ((A & B) | (B & C) | (A & C), (a & b) | (b & c) | (a & c)),
        (bc.BitOpAnd(bc.BitOpAnd(A, B), B), a & b),  # the README's nesting
        (bc.BitOpNot(A, universe=B), b - a),
        (A & bc.WeekEvents("b", 2024, 19), a & b),  # any kinds mix
    ]
    for bitmap, expected in cases:
        assert_is(bitmap, expected)


@pytest.mark.flat_only("the module-level bitmapist facade reads trackist_ keys: flat")
@PROPERTY_SETTINGS
@given(sets=id_sets(2))
def test_the_module_level_classes_and_operators_agree(
    default_system: redis.Redis, sets: list[frozenset[int]]
) -> None:
    a, b = sets
    default_system.flushdb()
    for uid in a:
        bitcore.mark_event("a", uid, now=WHEN)
    for uid in b:
        bitcore.mark_unique("b", uid)
    A, B = bitcore.DayEvents("a", 2024, 5, 7), bitcore.UniqueEvents("b")
    assert_is(bitcore.BitOpAnd(A, B), a & b)
    assert_is(bitcore.BitOpOr("default", A, B), a | b)
    assert_is(bitcore.BitOpXor(default_system, A, B), a ^ b)
    assert_is(bitcore.BitOpNot("default", A), b - a)  # everyone marked is in a or b
    assert_is(~B & A, a - b)


def test_not_never_counts_phantom_ids(bc: BitCore) -> None:
    """A bare BITOP NOT of {5} would hold 0-4, 6 and 7; against the universe it holds only {1}."""
    mark_all(bc, "a", [5])
    mark_all(bc, "b", [1])
    not_a = ~bc.MonthEvents("a", 2024, 5)
    assert_is(not_a, {1})
    assert not_a.get_count() == 1 and not_a.has_events_marked()


def test_not_keeps_universe_members_past_the_operands_last_byte(bc: BitCore) -> None:
    mark_all(bc, "a", [1])
    mark_all(bc, "b", [1, 100, 5000])
    assert_is(~bc.MonthEvents("a", 2024, 5), {100, 5000})


def test_not_of_an_event_nobody_did_is_the_universe(bc: BitCore) -> None:
    mark_all(bc, "a", [3, 9])
    assert_is(~bc.MonthEvents("never", 2024, 5), {3, 9})
    assert_is(~bc.MonthEvents("never", 2024, 5) & bc.MonthEvents("a", 2024, 5), {3, 9})


def test_operations_over_empty_events_are_empty(bc: BitCore) -> None:
    empty = bc.MonthEvents("nobody", 2024, 5)
    assert_is(empty & empty, set())
    assert (empty & empty).get_count() == 0 and not (empty & empty).has_events_marked()
    assert_is(empty | bc.MonthEvents("nobody", 2024, 6), set())
    assert_is(bc.YearEvents("nobody", 2024), set())


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda b: b.BitOpAnd(b.MonthEvents("a", 2024, 5), 5), TypeError, "got 5"),
        (lambda b: b.BitOpOr("default"), ValueError, "at least one event"),
        (lambda b: b.BitOpNot(b.UniqueEvents("a"), b.UniqueEvents("b")), ValueError, "exactly one"),
        (lambda b: b.BitOpNot(b, "x"), TypeError, "'x'"),
    ],
)
def test_bad_operands_raise(bc: BitCore, build: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build(bc)
    assert bc.redis.dbsize() == 0


# --- iteration in slices


@pytest.mark.flat_only("counts GETRANGE calls on the flat client")
@pytest.mark.parametrize("chunk_bytes", [1, 3, 4])
def test_iteration_crosses_slice_boundaries(
    bc: BitCore, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    bc.iter_chunk_bytes = chunk_bytes
    span = chunk_bytes * 8  # ids per slice
    edges = {k * span + d for k in range(6) for d in (-1, 0, 1)} - {-1}
    mark_all(bc, "a", edges)
    mark_all(bc, "whole", range(4 * span))  # exactly four slices long: the fifth read is empty
    calls = []
    real_getrange = bc.redis.getrange
    monkeypatch.setattr(bc.redis, "getrange", lambda *a: calls.append(a) or real_getrange(*a))

    assert list(bc.MonthEvents("a", 2024, 5)) == sorted(edges)
    length = max(edges) // 8 + 1  # bytes
    assert len(calls) == length // chunk_bytes + 1  # one GETRANGE per slice, short or empty last
    assert list(bc.MonthEvents("whole", 2024, 5)) == list(range(4 * span))
    assert list(bc.MonthEvents("a", 2024, 5) | bc.MonthEvents("whole", 2024, 5)) == sorted(
        edges | set(range(4 * span))
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=st.frozensets(st.integers(0, 2**12), max_size=60), chunk_bytes=st.integers(1, 9))
def test_iteration_in_any_slice_size_is_the_set_ascending(
    bc: BitCore, monkeypatch: pytest.MonkeyPatch, members: frozenset[int], chunk_bytes: int
) -> None:
    bc.redis.flushdb()
    bc.iter_chunk_bytes = chunk_bytes
    mark_all(bc, "a", members)
    assert list(bc.DayEvents("a", 2024, 5, 7)) == sorted(members)


def test_set_bits_reads_redis_bit_order() -> None:
    assert bitmaps.set_bits(b"") == []
    assert bitmaps.set_bits(bytes([0b1000_0001, 0, 0b0100_0000]), first_id=8) == [8, 15, 25]
    assert bitmaps.set_bits(b"\xff", first_id=2**32 - 8) == list(range(2**32 - 8, 2**32))


# --- temporary keys: TTLs, recomputation, cleanup


def bitop_ttls(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): client.ttl(k) for k in client.scan_iter(match="trackist_bitop_*")}


@pytest.mark.flat_only("scans the flat layout's trackist_bitop_* key names")
def test_every_temporary_key_has_a_ttl(bc: BitCore) -> None:
    mark_all(bc, "a", [1, 2])
    mark_all(bc, "b", [2, 3])
    A, B = bc.MonthEvents("a", 2024, 5), bc.MonthEvents("b", 2024, 5)
    ops = [A & B, A | B, A ^ B, ~A, (A & B) | ~(A ^ B), bc.YearEvents("a", 2024)]
    assert all(op.has_events_marked() for op in ops)
    ttls = bitop_ttls(bc.redis)
    assert set(ttls) >= {op.redis_key for op in ops}
    assert len(ttls) >= 9  # inner keys of the NOTs and the nesting too
    assert all(ttl > 0 for ttl in ttls.values()), ttls


@pytest.mark.flat_only("reads the TTL of the flat result key")
def test_closed_periods_live_long_and_open_ones_briefly(redis_client: redis.Redis) -> None:
    b = BitCore(redis_client, bitop_ttl_open=60, bitop_ttl_closed=7200)
    now = datetime.now(UTC)
    # BITOP deletes a destination it would leave empty, so every operand gets id 1 first
    for when in (datetime(2020, 1, 5), datetime(2020, 2, 5), now, datetime(now.year + 1, 1, 5)):
        b.mark_event("a", 1, now=when)
    b.mark_unique("premium", 1)
    old = b.MonthEvents("a", 2020, 1)
    for op, low, high in [
        (old & b.MonthEvents("a", 2020, 2), 60, 7200),
        (old & b.MonthEvents("a", now.year, now.month), 0, 60),
        (old & b.DayEvents("a", now.year, now.month, now.day), 0, 60),
        (old & b.UniqueEvents("premium"), 0, 60),  # dateless: may change any time
        (old & b.MonthEvents("a", now.year + 1, 1), 0, 60),  # the future is open too
        (~old, 0, 60),  # the universe is dateless
        (b.YearEvents("a", 2020), 60, 7200),
        (b.YearEvents("a", now.year), 0, 60),
    ]:
        assert low < redis_client.ttl(op.redis_key) <= high, op


@pytest.mark.flat_only("expires the flat result key by name")
def test_an_expired_result_is_recomputed_on_read(bc: BitCore) -> None:
    mark_all(bc, "a", [1, 2, 3])
    mark_all(bc, "b", [2])
    A, B = bc.MonthEvents("a", 2024, 5), bc.MonthEvents("b", 2024, 5)
    both, either_not = A & B, ~(A & B) | B
    assert_is(both, {2})
    mark_all(bc, "b", [3])  # the cached result is now stale...
    bc.redis.pexpire(both.redis_key, 1)
    bc.redis.pexpire(either_not.redis_key, 1)
    time.sleep(0.02)
    assert not bc.redis.exists(both.redis_key)
    assert len(both) == 2  # ...and, once expired, is computed again
    assert bc.redis.ttl(both.redis_key) > 0
    assert 3 in either_not
    assert_is(either_not, {1, 2, 3})
    both.delete()
    assert not bc.redis.exists(both.redis_key)
    assert list(both) == [2, 3]  # a deleted result is computed again too


@pytest.mark.flat_only("the module-level bitmapist facade and its SCAN of trackist_ keys: flat")
def test_delete_temporary_bitop_keys_scans_and_keeps_events(
    default_system: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    bitcore.mark_event("active", 1, now=WHEN)
    bitcore.mark_event("bitopx", 1, now=WHEN)  # a name that merely starts like the namespace
    default_system.set("other_bitop_x", 1)
    (bitcore.MonthEvents("active", 2024, 5) & bitcore.MonthEvents("bitopx", 2024, 5)).get_count()
    with default_system.pipeline(transaction=False) as pipe:
        for i in range(2500):
            pipe.set(f"trackist_bitop_AND_made-by-someone-else-{i}", 1)
        pipe.execute()
    events_before = {k for k in default_system.scan_iter() if b"bitop_" not in k}

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("KEYS blocks Redis: use SCAN")

    scans = []
    real_scan = default_system.scan
    monkeypatch.setattr(default_system, "keys", never)
    monkeypatch.setattr(
        default_system, "scan", lambda *a, **k: scans.append(k) or real_scan(*a, **k)
    )
    bitcore.delete_temporary_bitop_keys()
    assert len(scans) >= 3  # 2,500 keys in batches of 1,000
    assert not list(default_system.scan_iter(match="trackist_bitop_*"))
    assert {k for k in default_system.scan_iter()} == events_before | {b"other_bitop_x"}
    assert sorted(bitcore.get_event_names()) == ["active", "bitopx"]

    bitcore.delete_all_events()
    # a set: SCAN may return a key twice while Redis resizes its table after mass deletes
    assert set(default_system.scan_iter()) == {b"other_bitop_x"}


@pytest.mark.flat_only("the module-level bitmapist facade: flat")
def test_delete_runtime_bitop_keys_deletes_only_this_threads_keys(
    default_system: redis.Redis,
) -> None:
    bitcore.mark_event("a", 1, now=WHEN)
    bitcore.mark_event("b", 1, now=WHEN)
    A, B = bitcore.MonthEvents("a", 2024, 5), bitcore.MonthEvents("b", 2024, 5)
    elsewhere: list[str] = []
    worker = threading.Thread(target=lambda: elsewhere.append((A | B).redis_key))
    worker.start()
    worker.join()
    mine = [(A & B).redis_key, (~A).redis_key, bitcore.YearEvents("a", 2024).redis_key]
    assert all(default_system.exists(key) for key in mine + elsewhere)
    bitcore.delete_runtime_bitop_keys()
    assert not any(default_system.exists(key) for key in mine)
    assert default_system.exists(elsewhere[0])  # another thread's result is its own business
    assert len(A) == len(B) == 1


@pytest.mark.flat_only("counts the flat client's MULTI/EXEC commands")
def test_a_nested_result_is_computed_in_one_round_trip(bc: BitCore) -> None:
    mark_all(bc, "a", [1])
    A = bc.MonthEvents("a", 2024, 5)
    inner = [bc.BitOpAnd(A, A), ~A]
    round_trips = []
    real_pipeline = bc.redis.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute
        pipe.execute = lambda: round_trips.append(len(pipe.command_stack)) or real_execute()
        return pipe

    bc.redis.pipeline = counting_pipeline  # type: ignore[method-assign]
    nested = bc.BitOpOr(*inner)
    assert round_trips == [8]  # one MULTI/EXEC: 4 BITOPs (the NOT is two) and their 4 EXPIREs
    assert_is(nested, {1})


@pytest.mark.flat_only("reads the flat result key's existence and TTL")
def test_iterating_a_bit_op_survives_its_key_vanishing_midway(
    bc: BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cleanup (or a TTL running out while the consumer pauses) between two slices: the key is
    computed again and the iteration goes on, rather than ending early with part of the answer."""
    bc.iter_chunk_bytes = 2
    members = set(range(0, 200, 3))
    mark_all(bc, "a", members)
    mark_all(bc, "b", range(200))
    both = bc.MonthEvents("a", 2024, 5) & bc.MonthEvents("b", 2024, 5)
    seen = []
    for position, uuid in enumerate(both):
        seen.append(uuid)
        if position in (5, 30):
            assert bc.delete_temporary_bitop_keys() >= 1
            assert bc.redis.exists(both.redis_key) == 0
    assert seen == sorted(members)
    assert 0 < bc.redis.ttl(both.redis_key) <= bc.bitop_ttl(both)
