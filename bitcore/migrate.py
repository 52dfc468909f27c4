"""Moving a flat (bitmapist) dataset into the sharded layout, on the same Redis or into a cluster.

``migrate_layout(source, target)`` copies every data key of the source's prefix (events of every
period, unique flags, the universe, first-time bitmaps and ever sets) into the target's shards,
one shard of one key per step: a ``GETRANGE`` of the shard's bytes from the source, then on the
target, in one ``MULTI``/``EXEC`` in the shard's slot, the bytes into a scratch key ORed into the
shard key (so bits the target already holds, e.g. beacons written meanwhile, are kept). Every
step is bounded (a shard's bytes: 128 KiB at 2**20 ids per shard), so neither Redis is held long.

After a key is copied its count is verified (``BITCOUNT`` of the source = the sum of the target
shards' counts; a target that held more of that key's bits reports a mismatch), and the key is
recorded as done in a set on the target, so a migration stopped midway resumes where it was. The
registries of event and flag names and the saved segments are copied too. The source is never
deleted unless ``delete_source`` says so, and then only after every key has been verified.
Temporary bit-op keys are not copied: they are computed again when read. An id-mapped dataset
(string ids) is refused with ``ShardedLayoutUnsupported`` before anything is copied: its internal
ids would have to be renumbered into the sharded map's groups (``bitcore.idmap_groups``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from bitcore.client import BitCore
from bitcore.keys import SEGMENT_NAMESPACE
from bitcore.shards import ShardedLayoutUnsupported

#: Keys per SCAN call on the source.
SCAN_BATCH = 1000
#: Seconds a scratch key lives should a step die between its writes.
SCRATCH_TTL = 60


class MigrationMismatch(RuntimeError):
    """A copied key's count on the target differs from the source's: nothing is deleted."""


@dataclass
class MigrationReport:
    """What ``migrate_layout`` did: ``keys`` copied and verified in this run, ``skipped`` (done
    in an earlier run), ``bits`` (set bits copied), ``mismatches`` (key, source count, target
    count), ``deleted`` (source keys deleted, when asked)."""

    keys: int = 0
    skipped: int = 0
    bits: int = 0
    names: int = 0
    segments: int = 0
    deleted: int = 0
    mismatches: list[tuple[str, int, int]] = field(default_factory=list)


def done_key(source: BitCore, target: BitCore) -> str:
    """The set of the source's keys already copied (on the target: it resumes a migration)."""
    return f"{SEGMENT_NAMESPACE}migrated:{source.keys.prefix}:{target.keys.prefix}"


def data_keys(source: BitCore) -> Iterator[str]:
    """Every data key of the source's flat layout, by SCAN: events, flags, the universe,
    first-time bitmaps and ever sets (never a temporary bit-op key)."""
    layout = source.keys
    for key in source.redis.scan_iter(match=layout.all_keys_pattern(), count=SCAN_BATCH):
        if layout.parse_event_key(key):
            yield key.decode()
    for pattern in layout.first_time_keys_patterns():
        for key in source.redis.scan_iter(match=pattern, count=SCAN_BATCH):
            text = key.decode()
            if layout.parse_first_time_key(text) or text.startswith(layout.ever_key("")):
                yield text


def _refuse_mapped(source: BitCore, target: BitCore) -> None:
    """``ShardedLayoutUnsupported`` for an id-mapped dataset on either side, before anything is
    read or written: the flat map numbers internal ids with one counter, the sharded layout's
    map groups each with their own (``bitcore.idmap_groups``), so a mapped dataset's bits would
    have to be renumbered, every key, to move (not built)."""
    for client in (source, target):
        marker = client.redis.get(client.keys.id_map_marker_key())
        if client.id_mapping or marker is not None:
            raise ShardedLayoutUnsupported(
                f"the dataset under prefix {client.keys.prefix!r} has the id map (string ids): "
                "migrate_layout cannot move an id-mapped dataset (its internal ids would have to "
                "be renumbered); start the sharded dataset afresh under another prefix"
            )


def migrate_layout(
    source: BitCore,
    target: BitCore,
    *,
    delete_source: bool = False,
    progress: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Copy ``source`` (a flat-layout client) into ``target`` (a sharded one): see the module
    docstring. ``progress`` is called with each key once it is done (or skipped). Raises
    ``MigrationMismatch`` after the copy when a key's counts differ (the source is kept)."""
    if source.layout != "flat" or target.layout != "sharded":
        raise ValueError("migrate_layout copies a flat-layout client into a sharded-layout one")
    _refuse_mapped(source, target)
    shard_bytes = 1 << (target.shard_bits - 3)
    report = MigrationReport()
    done = done_key(source, target)
    finished = {_text(member) for member in target.redis.smembers(done)}
    copied: list[str] = []
    for key in data_keys(source):
        if key in finished:
            report.skipped += 1
        else:
            source_count, target_count = _copy(source, target, key, shard_bytes)
            report.keys += 1
            report.bits += source_count
            if source_count != target_count:
                report.mismatches.append((key, source_count, target_count))
            else:
                target.redis.sadd(done, key)
        copied.append(key)
        if progress is not None:
            progress(key)
    report.names = _copy_names(source, target)
    report.segments = _copy_segments(source, target)
    if report.mismatches:
        raise MigrationMismatch(
            f"{len(report.mismatches)} keys differ after the copy (first: {report.mismatches[0]})"
            "; the source is kept"
        )
    if delete_source:
        for start in range(0, len(copied), SCAN_BATCH):
            report.deleted += int(source.redis.unlink(*copied[start : start + SCAN_BATCH]))
    return report


def _copy(source: BitCore, target: BitCore, key: str, shard_bytes: int) -> tuple[int, int]:
    """Copy one key shard by shard; its source count and the target shards' count after."""
    length = int(source.redis.strlen(key))
    shards: list[int] = []
    for shard, start in enumerate(range(0, length, shard_bytes)):
        chunk = cast(bytes, source.redis.getrange(key, start, start + shard_bytes - 1))
        if not chunk.strip(b"\0"):
            continue  # nobody of this shard: no key is made for it
        shards.append(shard)
        target.register_shards([shard])
        name = target.shard_key(key, shard)
        scratch = target.shard_key(f"{target.keys.bitop_prefix}MIGRATE_{uuid.uuid4().hex}", shard)
        with target.node_of_shard(shard).pipeline() as pipe:
            pipe.set(scratch, chunk, ex=SCRATCH_TTL)
            pipe.bitop("OR", name, name, scratch)
            pipe.unlink(scratch)
            pipe.execute()
    source_count = int(source.redis.bitcount(key))
    target_count = 0
    for shard in shards:
        target_count += int(target.node_of_shard(shard).bitcount(target.shard_key(key, shard)))
    return source_count, target_count


def _copy_names(source: BitCore, target: BitCore) -> int:
    """The registries of event and flag names, merged into the target's; how many were new."""
    added = 0
    for key_of in ("event_names_key", "flag_names_key"):
        names: list[Any] = list(source.redis.zrange(getattr(source.keys, key_of)(), 0, -1))
        if names:
            mapping: dict[Any, float] = dict.fromkeys(names, 0)
            added += int(target.redis.zadd(getattr(target.keys, key_of)(), mapping, nx=True) or 0)
    return added


def _copy_segments(source: BitCore, target: BitCore) -> int:
    """Saved segments the target lacks, copied into its store (its index in the same
    transaction, on the store's node); how many."""
    index = source.redis.smembers(source.keys.segments_index_key())
    names = sorted(_text(member) for member in index)
    store = target.segments_redis()
    copied = 0
    for name in names:
        if store.exists(target.keys.segment_key(name)):
            continue
        fields: dict[Any, Any] = dict(source.redis.hgetall(source.keys.segment_key(name)))
        if not fields:
            continue
        with store.pipeline() as pipe:
            pipe.hset(target.keys.segment_key(name), mapping=fields)
            pipe.sadd(target.keys.segments_index_key(), name)
            pipe.execute()
        copied += 1
    return copied


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
