"""Cleanup of temporary bit-op keys that have outlived their use, once per interval.

bitcore gives every bit-op result key a TTL, so its own keys expire by themselves. Plain bitmapist,
sharing the same Redis, writes ``trackist_bitop_*`` keys with no TTL, and they stay for ever.
This module removes:

- in the default mode, bit-op keys **without a TTL** that nobody has read or written for
  ``max_idle`` seconds (``OBJECT IDLETIME``); keys with a TTL are left to expire on their own;
- with ``all_keys=True``, **every** bit-op key, with or without a TTL (a bit operation is
  recomputed on its next read, so this costs time, never data).

It never touches anything else: event keys, unique keys, segment hashes (``bitcore:segment:*``) and
foreign keys are not temporary keys (:func:`is_temporary_bitop_key`, the rule of
``KeyLayout.is_temporary_key`` that ``BitCore.delete_temporary_bitop_keys`` uses too); segment
results and scratch keys and reports' copies are. It walks the keyspace with
``SCAN`` in bounded batches (never ``KEYS``), and each batch is checked, measured (``MEMORY USAGE``)
and deleted by one Lua script, so check and delete are atomic: a key read or given a TTL between the
``SCAN`` and the delete is kept, and a dry run counts exactly what a real run would delete.

Running once per interval however many workers or hosts share the Redis takes two things: a lock
with an expiry (:func:`try_lock`; a holder that dies loses it after ``lock_ttl`` seconds), and a
"last run" record (:data:`LAST_RUN_KEY`) read again *under the lock*, so a process that waited
behind another run sees that run and does not repeat it (:func:`run_if_due`). Time is the Redis
server's (``TIME``), so hosts with skewed clocks agree on when the interval is over.

>>> import redis  # doctest: +SKIP
>>> result = cleanup(redis.Redis(port=6399), KeyLayout(), dry_run=True)  # doctest: +SKIP
>>> result.keys, result.bytes  # doctest: +SKIP
(12, 98304)
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis
from redis.crc import key_slot
from redis.exceptions import LockError
from redis.lock import Lock

from bitcore.keys import (
    BITOP_NAMES as BITOP_NAMES,
)
from bitcore.keys import (
    CLEANUP_LAST_DRY_RUN_KEY,
    CLEANUP_LAST_RUN_KEY,
    CLEANUP_LOCK_KEY,
    KeyLayout,
    ShardedKeyLayout,
)
from bitcore.shards import is_cluster, primaries_of

#: The lock that makes one run at a time. Not under the event prefix: nothing mistakes it for data.
LOCK_KEY = CLEANUP_LOCK_KEY
#: Hash describing the last real (deleting) run; the schedule reads its ``time``.
LAST_RUN_KEY = CLEANUP_LAST_RUN_KEY
#: Hash describing the last dry run; shown on the status page, never delays the schedule.
LAST_DRY_RUN_KEY = CLEANUP_LAST_DRY_RUN_KEY
#: Keys per SCAN call and per Lua batch: bounded work per round trip; Redis never blocks for long.
SCAN_COUNT = 1000
DEFAULT_MAX_IDLE = 86400
DEFAULT_INTERVAL = 3600
#: Seconds the lock lives unless renewed; renewed after every batch, so only a dead holder loses it.
DEFAULT_LOCK_TTL = 300.0
#: SCAN calls the status count makes at most, so a status page on a huge keyspace stays fast.
COUNT_MAX_SCANS = 200

# KEYS: candidate bit-op keys. ARGV: all ("1"/"0"), max idle seconds, dry run ("1"/"0").
# Returns {keys freed, bytes freed, keys whose idle time is not tracked (LFU policy)}.
_SWEEP_SCRIPT = """
local all_keys = ARGV[1] == '1'
local max_idle = tonumber(ARGV[2])
local dry_run = ARGV[3] == '1'
local freed, bytes, untracked = 0, 0, 0
for _, key in ipairs(KEYS) do
  local pttl = redis.call('PTTL', key)
  if pttl ~= -2 then
    local take = all_keys
    if not take and pttl == -1 then
      local idle = redis.pcall('OBJECT', 'IDLETIME', key)
      if type(idle) == 'number' then
        take = idle >= max_idle
      else
        untracked = untracked + 1
      end
    end
    if take then
      freed = freed + 1
      bytes = bytes + (redis.call('MEMORY', 'USAGE', key) or 0)
      if not dry_run then
        redis.call('UNLINK', key)
      end
    end
  end
end
return {freed, bytes, untracked}
"""


#: A hash as redis-py returns it (bytes) or as we write it (str).
Record = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]


class CleanupLockLost(RuntimeError):
    """The lock expired during a run (the run took longer than ``lock_ttl`` between two batches)."""


@dataclass(frozen=True)
class CleanupResult:
    """What one run freed (or, for a dry run, would free)."""

    keys: int
    bytes: int
    scanned: int  # bit-op keys looked at
    untracked: int  # keys without a TTL whose idle time Redis does not track (LFU policy): kept
    dry_run: bool
    all_keys: bool
    max_idle: int | None  # None when all_keys
    time: float  # Redis server time when the run started
    seconds: float  # how long it took

    def to_record(self) -> dict[str, str]:
        """The fields of the last-run hash (every value a string, as Redis stores them)."""
        record = {k: str(int(v) if isinstance(v, bool) else v) for k, v in asdict(self).items()}
        record["max_idle"] = "" if self.max_idle is None else str(self.max_idle)
        record["host"] = socket.gethostname()
        record["pid"] = str(os.getpid())
        return record

    @classmethod
    def from_record(cls, record: Record) -> CleanupResult | None:
        """Read a last-run hash back; ``None`` when there is none or it is not one of ours."""
        fields = {_text(k): _text(v) for k, v in record.items()}
        try:
            return cls(
                keys=int(fields["keys"]),
                bytes=int(fields["bytes"]),
                scanned=int(fields.get("scanned", "0")),
                untracked=int(fields.get("untracked", "0")),
                dry_run=fields.get("dry_run") == "1",
                all_keys=fields.get("all_keys") == "1",
                max_idle=int(fields["max_idle"]) if fields.get("max_idle") else None,
                time=float(fields["time"]),
                seconds=float(fields.get("seconds", "0")),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class TemporaryKeyCount:
    """How many bit-op keys exist now; ``complete`` is False when the scan stopped at its budget."""

    total: int
    without_ttl: int
    complete: bool


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def is_temporary_bitop_key(layout: KeyLayout, key: bytes | str) -> bool:
    """True for a temporary bit-op key: ``KeyLayout.is_temporary_key``, the one rule every sweeper
    uses. Stricter than ``KeyLayout.is_bitop_key`` on purpose: an event someone named ``bitop``
    has keys like ``trackist_bitop_2024-5``, which are data, and cleanup must never delete data.

    >>> is_temporary_bitop_key(KeyLayout(), "trackist_bitop_OR_trackist_a_u")
    True
    """
    if isinstance(layout, ShardedKeyLayout):  # a shard's key: its flat name decides
        parsed = layout.parse_shard_key(key)
        return parsed is not None and layout.is_temporary_key(parsed[1])
    return layout.is_temporary_key(key)


def _pattern(layout: KeyLayout) -> str:
    """SCAN pattern of the bit-op keys (every shard's, on the sharded layout)."""
    pattern = layout.bitop_keys_pattern()
    return layout.shard_pattern(pattern) if isinstance(layout, ShardedKeyLayout) else pattern


def _bitop_keys(node: redis.Redis, layout: KeyLayout) -> Iterator[bytes]:
    for key in node.scan_iter(match=_pattern(layout), count=SCAN_COUNT):
        if is_temporary_bitop_key(layout, key):
            yield key


def _by_slot(node: redis.Redis, batch: list[bytes], cluster: bool) -> list[list[bytes]]:
    """``batch`` as one group, or on a cluster one group per slot (a script's keys must share
    one)."""
    if not cluster:
        return [batch]
    groups: dict[int, list[bytes]] = {}
    for key in batch:
        groups.setdefault(key_slot(key), []).append(key)
    return list(groups.values())


def _batches(keys: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def server_time(r: redis.Redis) -> float:
    """Seconds since the epoch by the Redis server's clock: the one clock every host shares."""
    seconds, micros = r.time()
    return float(seconds) + micros / 1e6


def cleanup(
    r: redis.Redis,
    layout: KeyLayout,
    *,
    max_idle: int = DEFAULT_MAX_IDLE,
    all_keys: bool = False,
    dry_run: bool = False,
    batch_size: int = SCAN_COUNT,
    after_batch: Callable[[], None] | None = None,
) -> CleanupResult:
    """Delete temporary bit-op keys (see the module docstring for which) and say what that freed.

    Takes no lock: the CLI calls :func:`run_locked` and the scheduler :func:`run_if_due`.
    ``after_batch`` runs after every batch (the lock holder renews its lock there).
    """
    if max_idle < 0:
        raise ValueError(f"max_idle must be 0 or more seconds, got {max_idle}")
    started = time.monotonic()
    started_at = server_time(r)
    args = ["1" if all_keys else "0", str(max_idle), "1" if dry_run else "0"]
    freed = freed_bytes = scanned = untracked = 0
    cluster = is_cluster(r)
    for node in primaries_of(r):  # on a cluster, SCAN sees one node's keys: every primary's
        sweep = node.register_script(_SWEEP_SCRIPT)
        for batch in _batches(_bitop_keys(node, layout), batch_size):
            for group in _by_slot(node, batch, cluster):
                keys, size, no_idle = sweep(keys=group, args=args)
                freed, freed_bytes = freed + int(keys), freed_bytes + int(size)
                untracked += int(no_idle)
            scanned += len(batch)
            if after_batch is not None:
                after_batch()
    return CleanupResult(
        keys=freed,
        bytes=freed_bytes,
        scanned=scanned,
        untracked=untracked,
        dry_run=dry_run,
        all_keys=all_keys,
        max_idle=None if all_keys else max_idle,
        time=started_at,
        seconds=round(time.monotonic() - started, 6),
    )


def count_temporary_keys(
    r: redis.Redis, layout: KeyLayout, max_scans: int = COUNT_MAX_SCANS
) -> TemporaryKeyCount:
    """Bit-op keys now, and how many have no TTL, in at most ``max_scans`` SCAN calls.

    One PTTL pipeline per SCAN call; the budget keeps a status page fast on a huge keyspace.
    """
    total = without_ttl = scans = 0
    for node in primaries_of(r):  # on a cluster, every primary's, within one budget
        cursor: int = 0
        while scans < max_scans:
            scans += 1
            cursor, found = node.scan(cursor, match=_pattern(layout), count=SCAN_COUNT)
            keys = [key for key in found if is_temporary_bitop_key(layout, key)]
            if keys:
                with node.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.pttl(key)
                    ttls = pipe.execute()
                total += sum(1 for ttl in ttls if ttl != -2)
                without_ttl += sum(1 for ttl in ttls if ttl == -1)
            if cursor == 0:
                break
        else:
            return TemporaryKeyCount(total, without_ttl, complete=False)
    return TemporaryKeyCount(total, without_ttl, complete=True)


def last_run(r: redis.Redis, dry_run: bool = False) -> CleanupResult | None:
    """The last real run (or the last dry run), as recorded; ``None`` if there has been none."""
    return CleanupResult.from_record(r.hgetall(LAST_DRY_RUN_KEY if dry_run else LAST_RUN_KEY))


def record_run(r: redis.Redis, result: CleanupResult) -> None:
    """Write ``result`` as the last run of its kind (one hash, replaced whole in one MULTI/EXEC)."""
    key = LAST_DRY_RUN_KEY if result.dry_run else LAST_RUN_KEY
    record: dict[Any, Any] = dict(result.to_record())
    with r.pipeline() as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=record)
        pipe.execute()


def try_lock(r: redis.Redis, ttl: float = DEFAULT_LOCK_TTL) -> Lock | None:
    """The cleanup lock if it is free, else ``None`` at once (never waits).

    redis-py's ``Lock``: ``SET key token NX PX ttl`` to take it, a Lua script deleting it only if
    the token is still ours to release it. A holder that dies keeps it at most ``ttl`` seconds.
    """
    lock = r.lock(LOCK_KEY, timeout=ttl, blocking=False)
    return lock if lock.acquire(blocking=False) else None


def _release(lock: Lock) -> None:
    # If it expired, someone else may hold it now: theirs to release.
    with contextlib.suppress(LockError):
        lock.release()


def _renewer(lock: Lock) -> Callable[[], None]:
    def renew() -> None:
        try:
            lock.reacquire()
        except LockError as error:
            raise CleanupLockLost(
                "the cleanup lock expired during the run; raise the lock TTL"
            ) from error

    return renew


def run_locked(
    r: redis.Redis,
    layout: KeyLayout,
    *,
    max_idle: int = DEFAULT_MAX_IDLE,
    all_keys: bool = False,
    dry_run: bool = False,
    lock_ttl: float = DEFAULT_LOCK_TTL,
) -> CleanupResult | None:
    """Run now under the lock and record it; ``None`` if another run holds the lock. For cron."""
    lock = try_lock(r, lock_ttl)
    if lock is None:
        return None
    try:
        result = cleanup(
            r,
            layout,
            max_idle=max_idle,
            all_keys=all_keys,
            dry_run=dry_run,
            after_batch=_renewer(lock),
        )
        record_run(r, result)
        return result
    finally:
        _release(lock)


def seconds_until_due(
    r: redis.Redis, interval: float, clock: Callable[[], float] | None = None
) -> float:
    """Seconds until the next run is due by the last-run record (0 or less: due now)."""
    previous = last_run(r)
    if previous is None:
        return 0.0
    now = clock() if clock is not None else server_time(r)
    return previous.time + interval - now


def run_if_due(
    r: redis.Redis,
    layout: KeyLayout,
    *,
    interval: float = DEFAULT_INTERVAL,
    max_idle: int = DEFAULT_MAX_IDLE,
    lock_ttl: float = DEFAULT_LOCK_TTL,
    clock: Callable[[], float] | None = None,
) -> CleanupResult | None:
    """The scheduled run: clean up if ``interval`` seconds passed since the last run, else ``None``.

    Safe to call from any number of threads, processes and hosts at once: exactly one of them runs
    per interval. The record is checked before taking the lock (cheap) and again under it (correct).
    ``clock`` replaces the Redis server's clock (tests move time without sleeping).
    """
    if seconds_until_due(r, interval, clock) > 0:
        return None
    lock = try_lock(r, lock_ttl)
    if lock is None:
        return None
    try:
        if seconds_until_due(r, interval, clock) > 0:
            return None  # another process ran while we were deciding
        result = cleanup(r, layout, max_idle=max_idle, after_batch=_renewer(lock))
        if clock is not None:
            result = replace(result, time=clock())
        record_run(r, result)
        return result
    finally:
        _release(lock)
