"""``bitcore.aio``: synchronous bitcore code run on an event loop, its round trips awaited on an
asyncio connection, against the session's real redis-server. It must write exactly what the
sync wire writes, answer concurrent callers in order, and never block the loop."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from hung_redis_support import on_a_loop
from private_redis import fill_up, private_redis

import bitcore
from bitcore import aio, bulk, wire
from bitcore.breaker import BlockingOnLoop
from bitcore.bulk import Budget
from bitcore.connection import connect

WHEN = datetime(2024, 5, 7, 13)


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    """A client made as the dashboard makes its own (breaker, timeouts), with a clean slate."""
    made = connect(redis_url)
    made.flushdb()
    return made


def test_run_returns_and_raises_what_the_function_does(client: redis.Redis) -> None:
    def incr_twice() -> list[Any]:
        return [wire.round_trip(client, [wire.encode("INCR", "n")])[0] for _ in range(2)]

    assert on_a_loop(aio.run(incr_twice)) == [1, 2]

    def wrong_type() -> None:
        wire.round_trip(client, [wire.encode("LPUSH", "n", "x")])

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        on_a_loop(aio.run(wrong_type))


def test_marks_written_on_the_loop_equal_those_of_the_sync_writer(client: redis.Redis) -> None:
    """One writer, two transports: the same marks give the same keys, bits and registry, a
    single mark (one script call) and a batch (a check, then MULTI/EXEC) alike."""
    marks = [(f"e{i % 3}", i * 7919 % 50_000, WHEN) for i in range(300)]
    single = [("one", 42, WHEN)]

    def write(core: bitcore.BitCore) -> None:
        core.mark_many(single)
        core.mark_many(marks)

    sync, loop = (bitcore.BitCore(client, key_prefix=p) for p in ("sync_", "loop_"))
    write(sync)
    on_a_loop(aio.run(write, loop))
    keys = sorted(client.scan_iter("sync_*", count=1000))
    assert len(keys) == 4 * 3 + 1  # month, week and day of each of 4 names; the universe
    for key in keys:
        twin = b"loop_" + key.removeprefix(b"sync_")
        assert client.get(key) == client.get(twin), key
    registry = [client.zrange(core.keys.event_names_key(), 0, -1) for core in (sync, loop)]
    assert registry[0] == registry[1] == [b"e0", b"e1", b"e2", b"one"]


def test_concurrent_callers_share_one_connection_and_get_their_own_replies(
    client: redis.Redis,
) -> None:
    def count(name: str, times: int) -> list[int]:
        return [wire.round_trip(client, [wire.encode("INCR", name)])[0] for _ in range(times)]

    async def many() -> list[list[int]]:
        return await asyncio.gather(*(aio.run(count, f"c{i}", 20) for i in range(30)))

    assert on_a_loop(many()) == [list(range(1, 21))] * 30


def test_a_script_unknown_to_the_server_is_loaded_on_the_loop_too(client: redis.Redis) -> None:
    client.script_flush()
    core = bitcore.BitCore(client, key_prefix="flushed_")
    on_a_loop(aio.run(core.mark_event, "play", 5, WHEN))
    assert core.DayEvents("play", 2024, 5, 7).get_count() == 1


def test_a_blocking_redis_py_command_on_the_loop_is_refused(client: redis.Redis) -> None:
    with pytest.raises(BlockingOnLoop):
        on_a_loop(aio.run(client.get, "anything"))
    assert client.ping()  # off the loop, redis-py works as ever


def test_a_budget_refusal_and_a_full_redis_mean_the_same_on_the_loop(
    client: redis.Redis, tmp_path: Path
) -> None:
    core = bitcore.BitCore(client, key_prefix="budget_")
    with pytest.raises(bulk.WriteRefused):
        on_a_loop(aio.run(lambda: core.mark_many([("big", 2**25, WHEN)], budget=Budget(10))))
    assert not list(client.scan_iter(core.keys.all_keys_pattern()))
    with private_redis(tmp_path) as server:
        full = bitcore.BitCore(connect(server.url))
        fill_up(full.redis)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            on_a_loop(aio.run(full.mark_event, "play", 1, WHEN))
        assert bulk.is_out_of_memory(redis.exceptions.OutOfMemoryError("OOM"))


def test_a_connection_the_server_closed_is_made_again(redis_url: str, client: redis.Redis) -> None:
    def ping() -> Any:
        return wire.round_trip(client, [wire.encode("PING")])[0]

    async def twice() -> list[Any]:
        first = await aio.run(ping)
        killer = redis.Redis.from_url(redis_url)
        killer.client_kill_filter(_type="normal", skipme=True)
        killer.close()
        await asyncio.sleep(0.05)  # the loop sees the socket closed
        return [first, await aio.run(ping)]

    assert on_a_loop(twice()) == [b"PONG", b"PONG"]
    assert not client.connection_pool.connection_kwargs["breaker"].is_open()


def test_a_pool_it_does_not_speak_for_goes_through_a_thread(redis_url: str) -> None:
    resp3 = connect(redis_url, protocol=3)
    assert not aio.speaks_for(resp3.connection_pool)
    assert aio.speaks_for(connect(redis_url).connection_pool)
    reply = on_a_loop(aio.run(wire.round_trip, resp3, [wire.encode("ECHO", "hi")]))
    assert reply == [b"hi"]


def test_the_database_of_the_url_is_selected(redis_url: str, client: redis.Redis) -> None:
    other = connect(_with_db(redis_url, 3))
    other.delete("where")
    on_a_loop(aio.run(wire.round_trip, other, [wire.encode("SET", "where", "db3")]))
    assert other.get("where") == b"db3" and client.get("where") is None
    other.delete("where")


def _with_db(url: str, db: int) -> str:
    if url.startswith("unix://"):
        return f"{url.split('?')[0]}?db={db}"
    return f"{url.rsplit('/', 1)[0]}/{db}"
