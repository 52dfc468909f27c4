"""First-time bitmaps: reading them, and rebuilding them from history.

The one writer keeps them as it marks (``bitcore.first_time_writes``): for each event an ever set
and, per hour, day, week and month, who did the event for the first time ever in that period.
Data written before, or by plain bitmapist, has none: ``rebuild_first_time`` computes them from
the event keys, per kind of period in time order (first time in period p = in p and in no
earlier period of that kind), with ``BITOP`` in Redis, a few hundred short commands per round
trip. It records each event it finishes, so a stopped rebuild resumes where it stopped
(``restart=True`` starts over), and reports its progress to a callback.

A first time is the first mark the writer saw, so marks written out of time order (a backfill of
older data after newer) make a later period the first time; a rebuild puts that right.

>>> from bitcore import periods
>>> first_time_bitmap(b, "active", periods.week(2025, 1)).redis_key  # doctest: +SKIP
'bitcore:first:trackist_active_W2025-1'
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bitcore import periods, shards
from bitcore.bitmaps import Bitmap

if TYPE_CHECKING:
    from bitcore.client import BitCore

#: Keys one SCAN call asks for, and periods one round trip rebuilds (three BITOPs each).
SCAN_BATCH = 1000
PERIODS_PER_ROUND_TRIP = 100
#: Seconds the rebuild's scratch keys live if it is stopped midway (cleanup would take them too).
SCRATCH_TTL = 600
KINDS: tuple[periods.Kind, ...] = ("hour", "day", "week", "month")


class StoredBitmap(Bitmap):
    """A bitmap under a key the layout named (first-time and ever keys): read like any other."""

    def __init__(self, client: BitCore, redis_key: str) -> None:
        self.client = self.system = client
        self.redis_key = redis_key


def first_time_bitmap(client: BitCore, event_name: str, period: periods.Period) -> StoredBitmap:
    """Who did ``event_name`` for the first time ever during ``period`` (hour, day, week, month;
    a year is the OR of its months)."""
    return StoredBitmap(client, client.keys.first_time_key(event_name, period))


def ever_bitmap(client: BitCore, event_name: str) -> StoredBitmap:
    """Everyone the writer (or a rebuild) ever saw do ``event_name``."""
    return StoredBitmap(client, client.keys.ever_key(event_name))


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did: events rebuilt now (earlier runs' not counted), first-time keys
    written, and events left as already rebuilt by an earlier run."""

    events: int
    keys: int
    skipped: int


#: ``{event: {kind: [period suffix, ...]}}``: the event keys found under a prefix.
History = dict[str, dict[str, list[str]]]


def history(client: BitCore, scan_batch: int = SCAN_BATCH) -> History:
    """``{event: {kind: [period suffix, ...]}}`` of every event key under the prefix, found with
    SCAN in batches of ``scan_batch`` (unique keys, the universe and bit-op results left out); on
    the sharded layout every shard's, on every primary, merged (a period once)."""
    merged: History = {}
    for found in _histories(client, scan_batch).values():
        for name, by_kind in found.items():
            for kind, suffixes in by_kind.items():
                merged.setdefault(name, {}).setdefault(kind, []).extend(suffixes)
    return {
        name: {kind: sorted(set(suffixes)) for kind, suffixes in by_kind.items()}
        for name, by_kind in merged.items()
    }


def _histories(client: BitCore, scan_batch: int) -> dict[int | None, History]:
    """``history`` per shard (``None``: the flat layout's one keyspace, always there), each
    period once: SCAN may return a key twice, and rebuilding a period twice would empty it."""
    found: dict[int | None, dict[str, dict[str, set[str]]]] = {}
    if client.layout == "flat":
        found[None] = {}
    pattern = client.keys.all_keys_pattern()
    for batch in shards.scan_keys(client.redis, client.keys, pattern, scan_batch):
        for shard, key in batch:
            parsed = client.keys.parse_event_key(key)
            if parsed is None or parsed[1] == "u" or parsed[0] == client.universe:
                continue
            name, suffix = parsed
            kind = client.keys.parse_period_suffix(suffix).kind
            found.setdefault(shard, {}).setdefault(name, {}).setdefault(kind, set()).add(suffix)
    return {
        shard: {
            name: {kind: sorted(suffixes) for kind, suffixes in by_kind.items()}
            for name, by_kind in part.items()
        }
        for shard, part in found.items()
    }


def rebuild_first_time(
    client: BitCore,
    *,
    restart: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    scan_batch: int = SCAN_BATCH,
    periods_per_round_trip: int = PERIODS_PER_ROUND_TRIP,
) -> RebuildResult:
    """Compute every event's first-time bitmaps and ever set from its event keys.

    ``progress(event, done, total)`` is called after each event. Events an earlier run finished
    are skipped (``restart=True``: rebuild them all again). Marks written meanwhile keep their
    own first-time bits unless they fall in a period rebuilt after they were written, which then
    gets history's answer (the same one, for marks written in time order).

    On the sharded layout each shard's event keys are rebuilt in that shard's view (every
    BITOP inside its slot), and each shard records the events it finished, so a stopped rebuild
    resumes per shard; the counts are the flat layout's (an event, a first-time bitmap once,
    however many shards hold a part of it).
    """
    found = _histories(client, scan_batch)
    readers = {shard: _reader(client, shard) for shard in found}
    if restart:
        every = set(found) if client.layout == "flat" else {*found, *client.shards_in_use()}
        for reader in (_reader(client, shard) for shard in every):
            reader.redis.delete(reader.keys.first_time_rebuilt_key())
    finished = {
        shard: {_text(name) for name in reader.redis.smembers(reader.keys.first_time_rebuilt_key())}
        for shard, reader in readers.items()
    }
    names = sorted({name for part in found.values() for name in part})
    work = {
        name: [s for s in sorted(found, key=_order) if name in found[s] and name not in finished[s]]
        for name in names
    }
    todo = [name for name in names if work[name]]
    keys = 0
    for number, name in enumerate(todo, start=1):
        written: set[str] = set()
        for shard in work[name]:
            reader = readers[shard]
            written |= _rebuild_event(reader, name, found[shard][name], periods_per_round_trip)
            reader.redis.sadd(reader.keys.first_time_rebuilt_key(), name)
        keys += len(written)
        if progress is not None:
            progress(name, number, len(todo))
    return RebuildResult(len(todo), keys, len(names) - len(todo))


def _reader(client: BitCore, shard: int | None) -> BitCore:
    """Who rebuilds a shard's keys: the client itself (flat), or the shard's view."""
    return client if shard is None else client.shard_view(shard)


def _order(shard: int | None) -> int:
    return -1 if shard is None else shard


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _rebuild_event(
    client: BitCore, name: str, by_kind: dict[str, list[str]], per_round_trip: int
) -> set[str]:
    """One event: per kind, in time order, first = period AND NOT seen (as ``p XOR (p AND seen)``,
    which stays right where ``p`` is longer than ``seen``), then seen |= p; the ever set takes
    every kind's seen. Returns the period suffixes whose first-time keys it wrote."""
    run = uuid.uuid4().hex
    seen, overlap = client.keys.report_key(run, 0), client.keys.report_key(run, 1)
    ever = client.keys.ever_key(name)
    written: set[str] = set()
    try:
        for kind in KINDS:
            ordered = sorted(by_kind.get(kind, []), key=client.keys.parse_period_suffix)
            client.redis.delete(seen)
            for start in range(0, len(ordered), per_round_trip):
                with client.redis.pipeline(transaction=False) as pipe:
                    for suffix in ordered[start : start + per_round_trip]:
                        period = client.keys.parse_period_suffix(suffix)
                        source = client.keys.event_key(name, period)
                        pipe.bitop("AND", overlap, source, seen)
                        pipe.bitop("XOR", client.keys.first_time_key(name, period), source, overlap)
                        pipe.bitop("OR", seen, seen, source)
                    pipe.expire(seen, SCRATCH_TTL)
                    pipe.expire(overlap, SCRATCH_TTL)
                    pipe.execute()
                written.update(ordered[start : start + per_round_trip])
            if ordered:
                client.redis.bitop("OR", ever, ever, seen)
    finally:
        client.redis.delete(seen, overlap)
    return written
