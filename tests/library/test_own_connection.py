"""Each thread's own connection (``bitcore.wire``), behind the bulk writer."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest
import redis

from bitcore import bulk, wire
from bitcore.wire import own_connection


def client_count(r: redis.Redis) -> int:
    return len(r.client_list())


def test_one_per_thread_and_pool(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first = own_connection(client)
    assert own_connection(client) is first
    assert own_connection(redis.Redis.from_url(redis_url)) is not first  # another pool
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(own_connection(client)))
    thread.start()
    thread.join()
    assert seen[0] is not first


def test_a_forked_child_makes_its_own(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis.from_url(redis_url)
    parents = own_connection(client)
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert own_connection(client) is not parents


def test_it_has_the_pools_settings_and_is_not_counted_by_it(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A pool of one connection, already taken, still lets the writer through; on database 3."""
    url = redis_url.rsplit("/", 1)[0] + "/3"
    pool = redis.ConnectionPool.from_url(url, max_connections=1)
    client = redis.Redis(connection_pool=pool)
    taken = pool.get_connection()
    try:
        assert bulk.set_bits_atomically(client, {"own:k": {5}})
    finally:
        pool.release(taken)
    assert client.getbit("own:k", 5) == 1
    assert not redis_client.exists("own:k")  # database 0
    client.delete("own:k")


def test_a_dropped_connection_is_made_again(redis_url: str, redis_client: redis.Redis) -> None:
    client = redis.Redis.from_url(redis_url)
    bulk.set_bits_atomically(client, {"own:a": {1}})
    connection = own_connection(client)
    connection.send_command("CLIENT", "ID")
    killed = connection.read_response()
    redis_client.client_kill_filter(_id=killed)
    assert bulk.set_bits_atomically(client, {"own:a": {2}})  # retried on a new socket
    assert [redis_client.getbit("own:a", i) for i in (1, 2)] == [1, 1]


def test_a_threads_connection_closes_when_the_thread_ends(
    redis_url: str, redis_client: redis.Redis
) -> None:
    client = redis.Redis.from_url(redis_url)
    ids: list[int] = []
    finish = threading.Event()
    opened = threading.Event()

    def work() -> None:
        bulk.set_bits_atomically(client, {"own:t": {3}})
        connection = own_connection(client)
        connection.send_command("CLIENT", "ID")
        ids.append(connection.read_response())
        opened.set()
        finish.wait(10)

    def connected() -> set[int]:
        return {int(c["id"]) for c in redis_client.client_list()}

    thread = threading.Thread(target=work)
    thread.start()
    assert opened.wait(10)
    assert ids[0] in connected()
    finish.set()
    thread.join()
    gc.collect()
    deadline = time.monotonic() + 5
    while ids[0] in connected() and time.monotonic() < deadline:
        time.sleep(0.05)  # the server sees the close a moment later
    assert ids[0] not in connected()


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_round_trips_replies_come_back_in_order_errors_as_values(
    redis_url: str, protocol: int
) -> None:
    """Hundreds of replies that arrive in one read are taken from the parser's buffer
    (``wire._buffered_reply``), errors and arrays among them, in order, each exactly once, and the
    connection is left clean for the next round trip."""
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    name = f"replies{protocol}"
    commands = [wire.encode("DEL", name, f"{name}l")]
    expected: list[object] = [None]
    for n in range(300):
        commands.append(wire.encode("INCR", name))
        expected.append(n + 1)
        if n % 50 == 7:
            commands.append(wire.encode("LPUSH", name, "x"))  # WRONGTYPE: an error reply
            expected.append(redis.ResponseError)
            commands.append(wire.encode("RPUSH", f"{name}l", "a", "b"))
            commands.append(wire.encode("LRANGE", f"{name}l", 0, 1))
            expected += [None, [b"a", b"b"]]
    replies = wire.on_own_connection(client, commands)
    assert len(replies) == len(expected)
    for reply, want in zip(replies[1:], expected[1:], strict=True):
        if want is redis.ResponseError:
            assert isinstance(reply, redis.ResponseError)
        elif want is not None:
            assert reply == want
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        wire.round_trip(client, commands[:3] + [wire.encode("LPUSH", name, "x")])
    assert wire.round_trip(client, [wire.encode("GET", name)]) == [b"2"]  # nothing left unread
    client.delete(name, f"{name}l")


def test_overlapped_round_trips_answer_each_in_order(redis_client: redis.Redis) -> None:
    """``wire.round_trips`` sends each round trip before reading the one before: every reply
    still comes back with its own round trip, and an error reply is raised only once all are
    read, leaving the connection clean."""
    batches = [[wire.encode("INCR", "overlap")] * size for size in (3, 1, 40, 2)]
    answered = wire.round_trips(redis_client, batches)
    assert [len(replies) for replies in answered] == [3, 1, 40, 2]
    assert [r for replies in answered for r in replies] == list(range(1, 47))
    broken = [[wire.encode("INCR", "overlap")], [wire.encode("LPUSH", "overlap", "x")]]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        wire.round_trips(redis_client, [*broken, [wire.encode("INCR", "overlap")]])
    assert wire.round_trip(redis_client, [wire.encode("GET", "overlap")]) == [b"48"]
    redis_client.delete("overlap")
