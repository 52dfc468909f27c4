"""A circuit breaker on every connection of a redis-py pool: a dead or hung Redis is found once,
then refused at once for a short while, instead of costing every caller a socket timeout.

A hung server (``SIGSTOP``, a long ``DEBUG SLEEP``, a full backlog) accepts connections and
commands and never answers: each caller waits its whole ``socket_timeout``. One after another on
an event loop, that held requests for tens of seconds. With ``guard(pool, seconds)``:

* a connect that fails, or a command that times out, *opens* the breaker for ``seconds``;
* while open, every command of every connection made by that pool (``own_connection``'s too,
  since it makes them with the pool's class and settings) raises :class:`BreakerOpen`, a
  ``redis.ConnectionError``, without touching the network, so every existing 503 handler answers
  at once;
* then one command is let through as a probe (*half-open*): an answer closes the breaker, a
  failure opens it again. Others keep failing fast while the probe waits.

A connection reset on a socket that was open (a restarted server, an idle socket cut) does not
open it: the retry that follows reconnects, and only a failed reconnect counts.

The same connections refuse to be used at all by code running on an event loop (``on_loop``, set
by ``bitcore.aio``): a blocking command there would hold the loop, and every connection it serves,
for as long as Redis takes. Such code makes its round trips through the wire, which the loop
awaits (``BlockingOnLoop`` says where one slipped through).

>>> import redis
>>> client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
>>> _ = guard(client.connection_pool, 1.0)
>>> client.connection_pool.connection_kwargs["breaker"].is_open()
False
"""

from __future__ import annotations

import os
import threading
import time
from contextvars import ContextVar
from typing import Any

import redis


class BreakerOpen(redis.ConnectionError):
    """Refused without asking Redis: it failed or timed out moments ago. Retry after a moment."""


class BlockingOnLoop(RuntimeError):
    """A redis-py command made by code running on an event loop: a bug, refused before it can
    block the loop (its round trips must go through ``bitcore.wire``, which the loop awaits)."""


#: True for code that ``bitcore.aio`` runs on an event loop.
on_loop: ContextVar[bool] = ContextVar("bitcore_on_loop", default=False)


def _refuse_on_loop() -> None:
    if on_loop.get():
        raise BlockingOnLoop(
            "a blocking Redis command on the event loop: use bitcore.wire.round_trip there"
        )


class Breaker:
    """Open/half-open/closed state shared by the connections of one pool, in one process."""

    def __init__(self, seconds: float, probe_seconds: float) -> None:
        self.seconds = seconds
        self.probe_seconds = probe_seconds
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: closed
        self._prober: object | None = None
        self._probe_until = 0.0

    def _here(self) -> None:
        """A forked child starts closed, with a lock of its own (the parent's may be held)."""
        if self._pid != os.getpid():
            self._reset()

    def is_open(self) -> bool:
        """Whether a command would be refused now (a probe in flight counts as open)."""
        return self._open_until != 0.0 and (
            time.monotonic() < self._open_until or time.monotonic() < self._probe_until
        )

    def admit(self, connection: object) -> None:
        """Return if ``connection`` may talk to Redis now; raise :class:`BreakerOpen` if not."""
        if self._open_until == 0.0 or self.seconds <= 0:
            return  # closed: the common case, no lock
        self._here()
        now = time.monotonic()
        with self._lock:
            if self._open_until == 0.0 or self._prober is connection:
                return
            if now >= self._open_until and now >= self._probe_until:
                self._prober = connection  # half-open: this one finds out
                self._probe_until = now + self.probe_seconds
                return
        raise BreakerOpen(
            f"Redis failed or timed out within the last {self.seconds:g} s; not asked again yet"
        )

    def failed(self) -> None:
        """A connect failed or a command timed out: refuse everyone for ``seconds``."""
        if self.seconds <= 0:
            return
        self._here()
        with self._lock:
            self._open_until = time.monotonic() + self.seconds
            self._prober = None
            self._probe_until = 0.0

    def succeeded(self) -> None:
        """Redis answered: close."""
        if self._open_until == 0.0:
            return
        self._here()
        with self._lock:
            self._open_until = 0.0
            self._prober = None
            self._probe_until = 0.0


class _Guarded:
    """Mixed into a redis-py connection class: every connect and command passes ``breaker``."""

    breaker: Breaker
    _connecting = False

    def __init__(self, *args: Any, breaker: Breaker, **kwargs: Any) -> None:
        self.breaker = breaker
        super().__init__(*args, **kwargs)

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_sock", None):
            return
        _refuse_on_loop()
        self.breaker.admit(self)
        self._connecting = True
        try:
            super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except (redis.ConnectionError, redis.TimeoutError):
            self.breaker.failed()
            raise
        finally:
            self._connecting = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _refuse_on_loop()
        if getattr(self, "_sock", None) and not self._connecting:
            self.breaker.admit(self)
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        except redis.TimeoutError:
            self.breaker.failed()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.TimeoutError:
            self.breaker.failed()
            raise
        except redis.ResponseError:  # an answer all the same
            self.breaker.succeeded()
            raise
        self.breaker.succeeded()
        return response


_GUARDED_CLASSES: dict[type, type] = {}


def guarded_class(base: type) -> type:
    """``base`` (``Connection``, ``UnixDomainSocketConnection``, ``SSLConnection`` ...) with the
    breaker mixed in; made once per base."""
    if issubclass(base, _Guarded):
        return base
    if base not in _GUARDED_CLASSES:
        _GUARDED_CLASSES[base] = type(f"Guarded{base.__name__}", (_Guarded, base), {})
    return _GUARDED_CLASSES[base]


def per_node_class(base: type, seconds: float, probe_seconds: float) -> type:
    """``base`` with the breaker mixed in for a Redis Cluster client, whose connections go to
    many nodes: each node (host and port) behind a breaker of its own, shared by every
    connection to it, so a dead or hung node is refused at once while the others are asked.
    redis-py makes a cluster's pools itself and passes them only ``connection_class``, so the
    breakers live with the class: make one per client."""
    breakers: dict[tuple[Any, Any], Breaker] = {}
    lock = threading.Lock()
    guarded = guarded_class(base)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        node = (kwargs.get("host"), kwargs.get("port"))
        with lock:
            found = breakers.get(node) or breakers.setdefault(node, Breaker(seconds, probe_seconds))
        _Guarded.__init__(self, *args, breaker=found, **kwargs)

    return type(f"PerNode{base.__name__}", (guarded,), {"__init__": __init__})


def guard(pool: redis.ConnectionPool, seconds: float) -> Breaker:
    """Put every connection ``pool`` makes from now on behind one breaker open for ``seconds``
    after a failure (0: never open). Call before the pool's first command."""
    timeout = pool.connection_kwargs.get("socket_timeout") or 5.0
    breaker = Breaker(seconds, probe_seconds=float(timeout) + 1.0)
    pool.connection_class = guarded_class(pool.connection_class)
    pool.connection_kwargs["breaker"] = breaker
    return breaker
