"""The registry of event names: count, page, search and rebuild it, never walking the keyspace.

Listing events by ``SCAN`` costs a walk of every key in Redis, and anyone who can send beacons can
add names: 100,000 of them made the overview take tens of seconds. So every name written under
a prefix is also a member of one sorted set, ``KeyLayout.event_names_key()`` (every score 0, so
members sort by their bytes), and the dashboard reads only that:

- :func:`page` and :func:`with_prefix` answer in one round trip (``ZRANGE``/``ZRANGEBYLEX`` with a
  limit, and the matching count), whatever the number of names;
- :func:`search` finds a substring (case-insensitively), reading the registry in bounded batches
  and no more than ``max_scanned`` names: past that its answer says it is incomplete;
- :func:`is_registered` is one ``ZSCORE``;
- flags (names marked only without a date, ``mark_unique``: a ``_u`` key and no period key) are
  kept apart, in ``KeyLayout.flag_names_key()``, by the same writer: a flag has no daily count,
  so it is no event to chart or to put in a cohort or funnel. :func:`kind_of` says which a name
  is, :func:`flag_page` lists flags (a name marked both ways is an event);
- :func:`rebuild` adds the names of the event keys it finds (``SCAN`` in bounded batches), for data
  written before the registry existed or by plain bitmapist, which keeps no registry;
  :func:`ensure` does it once, when the registry does not exist or was never rebuilt.

bitmapist's ``get_event_names`` keeps its ``SCAN`` semantics; only the dashboard reads this.

>>> page(b, offset=0, limit=2)  # doctest: +SKIP
NamePage(names=['active', 'signup'], total=2, offset=0, limit=2, complete=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import OutOfMemoryError

from bitcore import shards
from bitcore.validation import check_event_name

if TYPE_CHECKING:
    from bitcore.client import BitCore

DEFAULT_LIMIT = 50
#: Keys per ``SCAN`` call of a rebuild, names per read of a search: each call takes Redis a few
#: milliseconds, and 100,000 names take 20 round trips.
BATCH = 5000
#: Registry names one substring search reads, at most (20 short reads).
MAX_SEARCH_SCANNED = 100_000
#: Flags a listing reads at most: few products have more than a handful (platforms, plans).
MAX_FLAGS = 200
#: Written into ``event_names_rebuilt_key`` by a rebuild; a registry rebuilt by an older version
#: (which listed flags as events) is rebuilt once more.
REBUILD_VERSION = "2"
#: Past every valid UTF-8 byte: ``[prefix`` .. ``(prefix\xff`` is every name starting with prefix.
_AFTER_ALL = b"\xff"


@dataclass(frozen=True)
class NamePage:
    """One page of event names, sorted, and how many names match in all.

    ``complete`` is False when a search stopped at its budget: ``total`` is then a lower bound.
    """

    names: list[str]
    total: int
    offset: int
    limit: int
    complete: bool = True

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.names) < self.total


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _bounds(offset: int, limit: int) -> tuple[int, int]:
    if offset < 0 or limit < 1:
        raise ValueError(f"offset must be >= 0 and limit >= 1, got {offset} and {limit}")
    return offset, limit


def count(client: BitCore) -> int:
    """How many names the registry holds (``ZCARD``)."""
    return int(client.redis.zcard(client.keys.event_names_key()))


def is_registered(client: BitCore, name: str) -> bool:
    """Whether ``name`` is in the registry: one ``ZSCORE``, whatever the number of names."""
    return client.redis.zscore(client.keys.event_names_key(), name) is not None


def kind_of(client: BitCore, name: str) -> str | None:
    """``"event"`` (it has dated marks), ``"flag"`` (only dateless ones) or ``None`` (never
    marked): two ``ZSCORE`` in one round trip."""
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.zscore(client.keys.event_names_key(), name)
        pipe.zscore(client.keys.flag_names_key(), name)
        dated, flag = pipe.execute()
    if dated is not None:
        return "event"
    return "flag" if flag is not None else None


def flag_page(client: BitCore, limit: int = MAX_FLAGS) -> NamePage:
    """The first ``limit`` flag names in name order that are not also events, and how many flags
    there are (``complete`` is False when there are more than ``limit``): one round trip for the
    names, one ``ZMSCORE`` to drop those also marked with a date."""
    _bounds(0, limit)
    key = client.keys.flag_names_key()
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(key)
        pipe.zrange(key, 0, limit - 1)
        total, names = pipe.execute()
    if not names:
        return NamePage([], 0, 0, limit)
    dated = client.redis.zmscore(client.keys.event_names_key(), names)
    flags = [_text(n) for n, score in zip(names, dated, strict=True) if score is None]
    complete = int(total) <= limit
    return NamePage(flags, len(flags) if complete else int(total), 0, limit, complete)


def page(client: BitCore, offset: int = 0, limit: int = DEFAULT_LIMIT) -> NamePage:
    """``limit`` names from position ``offset`` in name order, and the total (one round trip)."""
    offset, limit = _bounds(offset, limit)
    key = client.keys.event_names_key()
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(key)
        pipe.zrange(key, offset, offset + limit - 1)
        total, names = pipe.execute()
    return NamePage([_text(n) for n in names], int(total), offset, limit)


def with_prefix(
    client: BitCore, prefix: str, offset: int = 0, limit: int = DEFAULT_LIMIT
) -> NamePage:
    """Names starting with ``prefix`` (case-sensitive), in order: ``ZRANGEBYLEX`` with a limit and
    ``ZLEXCOUNT``, one round trip."""
    offset, limit = _bounds(offset, limit)
    if not prefix:
        return page(client, offset, limit)
    low = b"[" + prefix.encode()
    high = b"(" + prefix.encode() + _AFTER_ALL
    key = client.keys.event_names_key()
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.zlexcount(key, low, high)
        pipe.zrangebylex(key, low, high, start=offset, num=limit)
        total, names = pipe.execute()
    return NamePage([_text(n) for n in names], int(total), offset, limit)


def search(
    client: BitCore,
    text: str,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
    max_scanned: int = MAX_SEARCH_SCANNED,
) -> NamePage:
    """Names containing ``text`` (case-insensitive), sorted, from ``offset``.

    The registry is read in name order, :data:`BATCH` names per ``ZRANGEBYLEX`` (each resuming
    after the last name read, so names added meanwhile shift nothing), at most ``max_scanned``
    names in all, and filtered here. Measured on 100,000 names, this is 3 to 7 times faster than
    ``ZSCAN MATCH`` (whose replies carry every score and whose glob cannot fold case beyond ASCII),
    and no pattern needs escaping. An empty ``text`` is a plain :func:`page`.
    """
    offset, limit = _bounds(offset, limit)
    if not text:
        return page(client, offset, limit)
    needle = text.casefold()
    key = client.keys.event_names_key()
    found: list[str] = []
    low: bytes | str = "-"
    scanned, complete = 0, False
    while not complete and scanned < max_scanned:
        batch = [_text(n) for n in client.redis.zrangebylex(key, low, "+", start=0, num=BATCH)]
        scanned += len(batch)
        complete = len(batch) < BATCH
        found.extend(name for name in batch if needle in name.casefold())
        if batch:
            low = b"(" + batch[-1].encode()
    if not complete:
        complete = scanned >= count(client)
    return NamePage(found[offset : offset + limit], len(found), offset, limit, complete)


def _valid_name(name: str, universe: str) -> bool:
    if name == universe:
        return False
    try:
        check_event_name(name)
    except (TypeError, ValueError):
        return False
    return True


def rebuild(client: BitCore, batch: int = BATCH) -> int:
    """Add the name of every event key under the prefix to the registry (dated keys) or to that of
    flags (unique keys); returns how many names were new.

    ``SCAN`` in calls of ``batch`` keys, and one ``ZADD NX`` per registry per call that found
    names, so Redis is never held for long. Names already there stay (a name whose keys all
    expired or were deleted is not removed), except that a name found with a unique key and no
    dated key moves from the events' registry to the flags' (older versions listed every name
    as an event). The universe, bit-op results and names the library refuses are left out.
    On the sharded layout every shard's keys are found, on every primary of a cluster
    (``bitcore.shards.scan_keys``).
    """
    registry, flag_registry = client.keys.event_names_key(), client.keys.flag_names_key()
    added = 0
    dated_seen: set[str] = set()
    flags_seen: set[str] = set()
    pattern = client.keys.event_keys_pattern()
    for keys in shards.scan_keys(client.redis, client.keys, pattern, batch):
        dated: set[str] = set()
        flags: set[str] = set()
        for _shard, found in keys:
            parsed = client.keys.parse_event_key(found)
            if parsed and _valid_name(parsed[0], client.universe):
                (flags if parsed[1] == "u" else dated).add(parsed[0])
        for key, names in ((registry, dated), (flag_registry, flags)):
            if names:
                added += int(client.redis.zadd(key, dict.fromkeys(names, 0), nx=True) or 0)
        dated_seen |= dated
        flags_seen |= flags
    only_flags = list(flags_seen - dated_seen)
    if only_flags:
        client.redis.zrem(registry, *only_flags)
    marker = f"{REBUILD_VERSION} {client.redis.time()[0]}"
    client.redis.set(client.keys.event_names_rebuilt_key(), marker)
    return added


def ensure(client: BitCore) -> int:
    """Rebuild the registries unless one exists and they have been rebuilt once by this version
    (an old or bitmapist-written Redis, or one whose first new name came before any rebuild);
    returns the names added. One round trip when there is nothing to do. A Redis out of memory
    refuses the rebuild: then nothing is added, the readers answer with what there is, and the
    next call tries again."""
    if client.layout != "flat":
        # only bitcore's writer writes the sharded layout (and migrate_layout copies the source's
        # registries), and it registers every name it writes: nothing to rebuild from
        return 0
    keys = client.keys
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.exists(keys.event_names_key(), keys.flag_names_key())
        pipe.get(keys.event_names_rebuilt_key())
        registries, marker = pipe.execute()
    if registries and _text(marker or b"").split(" ")[0] == REBUILD_VERSION:
        return 0
    try:
        return rebuild(client)
    except OutOfMemoryError:
        return 0
