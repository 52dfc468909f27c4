"""What evaluating a segment may cost: few scratch keys, bounded memory and steps, nothing left.

The tests of answers and of keys left behind run on every layout (``all_layouts``); those of the
segment program's registers and steps, of the client's own key registry and of memory look at
the flat layout's internals or at one private Redis, and stay there.

The memory tests run on a private redis-server with a small ``maxmemory``, so a regression fails
with an out-of-memory error instead of taking the machine's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

import bitcore
from bitcore import embedded, periods
from bitcore.segments import (
    SegmentBitmap,
    SegmentStore,
    SegmentTooCostly,
    parse_expression,
)
from bitcore.segments import program as segment_program
from bitcore.segments.evaluate import evaluate
from bitcore.segments.parser import BinOp, Event, Node, Not
from bitcore.selections import Selection

WEEK = periods.week(2025, 2)
WHEN = datetime(2025, 1, 8, 12)  # inside WEEK
#: The highest id of the memory tests: keys of 1 MiB.
TOP = (1 << 20) * 8 - 1
MIB = 1 << 20


def nots(count: int, prefix: str = "e") -> str:
    """``~e0 & ~e1 & ...``: the expression that used to cost two universe-sized keys per NOT."""
    return " & ".join(f"~{prefix}{i}" for i in range(count))


def uncomputed(bc: bitcore.BitCore, expression: str | Node) -> SegmentBitmap:
    """The segment bitmap of ``expression`` this week, nothing computed yet."""
    node = parse_expression(expression) if isinstance(expression, str) else expression
    bitmap = evaluate(node, bc, WEEK, parse_expression, compute=False)
    assert isinstance(bitmap, SegmentBitmap)
    return bitmap


def compiled(bitmap: SegmentBitmap, lengths: dict[str, int] | None = None) -> Any:
    """``bitmap``'s program, as its steps would compile it for keys of ``lengths``."""
    return segment_program.compile_term(
        bitmap.term, lengths or {}, bitmap.universe_key, bitmap.scratch_prefix
    )


def test_twenty_nots_need_two_scratch_keys(bc: bitcore.BitCore) -> None:
    assert len(compiled(uncomputed(bc, nots(20))).registers) == 2


def test_a_balanced_tree_of_512_events_needs_about_log2_n_scratch_keys(
    bc: bitcore.BitCore,
) -> None:
    """The worst shape for registers: every operand compound, nested evenly (deeper than a text
    may nest, so built as a tree)."""

    def balanced(lo: int, hi: int) -> BinOp | Not:
        if hi - lo == 1:
            return Not(Event(f"e{lo}"))
        mid = (lo + hi) // 2
        return BinOp("OR", (balanced(lo, mid), balanced(mid, hi)))

    assert len(compiled(uncomputed(bc, balanced(0, 512))).registers) <= 10  # log2(512) + 1


def test_each_round_trip_walks_a_bounded_number_of_bytes(
    bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny step, a long expression runs in many round trips and still gives the same users
    as the Python-set oracle; no round trip's BITOPs walk more than a step (or one BITOP)."""
    monkeypatch.setattr(segment_program, "STEP_BYTES", 64)
    users = {f"e{i}": {i, 200 + i, 300} for i in range(24)}
    bc.mark_many([(name, uid, WHEN) for name, ids in users.items() for uid in ids])
    bc.mark_many([("other", uid, WHEN) for uid in range(400, 410)])
    universe = set().union(*users.values(), range(400, 410))
    text = " | ".join(f"(~e{i} & e{i + 1})" for i in range(0, 24, 2))
    expected = set().union(
        *[(universe - users[f"e{i}"]) & users[f"e{i + 1}"] for i in range(0, 24, 2)]
    )

    bitmap = uncomputed(bc, text)
    assert len(bitmap.steps(bc.bitop_ttl(bitmap))) > 10
    keys = {leaf.redis_key for leaf in bitmap.leaves()}
    program = compiled(bitmap, {key: int(bc.redis.strlen(key)) for key in keys})
    assert all(cost <= 64 or len(args) <= 4 for args, cost in program.commands)
    assert set(bitmap) == expected
    assert bc.redis.keys("*SEGMENT_*-r*") == []  # the registers are gone


@pytest.mark.all_layouts
@pytest.mark.parametrize("op", ["&", "|", "^"])
@pytest.mark.parametrize("negate", ["", "~"])
def test_long_operand_lists_split_into_several_bitops_give_the_same_users(
    bc: bitcore.BitCore, monkeypatch: pytest.MonkeyPatch, op: str, negate: str
) -> None:
    monkeypatch.setattr(segment_program, "STEP_BYTES", 16)
    users = {f"e{i}": {i % 7, 50 + i % 5, 99} for i in range(30)}
    bc.mark_many([(name, uid, WHEN) for name, ids in users.items() for uid in ids])
    bc.mark_many([("other", 120, WHEN)])
    universe = set().union(*users.values(), {120})
    operands = [universe - ids if negate else ids for ids in users.values()]
    expected = set(operands[0])
    for ids in operands[1:]:
        expected = {"&": expected & ids, "|": expected | ids, "^": expected ^ ids}[op]
    text = f" {op} ".join(f"{negate}{name}" for name in users)
    assert set(SegmentStore(bc).preview(text, WEEK)) == expected
    assert SegmentStore(bc).preview_size(text, WEEK) == len(expected)


@pytest.mark.all_layouts
def test_an_empty_result_is_an_empty_key_not_an_error(bc: bitcore.BitCore) -> None:
    """Operands that do not exist give an empty result; the program still ends cleanly."""
    store = SegmentStore(bc)
    assert len(store.preview("missing & gone", WEEK)) == 0
    assert list(store.preview("missing | ~gone", WEEK)) == []
    assert store.preview_size("missing ^ gone", WEEK) == 0


def test_registers_expire_even_if_the_last_step_never_runs(bc: bitcore.BitCore) -> None:
    bc.mark_many([("a", 1, WHEN), ("b", 2, WHEN)])
    bitmap = uncomputed(bc, "~a & ~b")
    *early, _finish = bitmap.steps(300)
    with bc.redis.pipeline(transaction=False) as pipe:
        for step in early:
            step(pipe)
        pipe.execute()
    registers = bc.redis.keys("*SEGMENT_*-r*")
    assert registers and all(0 < bc.redis.ttl(key) <= 300 for key in registers)


# --- nothing left behind, nothing remembered without bound


@pytest.mark.all_layouts
def test_previews_and_sizes_leave_no_keys(bc: bitcore.BitCore) -> None:
    bc.mark_many([(f"e{i}", i, WHEN) for i in range(20)])
    store = SegmentStore(bc)
    store.save("s", nots(5))
    keys_before = bc.redis.dbsize()
    for i in range(60):
        assert store.preview_size(f"{nots(20)} & ~long_event_name_{i:04}", WEEK) == 0
        assert store.size("s", WEEK) == 15
    assert bc.redis.dbsize() == keys_before


@pytest.mark.all_layouts
def test_evaluating_a_saved_segment_again_reuses_one_key(bc: bitcore.BitCore) -> None:
    bc.mark_many([(f"e{i}", i, WHEN) for i in range(5)])
    store = SegmentStore(bc)
    store.save("s", nots(5))
    keys_before = bc.redis.dbsize()
    results = {store.bitmap("s", WEEK).redis_key for _ in range(50)}
    assert len(results) == 1
    assert bc.redis.dbsize() == keys_before + 1


def test_the_runtime_key_registry_keeps_only_the_most_recent_keys(
    redis_client: redis.Redis,
) -> None:
    bc = bitcore.BitCore(redis_client, remember_bitop_keys=5)
    bc.mark_many([(f"e{i}", i, WHEN) for i in range(50)])
    week = [bc.event(f"e{i}", WEEK) for i in range(50)]
    made = [(week[i] | week[i + 1]).redis_key for i in range(49)]
    assert list(bc._runtime_keys()) == made[-5:]
    assert bc.delete_runtime_bitop_keys() == 5
    assert not any(redis_client.exists(key) for key in made[-5:])
    assert all(redis_client.ttl(key) > 0 for key in made[:-5])  # the forgotten ones expire


@pytest.mark.all_layouts
def test_a_client_may_remember_no_keys_at_all(make_bc: Callable[..., bitcore.BitCore]) -> None:
    bc = make_bc(remember_bitop_keys=0)
    bc.mark_many([("a", 1, WHEN), ("b", 2, WHEN)])
    for _ in range(20):
        SegmentStore(bc).preview_size("a | ~b", WEEK)
        _ = bc.event("a", WEEK) & bc.event("b", WEEK)
    assert len(bc._runtime_keys()) == 0


# --- memory, on a private server that cannot grow past a small limit


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    """A redis-server of this test alone, at most 48 MB."""
    server = embedded.start(tmp_path, port=0, persist=False)
    try:
        client = server.client()
        client.config_set("maxmemory", str(48 * MIB))
        client.config_set("maxmemory-policy", "noeviction")
        yield client
        client.close()
    finally:
        server.stop()


def big_events(r: redis.Redis, bc: bitcore.BitCore, count: int) -> None:
    """``count`` week events ``e<i>`` = {i, TOP}, each 1 MiB long, and the universe: them and the
    40 users 100..139, who are in no event."""
    for i in range(count):
        r.setbit(bc.keys.event_key(f"e{i}", WEEK), i, 1)
        r.setbit(bc.keys.event_key(f"e{i}", WEEK), TOP, 1)
        r.setbit(bc.keys.unique_key(bc.universe), i, 1)
    r.setbit(bc.keys.unique_key(bc.universe), TOP, 1)
    for uid in range(100, 140):
        r.setbit(bc.keys.unique_key(bc.universe), uid, 1)


def test_a_twenty_not_preview_takes_a_few_keys_of_memory_and_gives_it_back(
    small_redis: redis.Redis,
) -> None:
    """Before: 41 keys of 1 MiB (over this server's limit: out of memory). Now: two registers."""
    bc = bitcore.BitCore(small_redis)
    big_events(small_redis, bc, 20)
    before = small_redis.info("memory")["used_memory"]
    keys = small_redis.dbsize()
    assert SegmentStore(bc).preview_size(nots(20), WEEK) == 40
    memory = small_redis.info("memory")
    assert memory["used_memory_peak"] - before < 4 * MIB
    assert memory["used_memory"] - before < MIB // 4
    assert small_redis.dbsize() == keys


def test_an_expression_over_the_memory_limit_is_refused_before_writing(
    small_redis: redis.Redis,
) -> None:
    bc = bitcore.BitCore(small_redis)
    big_events(small_redis, bc, 3)
    store = SegmentStore(bc, max_bytes=2 * MIB)
    keys = small_redis.dbsize()
    assert store.preview_size("e0 & ~e1", WEEK) == 1  # one register and a buffer: 2 MiB
    with pytest.raises(SegmentTooCostly) as refused:
        store.preview_size("~e0 & ~e1 & e2", WEEK)  # two registers and a buffer: 3 MiB
    assert (refused.value.needed, refused.value.limit) == (3 * MIB, 2 * MIB)
    assert "3.0 MiB" in str(refused.value) and "2.0 MiB" in str(refused.value)
    assert small_redis.dbsize() == keys
    assert SegmentStore(bc, max_bytes=None).preview_size("~e0 & ~e1 & e2", WEEK) == 1


def test_running_out_of_memory_midway_gives_the_scratch_keys_back(
    small_redis: redis.Redis,
) -> None:
    """Redis at ``maxmemory`` refuses a BITOP after the first registers are written: the error
    reaches the caller (the dashboard answers it) and the registers are deleted at once."""
    bc = bitcore.BitCore(small_redis)
    big_events(small_redis, bc, 4)
    keys = small_redis.dbsize()
    used = small_redis.info("memory")["used_memory"]
    small_redis.config_set("maxmemory", str(used + MIB + MIB // 2))  # room for one register
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        SegmentStore(bc, max_bytes=None).preview_size(nots(4), WEEK)
    small_redis.config_set("maxmemory", str(48 * MIB))
    assert small_redis.dbsize() == keys
    assert small_redis.info("memory")["used_memory"] - used < MIB // 4


@pytest.mark.all_layouts
def test_a_year_operand_that_expired_is_computed_again(bc: bitcore.BitCore) -> None:
    """Years are derived keys (the OR of twelve months): one that is gone when the segment is
    computed is rebuilt first, so the segment never counts it as empty."""
    bc.mark_many([("a", 1, WHEN), ("a", 2, WHEN), ("b", 2, WHEN), ("c", 3, WHEN)])
    store = SegmentStore(bc)
    year = periods.year(2025)
    bitmap = evaluate(parse_expression("a & ~b"), bc, year, parse_expression, compute=False)
    bc.delete_temporary_bitop_keys()  # every year key and result is gone
    assert bc.count_once(bitmap) == 1
    assert set(store.preview("a | c", year)) == {1, 2, 3}


def test_the_clients_segment_limit_holds_for_reports_segment_steps(
    small_redis: redis.Redis,
) -> None:
    """``BitCore(segment_max_bytes=...)`` is the default of every ``SegmentStore`` of the client,
    so a report's saved-segment step (``Selection.bitmap``) keeps the same limit."""
    roomy = bitcore.BitCore(small_redis)
    big_events(small_redis, roomy, 2)
    SegmentStore(roomy).save("heavy", "e0 & ~e1")
    tight = bitcore.BitCore(small_redis, segment_max_bytes=MIB)
    assert SegmentStore(tight).max_bytes == MIB
    assert SegmentStore(roomy).max_bytes == 64 << 20  # the library's default
    with pytest.raises(SegmentTooCostly) as refused:
        Selection.parse("segment:heavy").bitmap(tight, WEEK)
    assert refused.value.limit == MIB
    assert 0 in Selection.parse("segment:heavy").bitmap(roomy, WEEK)
