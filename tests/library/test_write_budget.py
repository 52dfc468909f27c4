"""The one writer's budget and registry: what a write may make Redis allocate, the event names it
may add, and what Redis at its ``maxmemory`` does to a write. Every refusal writes nothing.

Allocations are provoked only on private servers with a small ``maxmemory``
(``tests/private_redis.py``), with uids that would take a few MiB at most if a check failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from private_redis import fill_up, private_redis, used_memory

import bitcore
from bitcore import bulk

MAY_7 = datetime(2024, 5, 7, 13, 30)
#: A uid whose bit sits 128 KiB into a bitmap: every new key of a mark at it is 128 KiB.
HIGH_UID = (128 << 10) * 8 - 1
KEY_BYTES = HIGH_UID // 8 + 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    with private_redis(tmp_path_factory.mktemp("budget-redis"), 64 << 20) as started:
        client = started.client()
        yield client
        client.close()


@pytest.fixture
def b(server: redis.Redis) -> bitcore.BitCore:
    server.flushall()
    server.config_set("maxmemory", str(64 << 20))
    return bitcore.BitCore(server)


def registry(b: bitcore.BitCore) -> set[str]:
    return {name.decode() for name in b.redis.zrange(b.keys.event_names_key(), 0, -1)}


# --- bytes a write makes Redis allocate


def test_a_write_over_max_bytes_is_refused_whole(b: bitcore.BitCore) -> None:
    """Month, week, day and universe keys are all new, and so are the event's ever set and its
    month, week and day first-time keys (counted as if the mark were a first time): eight keys
    of KEY_BYTES each."""
    before = used_memory(b.redis)
    with pytest.raises(bulk.WriteRefused) as refused:
        b.mark_many([("active", HIGH_UID, MAY_7)], budget=bulk.Budget(max_bytes=8 * KEY_BYTES - 1))
    assert (refused.value.limit, refused.value.amount) == ("max_bytes", 8 * KEY_BYTES)
    assert refused.value.allowed == 8 * KEY_BYTES - 1
    assert b.redis.dbsize() == 0  # no bit, no name, no counter
    assert used_memory(b.redis) - before < KEY_BYTES
    b.mark_many([("active", HIGH_UID, MAY_7)], budget=bulk.Budget(max_bytes=8 * KEY_BYTES))
    assert HIGH_UID in b.DayEvents("active", 2024, 5, 7)


def test_only_growth_counts(b: bitcore.BitCore) -> None:
    """A bit inside a key's string costs nothing; past its end, the bytes it adds."""
    b.mark_many([("active", HIGH_UID, MAY_7)])
    tight = bulk.Budget(max_bytes=1)
    b.mark_many([("active", HIGH_UID - 5, MAY_7), ("active", 3, MAY_7)], budget=tight)
    with pytest.raises(bulk.WriteRefused) as refused:
        b.mark_many([("active", HIGH_UID + 16, MAY_7)], budget=tight)
    assert refused.value.amount == 8 * 2  # two bytes more in each of the eight keys
    b.mark_many([("active", HIGH_UID + 8, MAY_7)], budget=bulk.Budget(max_bytes=8))


def test_a_large_write_is_checked_by_highest_offset_before_its_transaction(
    b: bitcore.BitCore,
) -> None:
    """More than SCRIPT_MAX_BITS bits go check-then-MULTI/EXEC: the check gets each key's
    highest offset and refuses before the transaction is sent."""
    marks = [("active", uid, MAY_7) for uid in range(bulk.SCRIPT_MAX_BITS * 2)]
    marks.append(("active", HIGH_UID, MAY_7))
    with pytest.raises(bulk.WriteRefused) as refused:
        b.mark_many(marks, budget=bulk.Budget(max_bytes=KEY_BYTES))
    assert refused.value.amount == 8 * KEY_BYTES  # with the ever and first-time keys
    assert b.redis.dbsize() == 0
    assert b.mark_many(marks, budget=bulk.Budget(max_bytes=8 * KEY_BYTES)) == len(marks)
    assert len(b.DayEvents("active", 2024, 5, 7)) == len(marks)


def test_bytes_quota_counts_what_writes_allocate_in_its_window(b: bitcore.BitCore) -> None:
    window = bulk.Quota("test:bytes", 15 * KEY_BYTES, 60)
    budget = bulk.Budget(bytes_quota=window)
    b.mark_many([("a", HIGH_UID, MAY_7)], budget=budget)  # 8 keys (4 of them first-time's)
    assert int(b.redis.get("test:bytes") or 0) == 8 * KEY_BYTES
    assert 0 < b.redis.ttl("test:bytes") <= 60
    b.mark_many([("a", 1, MAY_7)], budget=budget)  # no growth: free
    with pytest.raises(bulk.WriteRefused) as refused:
        b.mark_many([("b", HIGH_UID, MAY_7), ("c", HIGH_UID, MAY_7)], budget=budget)
    assert (refused.value.limit, refused.value.amount) == ("bytes_quota", 22 * KEY_BYTES)
    assert int(b.redis.get("test:bytes") or 0) == 8 * KEY_BYTES  # a refusal is not counted
    assert "b" not in registry(b)
    b.mark_many([("b", HIGH_UID, MAY_7)], budget=budget)  # seven new keys: exactly the limit
    assert int(b.redis.get("test:bytes") or 0) == 15 * KEY_BYTES


def test_library_writes_have_no_budget_by_default(b: bitcore.BitCore) -> None:
    b.mark_many([(f"e{i}", HIGH_UID, MAY_7) for i in range(3)])
    assert b.redis.strlen(f"{b.keys.prefix}e2_2024-5-7") == KEY_BYTES


def test_a_budget_needs_an_answer_now(b: bitcore.BitCore) -> None:
    piped = bitcore.BitCore(b.redis.pipeline())
    with pytest.raises(ValueError, match="pipeline"):
        piped.mark_many([("a", 1)], budget=bulk.Budget(max_bytes=10))


# --- the registry of event names


def test_every_way_of_marking_registers_its_names_but_not_the_universe(
    b: bitcore.BitCore,
) -> None:
    b.mark_event("played", 1)
    b.mark_event("paused", 1, use_pipeline=False)
    b.mark_unique("premium", 2)
    b.mark_many([("signup", 3), ("signup", 4, MAY_7), ("login", 5)])
    b.mark_many([(f"bulk{i % 3}", i) for i in range(200)])  # check-then-transaction path
    b.unmark_event("never-marked", 1)
    piped = bitcore.BitCore(b.redis.pipeline())
    piped.mark_many([("queued", 9)])
    piped.mark_unique("queued-unique", 9)
    assert "queued" not in registry(b)
    piped.redis.execute()
    assert registry(b) == {
        "played",
        "paused",
        "signup",
        "login",
        "bulk0",
        "bulk1",
        "bulk2",
        "queued",
    }
    flags = {n.decode() for n in b.redis.zrange(b.keys.flag_names_key(), 0, -1)}
    assert flags == {"premium", "queued-unique"}, "dateless marks register flags"
    assert b.redis.zrange(b.keys.event_names_key(), 0, -1, withscores=True)[0][1] == 0


def test_registry_cap_refuses_new_names_and_passes_known_ones(b: bitcore.BitCore) -> None:
    capped = bulk.Budget(max_event_names=2)
    b.mark_many([("a", 1), ("b", 1)], budget=capped)
    with pytest.raises(bulk.WriteRefused) as refused:
        b.mark_many([("a", 2), ("c", 2)], budget=capped)
    assert (refused.value.limit, refused.value.amount, refused.value.allowed) == (
        "max_event_names",
        3,
        2,
    )
    assert 2 not in b.MonthEvents("a")  # refused whole
    b.mark_many([("a", 3), ("b", 3)], budget=capped)
    assert registry(b) == {"a", "b"}
    b.mark_many([("c", 4)])  # the library's own writes are not capped
    assert registry(b) == {"a", "b", "c"}


def test_new_names_quota_counts_only_names_new_to_the_registry(b: bitcore.BitCore) -> None:
    window = bulk.Quota("test:names", 3, 60)
    budget = bulk.Budget(new_names_quota=window)
    b.mark_many([("a", 1), ("b", 1)], budget=budget)
    b.mark_many([("a", 2), ("b", 2)] * 5, budget=budget)  # known: free
    assert int(b.redis.get("test:names") or 0) == 2
    with pytest.raises(bulk.WriteRefused) as refused:
        b.mark_many([("c", 3), ("d", 3)], budget=budget)
    assert (refused.value.limit, refused.value.amount) == ("new_names_quota", 4)
    assert registry(b) == {"a", "b"} and b.redis.exists(f"{b.keys.prefix}c_u") == 0
    b.mark_many([("c", 3)], budget=budget)
    assert registry(b) == {"a", "b", "c"}


def test_thousands_of_names_in_one_write(b: bitcore.BitCore) -> None:
    """More names than one Lua ``unpack`` takes: registered in chunks."""
    names = [f"n{i}" for i in range(2500)]
    b.mark_many([(name, 1) for name in names])
    assert len(registry(b)) == 2500
    with pytest.raises(bulk.WriteRefused):
        b.mark_many([(f"m{i}", 1) for i in range(2500)], budget=bulk.Budget(max_event_names=4000))
    assert len(registry(b)) == 2500


# --- Redis at its maxmemory


@pytest.mark.parametrize("count", [1, bulk.SCRIPT_MAX_BITS * 2], ids=["script", "transaction"])
def test_redis_at_maxmemory_raises_out_of_memory_and_writes_nothing(
    b: bitcore.BitCore, count: int
) -> None:
    b.mark_many([("old", 1)])
    keys_before = set(b.redis.keys("*"))
    fill_up(b.redis)
    marks = [("new", uid) for uid in range(count)]
    for quota in (None, bulk.Quota("test:requests", 100, 60)):
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            b.write_plan(b.plan_marks(marks), quota)
    assert set(b.redis.keys("*")) == keys_before


def test_private_server_is_capped(tmp_path: Path) -> None:
    """The cap the tests above rely on: past it, Redis refuses to allocate."""
    with private_redis(tmp_path, 4 << 20) as started:
        client = started.client()
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for i in range(64):  # bounded: 64 x 1 MiB against a 4 MiB limit
                client.setbit(f"k{i}", (1 << 23) - 1, 1)
        client.close()
