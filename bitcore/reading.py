"""Reading a report's bitmaps in bounded steps: Redis is shared, so no read may hold it for long.

A report (a funnel, a cohort table) needs the bytes of many keys. Its arithmetic is independent
per byte position (byte ``i`` of every key holds the same eight users), so the id space is read in
byte-range slices: for each slice one MULTI/EXEC of ``GETRANGE`` over every key still that long,
at most ``round_trip_bytes`` in all, then numpy counts the slice and the counts add up. Redis copies
at most ``round_trip_bytes`` per step (16 MiB: tens of milliseconds), the Python process holds
one slice of every key, and every user's bits are read in one transaction (a user's bits sit in
one slice).
When every key fits in one round trip the whole report is one ``MGET`` (the fast path).

Before reading, one ``EVALSHA`` returns the length of every key (``STRLEN``), so a report knows
what it will read and refuses (``ReportTooCostly``) when that is more than its ``max_bytes``.
Derived bitmaps (saved segments, custom handlers) are measured by their stored leaves (a ``BITOP``
result is as long as its longest operand), then computed into keys of this read alone: a saved
segment's program (in every period the report reads) straight into its key, all of them queued in
a few pipelines of bounded work, others as their kind computes them and renamed. A concurrent
report or preview deleting a shared bit-op key cannot empty ours.

>>> list(slice_bounds([10, 3, 0], round_trip_bytes=16, min_slice=8))
[(0, 8), (8, 10)]
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import redis

from bitcore import transfer, wire
from bitcore.limits import TooCostly

if TYPE_CHECKING:
    from redis.client import Pipeline

    from bitcore.bitmaps import Bitmap, Build
    from bitcore.client import BitCore

#: Bytes fetched by one round trip at most: Redis copies them in tens of milliseconds (four
#: times as much held a PING back several times longer: ``bench/README.md``, "Numbers behind the
#: constants"), and the slice of every key the Python process holds stays this small.
ROUND_TRIP_BYTES = 16 << 20
#: Narrowest slice of a key: with thousands of keys a round trip still reads whole pages.
MIN_SLICE_BYTES = 4 << 10
#: Bytes of slice arrays kept for the next report (one round trip's worth and a little).
SPARE_BYTES = ROUND_TRIP_BYTES + (1 << 20)
_spare_lock = threading.Lock()
_spare: list[np.ndarray] = []
#: Bitmap bytes the BITOPs of one pipeline may walk when a report builds its segments: Redis
#: walks about 1 GB/s (``bitcore.segments.program.STEP_BYTES``), so about 100 ms, the longest a
#: step may hold a shared Redis (``docs/design.md``).
BUILD_BYTES = 96 << 20
#: Times a derived bitmap is computed again when its shared result vanished before we took it.
TAKE_ATTEMPTS = 3

#: The length of every key in one reply: one EVALSHA instead of a STRLEN per key.
LENGTHS_SCRIPT = """
local lengths = {}
for i = 1, #KEYS do lengths[i] = redis.call('STRLEN', KEYS[i]) end
return lengths
"""
LENGTHS_SHA = hashlib.sha1(LENGTHS_SCRIPT.encode()).hexdigest()

#: Set bits of each byte value: numpy before 2.0 has no ``bitwise_count``.
BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


class ReportTooCostly(TooCostly):
    """A report would read more bytes of bitmaps than its limit (``max_bytes``) allows.

    ``needed`` and ``limit`` are byte counts, so a caller can say which limit was hit and by how
    much.
    """

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(
            needed,
            limit,
            f"this report would read {needed:,} bytes of bitmaps, more than the limit of "
            f"{limit:,} bytes (max_bytes): ask for fewer steps, periods or rows",
        )


def per_shard(client: BitCore, keys: Sequence[str]) -> list[tuple[BitCore, list[str]]]:
    """Who reads ``keys`` (stored, not derived): the client itself on the flat layout; on the
    sharded layout each shard's view (``BitCore.shard_view``) with the shard's names of them. A
    user is in one shard, so a count over the views' reads is the sum of theirs."""
    if client.layout == "flat":
        return [(client, list(keys))]
    return [
        (client.shard_view(shard), [client.shard_key(key, shard) for key in keys])
        for shard in client.shards_in_use()
    ]


#: What ``opened`` measures before it reads: the lengths of its keys (in order), and of every
#: key asked for (derived bitmaps' stored leaves too).
Measured = tuple[list[int], dict[str, int]]
Prepared = TypeVar("Prepared")
Counted = TypeVar("Counted")


def across_shards(
    client: BitCore,
    prepare: Callable[[BitCore, int], Prepared],
    reads: Callable[[Prepared], tuple[Sequence[str], Mapping[str, Bitmap]]],
    count: Callable[[BitCore, Prepared, Measured | None], Counted],
    max_bytes: int | None,
    shards: Sequence[int] | None = None,
) -> list[Counted]:
    """A report on the sharded layout, per shard, shards of different nodes at once
    (``BitCore.each_shard``): ``prepare(view, shard)`` plans a shard's part,
    ``reads(prepared)`` names the keys (and derived bitmaps) it reads, and
    ``count(view, prepared, measured)`` reads and counts them. Returns every shard's counts, in
    shard order (a user is in one shard: the caller adds them up).

    With a ``max_bytes``, every shard is planned and measured first, and their sum is checked
    (``ReportTooCostly``) before any shard is read, as one Redis would check the whole report;
    ``count`` then gets its shard's measure, so nothing is measured twice. ``shards``: the
    shards in use, when the caller has asked for them already (else one round trip here)."""
    if max_bytes is None:
        return client.each_shard(
            lambda view, shard: count(view, prepare(view, shard), None), shards
        )

    def measure_one(view: BitCore, shard: int) -> tuple[Prepared, Measured]:
        prepared = prepare(view, shard)
        keys, derived = reads(prepared)
        return prepared, _measured(view, list(dict.fromkeys(keys)), derived)

    shards = client.shards_in_use() if shards is None else shards
    planned = dict(zip(shards, client.each_shard(measure_one, shards), strict=True))
    check_cost(sum(sum(measured[0]) for _, measured in planned.values()), max_bytes)
    return client.each_shard(lambda view, shard: count(view, *planned[shard]), shards)


def check_cost(needed: int, max_bytes: int | None) -> None:
    """Raise ``ReportTooCostly`` when ``needed`` bytes exceed ``max_bytes`` (``None``: no limit)."""
    if max_bytes is not None and needed > max_bytes:
        raise ReportTooCostly(needed, max_bytes)


@dataclass(frozen=True)
class Reading:
    """What a report reads: ``keys`` (each once) and their ``lengths`` in bytes, in order."""

    keys: list[str]
    lengths: list[int]

    def fits_one_round_trip(self, round_trip_bytes: int = ROUND_TRIP_BYTES) -> bool:
        """Whether one ``MGET`` (every key as long as the widest) stays within a round trip."""
        return max(self.lengths, default=0) * len(self.keys) <= round_trip_bytes


def measure(client: BitCore, keys: Sequence[str], derived: Mapping[str, Bitmap]) -> list[int]:
    """The byte length of each of ``keys``, in one round trip; a key in ``derived`` (a bit-op
    result not built yet) counts as long as its longest stored leaf."""
    return _measured(client, keys, derived)[0]


def _measured(
    client: BitCore, keys: Sequence[str], derived: Mapping[str, Bitmap]
) -> tuple[list[int], dict[str, int]]:
    """``measure``, and the length of every key asked for (the derived bitmaps' leaves too:
    what their programs are compiled and checked against)."""
    client.require_flat(
        "reading bitmaps into numpy (cohorts, funnels, lifecycle, stickiness, drill-down)"
    )
    leaves = {key: [leaf.redis_key for leaf in derived[key].leaves()] for key in derived}
    stored = [k for k in keys if k not in derived]
    asked = list(dict.fromkeys(chain(stored, chain.from_iterable(leaves.values()))))
    replied = wire.run_script(client.redis, LENGTHS_SCRIPT, LENGTHS_SHA, asked) if asked else []
    length_of = dict(zip(asked, (int(n) for n in replied), strict=True))
    lengths = [
        max((length_of[leaf] for leaf in leaves[key]), default=0)
        if key in derived
        else length_of[key]
        for key in keys
    ]
    return lengths, length_of


def run_builds(client: BitCore, builds: Sequence[Build], budget: int | None = None) -> list[int]:
    """Send the commands of ``builds`` in order, in as few plain pipelines (no MULTI: other
    clients' commands run between them) as keep each pipeline's BITOPs within ``budget`` bytes
    walked (default ``BUILD_BYTES``; a command walking more goes alone); returns the bytes each
    pipeline walked."""
    budget = BUILD_BYTES if budget is None else budget
    batches: list[list[Callable[[Pipeline], None]]] = []
    walked: list[int] = []
    for build in builds:
        for command, cost in build.commands:
            if not batches or (walked[-1] and walked[-1] + cost > budget):
                batches.append([])
                walked.append(0)
            batches[-1].append(command)
            walked[-1] += cost
    for batch in batches:
        with client.redis.pipeline(transaction=False) as pipe:
            for command in batch:
                command(pipe)
            pipe.execute()
    return walked


def derived_keys(bitmap: Bitmap) -> Iterator[str]:
    """Keys of ``bitmap`` and of the derived bitmaps under it (``BitOp*`` operands): what
    computing it wrote, for the cleanup."""
    if not bitmap.derived:
        return
    yield bitmap.redis_key
    for inner in getattr(bitmap, "events", ()):
        yield from derived_keys(inner)


def take_private(
    client: BitCore,
    bitmap: Bitmap,
    private_key: str,
    expected: int,
    *,
    where: redis.Redis | None = None,
    name: str | None = None,
) -> None:
    """RENAME the result of ``bitmap`` (computed when it was made, as bitmapist's bit operations
    are) to ``private_key``, which no other report or preview knows, so none can delete it under
    us. If the result is gone (someone else took or deleted it), compute it again with
    ``client.materialize`` (in bounded steps where its kind has them), ``TAKE_ATTEMPTS`` times at
    most. A result ``expected`` to be 0 bytes may have no key at all. ``where`` and ``name``:
    the Redis and key the result is taken from (default: the client's, the bitmap's; on the
    sharded layout a shard's node and its share of the result)."""
    for attempt in range(TAKE_ATTEMPTS + 1):
        try:
            (where or client.redis).rename(name or bitmap.redis_key, private_key)
            return
        except redis.ResponseError as error:
            if "no such key" not in str(error).lower():
                raise
        if not expected:
            return  # an empty result: nothing to read
        if attempt < TAKE_ATTEMPTS:
            client.materialize(bitmap)
    raise redis.ResponseError(
        f"the result of {bitmap.redis_key!r} was deleted {TAKE_ATTEMPTS} times before it could be "
        "read: try again"
    )


@contextmanager
def opened(
    client: BitCore,
    keys: Sequence[str],
    derived: Mapping[str, Bitmap],
    max_bytes: int | None = None,
    measured: Measured | None = None,
) -> Iterator[Reading]:
    """Measure ``keys`` (unless ``measured`` says what they measured: ``across_shards``, which
    checked the sum), refuse them when they exceed ``max_bytes`` (``ReportTooCostly``), build
    the ``derived`` ones; yields the keys to read (derived ones under private names) and their
    lengths. When the block ends, however it ends, it unlinks what it built and the shared keys
    of ``derived``.

    Saved segments (however many, over however many periods) are built straight into their
    private keys by their programs, all queued in a few bounded pipelines (``run_builds``), each
    program compiled and checked (``SegmentTooCostly``) against the one measure first, so a
    refusal writes nothing. Other derived bitmaps are computed when made and renamed here."""
    client.require_flat("reading bitmaps into numpy (cohorts, funnels, lifecycle, stickiness)")
    keys = list(dict.fromkeys(keys))
    private: dict[str, str] = {}
    scratch: list[str] = []
    try:
        lengths, known = measured or _measured(client, keys, derived)
        check_cost(sum(lengths), max_bytes)
        run = uuid.uuid4().hex
        private = {key: client.keys.report_key(run, n) for n, key in enumerate(derived)}
        builds = {
            key: bitmap.build_into(known, private[key], client.bitop_ttl(bitmap))
            for key, bitmap in derived.items()
        }
        made = [build for build in builds.values() if build is not None]
        scratch = [key for build in made for key in build.scratch]
        run_builds(client, made)
        for key, bitmap in derived.items():
            if builds[key] is None:
                take_private(client, bitmap, private[key], lengths[keys.index(key)])
        yield Reading([private.get(key, key) for key in keys], lengths)
    finally:
        if derived:
            shared = chain.from_iterable(derived_keys(bitmap) for bitmap in derived.values())
            client.redis.unlink(*private.values(), *scratch, *dict.fromkeys(shared))


def slice_bounds(
    lengths: Sequence[int],
    round_trip_bytes: int = ROUND_TRIP_BYTES,
    min_slice: int | None = None,
) -> Iterator[tuple[int, int]]:
    """Byte ranges ``[start, stop)`` covering the longest of ``lengths``: each as wide as
    ``round_trip_bytes`` shared by the keys still that long (a multiple of 8, at least
    ``min_slice``, by default ``MIN_SLICE_BYTES``; the last one ends with the longest key), so
    one slice of every key fits a round trip."""
    min_slice = min_slice or MIN_SLICE_BYTES
    ordered = sorted(lengths)
    start, longest = 0, max(lengths, default=0)
    while start < longest:
        alive = len(ordered) - int(np.searchsorted(ordered, start, side="right"))
        width = max(min_slice, round_trip_bytes // alive // 8 * 8)
        # Never past the longest key: a slice's array is as wide as the slice, and a last slice
        # of 50 KB counted 1.2 MB of zeros at 10M users (half an on-or-after table's count).
        yield start, min(start + width, longest)
        start += width


def read_slices(
    r: redis.Redis, reading: Reading, round_trip_bytes: int = ROUND_TRIP_BYTES
) -> Iterator[list[bytes | None]]:
    """The keys' bytes slice by slice (``None`` or short where a key ends), one round trip each:
    one ``MGET`` when they all fit in one, else one MULTI/EXEC of ``GETRANGE`` per slice."""
    if reading.fits_one_round_trip(round_trip_bytes):
        yield list(r.mget(reading.keys)) if reading.keys else []  # type: ignore[arg-type]
        return
    for start, stop in slice_bounds(reading.lengths, round_trip_bytes):
        wanted = [k for k, length in enumerate(reading.lengths) if length > start]
        with r.pipeline(transaction=True) as pipe:
            for k in wanted:
                pipe.getrange(reading.keys[k], start, stop - 1)
            replies = pipe.execute()
        values: list[bytes | None] = [None] * len(reading.keys)
        for k, value in zip(wanted, replies, strict=True):
            values[k] = value
        yield values


@dataclass(frozen=True)
class WordSlice:
    """One byte slice of every key read: ``words[k]`` holds key ``k``'s bytes from ``start`` on
    (zero past its end), ``lengths[k]`` how many bytes it had there (0: none, skip it). The array
    is reused: it is valid until the next slice is asked for."""

    start: int
    words: np.ndarray
    lengths: list[int]


def _take(shape: tuple[int, int]) -> np.ndarray:
    """An uninitialised uint64 array of ``shape``, from the spare one when it is big enough: a
    fresh one costs a page fault per 4 KiB when first written (milliseconds for 16 MiB)."""
    words = shape[0] * shape[1]
    with _spare_lock:
        fits = [i for i, spare in enumerate(_spare) if spare.size >= words]
        flat = _spare.pop(fits[0]) if fits else np.empty(max(words, 1), np.uint64)
    return flat[:words].reshape(shape)


def _give(array: np.ndarray) -> None:
    """Keep an array from ``_take`` (its base) for the next report, while within ``SPARE_BYTES``."""
    flat = array.base if array.base is not None else array
    with _spare_lock:
        if sum(s.nbytes for s in _spare) + flat.nbytes <= SPARE_BYTES:
            _spare.append(flat)


def read_words(
    r: redis.Redis,
    reading: Reading,
    round_trip_bytes: int = ROUND_TRIP_BYTES,
) -> Iterator[WordSlice]:
    """The keys' bytes slice by slice as rows of uint64 words, straight from the socket into one
    array reused for every slice (``bitcore.transfer``): the Python process holds one slice of
    every key, and Redis copies at most ``round_trip_bytes`` per step: one ``MGET`` when every key
    fits in one (it still answers at ``maxmemory``), else one MULTI/EXEC of ``GETRANGE`` per
    slice. The next slice is asked for before this one is yielded, so Redis copies it while
    the caller counts. A kept connection the server had closed is replaced once, on the first
    slice. Consume it to the end or close it: a reader left behind disconnects.
    """
    bounds = list(slice_bounds(reading.lengths, round_trip_bytes)) if reading.keys else []
    if not bounds:
        return
    whole = reading.fits_one_round_trip(round_trip_bytes)
    if whole:
        bounds = [(0, max(reading.lengths))]  # one MGET for everything
    keys = len(reading.keys)
    flat = _take((keys, -(-max(b - a for a, b in bounds) // 8))).reshape(-1)
    wanted = [[k for k, n in enumerate(reading.lengths) if n > start] for start, _ in bounds]
    yielded = False
    for attempt in (1, 2):
        reader = transfer.SliceReader(r)
        with reader:
            try:
                reader.send([reading.keys[k] for k in wanted[0]], *bounds[0], whole=whole)
                for index, (start, stop) in enumerate(bounds):
                    if index + 1 < len(bounds):  # Redis copies the next slice while we count
                        reader.send(
                            [reading.keys[k] for k in wanted[index + 1]], *bounds[index + 1]
                        )
                    # This slice's width, no wider: a narrow last slice is counted as narrow.
                    words = flat[: keys * -(-(stop - start) // 8)].reshape(keys, -1)
                    rows = words.view(np.uint8)
                    got = reader.receive([rows[k] for k in wanted[index]])
                    lengths = [0] * len(reading.keys)
                    for k, length in zip(wanted[index], got, strict=True):
                        lengths[k] = length
                    if len(wanted[index]) < len(reading.keys):  # keys not read: no users
                        words[sorted(set(range(len(reading.keys))) - set(wanted[index]))] = 0
                    yielded = True
                    yield WordSlice(start, words, lengths)
                _give(flat)
                return
            except redis.ConnectionError:
                if yielded or attempt == 2 or not reader.reused:
                    raise


def as_words(values: Sequence[bytes | None]) -> tuple[np.ndarray, list[bool]]:
    """One slice as rows of uint64 words (zero-padded to the longest), and which rows have
    bytes at all (an absent or empty key has no users: callers skip its work)."""
    width = -(-max((len(v) for v in values if v), default=0) // 8)
    rows = np.zeros((len(values), width), dtype=np.uint64)
    as_bytes = rows.view(np.uint8)
    for k, value in enumerate(values):
        if value:
            as_bytes[k, : len(value)] = np.frombuffer(value, dtype=np.uint8)
    return rows, [bool(v) for v in values]


def popcounts(rows: np.ndarray) -> np.ndarray:
    """Set bits per row of a 2-D uint64 array, as int64."""
    if getattr(np, "bitwise_count", None) is None:
        return BYTE_POPCOUNT[rows.view(np.uint8)].sum(axis=1, dtype=np.int64)  # type: ignore[no-any-return]
    return np.bitwise_count(rows).sum(axis=1, dtype=np.int64)  # type: ignore[no-any-return]


def count_union(client: BitCore, keys: Sequence[str], max_bytes: int | None = None) -> int:
    """Users in any of ``keys`` (the size of their OR), read in slices and counted in numpy.

    Unlike a ``BITOP OR`` it writes nothing: no temporary key to expire, no step that holds Redis
    for longer than one slice, and it still answers when Redis is full (``maxmemory``), since it
    only reads. On the sharded layout each shard's union is counted in its view and the counts
    add up (a user is in one shard); ``max_bytes`` bounds each shard's read.
    """
    total = 0
    for reader, names in per_shard(client, keys):
        with opened(reader, names, {}, max_bytes) as reading:
            for values in read_slices(reader.redis, reading):
                rows, _present = as_words(values)
                if rows.size:
                    total += int(popcounts(np.bitwise_or.reduce(rows, axis=0, keepdims=True))[0])
    return total
