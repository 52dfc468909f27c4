"""``bitcore.aio`` against a Redis that hangs (``SIGSTOP``) or dies, for real: a private
redis-server stopped and continued by its own pid. The loop must go on ticking while a round trip
waits, the wait must end after one socket timeout, and the circuit breaker must then refuse at
once, as it does for the sync wire (``test_breaker.py``)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hung_redis_support import on_a_loop, stoppable_redis

from bitcore import aio, embedded, wire
from bitcore.breaker import BreakerOpen
from bitcore.connection import connect

TIMEOUT = 0.5
BREAKER = 1.0
PING = wire.encode("PING")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[embedded.EmbeddedRedis]:
    """A private redis-server, continued and stopped whatever the test did to it."""
    with stoppable_redis(tmp_path / "redis") as started:
        yield started


async def timed_ping(client: redis.Redis) -> tuple[float, BaseException | None]:
    """Seconds one PING through ``aio.run`` took, and what it raised."""
    began = time.monotonic()
    try:
        await aio.run(wire.round_trip, client, [PING])
    except redis.RedisError as error:
        return time.monotonic() - began, error
    return time.monotonic() - began, None


def test_a_hung_server_holds_the_round_trip_not_the_loop(server: embedded.EmbeddedRedis) -> None:
    client = connect(server.url, socket_timeout=TIMEOUT, breaker_seconds=BREAKER)
    assert server.process is not None
    pid = server.process.pid

    async def scenario() -> None:
        assert (await timed_ping(client))[1] is None
        os.kill(pid, signal.SIGSTOP)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        took, error = await timed_ping(client)
        ticker.cancel()
        assert isinstance(error, redis.TimeoutError), error
        assert TIMEOUT - 0.05 <= took < TIMEOUT + 0.3, took
        assert ticks >= TIMEOUT / 0.01 / 2, ticks  # the loop went on meanwhile
        for _ in range(10):
            took, error = await timed_ping(client)
            assert isinstance(error, BreakerOpen) and took < 0.05, (took, error)
        await asyncio.sleep(BREAKER)
        took, error = await timed_ping(client)  # half-open: one probe, which times out again
        assert isinstance(error, redis.TimeoutError) and took >= TIMEOUT - 0.05
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(BREAKER)
        assert (await timed_ping(client))[1] is None

    try:
        on_a_loop(scenario())
    finally:
        os.kill(pid, signal.SIGCONT)  # the fixture's pid, never a name


def test_concurrent_round_trips_on_a_hung_server_all_end_after_one_timeout(
    server: embedded.EmbeddedRedis,
) -> None:
    client = connect(server.url, socket_timeout=TIMEOUT, breaker_seconds=BREAKER)
    assert server.process is not None
    pid = server.process.pid

    async def scenario() -> list[tuple[float, BaseException | None]]:
        assert (await timed_ping(client))[1] is None
        os.kill(pid, signal.SIGSTOP)
        return await asyncio.gather(*(timed_ping(client) for _ in range(20)))

    try:
        answers = on_a_loop(scenario())
    finally:
        os.kill(pid, signal.SIGCONT)
    assert all(isinstance(error, redis.TimeoutError) for _, error in answers), answers
    assert max(took for took, _ in answers) < TIMEOUT + 0.3, answers


def test_a_dead_server_is_refused_at_once_after_the_first_failure(
    server: embedded.EmbeddedRedis,
) -> None:
    client = connect(server.url, socket_timeout=TIMEOUT, breaker_seconds=BREAKER)

    async def scenario() -> None:
        assert (await timed_ping(client))[1] is None
        server.stop()
        await asyncio.sleep(0.1)  # the loop sees the socket closed
        took, error = await timed_ping(client)
        assert isinstance(error, redis.ConnectionError) and not isinstance(error, BreakerOpen)
        assert took < TIMEOUT, took
        took, error = await timed_ping(client)
        assert isinstance(error, BreakerOpen) and took < 0.01, (took, error)

    on_a_loop(scenario())
