"""Erasure ("forget this user"): clear one user's bit in every bitmap, then drop their mapping.

The right to be forgotten on bitmaps means bit ``U`` of every key: each event's hour, day, week
and month keys, its unique flag, the universe, and the cached results of bit operations, segments
and reports (temporary keys under ``<prefix>bitop_``). Those expire on their own, but until then
they would still hold the user, so erasure clears them too, as it clears data: a report reading
one meanwhile just no longer counts the user, where deleting it would empty the report's copy
under it.

How it stays gentle on a shared Redis:

* the keyspace is walked with ``SCAN ... MATCH <prefix>* TYPE string`` in batches of ``batch``
  keys, never ``KEYS``;
* each batch is one short Lua script that, per key, clears the bit only where ``GETBIT`` says it
  is set: ``O(1)`` per key, so a call lasts about a millisecond, and a bit past a key's end
  (where ``SETBIT 0`` would allocate the key up to it) is never written. A dry run runs the same
  script told to write nothing.

It is resumable by being idempotent: a run stopped midway (Ctrl-C, a lost connection) leaves some
keys cleared and some not; running it again from the start clears what is left, counts only bits
that were still set (so two runs' counts add up to one full run's, never twice a key), and ends
in the same state. The mapping is removed last, so a stopped run can still find the user's
internal id when it runs again.

A user marked again while their erasure runs may keep the new marks: stop tracking them first.

>>> report = b.forget(123)  # doctest: +SKIP
>>> report.keys_changed  # doctest: +SKIP
42
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from bitcore.client import BitCore
    from bitcore.keys import ShardedKeyLayout

#: Keys per SCAN step and per script call: 500 ``GETBIT`` calls take about a millisecond
#: (``bench/README.md``).
DEFAULT_BATCH = 500

#: Per key: whether bit ARGV[1] is set (1) or not (0, also for a key that is not a string: it
#: turned into another type since SCAN saw it, so ``pcall``); cleared where set unless ARGV[2]
#: is "dry". One script for both, so a dry run reads exactly what a real run would change.
CLEAR_SCRIPT = """
local offset = tonumber(ARGV[1])
local write = ARGV[2] ~= 'dry'
local changed = {}
for i = 1, #KEYS do
  local bit = redis.pcall('GETBIT', KEYS[i], offset)
  if bit == 1 then
    if write then redis.call('SETBIT', KEYS[i], offset, 0) end
    changed[i] = 1
  else
    changed[i] = 0
  end
end
return changed
"""


@dataclass(frozen=True)
class ErasureReport:
    """What ``forget`` did (or, in a dry run, would do).

    ``keys_changed`` = ``data_keys_changed`` (events, unique flags, the universe) +
    ``temporary_keys_changed`` (cached bit-op, segment and report results). ``internal_id`` is
    ``None`` when the id map knew no such user (then nothing holds their bit).
    """

    user_id: int | str
    internal_id: int | None
    dry_run: bool
    keys_scanned: int
    data_keys_changed: int
    temporary_keys_changed: int
    mapping_removed: bool

    @property
    def keys_changed(self) -> int:
        return self.data_keys_changed + self.temporary_keys_changed


def _batches(client: BitCore, batch: int) -> Iterator[list[bytes]]:
    """The string keys under the client's prefix, ``batch`` at a time (SCAN, never KEYS)."""
    pattern = client.keys.all_keys_pattern()
    keys = client.redis.scan_iter(match=pattern, count=batch, _type="string")
    while chunk := list(islice(keys, batch)):
        yield chunk


def _had_bit(client: BitCore, keys: Sequence[bytes], offset: int, dry_run: bool) -> list[bool]:
    """Which of ``keys`` had the bit set; cleared there in the same script unless ``dry_run``."""
    script = client.redis.register_script(CLEAR_SCRIPT)
    flags = script(keys=list(keys), args=[offset, "dry" if dry_run else "write"])
    return [flag == 1 for flag in flags]


def _where(client: BitCore, internal: int) -> tuple[BitCore, int, Callable[[bytes], bool]]:
    """Where the bits of ``internal`` lie: the client itself and the id; on the sharded layout
    the view of the user's one shard (``BitCore.shard_view``) and the local offset. And which
    keys there are temporary results, by their flat names (a shard's keys name operands with
    the dataset's prefix, not the view's)."""
    if client.layout == "flat":
        return client, internal, client.keys.is_temporary_key
    shard, local = client.shard_of(internal)
    layout = cast("ShardedKeyLayout", client.keys)

    def is_temporary(key: bytes) -> bool:
        parsed = layout.parse_shard_key(key)
        return parsed is not None and layout.is_temporary_key(parsed[1])

    return client.shard_view(shard), local, is_temporary


def forget(
    client: BitCore,
    user_id: int | str,
    *,
    dry_run: bool = False,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> ErasureReport:
    """Clear ``user_id``'s bit in every key under the client's prefix, then remove their mapping
    (``client.forget_id``); ``dry_run`` counts the same and writes nothing. ``progress`` is called
    with the number of keys of each batch scanned (for a progress bar: ``DBSIZE`` bounds the
    total)."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    internal = client.internal_id(user_id)
    scanned = data = temporary = 0
    if internal is not None:
        where, offset, is_temporary = _where(client, internal)
        scanned, data, temporary = _clear(where, offset, dry_run, batch, progress, is_temporary)
    removed = False
    if not dry_run and internal is not None and client.id_mapping:
        removed = client.forget_id(user_id) is not None
    return ErasureReport(user_id, internal, dry_run, scanned, data, temporary, removed)


def _clear(
    client: BitCore,
    offset: int,
    dry_run: bool,
    batch: int,
    progress: Callable[[int], None] | None,
    is_temporary: Callable[[bytes], bool],
) -> tuple[int, int, int]:
    """Keys scanned, data keys and temporary keys whose bit ``offset`` was set (and is now
    cleared unless ``dry_run``), under ``client``'s prefix."""
    scanned = data = temporary = 0
    for keys in _batches(client, batch):
        for key, changed in zip(keys, _had_bit(client, keys, offset, dry_run), strict=True):
            if changed and is_temporary(key):
                temporary += 1
            elif changed:
                data += 1
        scanned += len(keys)
        if progress is not None:
            progress(len(keys))
    return scanned, data, temporary
