"""A redis-server of a test's own with a small ``maxmemory``, for tests that provoke allocations
or a full Redis: whatever a bug would make it allocate is capped by its limit, never the
machine's memory, and the session's shared server is never filled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from bitcore import embedded

#: Enough for the tests' real writes; a budget that failed would meet it, not the machine.
DEFAULT_MAXMEMORY = 128 << 20


@contextmanager
def private_redis(
    directory: Path, maxmemory: int = DEFAULT_MAXMEMORY
) -> Iterator[embedded.EmbeddedRedis]:
    """A redis-server started for the caller (nothing on disk), ``noeviction`` at ``maxmemory``
    bytes; stopped, by its own process, on the way out."""
    server = embedded.start(directory, port=0, persist=False)
    assert server.owned
    try:
        client = server.client()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(maxmemory))
        client.close()
        yield server
    finally:
        server.stop()


def used_memory(client: redis.Redis) -> int:
    """Bytes Redis has allocated (``INFO memory``'s ``used_memory``)."""
    return int(client.info("memory")["used_memory"])


def fill_up(client: redis.Redis) -> None:
    """Put Redis at its ``maxmemory`` at once: the limit becomes 1 byte, below what an empty
    server already uses, so every command that may allocate is refused with OOM."""
    client.config_set("maxmemory", "1")
