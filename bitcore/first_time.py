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

from bitcore import periods
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


def history(client: BitCore, scan_batch: int = SCAN_BATCH) -> dict[str, dict[str, list[str]]]:
    """``{event: {kind: [period suffix, ...]}}`` of every event key under the prefix, found with
    SCAN in batches of ``scan_batch`` (unique keys, the universe and bit-op results left out)."""
    client.require_flat("first-time history")
    found: dict[str, dict[str, list[str]]] = {}
    for key in client.redis.scan_iter(match=client.keys.all_keys_pattern(), count=scan_batch):
        parsed = client.keys.parse_event_key(key)
        if parsed is None or parsed[1] == "u" or parsed[0] == client.universe:
            continue
        name, suffix = parsed
        kind = client.keys.parse_period_suffix(suffix).kind
        found.setdefault(name, {}).setdefault(kind, []).append(suffix)
    return found


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
    """
    client.require_flat("rebuilding first-time bitmaps")
    done_key = client.keys.first_time_rebuilt_key()
    if restart:
        client.redis.delete(done_key)
    found = history(client, scan_batch)
    finished = {_text(name) for name in client.redis.smembers(done_key)}
    todo = sorted(name for name in found if name not in finished)
    keys = 0
    for number, name in enumerate(todo, start=1):
        keys += _rebuild_event(client, name, found[name], periods_per_round_trip)
        client.redis.sadd(done_key, name)
        if progress is not None:
            progress(name, number, len(todo))
    return RebuildResult(len(todo), keys, len(found) - len(todo))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _rebuild_event(
    client: BitCore, name: str, by_kind: dict[str, list[str]], per_round_trip: int
) -> int:
    """One event: per kind, in time order, first = period AND NOT seen (as ``p XOR (p AND seen)``,
    which stays right where ``p`` is longer than ``seen``), then seen |= p; the ever set takes
    every kind's seen. Returns the first-time keys written."""
    run = uuid.uuid4().hex
    seen, overlap = client.keys.report_key(run, 0), client.keys.report_key(run, 1)
    ever = client.keys.ever_key(name)
    written = 0
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
                written += len(ordered[start : start + per_round_trip])
            if ordered:
                client.redis.bitop("OR", ever, ever, seen)
    finally:
        client.redis.delete(seen, overlap)
    return written
