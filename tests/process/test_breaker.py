"""The circuit breaker on every Redis connection (``bitcore.breaker``), against a real
redis-server of our own that we stop (``SIGSTOP``) and kill by its pid."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hung_redis_support import stoppable_redis

from bitcore import embedded, wire
from bitcore.breaker import BreakerOpen
from bitcore.connection import connect

TIMEOUT = 0.5
BREAKER = 1.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[embedded.EmbeddedRedis]:
    """A private redis-server, continued and stopped whatever the test did to it."""
    with stoppable_redis(tmp_path / "redis") as started:
        yield started


def timed(call: object) -> tuple[float, BaseException | None]:
    """Seconds ``call()`` took and what it raised."""
    began = time.monotonic()
    try:
        call()  # type: ignore[operator]
    except redis.RedisError as error:
        return time.monotonic() - began, error
    return time.monotonic() - began, None


def test_a_hung_server_costs_one_timeout_then_refusals_are_immediate(
    server: embedded.EmbeddedRedis,
) -> None:
    client = connect(server.url, socket_timeout=TIMEOUT, breaker_seconds=BREAKER)
    assert client.ping()
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        took, error = timed(client.ping)
        assert isinstance(error, redis.TimeoutError) and took < TIMEOUT + 0.3
        for _ in range(20):  # the pool's connections and this thread's own one alike
            took, error = timed(lambda: client.get("x"))
            assert isinstance(error, BreakerOpen) and took < 0.05, (took, error)
            assert isinstance(error, redis.ConnectionError)  # every 503 handler catches it
        took, error = timed(lambda: wire.round_trip(client, [b"*1\r\n$4\r\nPING\r\n"]))
        assert isinstance(error, BreakerOpen) and took < 0.05
        time.sleep(BREAKER)
        took, error = timed(client.ping)  # half-open: one probe, which times out again
        assert isinstance(error, redis.TimeoutError) and took >= TIMEOUT - 0.05
        took, error = timed(client.ping)
        assert isinstance(error, BreakerOpen) and took < 0.05
    finally:
        os.kill(server.process.pid, signal.SIGCONT)  # the fixture's pid, never a name
    time.sleep(BREAKER)
    assert client.ping() and client.set("x", 1) and client.get("x") == b"1"


def test_a_dead_server_is_refused_at_once_after_the_first_failure(
    server: embedded.EmbeddedRedis,
) -> None:
    client = connect(server.url, socket_timeout=TIMEOUT, breaker_seconds=BREAKER)
    assert client.ping()
    server.stop()
    took, error = timed(client.ping)
    assert isinstance(error, redis.ConnectionError) and took < TIMEOUT
    took, error = timed(client.ping)
    assert isinstance(error, BreakerOpen) and took < 0.01
    fresh = wire.own_connection(client)
    took, error = timed(lambda: fresh.send_command("PING"))
    assert isinstance(error, BreakerOpen)


def test_a_dropped_socket_is_reconnected_without_opening_the_breaker(
    server: embedded.EmbeddedRedis,
) -> None:
    client = connect(server.url, socket_timeout=TIMEOUT, breaker_seconds=BREAKER)
    assert client.ping()
    killer = redis.Redis.from_url(server.url)
    killer.client_kill_filter(_type="normal", skipme=True)
    killer.close()
    assert client.ping()  # the retry reconnects; nothing refused
    breaker = client.connection_pool.connection_kwargs["breaker"]
    assert not breaker.is_open()


def test_breaker_seconds_zero_turns_it_off(server: embedded.EmbeddedRedis) -> None:
    client = connect(server.url, socket_timeout=TIMEOUT, breaker_seconds=0)
    server.stop()
    for _ in range(2):
        _took, error = timed(client.ping)
        assert isinstance(error, redis.ConnectionError)
        assert not isinstance(error, BreakerOpen)
