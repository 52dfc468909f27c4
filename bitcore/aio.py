"""Synchronous bitcore code run on an asyncio event loop, its Redis round trips awaited.

The beacon path (the tracking WSGI app, the writer and its gate script) is plain synchronous code,
the same whoever serves it. The gunicorn worker (``dashboard/serving.py``) runs it on its event
loop, where a blocking socket read would hold every connection of the worker for as long as Redis
takes: with a hung Redis, a whole socket timeout per beacon. ``run(fn, *args)`` runs ``fn`` in a
greenlet on the loop instead; when ``fn`` reaches ``bitcore.wire.round_trip``, the greenlet hands
the encoded commands to the loop, which sends them on this module's asyncio connection and serves
other connections while it waits, then resumes the greenlet with the replies (SQLAlchemy's asyncio
bridge works the same way). What is sent and what the replies mean stay the wire's and the
writer's: only the transport differs. A redis-py command made directly from ``fn`` would block
the loop, so it is refused (``bitcore.breaker.BlockingOnLoop``).

The connection, one per pool and loop, is made on first use with the pool's address, database,
password and timeouts:

* the round trips of concurrent beacons are pipelined on it (Redis answers in order), each
  written whole, so a ``MULTI``/``EXEC`` is never split;
* every round trip passes the pool's circuit breaker (``bitcore.breaker``): a connect that fails
  or a reply that does not come within the socket timeout opens it, and while it is open round
  trips are refused (``BreakerOpen``) without touching the network;
* a reply that does not come within ``socket_timeout`` fails every round trip waiting on that
  connection with ``redis.TimeoutError`` and closes it (a late reply must not answer a later
  request); a connection the server closes fails its waiting round trips with
  ``redis.ConnectionError``, and one that had been open is tried once more on a new connection,
  as the sync wire does.

A pool this module does not speak for (TLS, a credential provider, RESP3) has its round trips made
by the sync wire in a thread instead: slower, and the loop still never waits.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import greenlet
import redis

from bitcore import breaker, wire

T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, run on this event loop, its round trips (``bitcore.wire.round_trip``)
    awaited on an asyncio connection; what ``fn`` returns or raises."""
    idle = _idle.__dict__.setdefault("greenlets", [])
    child = idle.pop() if idle else greenlet.greenlet(_serve)
    child.parent = greenlet.getcurrent()
    asked = child.switch(fn, args)
    while asked[0] is _ROUND_TRIP:
        _, client, commands = asked
        try:
            replies = await round_trip(client, commands)
        except BaseException as error:  # raised where fn waits, as the sync wire would raise it
            asked = child.throw(error)
        else:
            asked = child.switch(replies)
    if len(idle) < MAX_IDLE:
        idle.append(child)
    if asked[0] is _RAISED:
        raise asked[1]
    return asked[1]  # type: ignore[no-any-return]


#: Greenlets kept for the next ``run`` (making one costs more than a beacon's round trip), at
#: most ``MAX_IDLE``: as many as beacons ever waited on Redis at once, up to that. Per thread: a
#: greenlet runs only in the thread that made it.
MAX_IDLE = 256
_idle = threading.local()
#: What a greenlet hands to ``run``: a round trip to make, or how ``fn`` ended.
_ROUND_TRIP, _RETURNED, _RAISED = "round trip", "returned", "raised"


def _serve(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A greenlet's body: call the functions ``run`` hands it, one after the other, with the
    wire's round trips handed to the loop (the context variables are the greenlet's own)."""
    wire.elsewhere.set(_hand_over)
    breaker.on_loop.set(True)
    while True:
        try:
            ended: tuple[Any, ...] = (_RETURNED, fn(*args))
        except greenlet.GreenletExit:
            raise
        except BaseException as error:
            ended = (_RAISED, error)
        parent = greenlet.getcurrent().parent
        assert parent is not None
        fn, args = parent.switch(ended)


def _hand_over(client: redis.Redis, commands: list[bytes]) -> list[Any]:
    """Switch to the loop (``run``) with a round trip to make; resumed with its replies."""
    parent = greenlet.getcurrent().parent
    assert parent is not None
    replies: list[Any] = parent.switch((_ROUND_TRIP, client, commands))
    return replies


async def round_trip(client: redis.Redis, commands: list[bytes]) -> list[Any]:
    """``commands`` (RESP) sent at once for ``client``'s pool; their replies, error replies
    returned as exceptions (``bitcore.wire.round_trip`` raises them)."""
    connection = _connection_for(client.connection_pool)
    if connection is None:
        return await asyncio.to_thread(wire.on_own_connection, client, commands)
    return await connection.round_trip(commands)


_connections: weakref.WeakKeyDictionary[Any, LoopConnection] = weakref.WeakKeyDictionary()


def _connection_for(pool: redis.ConnectionPool) -> LoopConnection | None:
    """This loop's connection for ``pool`` (made once per pool, loop and process), or None for
    a pool it does not speak for."""
    connection = _connections.get(pool)
    loop = asyncio.get_running_loop()
    if connection is None or connection.loop is not loop or connection.pid != os.getpid():
        if not speaks_for(pool):
            return None
        connection = _connections[pool] = LoopConnection(pool.connection_kwargs, loop)
    return connection


def speaks_for(pool: redis.ConnectionPool) -> bool:
    """Whether ``LoopConnection`` can talk to ``pool``'s server: plain TCP or a unix socket,
    RESP2, a password if any (no TLS, no credential provider)."""
    kind = pool.connection_class
    kwargs = pool.connection_kwargs
    return (
        issubclass(kind, (redis.Connection, redis.UnixDomainSocketConnection))
        and not issubclass(kind, redis.SSLConnection)
        and kwargs.get("credential_provider") is None
        and str(kwargs.get("protocol") or 2) == "2"
    )


@dataclass
class _Waiting:
    """A round trip sent, waiting for its ``count`` replies."""

    future: asyncio.Future[list[Any]]
    count: int
    timer: asyncio.TimerHandle | None
    replies: list[Any] = field(default_factory=list)


class _Link(asyncio.Protocol):
    """One socket to Redis and the round trips waiting on it, answered in order."""

    def __init__(self, owner: LoopConnection) -> None:
        self.owner = owner
        self.reader = wire.reply_reader(owner.decode, owner.encoding)
        self.waiting: collections.deque[_Waiting] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False  # a round trip was sent on it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while self.waiting:
            reply = self.reader.gets()
            if reply is False:
                return
            head = self.waiting[0]
            head.replies.append(reply)
            if len(head.replies) == head.count:
                self.waiting.popleft()
                if head.timer is not None:
                    head.timer.cancel()
                if not head.future.done():
                    head.future.set_result(head.replies)
        if self.reader.gets() is not False:  # a reply nobody asked for: the stream is lost
            self.fail(redis.ConnectionError("Redis sent a reply nobody asked for"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.ConnectionError(f"Redis closed the connection ({exc or 'end of stream'})"))

    def send(self, payload: bytes, count: int) -> asyncio.Future[list[Any]]:
        """Write one round trip; the future of its replies."""
        assert self.transport is not None
        loop = self.owner.loop
        future: asyncio.Future[list[Any]] = loop.create_future()
        timeout = self.owner.timeout
        timer = loop.call_later(timeout, self.timed_out) if timeout else None
        self.waiting.append(_Waiting(future, count, timer))
        self.used = True
        self.transport.write(payload)
        return future

    def timed_out(self) -> None:
        """A reply did not come within the socket timeout: Redis is hung (or too slow)."""
        self.owner.breaker_failed()
        self.fail(redis.TimeoutError("Timeout reading from Redis"))

    def fail(self, error: Exception) -> None:
        """Close the socket and fail every round trip waiting on it with ``error``."""
        self.closed = True
        while self.waiting:
            waiting = self.waiting.popleft()
            if waiting.timer is not None:
                waiting.timer.cancel()
            if not waiting.future.done():
                waiting.future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class LoopConnection:
    """The round trips of one pool's clients on one event loop, on one socket at a time."""

    def __init__(self, kwargs: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pid = os.getpid()
        self.breaker: breaker.Breaker | None = kwargs.get("breaker")
        self.timeout: float | None = kwargs.get("socket_timeout")
        self.connect_timeout: float | None = kwargs.get("socket_connect_timeout") or self.timeout
        self.path: str | None = kwargs.get("path")
        self.host: str = kwargs.get("host") or "localhost"
        self.port: int = int(kwargs.get("port") or 6379)
        self.decode = bool(kwargs.get("decode_responses"))
        self.encoding = kwargs.get("encoding") or "utf-8"
        self.setup = _setup_commands(kwargs)
        self.link: _Link | None = None
        self.connecting: asyncio.Future[_Link] | None = None

    async def round_trip(self, commands: list[bytes]) -> list[Any]:
        """Send ``commands`` at once and return their replies; tried once more on a new socket
        when one that had been open was closed under it."""
        payload = b"".join(commands)
        token = object()  # who this round trip is, to the breaker (a probe, when half-open)
        for last_try in (False, True):
            if self.breaker is not None:
                self.breaker.admit(token)
            link = await self._open_link()
            reused = link.used
            try:
                replies = await link.send(payload, len(commands))
            except redis.ConnectionError:
                if last_try or not reused:
                    raise
                continue
            if self.breaker is not None:
                self.breaker.succeeded()
            return replies
        raise AssertionError("unreachable")

    def breaker_failed(self) -> None:
        if self.breaker is not None:
            self.breaker.failed()

    async def _open_link(self) -> _Link:
        """The open socket, connected first if there is none (once, for every round trip
        asking meanwhile)."""
        link = self.link
        if link is not None and not link.closed:
            return link
        if self.connecting is None or self.connecting.done():
            self.connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self.connecting)

    async def _connect(self) -> _Link:
        link = _Link(self)
        try:
            if self.path:
                opening = self.loop.create_unix_connection(lambda: link, self.path)
            else:
                opening = self.loop.create_connection(lambda: link, self.host, self.port)
            await asyncio.wait_for(opening, self.connect_timeout)
        except (TimeoutError, OSError) as error:
            self.breaker_failed()
            where = self.path or f"{self.host}:{self.port}"
            raise redis.ConnectionError(f"Error connecting to {where}: {error!r}") from None
        if self.setup:
            replies = await link.send(b"".join(self.setup), len(self.setup))
            for reply in replies:
                if isinstance(reply, Exception):
                    link.fail(redis.ConnectionError("connection setup refused"))
                    raise reply
        self.link = link
        return link


def _setup_commands(kwargs: dict[str, Any]) -> list[bytes]:
    """What redis-py sends on a new connection before its first command: ``AUTH``, ``SELECT``,
    ``CLIENT SETNAME``, as the pool's settings ask."""
    commands = []
    password, username = kwargs.get("password"), kwargs.get("username")
    if password:
        commands.append(wire.encode("AUTH", *([username] if username else []), password))
    if kwargs.get("client_name"):
        commands.append(wire.encode("CLIENT", "SETNAME", kwargs["client_name"]))
    if int(kwargs.get("db") or 0):
        commands.append(wire.encode("SELECT", int(kwargs["db"])))
    return commands
