"""The hot write path's wire: each thread's own connection, and commands encoded by hand.

This is the one module that goes under redis-py's public API, and only because a benchmark says
so: for the writer's one-round-trip gate call (``bitcore.bulk``), sending hand-encoded RESP on
this connection costs about half the client CPU of redis-py's ``evalsha`` through its pool
(``bench/README.md``, "The one writer"), and a batch's ``BITFIELD`` arguments are packed several
times faster than redis-py checks them one by one. It peeks at one private attribute,
``Connection._sock`` (:func:`was_open`). Everything else in bitcore uses redis-py as documented.

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

It also lets a round trip go elsewhere (``elsewhere``): ``bitcore.aio`` sends the same bytes on an
asyncio connection for code it runs on an event loop, and reads the replies with ``reply_reader``,
the parser redis-py uses with its own error classes (the second thing here under redis-py's public
API: ``redis._parsers.BaseParser.parse_error``).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any

import hiredis
import redis
from redis._parsers import BaseParser
from redis._parsers.hiredis import NOT_ENOUGH_DATA

#: Offsets per ``BITFIELD`` command, so no single command grows without bound.
OFFSETS_PER_COMMAND = 4096


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


def encode(*parts: str | int | bytes) -> bytes:
    """One command as RESP: what redis-py would send, without its per-argument checks and command
    machinery (about a fifth of a single beacon's client time, profiled).

    >>> encode("GET", "k")
    b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n'
    """
    return b"*%d\r\n%s" % (len(parts), bulk_strings(parts))


def bulk_strings(parts: Iterable[str | int | bytes]) -> bytes:
    """``parts`` as RESP bulk strings, one after the other: the body of a command."""
    chunks = []
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        chunks.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(chunks)


def command(parts: int, head: tuple[str | int, ...], body: list[bytes]) -> bytes:
    """A RESP command of ``parts`` parts: ``head`` encoded here, then ``body`` already encoded."""
    return b"".join([b"*%d\r\n" % parts, bulk_strings(head), *body])


_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def execute_transaction(redis_client: redis.Redis, commands: list[bytes]) -> None:
    """Send ``commands`` (each one RESP-encoded command) in one ``MULTI``/``EXEC`` and raise the
    first error Redis answers with, queued or executed."""
    execute_transactions(redis_client, [commands])


def execute_transactions(redis_client: redis.Redis, transactions: list[list[bytes]]) -> None:
    """Send each of ``transactions`` (lists of RESP-encoded commands) as a ``MULTI``/``EXEC`` of
    its own, all in one round trip, and raise the first error Redis answers with, queued or
    executed, once every reply is read (each transaction is applied whole or not at all, on its
    own: one that fails leaves the others applied)."""
    sent = [command for commands in transactions for command in (_MULTI, *commands, _EXEC)]
    replies = round_trip(redis_client, sent)
    end = -1
    for commands in transactions:
        end += len(commands) + 2
        for reply in replies[end] or ():
            if isinstance(reply, Exception):
                raise reply


#: Sends a round trip's commands and returns their replies (error replies as exceptions, not
#: raised): this thread's own connection, unless ``elsewhere`` says otherwise.
RoundTrip = Callable[[redis.Redis, list[bytes]], list[Any]]

#: The transport of the code running now, when it is not this thread's own connection: set by
#: ``bitcore.aio`` for code it runs on an event loop, whose round trips the loop awaits.
elsewhere: ContextVar[RoundTrip | None] = ContextVar("bitcore_wire_elsewhere", default=None)


def round_trip(redis_client: redis.Redis, commands: list[bytes]) -> list[Any]:
    """Send ``commands`` (RESP) at once and return their replies: on this thread's own connection
    (``own_connection``), or through the transport ``elsewhere`` names. Raises the first error
    reply, once every reply is read, so the connection is left clean."""
    return round_trips(redis_client, [commands])[0]


def round_trips(redis_client: redis.Redis, batches: Sequence[list[bytes]]) -> list[list[Any]]:
    """Several round trips in order, each sent before the replies of the one before are read, so
    Redis runs the next while this client reads and decodes (a funnel's twenty round trips of
    BITOPs left Redis idle a sixth of the time): at most two round trips' commands wait on Redis
    at once, the bound a caller sizes its round trips by. Returns each one's replies; raises the
    first error reply once every reply is read. On a connection error redis-py's retry sends
    them all again from the first: the commands must give the same result when run again."""
    transport = elsewhere.get()
    if transport is not None:
        answered = [transport(redis_client, batch) for batch in batches]
    else:
        answered = _overlapped(redis_client, batches)
    for replies in answered:
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
    return answered


def run_script(
    redis_client: redis.Redis,
    lua: str,
    sha: str,
    keys: Sequence[str | int | bytes],
    args: Sequence[str | int | bytes] = (),
) -> Any:
    """The reply of one call of the script ``lua`` (its SHA1 ``sha``) in one round trip: as
    ``EVALSHA``, and as ``EVAL``, which also loads it, when this Redis does not know it yet."""
    body = [bulk_strings([*keys, *args])]
    parts = 3 + len(keys) + len(args)
    try:
        return round_trip(redis_client, [command(parts, ("EVALSHA", sha, len(keys)), body)])[0]
    except redis.exceptions.NoScriptError:  # first use on this server
        return round_trip(redis_client, [command(parts, ("EVAL", lua, len(keys)), body)])[0]


def on_own_connection(redis_client: redis.Redis, commands: list[bytes]) -> list[Any]:
    """``round_trip`` on this thread's own connection, error replies returned, with redis-py's
    retry on connection errors (safe here: setting bits twice sets the same bits; a quota may
    count a retried request twice)."""
    return _overlapped(redis_client, [commands])[0]


def _overlapped(redis_client: redis.Redis, batches: Sequence[list[bytes]]) -> list[list[Any]]:
    """``round_trips`` on this thread's own connection, error replies returned."""
    connection = own_connection(redis_client)
    reused = was_open(connection)
    payloads = [[b"".join(commands)] for commands in batches]

    def attempt() -> list[list[Any]]:
        answered: list[list[Any]] = []
        for number, commands in enumerate(batches):
            if number == 0:
                connection.send_packed_command(payloads[0])
            if number + 1 < len(batches):  # no health check: replies are pending
                connection.send_packed_command(payloads[number + 1], check_health=False)
            answered.append([_next_reply(connection) for _ in commands])
        return answered

    def disconnect(_error: Exception) -> None:
        connection.disconnect()

    try:
        try:
            answered = connection.retry.call_with_retry(attempt, disconnect)
        except redis.ConnectionError:
            if not reused:
                raise
            # The kept socket had been closed by the server: once more, on a new one.
            connection.disconnect()
            answered = connection.retry.call_with_retry(attempt, disconnect)
    except BaseException:
        connection.disconnect()  # replies may be left unread on it
        raise
    return answered  # type: ignore[no-any-return]


def _next_reply(connection: Any) -> Any:
    """The connection's next reply, an error reply as its exception (returned, not raised)."""
    reply = _buffered_reply(connection)
    if reply is _NOTHING_BUFFERED:
        try:
            reply = connection.read_response()
        except redis.ResponseError as error:
            reply = error
    return reply


_NOTHING_BUFFERED = object()
#: hiredis's type of RESP3 push messages (absent before hiredis 3.2).
_PUSH = getattr(hiredis, "PushNotification", None)


def _buffered_reply(connection: Any) -> Any:
    """The next reply if the connection's hiredis reader already holds all of it, else
    ``_NOTHING_BUFFERED`` (read it with ``read_response``, which reads the socket).

    A funnel's round trip has hundreds of integer replies that arrive in one or two reads:
    redis-py's ``read_response`` costs several microseconds of layers per reply (its timeout and
    error wrapping, the breaker's bookkeeping), the reader's ``gets`` a fraction of one. Error
    replies come back as values (the reader is made with redis-py's ``parse_error``), as
    ``on_own_connection`` returns them, and a connection error is raised as redis-py raises
    it, a RESP3 push message handed to redis-py's handler; without hiredis ``read_response``
    reads every reply."""
    reader = getattr(getattr(connection, "_parser", None), "_reader", None)
    if reader is None or not reader.has_data():
        return _NOTHING_BUFFERED
    reply = reader.gets()
    if reply is NOT_ENOUGH_DATA:
        return _NOTHING_BUFFERED
    if _PUSH is not None and isinstance(reply, _PUSH):  # RESP3: not a reply; as redis-py does
        connection._parser.handle_push_response(reply)
        return _NOTHING_BUFFERED
    if isinstance(reply, redis.ConnectionError):
        raise reply
    if isinstance(reply, list) and reply and isinstance(reply[0], redis.ConnectionError):
        raise reply[0]
    return reply


def reply_reader(decode: bool = False, encoding: str = "utf-8") -> hiredis.Reader:
    """A parser of Redis's replies (hiredis, as redis-py uses it) that returns error replies as
    the exceptions redis-py raises for them (``NoScriptError``, ``OutOfMemoryError`` ...), so a
    reply read elsewhere (``bitcore.aio``) means what the same reply read here means. Error
    replies are returned, not raised: ``round_trip`` raises them once all replies are read."""
    return hiredis.Reader(
        protocolError=redis.exceptions.InvalidResponse,
        replyError=BaseParser.parse_error,
        encoding=encoding if decode else None,
    )


def bitfield_commands(
    key: str, offsets: list[int], fragments: dict[int, bytes] | None = None
) -> list[bytes]:
    """``BITFIELD key SET u1 <o> 1 ...`` for every offset, as RESP, in commands of at most
    ``OFFSETS_PER_COMMAND`` offsets. ``fragments`` remembers each offset's encoding, for the
    other keys that get the same offset.

    Encoded here rather than by a redis-py pipeline: a batch of 500 events is about 8,000
    arguments, which redis-py checks and packs one by one at several times the cost of the rest.

    >>> bitfield_commands("k", [5])
    [b'*6\\r\\n$8\\r\\nBITFIELD\\r\\n$1\\r\\nk\\r\\n$3\\r\\nSET\\r\\n$2\\r\\nu1\\r\\n$1\\r\\n5\\r\\n$1\\r\\n1\\r\\n']
    """
    cache = {} if fragments is None else fragments
    encoded_key = key.encode()
    commands = []
    for start in range(0, len(offsets), OFFSETS_PER_COMMAND):
        chunk = offsets[start : start + OFFSETS_PER_COMMAND]
        body = []
        for offset in chunk:
            fragment = cache.get(offset)
            if fragment is None:
                cache[offset] = fragment = _set_bit_fragment(offset)
            body.append(fragment)
        head = b"*%d\r\n$8\r\nBITFIELD\r\n$%d\r\n%s\r\n" % (
            2 + 4 * len(chunk),
            len(encoded_key),
            encoded_key,
        )
        commands.append(head + b"".join(body))
    return commands


def _set_bit_fragment(offset: int) -> bytes:
    """``SET u1 <offset> 1`` as the four bulk strings of a RESP command."""
    digits = b"%d" % offset
    return b"$3\r\nSET\r\n$2\r\nu1\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(digits), digits)
