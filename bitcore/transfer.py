"""Bitmap bytes straight from the socket into a numpy array: one copy (the kernel's), not four.

At 10 million users a day bitmap is 1.25 MB and a cohort table reads tens of megabytes. Through
redis-py each byte is copied from the socket into its read buffer, into hiredis's buffer, into a
``bytes`` reply and then into the array numpy counts in: the copies cost about as much as the
counting (``bench/README.md``, "Where the time goes at 10M users"). Here the reply of one
``MGET`` (or one ``MULTI`` / ``GETRANGE``... / ``EXEC`` per slice) is parsed by hand, and each value
is received with ``recv_into`` directly into its row of the caller's array.

Like ``bitcore.wire`` (the writer's hand-encoded commands) this goes under redis-py's public API:
it uses the thread's own connection (``wire.own_connection``) and its socket. Anything unexpected
(an error reply, a closed socket, a timeout) disconnects that connection, so it is never left
half read, and raises redis-py's own exception types.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from bitcore import wire

#: Bytes read at a time for the reply's small parts (status lines, bulk headers).
CHUNK_BYTES = 1 << 16
CLOSED = "Redis closed the connection while a report was reading"


def parse_length(line: bytes) -> int:
    """The length of a RESP ``$n`` (bulk) or ``*n`` (array) header; ``-1`` is a missing value
    (RESP3 spells it ``_``).

    >>> parse_length(b"*3"), parse_length(b"$-1"), parse_length(b"_")
    (3, -1, -1)
    """
    head = line[:1]
    if head in (b"$", b"*"):
        return int(line[1:])
    if head == b"_":
        return -1
    if head == b"-":
        raise redis.ResponseError(line[1:].decode(errors="replace"))
    raise redis.ResponseError(f"unexpected reply {line[:40]!r}")


class _Receiver:
    """The reply stream of one socket: lines through a small buffer, values into their rows."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = bytearray(CHUNK_BYTES)
        self.view = memoryview(self.buffer)
        self.start = self.end = 0

    def _more(self) -> None:
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buffer):  # a line longer than what is left: move it to the front
            size = self.end - self.start
            self.buffer[:size] = self.buffer[self.start : self.end]
            self.start, self.end = 0, size
        got = self.sock.recv_into(self.view[self.end :])
        if not got:
            raise redis.ConnectionError(CLOSED)
        self.end += got

    def line(self) -> bytes:
        """The next line of the reply, without its CRLF."""
        while True:
            found = self.buffer.find(b"\r\n", self.start, self.end)
            if found >= 0:
                line = bytes(self.view[self.start : found])
                self.start = found + 2
                return line
            self._more()

    def skip(self, size: int) -> None:
        """Drop the next ``size`` bytes of the reply."""
        while size:
            if self.start == self.end:
                self._more()
            dropped = min(size, self.end - self.start)
            self.start += dropped
            size -= dropped

    def into(self, target: memoryview) -> None:
        """Exactly ``len(target)`` bytes of the reply into ``target``: what the buffer holds, then
        the rest straight from the socket."""
        have = min(self.end - self.start, len(target))
        target[:have] = self.view[self.start : self.start + have]
        self.start += have
        while have < len(target):
            got = self.sock.recv_into(target[have:])
            if not got:
                raise redis.ConnectionError(CLOSED)
            have += got


def request(keys: Sequence[str], start: int, stop: int, whole: bool = False) -> bytes:
    """``MULTI``, ``GETRANGE key start stop-1`` for each key, ``EXEC``: one slice, one transaction
    (every user's bits of this slice are read at one moment). ``whole``: one ``MGET`` instead,
    atomic too, and (unlike a transaction) still served by a Redis at its ``maxmemory``."""
    if whole:
        return wire.encode("MGET", *keys)
    last = str(stop - 1)
    body = [wire.encode("GETRANGE", key, start, last) for key in keys]
    return b"".join([wire.encode("MULTI"), *body, wire.encode("EXEC")])


def receive(receiver: _Receiver, rows: Sequence[np.ndarray], whole: bool = False) -> list[int]:
    """Read the reply of a ``request`` of ``len(rows)`` keys, key ``k``'s value into ``rows[k]``
    (a uint8 row as wide as the slice), zeroing the rest of the row; returns each value's length.
    A whole value longer than its row (the key grew since it was measured) fills the row and the
    rest is dropped: the report counts the bytes it measured."""
    count = len(rows)
    if not whole:
        if receiver.line() != b"+OK":
            raise redis.ResponseError("MULTI was refused")
        for _ in range(count):
            queued = receiver.line()
            if queued != b"+QUEUED":
                raise redis.ResponseError(queued[1:].decode(errors="replace"))
    if parse_length(receiver.line()) != count:
        raise redis.ResponseError("EXEC was aborted")
    lengths = []
    for k in range(count):
        size = max(parse_length(receiver.line()), 0)
        row = rows[k]
        if size > len(row) and not whole:
            raise redis.ResponseError(f"GETRANGE returned {size} bytes, more than asked")
        kept = min(size, len(row))
        if size:
            receiver.into(memoryview(row[:kept]))  # type: ignore[arg-type]
            receiver.skip(size - kept)
            if receiver.line() != b"":
                raise redis.ResponseError("a value did not end where its length said")
        row[kept:] = 0
        lengths.append(kept)
    return lengths


class SliceReader:
    """Reads slices of the same keys, one ``request`` each, on the thread's own connection;
    ``send`` may run one slice ahead of ``receive`` so Redis copies the next slice while the
    caller counts this one. Use it in a ``with``: a reader left mid-reply disconnects."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self.connection = wire.own_connection(redis_client)
        #: whether the connection was kept from an earlier command (the server may have closed it)
        self.reused = wire.was_open(self.connection)
        self.pending: deque[bool] = deque()  # per request sent and not received: whole?
        self.receiver: _Receiver | None = None

    def __enter__(self) -> SliceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pending or exc[0] is not None:
            self.connection.disconnect()

    def send(self, keys: Sequence[str], start: int, stop: int, whole: bool = False) -> None:
        """Ask for ``[start, stop)`` of ``keys`` (``whole``: all of them, one ``MGET``); the reply
        waits for ``receive``."""
        try:
            packed = request(keys, start, stop, whole)
            self.connection.send_packed_command([packed], check_health=False)
            sock = self.connection._sock  # connected by the send, if it was not
            if self.receiver is None or self.receiver.sock is not sock:
                self.receiver = _Receiver(sock)
        except BaseException:
            self.connection.disconnect()
            raise
        self.pending.append(whole)

    def receive(self, rows: Sequence[np.ndarray]) -> list[int]:
        """The oldest reply not received yet, into ``rows`` (see ``receive``)."""
        if self.receiver is None or not self.pending:
            raise RuntimeError("receive() before send()")
        try:
            lengths = receive(self.receiver, rows, self.pending[0])
        except BaseException as error:
            self.connection.disconnect()  # never leave a reply half read on it
            self.pending.clear()
            if isinstance(error, TimeoutError):
                raise redis.TimeoutError(f"a report's read timed out: {error}") from error
            if isinstance(error, OSError):
                raise redis.ConnectionError(f"a report's read failed: {error}") from error
            raise
        self.pending.popleft()
        return lengths
