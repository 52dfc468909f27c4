"""The sharded layout's I/O: which Redis holds a shard, the registry of shards in use, a shard's
share of a write, and a pipeline that runs a bitmap's steps inside one shard.

On a single Redis every shard is on that Redis; on Redis Cluster a shard lives on the primary
that owns its hash tag's slot (``KeyLayout`` names the keys: ``ShardedKeyLayout``). Every command
sent for a shard names only that shard's keys, so it never spans slots. The client
(``BitCore``) decides *what* to run per shard; this module knows *where* and *how*.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import redis
from redis.client import Pipeline
from redis.cluster import RedisCluster

from bitcore import bulk, wire
from bitcore.first_time_writes import Firsts
from bitcore.keys import SEGMENT_NAMESPACE, KeyLayout, ShardedKeyLayout


class ShardedLayoutUnsupported(NotImplementedError):
    """Something the flat layout does that the sharded layout (or a Redis Cluster) does not do
    yet, or cannot: raised before anything is read or written, never a wrong answer."""


Result = TypeVar("Result")

#: Shards of one node a report works on at once: two, so that while Redis copies (or computes)
#: one shard's reply the process counts the other's bytes (``bench/cluster.py``).
SHARDS_PER_NODE_AT_ONCE = 2
#: Shards a report works on at once at most, whatever the number of nodes (the calling thread and
#: up to seven of the router's): each holds one shard's round trip of bytes (at most
#: ``reading.ROUND_TRIP_BYTES``) at a time, so this bounds what a report holds in memory, and
#: the connections a process opens to each node (one per thread that worked on it).
MAX_SHARD_LANES = 8


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a redis-py Redis Cluster client."""
    return isinstance(client, RedisCluster)


def primaries_of(client: Any) -> list[redis.Redis]:
    """The one Redis, or every primary of a cluster (what a walk of the whole keyspace SCANs)."""
    if not is_cluster(client):
        return [client]
    return [node.redis_connection for node in client.get_primaries()]


def scan_keys(
    client: Any, layout: KeyLayout, pattern: str, count: int
) -> Iterator[list[tuple[int | None, str]]]:
    """The keys that the flat-named SCAN ``pattern`` (one of ``layout``'s) matches, one SCAN
    call's worth at a time, each as ``(shard, flat name)``: on the flat layout, the one Redis's
    (shard ``None``); on the sharded layout, every shard's keys of the pattern, on every primary
    of a cluster (``primaries_of``). Each call asks for ``count`` keys, so Redis is never held
    for long; a key of the pattern seen twice by SCAN (a rehash) may come twice."""
    sharded = layout if isinstance(layout, ShardedKeyLayout) else None
    match = sharded.shard_pattern(pattern) if sharded is not None else pattern
    for node in primaries_of(client):
        cursor = 0
        while True:
            cursor, found = node.scan(cursor, match=match, count=count)
            batch: list[tuple[int | None, str]] = []
            for key in found:
                name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
                if sharded is None:
                    batch.append((None, name))
                elif (parsed := sharded.parse_shard_key(name)) is not None:
                    batch.append(parsed)
            yield batch
            if not cursor:
                break


class Router:
    """Where each shard of one prefix lives, and which shards are in use.

    ``redis_client``: a ``redis.Redis`` (every shard there) or a ``RedisCluster`` (a shard on the
    primary owning its slot). The shards a process has registered are remembered, so a write
    registers a shard once per process (``register``)."""

    def __init__(self, redis_client: Any, layout: ShardedKeyLayout) -> None:
        if isinstance(redis_client, Pipeline):
            raise ShardedLayoutUnsupported(
                "the sharded layout writes per shard at once: give BitCore a client, not a pipeline"
            )
        self.redis = redis_client
        self.layout = layout
        self.cluster = is_cluster(redis_client)
        self._registered: set[int] = set()
        self._lock = threading.Lock()
        self._pool: tuple[int, ThreadPoolExecutor] | None = None

    def node(self, shard: int) -> redis.Redis:
        """The ``redis.Redis`` that holds ``shard``'s keys (the primary of its slot)."""
        if not self.cluster:
            return self.redis  # type: ignore[no-any-return]
        found = self.redis.get_node_from_key(self.layout.shard_tag(shard))
        if found.redis_connection is None:
            self.redis.nodes_manager.initialize()
            found = self.redis.get_node_from_key(self.layout.shard_tag(shard))
        return found.redis_connection  # type: ignore[no-any-return]

    def node_of_key(self, key: str) -> redis.Redis:
        """The ``redis.Redis`` holding ``key`` (any key, not only a shard's)."""
        if not self.cluster:
            return self.redis  # type: ignore[no-any-return]
        return self.redis.get_node_from_key(key).redis_connection  # type: ignore[no-any-return]

    def by_node(self, shards: Iterable[int]) -> list[tuple[redis.Redis, list[int]]]:
        """``shards`` grouped by the Redis holding them, each group ascending."""
        groups: dict[int, tuple[redis.Redis, list[int]]] = {}
        for shard in sorted(set(shards)):
            node = self.node(shard)
            groups.setdefault(id(node), (node, []))[1].append(shard)
        return list(groups.values())

    def each(self, shards: Sequence[int], work: Callable[[int], Result]) -> dict[int, Result]:
        """``work(shard)`` for every shard of ``shards``, shards of different nodes at the same
        time (a report's time is the slowest node's, not the sum of all), at most
        ``SHARDS_PER_NODE_AT_ONCE`` of one node at once, each "lane" of a node taking its next
        shard when done with one. Returns ``{shard: result}``. Waits for every lane, then raises
        the first error of any (after a failover, the slots learned afresh, as
        ``refreshed_on_failure``), so no work is left running after a report.

        One lane runs in the calling thread (one shard: no thread at all). The others run on
        this router's threads (made on first use, again in a forked child), which keep their
        connections (``bitcore.wire.own_connection``) for the next report."""
        return self._in_lanes(self._lanes(shards), work)

    def each_node(
        self,
        groups: Sequence[tuple[redis.Redis, list[int]]],
        work: Callable[[redis.Redis, list[int]], object],
    ) -> None:
        """``work(node, shards)`` for every ``(node, shards)`` of ``groups`` (``by_node``'s), the
        nodes at the same time as ``each`` works on shards, one lane per node (nodes share lanes
        when they outnumber ``MAX_SHARD_LANES``): a write of a batch spanning nodes takes the
        slowest node's time, not the sum of all. Raises as ``each`` does."""
        lanes: list[list[int]] = [[] for _ in range(min(len(groups), MAX_SHARD_LANES))]
        for number in range(len(groups)):
            lanes[number % MAX_SHARD_LANES].append(number)
        self._in_lanes(lanes, lambda number: work(*groups[number]))

    def _in_lanes(self, lanes: list[list[int]], work: Callable[[int], Result]) -> dict[int, Result]:
        """``work(item)`` for every item of every lane: the first lane in the calling thread,
        the others on this router's threads; on an event loop (``bitcore.aio``, whose round
        trips the loop awaits: a thread's would block it) every lane in the calling thread."""
        if len(lanes) <= 1 or wire.elsewhere.get() is not None:
            return {item: work(item) for lane in lanes for item in lane}

        def run(lane: list[int]) -> dict[int, Result]:
            return {item: work(item) for item in lane}

        pool = self._executor()
        futures: list[Future[dict[int, Result]]] = [pool.submit(run, lane) for lane in lanes[1:]]
        errors: list[BaseException] = []
        done: dict[int, Result] = {}
        try:
            done.update(run(lanes[0]))
        except Exception as error:  # the others still run: wait for them first
            errors.append(error)
        for future in futures:
            try:
                done.update(future.result())
            except Exception as error:
                errors.append(error)
        if errors:
            with self.refreshed_on_failure():
                raise errors[0]
        return done

    def _lanes(self, shards: Sequence[int]) -> list[list[int]]:
        """``shards`` dealt to at most ``MAX_SHARD_LANES`` lanes: each node's shards round-robin
        over up to ``SHARDS_PER_NODE_AT_ONCE`` lanes of its own (fewer when the nodes are many),
        and when the nodes outnumber the lanes, several nodes share a lane, in turn."""
        groups = [group for _, group in self.by_node(shards)]
        if len(groups) > MAX_SHARD_LANES:
            lanes: list[list[int]] = [[] for _ in range(MAX_SHARD_LANES)]
            for number, group in enumerate(groups):
                lanes[number % MAX_SHARD_LANES].extend(group)
            return lanes
        depth = max(1, min(SHARDS_PER_NODE_AT_ONCE, MAX_SHARD_LANES // max(1, len(groups))))
        return [group[i::depth] for group in groups for i in range(depth) if group[i::depth]]

    def _executor(self) -> ThreadPoolExecutor:
        """This router's threads, made again in a forked child (a parent's threads do not
        survive a fork, and its executor would wait for them for ever)."""
        with self._lock:
            pid = os.getpid()
            if self._pool is None or self._pool[0] != pid:
                pool = ThreadPoolExecutor(MAX_SHARD_LANES - 1, thread_name_prefix="bitcore-shards")
                self._pool = (pid, pool)
            return self._pool[1]

    def primaries(self) -> list[redis.Redis]:
        """Every Redis that may hold keys: the one, or each primary of the cluster."""
        return primaries_of(self.redis)

    def shards(self) -> list[int]:
        """The shards in use under the prefix, ascending (the registry ``shards_key``)."""
        members = self.redis.smembers(self.layout.shards_key())
        return sorted(int(member) for member in members)

    def register(self, shards: Collection[int]) -> None:
        """Add ``shards`` to the registry (once per process and shard: a set add is idempotent,
        so two processes racing add the same member)."""
        new = set(shards) - self._registered
        if not new:
            return
        self.redis.sadd(self.layout.shards_key(), *sorted(new))
        with self._lock:
            self._registered |= new

    def forget_registered(self) -> None:
        """Forget which shards this process registered (their registry was deleted)."""
        with self._lock:
            self._registered.clear()

    @contextlib.contextmanager
    def refreshed_on_failure(self) -> Iterator[None]:
        """Run a block of direct node round trips; if one fails as a failover makes it fail (a
        node gone, ``MOVED``, ``CLUSTERDOWN``), learn the cluster's slots afresh before raising,
        so the next call goes to the primary that took over (the error itself is the caller's:
        the tracking endpoint answers 503 with Retry-After)."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as error:
            if self.cluster and not _is_plain_response_error(error):
                with contextlib.suppress(redis.RedisError, OSError):
                    self.redis.nodes_manager.initialize()
            raise

    def placeholder(self, shard: int) -> str:
        """The writer script's key for what a write does not use, in ``shard``'s slot."""
        return self.layout.shard_key(f"{SEGMENT_NAMESPACE}quota:none", shard)


def sums_per_key(router: Router, keys: Sequence[str], command: str) -> list[int]:
    """``command`` (``BITCOUNT`` or ``EXISTS``) of each flat-named key, summed over the shards in
    use: a user is in one shard, so the sum of a key's shard counts is the key's count. One round
    trip for the registry of shards, then one pipeline per node with every shard of that node and
    every key, however many shards a node holds.

    >>> sums_per_key(Router(redis.Redis(), ShardedKeyLayout()), [], "BITCOUNT")
    []
    """
    if not keys:
        return []
    totals = [0] * len(keys)
    with router.refreshed_on_failure():
        for node, group in router.by_node(router.shards()):
            commands = [  # RESP built here: redis-py's per-command packing costs more than Redis
                wire.encode(command, router.layout.shard_key(key, shard))
                for shard in group
                for key in keys
            ]
            for index, reply in enumerate(wire.round_trip(node, commands)):
                totals[index % len(keys)] += int(reply)
    return totals


def _is_plain_response_error(error: Exception) -> bool:
    """An error reply that says nothing about where slots live (WRONGTYPE, OOM ...)."""
    if not isinstance(error, redis.ResponseError):
        return False
    return not str(error).startswith(("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "READONLY"))


def split_writes(
    layout: ShardedKeyLayout, writes: Mapping[str, Collection[int]]
) -> dict[int, dict[str, Collection[int]]]:
    """A plan's ``{flat key: ids}`` as ``{shard: {shard key: local offsets}}``.

    >>> split_writes(ShardedKeyLayout(), {"k": {1, (1 << 20) + 2}})
    {0: {'{trackist_s0}k': {1}}, 1: {'{trackist_s1}k': {2}}}
    """
    out: dict[int, dict[str, Collection[int]]] = defaultdict(dict)
    bits, mask = layout.shard_bits, (1 << layout.shard_bits) - 1
    # A batch's keys often hold the same ids (an event's day, week and month, and the universe
    # for a batch of one event): those are split once, and their shares shared.
    split: dict[int, list[tuple[Collection[int], list[tuple[int, Collection[int]]]]]] = {}
    for key, ids in writes.items():
        alike = split.setdefault(len(ids), [])
        parts = next((parts for seen, parts in alike if seen == ids), None)
        if parts is None:
            parts = list(_by_shard(ids, bits, mask))
            alike.append((ids, parts))
        for shard, local in parts:
            out[shard][layout.shard_key(key, shard)] = local
    return dict(sorted(out.items()))


#: Above this many ids a key's ids are split per shard by numpy.
_NUMPY_SPLIT = 256


def _by_shard(ids: Collection[int], bits: int, mask: int) -> Iterator[tuple[int, Collection[int]]]:
    """``(shard, local offsets)`` of ``ids``, shards ascending, each shard once: a big batch
    grouped by numpy, not one Python step per id, its offsets an ascending list (what the
    writer sorts, packs and takes the highest of fastest); a few ids (a beacon's) as sets,
    where numpy's fixed cost would be most of the work.

    >>> list(_by_shard([5, (1 << 20) + 2, 7], 20, (1 << 20) - 1))
    [(0, {5, 7}), (1, {2})]
    """
    if len(ids) > _NUMPY_SPLIT:
        array = np.fromiter(ids, dtype=np.int64, count=len(ids))
        array.sort(kind="stable")  # timsort: linear on the nearly sorted ids a set of ints gives
        cuts = np.flatnonzero(np.diff(array >> bits)) + 1
        for part in np.split(array, cuts):
            yield int(part[0] >> bits), (part & mask).tolist()
        return
    found: dict[int, set[int]] = {}
    for user in ids:
        found.setdefault(user >> bits, set()).add(user & mask)
    yield from sorted(found.items())


def split_firsts(layout: ShardedKeyLayout, firsts: Firsts) -> dict[int, dict[str, dict[Any, Any]]]:
    """A plan's first-time groups (``{ever key: {first-time keys: ids}}``) per shard, in that
    shard's keys and local offsets."""
    out: dict[int, dict[str, dict[Any, Any]]] = defaultdict(dict)
    bits, mask = layout.shard_bits, (1 << layout.shard_bits) - 1
    for ever, groups in firsts.items():
        for targets, ids in groups.items():
            for shard, local in _by_shard(ids, bits, mask):
                named = tuple(layout.shard_key(target, shard) for target in targets)
                out[shard].setdefault(layout.shard_key(ever, shard), {})[named] = local
    return dict(out)


#: Pipeline commands whose arguments are all keys (after the command's own leading arguments).
_ALL_KEYS = frozenset({"unlink", "delete", "exists"})
#: Pipeline commands that take one key first, then other arguments.
_ONE_KEY = frozenset(
    {"expire", "pexpire", "append", "bitcount", "getrange", "strlen", "pttl", "ttl"}
)


class ShardPipe:
    """A redis-py pipeline seen through one shard: the commands a bitmap's ``build``/``steps``
    queue name flat keys, and are queued on the shard's keys instead.

    Only the commands bitcore's bit operations, years and segments use are known (``BITOP``,
    ``EXPIRE``, ``APPEND``, ``RENAME``, ``UNLINK``, ``BITCOUNT``, ``GETRANGE``, ``STRLEN`` ...);
    anything else raises ``ShardedLayoutUnsupported`` rather than run on a flat key."""

    def __init__(self, pipe: Pipeline, layout: ShardedKeyLayout, shard: int) -> None:
        self._pipe = pipe
        self._layout = layout
        self.shard = shard

    def _key(self, key: str | bytes) -> str:
        name = key.decode() if isinstance(key, bytes) else key
        return self._layout.shard_key(name, self.shard)

    def bitop(self, op: str, dest: str, *keys: str) -> ShardPipe:
        self._pipe.bitop(op, self._key(dest), *map(self._key, keys))
        return self

    def rename(self, src: str, dst: str) -> ShardPipe:
        self._pipe.rename(self._key(src), self._key(dst))
        return self

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._pipe, name)
        if name in _ALL_KEYS:
            return lambda *keys: method(*map(self._key, keys))
        if name in _ONE_KEY:
            return lambda key, *args, **kwargs: method(self._key(key), *args, **kwargs)
        if name == "execute":
            return method
        raise ShardedLayoutUnsupported(f"{name} has no sharded form yet")


#: ``INCRBY`` a counter and give it its TTL when this made it: one key, so one slot anywhere.
_COUNT_LUA = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total == tonumber(ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return total
"""


def growth(router: Router, shard_writes: Mapping[int, Mapping[str, Collection[int]]]) -> int:
    """Bytes the writes would make Redis allocate, as the gate script counts them: per key
    ``max(0, highest offset // 8 + 1 - STRLEN)``; one pipelined round trip per node."""
    grow = 0
    for node, group in router.by_node(shard_writes):
        keys = [
            (key, max(ids)) for shard in group for key, ids in shard_writes[shard].items() if ids
        ]
        with node.pipeline(transaction=False) as pipe:
            for key, _ in keys:
                pipe.strlen(key)
            lengths = pipe.execute()
        grow += sum(
            max(0, high // 8 + 1 - int(n)) for (_, high), n in zip(keys, lengths, strict=True)
        )
    return grow


#: What a request id's key (``bulk.Once``) says once its write was done.
ONCE_DONE = b"done"


def claim_once(redis_client: Any, once: bulk.Once | None) -> bytes | None:
    """``bulk.Once`` on the sharded layout, whose request id key lies in a slot of its own:
    ``None`` when the write is new (the key now says ``pending``, claimed with ``SET NX``, so of
    two copies racing only one is counted), else what the key says: ``ONCE_DONE`` (a repeat:
    nothing to count or write) or ``b"pending"`` (checked before, maybe not all written: write
    again, count nothing)."""
    if once is None or redis_client.set(once.key, "pending", nx=True, ex=once.ttl):
        return None
    seen = redis_client.get(once.key)
    return bytes(seen) if seen else None


def admit_once(
    redis_client: Any,
    once: bulk.Once | None,
    grow: int,
    quota: bulk.Quota | None,
    budget: bulk.Budget | None,
    names: Collection[str],
    registry_key: str,
) -> bool:
    """``admit`` for a new write claimed by ``claim_once``: a refused one (over its quota, or
    ``bulk.WriteRefused``) gives its request id back, so its retry counts and writes as if new,
    as the single-Redis gate has it."""
    try:
        admitted = admit(redis_client, grow, quota, budget, names, registry_key)
    except bulk.WriteRefused:
        if once is not None:
            redis_client.delete(once.key)
        raise
    if not admitted and once is not None:
        redis_client.delete(once.key)
    return admitted


def admit(
    redis_client: Any,
    grow: int,
    quota: bulk.Quota | None,
    budget: bulk.Budget | None,
    names: Collection[str],
    registry_key: str,
) -> bool:
    """The gate's limits on the sharded layout, where a write's counters, registry and shards
    lie in different slots: checked and counted one key at a time, in the gate script's order
    (the request counted first; then bytes, names), each step atomic on its own key. False when
    over ``quota`` (nothing written); ``bulk.WriteRefused`` when over ``budget``. Unlike the
    single-Redis gate, writes racing each other in the same milliseconds can overshoot a budget
    by what they write at once (``docs``: "Redis Cluster")."""
    counted = quota is not None and int(redis_client.eval(_COUNT_LUA, 1, quota.key, 1, quota.ttl))
    if quota is not None and counted > quota.limit:
        return False
    budget = budget or bulk.Budget()
    if budget.max_bytes is not None and grow > budget.max_bytes:
        raise bulk.WriteRefused("max_bytes", grow, budget.max_bytes)
    bytes_quota = budget.bytes_quota
    if bytes_quota is not None and grow > 0:
        used = int(redis_client.get(bytes_quota.key) or 0) + grow
        if used > bytes_quota.limit:
            raise bulk.WriteRefused("bytes_quota", used, bytes_quota.limit)
    ordered = sorted(names)
    scores = redis_client.zmscore(registry_key, ordered) if ordered else []
    fresh = [name for name, score in zip(ordered, scores, strict=True) if score is None]
    if fresh and budget.max_event_names is not None:
        total = int(redis_client.zcard(registry_key)) + len(fresh)
        if total > budget.max_event_names:
            raise bulk.WriteRefused("max_event_names", total, budget.max_event_names)
    names_quota = budget.new_names_quota
    if fresh and names_quota is not None:
        used = int(redis_client.get(names_quota.key) or 0) + len(fresh)
        if used > names_quota.limit:
            raise bulk.WriteRefused("new_names_quota", used, names_quota.limit)
        redis_client.eval(_COUNT_LUA, 1, names_quota.key, len(fresh), names_quota.ttl)
    if bytes_quota is not None and grow > 0:
        redis_client.eval(_COUNT_LUA, 1, bytes_quota.key, grow, bytes_quota.ttl)
    return True
