"""The id map on the sharded layout and on Redis Cluster: the flat map split into map groups.

The flat map (``bitcore.idmap``) hands out internal ids from one counter, in one script call per
batch that touches the counter and many buckets: on a cluster those keys lie in many slots
(``CROSSSLOT``), and one node would hold every mapping. Here the map is split into ``groups``
map groups (16 for a new dataset, recorded in its marker ``mapped:<buckets>:<groups>``), each
behind a hash tag of its own (``ShardedKeyLayout.id_map_group_tags``: ``{trackist_m<g>.<n>}``,
chosen so the groups' slots spread evenly over the slot space), so each group is one slot and
the groups spread over the cluster's nodes as evenly as its slots:

* a token's group is ``crc32(token) % groups``; its forward bucket within the group
  ``crc32(token) // groups % (buckets // groups)``: the dataset's ``buckets`` forward buckets
  shared among the groups, each still a small hash in Redis' compact encoding;
* group ``g`` numbers its own ids with its own counter: its ``n``-th id is the internal id
  ``n * groups + g``, and its reverse bucket ``n >> 7`` holds it at field ``n & 127``. The groups
  interleave, so the internal ids of the whole dataset stay dense (every group gets about the
  same share of users, so the highest id is within a few percent of the number of users): the
  shards (``internal >> shard_bits``) fill in order as on the flat layout, and a dataset of a
  few thousand users stays in shard 0 with bitmaps of a few hundred bytes;
* an internal id's group is ``internal % groups``, so members map back to external ids without
  asking where.

A batch is split per group and sent as one ``RESOLVE_LUA`` call per group (per
``RESOLVE_BATCH`` ids), all calls for the groups of one node in one round trip: each call is
atomic in its group's slot, so two writers that see a new id at once, on any host, get the same
internal id. Only the dataset's marker and epoch keep their flat names (one key each).

What is not atomic across groups, and how it is kept safe:

* the epoch (renewed when a mapping is removed, ``IdMap``) cannot be read inside a group's
  script: it is read before the groups are asked, and the writer checks it once more just before
  it writes (``BitCore._set_bits_sharded``). A removal in between those two round trips is the
  race the flat layout has between erasure and a mark (``bitcore.erasure``: stop tracking a user
  before forgetting them);
* the new-ids quota (``Budget.new_ids_quota``) is counted before allocating: the batch is looked
  up first, the unknown ids counted on the quota (refused above it, nothing allocated), then
  allocated. Two writers allocating the same new id at once both count it: the quota errs on
  the side of refusing;
* ``IdMapFull`` is per group: the groups that still had room keep the ids they handed out (mapped,
  no bit set), as a later mark of those users would have them anyway.

A flat dataset's map cannot become a grouped one without renumbering every bit of every key (its
internal ids follow one counter, not the groups'): ``migrate_layout`` refuses mapped datasets.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import cast

import numpy as np
import redis

from bitcore import idmap, wire
from bitcore.bulk import Quota, WriteRefused
from bitcore.idmap import (
    MAPPED,
    NUMPY_FROM,
    RESOLVE_BATCH,
    REVERSE_SHIFT,
    IdMap,
    IdMappingMismatch,
    external_of,
    field_of,
)
from bitcore.keys import ShardedKeyLayout
from bitcore.shards import Router

#: Map groups of a new dataset: more than any cluster here has primaries (the groups of a 3-node
#: cluster fall on every node: ``tests/library/test_idmap_layouts.py``), few enough that a batch
#: of a few ids still costs one round trip per node.
DEFAULT_GROUPS = 16

#: ``INCRBY`` the new-ids quota by ARGV[1] unless that passes ARGV[2] (then an error reply as
#: ``RESOLVE_LUA`` gives it); the TTL ARGV[3] set when this made the counter.
_COUNT_NEW_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1])
if used > tonumber(ARGV[2]) then
  return redis.error_reply('IDMAP quota ' .. used .. ' ' .. ARGV[2])
end
if redis.call('INCRBY', KEYS[1], ARGV[1]) == tonumber(ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return used
"""


def marker_value(buckets: int, groups: int) -> str:
    """The marker of a dataset mapped in groups: ``mapped:32768:16``.

    >>> parse_marker(marker_value(32768, 16))
    (32768, 16)
    """
    return f"{MAPPED}:{buckets}:{groups}"


def parse_marker(marker: str) -> tuple[int, int] | None:
    """``(buckets, groups)`` of a grouped map's marker; ``None`` for anything else (the flat
    map's ``mapped:<buckets>`` included).

    >>> parse_marker("mapped:8:4"), parse_marker("mapped:8")
    ((8, 4), None)
    """
    kind, _, rest = marker.partition(":")
    buckets, _, groups = rest.partition(":")
    if kind != MAPPED or not (buckets.isdigit() and groups.isdigit()):
        return None
    if int(buckets) < 1 or int(groups) < 1:
        return None
    return int(buckets), int(groups)


def read_marker(marker: str, sharded: bool, where: str) -> tuple[int, int]:
    """``(buckets, groups)`` of a dataset's marker, for a client of the sharded layout (a map in
    groups) or not (the flat map: ``groups`` 1); ``IdMappingMismatch`` naming the layout to use
    when the map is the other layout's, or the marker is not one bitcore writes.

    >>> read_marker("mapped:8", False, "here"), read_marker("mapped:8:4", True, "here")
    ((8, 1), (8, 4))
    """
    flat, grouped = idmap.buckets_of_marker(marker), parse_marker(marker)
    if sharded and grouped is not None:
        return grouped
    if not sharded and flat is not None:
        return flat, 1
    if flat is not None or grouped is not None:
        layout = "flat" if flat is not None else "sharded"
        raise IdMappingMismatch(
            f"{where} has the {layout} layout's id map ({marker}): open it with "
            f"layout={layout!r} (a mapped dataset cannot change layout)"
        )
    raise IdMappingMismatch(f"{where} has an id map marker bitcore cannot read: {marker}")


class GroupedIdMap(IdMap):
    """One sharded dataset's id map, in ``groups`` map groups (the module docstring): the flat
    map's interface (``resolve_for_write`` and its memory, ``lookup``, ``externals``,
    ``forget``), each group in one slot. ``router`` says which node holds a group's slot."""

    def __init__(
        self,
        redis_client: redis.Redis,
        keys: ShardedKeyLayout,
        router: Router,
        buckets: int,
        groups: int = DEFAULT_GROUPS,
        cache_size: int = idmap.DEFAULT_CACHE_SIZE,
    ) -> None:
        super().__init__(redis_client, keys, buckets, cache_size)
        self.layout = keys
        self.router = router
        self.groups = groups
        self.marker = marker_value(buckets, groups)
        #: Forward buckets per group: the dataset's buckets shared out (at least one each).
        self.per_group = max(1, buckets // groups)
        #: Each group's hash tag, and the names its calls need (made once: see ``keys``).
        self.tags = keys.id_map_group_tags(groups)
        self._markers = [keys.id_map_group_key("mode", tag) for tag in self.tags]
        self._counters = [keys.id_map_group_key("next", tag) for tag in self.tags]
        self._forwards = [keys.id_map_group_bucket_prefix("f", tag) for tag in self.tags]
        self._reverses = [keys.id_map_group_bucket_prefix("r", tag) for tag in self.tags]

    # --- where things are

    def group_of(self, token: bytes) -> int:
        """The map group of a token."""
        return zlib.crc32(token) % self.groups

    def group_of_internal(self, internal: int) -> int:
        """The map group that handed out ``internal`` (its ``n``-th id is ``n * groups + g``)."""
        return internal % self.groups

    def _forward_key(self, token: bytes) -> str:
        crc = zlib.crc32(token)
        return f"{self._forwards[crc % self.groups]}{crc // self.groups % self.per_group}"

    def _node(self, group: int) -> redis.Redis:
        return self.router.node_of_key(self.tags[group])

    def _by_node(self, groups: Sequence[int]) -> list[tuple[redis.Redis, list[int]]]:
        """``groups`` by the Redis holding them (one, on a single Redis)."""
        out: dict[int, tuple[redis.Redis, list[int]]] = {}
        for group in groups:
            node = self._node(group)
            out.setdefault(id(node), (node, []))[1].append(group)
        return list(out.values())

    def _split(self, tokens: Sequence[bytes]) -> dict[int, list[bytes]]:
        """``tokens`` per group, each group's in the order given (a big batch by numpy)."""
        if len(tokens) < NUMPY_FROM:
            out: dict[int, list[bytes]] = {}
            for token in tokens:
                out.setdefault(zlib.crc32(token) % self.groups, []).append(token)
            return out
        crcs = np.fromiter(map(zlib.crc32, tokens), dtype=np.uint64, count=len(tokens))
        of_token = (crcs % np.uint64(self.groups)).astype(np.int64)
        order = np.argsort(of_token, kind="stable")
        cuts = np.flatnonzero(np.diff(of_token[order])) + 1
        array = np.array(tokens, dtype=object)
        return {
            int(of_token[part[0]]): array[part].tolist()
            for part in np.split(order, cuts)
            if len(part)
        }

    # --- the dataset and its groups

    def claim(self, universe_key: str, registry_key: str) -> str | None:
        """Mark the dataset as mapped in groups unless it holds plain data (shards in use, or
        event names): the marker found or set, ``None`` when plain data is there. Not one
        script (the keys lie in several slots): the marker is set only if absent, so two
        clients claiming at once agree."""
        del universe_key  # the sharded universe is per shard: the registry of shards says it
        marker_key = self.keys.id_map_marker_key()
        found = self.redis.get(marker_key)
        if found is None:
            if self.redis.exists(self.layout.shards_key()) or self.redis.exists(registry_key):
                return None
            if self.redis.set(marker_key, self.marker, nx=True):
                self.redis.set(self.keys.id_map_epoch_key(), idmap.new_epoch(), nx=True)
            found = self.redis.get(marker_key)
        return None if found is None else cast(bytes, found).decode()

    def open_groups(self) -> None:
        """Give each group the dataset's marker (where a claim left it without one) and check
        those it has: one round trip per node. A group's script refuses to run under a marker
        other than its dataset's (``IdMappingMismatch``), so a client never writes into a map
        that was deleted or started afresh since it opened it."""
        for node, groups in self._by_node(range(self.groups)):
            keys = [self._markers[group] for group in groups]
            commands = [wire.encode("SET", key, self.marker, "NX") for key in keys]
            commands += [wire.encode("GET", key) for key in keys]
            with self.router.refreshed_on_failure():
                found = wire.round_trip(node, commands)[len(keys) :]
            for key, value in zip(keys, found, strict=True):
                if value != self.marker.encode():
                    raise IdMappingMismatch(
                        f"id map group {key} has marker {value!r}, its dataset {self.marker}"
                    )

    # --- resolving: one script call per group (and RESOLVE_BATCH ids), one round trip per node

    def _resolve_batches(
        self, tokens: list[bytes], create: bool, quota: Quota | None = None
    ) -> tuple[bytes, dict[bytes, int]]:
        """The epoch (read first: see the module docstring) and ``{token: internal}``; with a
        ``quota``, the unknown ids counted on it before any is allocated."""
        epoch = cast(bytes, self.redis.get(self.keys.id_map_epoch_key()) or b"")
        if not create or quota is None or not tokens:
            return epoch, self._resolve_groups(tokens, create)
        found = self._resolve_groups(tokens, False)
        new = [token for token in tokens if found[token] < 0]
        if new:
            self._count_new(quota, len(new))
            found.update(self._resolve_groups(new, True))
        return epoch, found

    def _count_new(self, quota: Quota, new: int) -> None:
        """Count ``new`` ids on the new-ids quota, or ``WriteRefused`` (nothing counted)."""
        try:
            self.redis.eval(_COUNT_NEW_LUA, 1, quota.key, new, quota.limit, quota.ttl)
        except redis.ResponseError as error:
            used, limit = str(error).split()[2:4]
            raise WriteRefused("new_ids_quota", int(used), int(limit)) from None

    def _resolve_groups(self, tokens: Sequence[bytes], create: bool) -> dict[bytes, int]:
        per_group = self._split(tokens)
        found: dict[bytes, int] = {}
        for node, groups in self._by_node(sorted(per_group)):
            batches = [
                (group, per_group[group][start : start + RESOLVE_BATCH])
                for group in groups
                for start in range(0, len(per_group[group]), RESOLVE_BATCH)
            ]
            calls = [self._call(group, batch, create) for group, batch in batches]
            with idmap.mapped_errors(), self.router.refreshed_on_failure():
                replies = idmap.run_scripts(node, calls)
            for (_, batch), (_, internals) in zip(batches, replies, strict=True):
                found.update(zip(batch, idmap.ids_of_reply(internals), strict=True))
        return found

    def _call(self, group: int, tokens: Sequence[bytes], create: bool) -> idmap.ScriptCall:
        """Group ``group``'s ``RESOLVE_LUA`` call: its marker, counter and buckets, its ids
        numbered ``n * groups + group``, at most as many as stay below ``INTERNAL_LIMIT``."""
        groups, marker = self.groups, self._markers[group]
        head = [marker, self._counters[group], marker, marker]  # no epoch, no quota: not here
        places = idmap.places_of(tokens, self._forwards[group], self.per_group, groups)
        limit = (idmap.INTERNAL_LIMIT - group + groups - 1) // groups
        reverse = self._reverses[group]
        return idmap.resolve_call(
            tokens, create, head, places, self.marker, reverse, None, limit, groups, group
        )

    # --- reads

    def lookup(self, tokens: Sequence[bytes]) -> list[int | None]:
        """The internal id of each token, ``None`` if unknown, without allocating: ``HGET``s,
        one round trip per node."""
        per_node: dict[int, tuple[redis.Redis, list[int]]] = {}
        for index, token in enumerate(tokens):
            node = self._node(self.group_of(token))
            per_node.setdefault(id(node), (node, []))[1].append(index)
        out: list[int | None] = [None] * len(tokens)
        for node, indexes in per_node.values():
            commands = [
                wire.encode("HGET", self._forward_key(tokens[i]), field_of(tokens[i]))
                for i in indexes
            ]
            with self.router.refreshed_on_failure():
                replies = wire.round_trip(node, commands)
            for index, reply in zip(indexes, replies, strict=True):
                out[index] = None if reply is None else int(reply)
        return out

    def _externals(self, internals: list[int]) -> Iterator[int | str]:
        groups = self.groups
        buckets: dict[tuple[int, int], list[int]] = {}
        for internal in internals:
            place = internal // groups
            key = (internal % groups, place >> REVERSE_SHIFT)
            buckets.setdefault(key, []).append(place & 127)
        per_node: dict[int, tuple[redis.Redis, list[tuple[int, int]]]] = {}
        for group, bucket in buckets:
            node = self._node(group)
            per_node.setdefault(id(node), (node, []))[1].append((group, bucket))
        tokens: dict[int, bytes | None] = {}
        for node, names in per_node.values():
            commands = [
                wire.encode(
                    "HMGET",
                    f"{self._reverses[group]}{bucket}",
                    *buckets[(group, bucket)],
                )
                for group, bucket in names
            ]
            with self.router.refreshed_on_failure():
                replies = wire.round_trip(node, commands)
            for (group, bucket), values in zip(names, replies, strict=True):
                base = bucket << REVERSE_SHIFT
                for field, value in zip(buckets[(group, bucket)], values, strict=True):
                    tokens[(base + field) * groups + group] = value
        for internal in internals:
            token = tokens[internal]
            if token is not None:
                yield external_of(token)

    # --- erasure

    def forget(self, token: bytes) -> int | None:
        """Remove one id's mapping, both directions, atomically in its group's slot; then renew
        the dataset's epoch (a second round trip: the epoch is in another slot), so every writer
        that remembers the mapping drops it. The internal id it had."""
        group = self.group_of(token)
        args: list[bytes | str | int] = [field_of(token), self._reverses[group], b""]
        args += [self.groups, group]
        found = self._forget(keys=[self._forward_key(token)], args=args)
        if found is not None:
            self.redis.set(self.keys.id_map_epoch_key(), idmap.new_epoch())
        self._cache.pop(token, None)
        return None if found is None else int(found)
