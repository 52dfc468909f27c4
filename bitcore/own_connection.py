"""Each thread's own connection to a pool's server, for the hot write path.

In redis-py 8, taking a connection from a pool and giving it back costs about 70,000 CPU
instructions (metrics, event dispatch, a ``poll`` for stale data), seven times what sending a
beacon's script call and reading its reply cost (measured with callgrind). A single beacon is one
round trip, so the pool was most of its client-side cost. ``own_connection`` instead keeps one
connection per thread and pool, made with the pool's own settings (address, database, password,
timeouts, retries, TLS), and reuses it.

It is made outside the pool (the pool neither counts it against ``max_connections`` nor hands it
to anyone else), closed when its thread ends (the thread's storage is freed, and redis-py closes a
connection it collects), and made again in a forked child, which must not share its parent's
socket.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import redis


class _Held(threading.local):
    def __init__(self) -> None:
        # pool -> (process id, connection); a pool that is collected takes its entry with it
        self.by_pool: weakref.WeakKeyDictionary[Any, tuple[int, Any]] = weakref.WeakKeyDictionary()


_held = _Held()


def own_connection(redis_client: redis.Redis) -> Any:
    """This thread's connection with the settings of ``redis_client``'s pool, made on first use
    (it connects on its first command).

    Unlike the pool, this does not check the connection before handing it out (a ``poll`` and
    about 30,000 instructions): a connection the server has closed since its last use (a restart,
    an idle timeout, ``CLIENT KILL``) fails its next command with ``ConnectionError``, and the
    caller, seeing ``was_open``, tries once more on a new one. The caller must leave it clean:
    every reply read, or ``disconnect()`` called."""
    pool = redis_client.connection_pool
    pid = os.getpid()
    held = _held.by_pool.get(pool)
    if held is None or held[0] != pid:
        held = (pid, pool.connection_class(**pool.connection_kwargs))
        _held.by_pool[pool] = held
    return held[1]


def was_open(connection: Any) -> bool:
    """Whether ``connection`` holds a socket from an earlier command (which may have gone stale)."""
    return getattr(connection, "_sock", None) is not None
