"""A fixed-window rate limit kept in Redis, so it holds across every gunicorn worker and host.

Each client (write key + IP) gets one counter per window of ``window`` seconds, counted with
``INCR`` and given a TTL with ``EXPIRE``. A request that will write is counted by the script that
writes it (the window is ``bitcore.bulk``'s quota, through ``bitcore.tracking.write``), so it
costs no extra round trip; one refused as invalid is counted here. Counters live under
``bitcore:ratelimit:`` and never under the event prefix (``trackist_``), so nothing that scans for
events can mistake them for bitmaps. The login form counts its attempts here too
(``dashboard.auth``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from dataclasses import dataclass

import redis

from bitcore import wire
from bitcore.keys import RATELIMIT_PREFIX

KEY_PREFIX = RATELIMIT_PREFIX


@dataclass(frozen=True)
class Window:
    """One client's counter for the window that contains ``now``: its key, limit and remaining
    time."""

    key: str
    limit: int
    ttl: int  # seconds the counter lives: the window, plus one for clock edges
    retry_after: int  # whole seconds until the window turns over


@dataclass(frozen=True)
class Verdict:
    """``allowed`` or not; ``retry_after`` is whole seconds until the window turns over."""

    allowed: bool
    count: int
    retry_after: int


def counter_key(client_id: str, window_index: int) -> str:
    """The counter's key; the client id is hashed: keys and addresses are not readable in Redis.
    (Remembered for the clients of the current windows: a client sends many requests per window.)

    >>> counter_key("key|127.0.0.1", 5).startswith("bitcore:ratelimit:5:")
    True
    """
    return f"{KEY_PREFIX}{window_index}:{_digest(client_id)}"


@functools.lru_cache(maxsize=4096)
def _digest(client_id: str) -> str:
    return hashlib.sha256(client_id.encode()).hexdigest()[:24]


def window_for(client_id: str, limit: int, window: int, now: float | None = None) -> Window:
    """The counter that a request from ``client_id`` at ``now`` counts against.

    >>> window_for("k|::1", 10, 60, now=6000.5).retry_after
    60
    """
    now = time.time() if now is None else now
    index = int(now // window)
    retry_after = max(1, math.ceil((index + 1) * window - now))
    return Window(counter_key(client_id, index), limit, window + 1, retry_after)


def hit(client: redis.Redis, counter: Window) -> Verdict:
    """Count a request against ``counter``: one round trip. (Requests that write are counted inside
    the write script instead.)

    Raises redis-py's ``ConnectionError``/``TimeoutError`` when Redis is down: the caller says 503.
    Sent through the wire, like the write: a beacon's every round trip can then be awaited on an
    event loop (``bitcore.aio``).
    """
    incr = wire.encode("INCR", counter.key)
    count, _ = wire.round_trip(client, [incr, wire.encode("EXPIRE", counter.key, counter.ttl)])
    return Verdict(int(count) <= counter.limit, int(count), counter.retry_after)
