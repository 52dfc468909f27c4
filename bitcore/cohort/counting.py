"""Counting a cohort table in numpy: the size of each planned set and of each cell's intersection.

The fetched bitmaps are rows of one uint64 array (``bitcore.reading.read_words`` receives them
straight into it); it is counted in blocks of columns (``BLOCK_BYTES`` of every row), so a block
stays in a core's cache while each of its rows is read by a dozen cells.

A table's cells lie on diagonals (cohort ``i`` meets return set ``i + t``), so in a block a whole
band of them (every ``t``, every ``i``) is one AND of two overlapping strided views of the rows,
one ``np.bitwise_count`` (C, numpy >= 2; a byte table before) and one sum written in place: a
handful of long numpy calls per block instead of hundreds of short ones, and no strided view made
where a band is two plain slices of rows. Long calls also let the counting threads run side by
side; with short ones they mostly wait for each other's GIL. Sets that are more than one key (a
filter, a year's months) are built block by block, in cache, never as whole rows; a set met with
itself (column 0 of an ``x -> x`` table) is its size, not an AND. At 10M users this took the days
31 x 12 count on one thread from 98 to 58 ms, the filtered one from 76 to 60 (``bench/README.md``).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from bitcore.cohort import kernel
from bitcore.cohort import retention as _retention
from bitcore.reading import BYTE_POPCOUNT, as_words

if TYPE_CHECKING:
    from bitcore.cohort.engine import Operands, Plan

#: Threads that count at once (the calling one and a shared pool's); more than the cores only adds
#: switching.
MAX_WORKERS = 4
#: Bytes of every key in a block. 4 and 8 KB blocks measured slower on two threads: their numpy
#: calls are short, so the threads queue on the GIL. With ``SWEEP_CELLS`` below, 32 KB blocks took
#: a quarter less CPU than 16 KB ones did with 512-cell sweeps (``bench/README.md``).
BLOCK_BYTES = 32 << 10
#: Cells ANDed by one numpy call at most (a band of a bigger table is cut in several): their
#: 32 x 32 KB of ANDed words are still in cache when the popcount reads them back, where 512 cells
#: (16 MB) went out to memory and back.
SWEEP_CELLS = 32
#: Popcounts are summed over this many words at a time: at most 64 bits a word, the sums fit in
#: uint16, which numpy adds up twice as fast as uint32. Blocks are narrower, or a multiple of it.
SUM_WORDS = 512
#: Below this much work in a table (cells x words) numpy's count runs on the calling thread alone:
#: handing it to other threads would cost more than it saves (the compiled count has its own,
#: ``kernel.PARALLEL_MIN_WORDS``).
PARALLEL_MIN_WORDS = 1 << 20
#: Bytes of arrays kept for the next table (a 1M-user table uses ~25 MB): a fresh array costs
#: thousands of page faults whenever malloc has handed the memory back to the kernel.
SPARE_BYTES = 32 << 20

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, pool)
_spare: list[np.ndarray] = []  # flat uint64 arrays


def _workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _shared_pool() -> ThreadPoolExecutor:
    """The process's counting threads, made on first use; a forked child (a pre-forking web
    server) makes its own, since its parent's threads did not come along and would never run."""
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(_workers() - 1 or 1, "bitcore-count"))
        return _pool[1]


def _take(words: int) -> np.ndarray:
    """An uninitialised flat uint64 array of at least ``words``: the smallest spare one that is
    large enough, else a new one. Give it back with ``_give`` when done."""
    with _lock:
        fits = [i for i, flat in enumerate(_spare) if flat.size >= words]
        if fits:
            return _spare.pop(min(fits, key=lambda i: _spare[i].size))
    return np.empty(max(words, 1), dtype=np.uint64)


def _give(*flats: np.ndarray) -> None:
    """Keep ``flats`` (from ``_take``; no one may use them after this) for later tables, while
    they fit in ``SPARE_BYTES``."""
    with _lock:
        for flat in flats:
            if sum(kept.nbytes for kept in _spare) + flat.nbytes <= SPARE_BYTES:
                _spare.append(flat)


def _popcount_into(words: np.ndarray, counted: np.ndarray) -> None:
    """Set bits of each uint64 of ``words`` (2-D) into ``counted`` (uint8, same shape)."""
    if getattr(np, "bitwise_count", None) is None:
        rows, width = words.shape
        by_byte = BYTE_POPCOUNT[words.view(np.uint8)].reshape(rows, width, 8)
        np.sum(by_byte, axis=2, dtype=np.uint8, out=counted)
    else:
        np.bitwise_count(words, out=counted)


def _sum_into(counted: np.ndarray, parts: np.ndarray) -> None:
    """Row sums of ``counted`` (rows x width, uint8) over each ``SUM_WORDS`` of a row (the last
    run maybe shorter) into ``parts`` (rows x runs, uint16), written in place: no array is
    allocated for them."""
    rows, width = counted.shape
    run = max(1, min(width, SUM_WORDS))
    whole = width - width % run
    if whole:
        counted[:, :whole].reshape(rows, -1, run).sum(
            axis=2, dtype=np.uint16, out=parts[:, : whole // run]
        )
    if whole < width:
        counted[:, whole:].sum(axis=1, dtype=np.uint16, out=parts[:, whole // run])


class Sweep(NamedTuple):
    """Cells ``first ..`` (``depth`` x ``rows`` of them, in cell order) are rows ``start + i``
    ANDed with rows ``start + offset + t + i`` for ``t < depth``, ``i < rows``: a band of the
    table, which one numpy call ANDs through two overlapping strided views."""

    first: int
    start: int
    offset: int
    rows: int
    depth: int


def sweeps_of(cells: Sequence[tuple[int, int]], wanted: Sequence[bool], most: int) -> list[Sweep]:
    """The ``wanted`` ones of ``cells`` (pairs of rows, sorted by offset, then row) as sweeps of at
    most ``most`` cells: runs of consecutive rows at one offset, stacked while the next run is the
    same rows at the next offset."""
    runs: list[list[int]] = []  # [first, start, offset, rows]
    for c, (a, b) in enumerate(cells):
        if not wanted[c]:
            continue
        last = runs[-1] if runs else None
        extends = last and (last[0] + last[3], last[1] + last[3], last[2]) == (c, a, b - a)
        if last and extends and last[3] < most:
            last[3] += 1
        else:
            runs.append([c, a, b - a, 1])
    sweeps: list[list[int]] = []  # [first, start, offset, rows, depth]
    for first, start, offset, rows in runs:
        last = sweeps[-1] if sweeps else None
        if (
            last
            and (last[1], last[3], last[2] + last[4]) == (start, rows, offset)
            and last[0] + last[3] * last[4] == first
            and rows * (last[4] + 1) <= most
        ):
            last[4] += 1
        else:
            sweeps.append([first, start, offset, rows, 1])
    return [Sweep(*sweep) for sweep in sweeps]


def spans_of(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Ascending ``rows`` as ``(start, stop)`` slices of consecutive rows."""
    spans: list[list[int]] = []
    for row in rows:
        if spans and spans[-1][1] == row:
            spans[-1][1] += 1
        else:
            spans.append([row, row + 1])
    return [(start, stop) for start, stop in spans]


class Layout(NamedTuple):
    """What every table of one shape shares: worked out once (a noticeable share of a small
    table's time) and kept."""

    cells: int  # distinct pairs
    of_pair: np.ndarray  # per pair of the plan, its cell's number
    sides: np.ndarray  # per cell, its two sets (cells x 2)
    sweeps: tuple[Sweep, ...]  # the cells of live sets, but those of a set with itself
    spans: tuple[tuple[int, int], ...]  # the live sets whose size is wanted
    diagonal: tuple[tuple[int, int], ...]  # (cell, set) of each set met with itself
    #: For the compiled count (``bitcore.cohort.kernel``): the cells the sweeps cover, their two
    #: sets, which sets are sized (the spans), and which are used at all (sized or in a cell).
    swept: np.ndarray
    left: np.ndarray
    right: np.ndarray
    sized: np.ndarray
    used: np.ndarray


@functools.lru_cache(maxsize=64)
def _layout(
    pairs: tuple[tuple[int, int], ...],
    live: tuple[bool, ...],
    sized: tuple[bool, ...] | None,
    most: int,
) -> Layout:
    """Each distinct pair numbered in cell order (by offset, then row), the sweeps of the cells
    of ``live`` sets, and the spans of the ``live`` sets that are ``sized`` (``None``: all of
    them; a set met with itself always is). A set met with itself (a cohort of the return
    selections, column 0) is counted as the set's size, not ANDed."""
    cells = sorted(set(pairs), key=lambda ab: (ab[1] - ab[0], ab[0]))
    sweeps = sweeps_of(cells, [live[a] and live[b] and a != b for a, b in cells], most)
    diagonal = tuple((c, a) for c, (a, b) in enumerate(cells) if a == b)
    wanted = list(live if sized is None else sized)
    for _cell, a in diagonal:
        wanted[a] = True
    spans = spans_of([s for s, alive in enumerate(live) if alive and wanted[s]])
    number = {cell: c for c, cell in enumerate(cells)}
    of_pair = np.array([number[pair] for pair in pairs], dtype=np.intp)
    sides = np.array(cells, dtype=np.intp).reshape(len(cells), 2)
    swept = np.array([s.first + k for s in sweeps for k in range(s.rows * s.depth)], dtype=np.int64)
    # The compiled count takes cells of one left set together: each word of it loaded once for four.
    swept = swept[np.argsort(sides[swept, 0], kind="stable")]
    left, right = (sides[swept, side].astype(np.int64) for side in (0, 1))
    sized_sets = np.zeros(len(live), dtype=np.bool_)
    for start, stop in spans:
        sized_sets[start:stop] = True
    used = sized_sets.copy()
    used[left] = used[right] = True
    arrays = (of_pair, sides, swept, left, right, sized_sets, used)
    for array in arrays:
        array.flags.writeable = False
    return Layout(len(cells), of_pair, sides, tuple(sweeps), tuple(spans), diagonal, *arrays[2:])


def _build_block(
    operand_rows: Sequence[Sequence[Sequence[int]]],
    keys: np.ndarray,
    into: np.ndarray,
    operand: np.ndarray,
    chain: Sequence[int] | None = None,
) -> None:
    """Each set (an AND of ORs of key rows) of one block of ``keys`` into its row of ``into``;
    ``operand`` is scratch for an OR that is ANDed in. Built per block, so the sets are made in
    cache, never as whole rows. From the last set to the first: set ``s`` is then ORed with
    set ``chain[s]`` (a later one, built already) where that is not -1."""
    for s in range(len(operand_rows) - 1, -1, -1):
        operands = operand_rows[s]
        target = into[s]
        for o, rows in enumerate(operands):
            if o and len(rows) == 1:  # one key: ANDed in where it lies
                np.bitwise_and(target, keys[rows[0]], out=target)
                continue
            ored = target if o == 0 else operand
            np.copyto(ored, keys[rows[0]])
            for k in rows[1:]:
                np.bitwise_or(ored, keys[k], out=ored)
            if o:
                np.bitwise_and(target, ored, out=target)
        if chain is not None and chain[s] >= 0:
            np.bitwise_or(target, into[chain[s]], out=target)


def _count_blocks(
    words: np.ndarray,
    blocks: range,
    operand_rows: Sequence[Sequence[Sequence[int]]] | None,
    layout: Layout,
    set_parts: np.ndarray,
    cell_parts: np.ndarray,
    chain: Sequence[int] | None = None,
) -> None:
    """Sizes of the sets in ``layout.spans`` and of the cells in ``layout.sweeps`` over the column
    ``blocks`` of ``words`` (keys x words, ``BLOCK_BYTES`` of each row per block), as partial sums
    (one column per ``SUM_WORDS`` of a block) into row ``j`` of ``set_parts`` and ``cell_parts``
    for block ``j``. ``operand_rows``: how each set is made of key rows (``None``: the sets are
    the key rows). ``chain``: see ``count_words``."""
    width = min(words.shape[1], BLOCK_BYTES // 8)
    spans, sweeps = layout.spans, layout.sweeps
    rows = max([0, *(b - a for a, b in spans), *(s.rows * s.depth for s in sweeps)])
    sets = 0 if operand_rows is None else len(operand_rows)
    counted_words = -(-rows * width // 8)
    scratch = _take(rows * width + counted_words + (sets + 1) * width)
    anded_all = scratch[: rows * width]
    counted_all = scratch[rows * width : rows * width + counted_words].view(np.uint8)
    built = scratch[rows * width + counted_words :][: sets * width].reshape(sets, width)
    operand = scratch[rows * width + counted_words + sets * width :][:width]
    for j in blocks:
        keys = words[:, j * width : (j + 1) * width]
        wide = keys.shape[1]
        if operand_rows is None:
            block = keys
        else:
            block = built[:, :wide]
            _build_block(operand_rows, keys, block, operand[:wide], chain)
        anded = anded_all[: rows * wide].reshape(rows, wide)
        counted = counted_all[: rows * wide].reshape(rows, wide)
        for start, stop in spans:
            _popcount_into(block[start:stop], counted[: stop - start])
            _sum_into(counted[: stop - start], set_parts[j, start:stop])
        for first, start, offset, height, depth in sweeps:
            n = height * depth
            if depth == 1:  # plain slices: no strided view to make
                others = block[start + offset : start + offset + height]
                np.bitwise_and(block[start : start + height], others, out=anded[:n])
            else:
                shape, step = (depth, height, wide), block.strides[0]
                cohorts = as_strided(block[start:], shape, (0, step, 8), writeable=False)
                later = block[start + offset :]
                others = as_strided(later, shape, (step, step, 8), writeable=False)
                np.bitwise_and(cohorts, others, out=anded[:n].reshape(shape))
            _popcount_into(anded[:n], counted[:n])
            _sum_into(counted[:n], cell_parts[j, first : first + n])
    _give(scratch)


def count_in_python(
    plan: Plan,
    sources: list[str],
    raw: Sequence[bytes | None],
    parallel: bool = False,
    sized: Sequence[bool] | None = None,
) -> tuple[list[int], list[int | None]]:
    """Set sizes, and per pair the size of the intersection (``None`` when either set is empty),
    from the fetched bitmaps (``raw[k]`` is source key ``k``'s value, ``None`` if missing).
    ``parallel`` splits the blocks between the shared counting threads.

    >>> from bitcore.cohort.engine import Plan
    >>> plan = Plan()
    >>> plan.pairs = [(plan.add_set((("k1",),)), plan.add_set((("k2",),)))]
    >>> count_in_python(plan, ["k1", "k2"], [b"\\xf0", b"\\x3c"])
    ([4, 4], [2])
    """
    sizes, overlaps = count_slice(plan, sources, raw, parallel, sized)
    return with_empty_cells(plan, sizes.tolist(), overlaps.tolist())


def with_empty_cells(
    plan: Plan, sizes: list[int], overlaps: list[int]
) -> tuple[list[int], list[int | None]]:
    """``sizes`` and ``overlaps`` (one per pair), ``None`` where either set of a pair is empty."""
    cells = [
        n if sizes[a] and sizes[b] else None for n, (a, b) in zip(overlaps, plan.pairs, strict=True)
    ]
    return sizes, cells


def count_slice(
    plan: Plan,
    sources: list[str],
    raw: Sequence[bytes | None],
    parallel: bool = False,
    sized: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``count_words`` over ``raw`` (whole bitmaps, or one byte slice of each; counts of slices
    add up), copied into rows of words first."""
    words, _present = as_words(raw)
    return count_words(plan, sources, words, [len(r or b"") for r in raw], parallel, sized)


def count_words(
    plan: Plan,
    sources: list[str],
    words: np.ndarray,
    lengths: Sequence[int],
    parallel: bool = False,
    sized: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Set sizes and pair intersections (int64 arrays) over ``words`` (row ``k``: source key
    ``k``'s bytes in this slice, zero past its end;
    ``lengths[k]``: how many it had). ``parallel`` splits the column blocks between the shared
    counting threads. ``sized``: the sets whose size is wanted (``None``: all); another set's
    entry only says whether it has users here (0: none), which is all a return set's size is
    used for (an empty one shows its cells empty), and saves a popcount of each.

    A plan with on-or-after unions (``plan.suffix``) counts them as sets after its own
    (``retention.chained_sets``), each built block by block with the others, in cache: as whole
    rows, the unions were an eighth of such a table's time at 10M users."""
    rows = _set_rows(tuple(plan.sets), tuple(plan.suffix), tuple(sources))
    live = _live(rows, lengths)
    wanted = None if sized is None else tuple(bool(z) for z in sized)
    layout = _layout(tuple(plan.pairs), live, wanted, SWEEP_CELLS)
    sizes, overlaps = _count(words, rows, layout, parallel)
    for cell, s in layout.diagonal:
        overlaps[cell] = sizes[s]
    if wanted is not None:  # the other live sets: a cell with users says they have some
        counted = np.zeros(rows.sets, dtype=bool)
        counted[[s for start, stop in layout.spans for s in range(start, stop)]] = True
        met = np.zeros(rows.sets, dtype=bool)
        met[layout.sides[overlaps > 0].ravel()] = True
        sizes[met & ~counted] = 1
        rest = [s for s, alive in enumerate(live) if alive and not counted[s] and not met[s]]
        if rest:  # no cell told: count them (an empty return set; rare)
            alone = _layout((), live, tuple(s in rest for s in range(len(live))), SWEEP_CELLS)
            sizes[rest] = _count(words, rows, alone, False)[0][rest]
    return sizes, overlaps[layout.of_pair]


class SetRows(NamedTuple):
    """How each set of a plan is made of the rows of its sources, worked out once per table shape
    and kept (building it was a tenth of a small table's count)."""

    sets: int
    #: ``None``: set ``s`` is row ``s`` (one key per set, in order: the usual table); else each
    #: set's operands as rows, an AND of ORs of key rows.
    operand_rows: tuple[tuple[tuple[int, ...], ...], ...] | None
    #: Per set, the later set it is ORed with (an on-or-after union's next one), -1 for none;
    #: ``None``: no set is.
    chain: tuple[int, ...] | None
    #: The same for the compiled count: per set the key row it is read from where it is one key
    #: and no union, else -1 (built per block); the operands in compressed rows.
    source: np.ndarray
    set_ops: np.ndarray
    op_keys: np.ndarray
    key_rows: np.ndarray
    later: np.ndarray


@functools.lru_cache(maxsize=64)
def _set_rows(
    sets: tuple[Operands, ...], suffix: tuple[int, ...], sources: tuple[str, ...]
) -> SetRows:
    """``SetRows`` of a plan's ``sets`` and ``suffix`` over ``sources``; its unions are sets
    after the plan's (``retention.chained_sets``)."""
    chain: list[int] | None = None
    if suffix:
        sets, chain = _retention.chained_sets(sets, suffix)
    row = {key: k for k, key in enumerate(sources)}
    operands = tuple(tuple(tuple(row[k] for k in keys) for keys in ops) for ops in sets)
    later = np.array(chain or [-1] * len(sets), dtype=np.int64)
    direct = chain is None and operands == tuple(((k,),) for k in range(len(sources)))
    source = np.array(
        [ops[0][0] if len(ops) == len(ops[0]) == 1 else -1 for ops in operands], dtype=np.int64
    )
    source[later >= 0] = -1  # a union is its key ORed with the later ones
    flat = [keys for ops in operands for keys in ops]
    arrays = (
        source,
        np.cumsum([0, *(len(ops) for ops in operands)], dtype=np.int64),
        np.cumsum([0, *(len(keys) for keys in flat)], dtype=np.int64),
        np.array([k for keys in flat for k in keys] or [0], dtype=np.int64),
        later,
    )
    for array in arrays:
        array.flags.writeable = False
    chained = tuple(chain) if chain is not None else None
    return SetRows(len(sets), None if direct else operands, chained, *arrays)


def _live(rows: SetRows, lengths: Sequence[int]) -> tuple[bool, ...]:
    """Which sets have users in this slice: a key with bytes; an OR as long as its longest key,
    an AND as its shortest operand; a union where its own set or a later union has."""
    has = np.asarray(lengths) > 0
    if rows.operand_rows is None:
        return tuple(has.tolist())
    ored = np.logical_or.reduceat(has[rows.key_rows], rows.op_keys[:-1])
    live = np.logical_and.reduceat(ored, rows.set_ops[:-1])
    for s in np.flatnonzero(rows.later >= 0)[::-1]:
        live[s] |= live[rows.later[s]]
    return tuple(live.tolist())


def _count(
    words: np.ndarray, rows: SetRows, layout: Layout, parallel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Sizes of ``layout``'s spans of sets and its cells over all of ``words``, the sets made
    as ``rows`` says: its column blocks split between the shared counting threads when
    ``parallel``. Compiled (``bitcore.cohort.kernel``) where numba is there, else in numpy."""
    compiled = kernel.load()
    if compiled is not None:
        return _count_compiled(compiled, words, rows, layout, parallel)
    sets = rows.sets
    blocks = -(-words.shape[1] // (BLOCK_BYTES // 8))
    runs = max(1, -(-min(words.shape[1], BLOCK_BYTES // 8) // SUM_WORDS))
    set_parts = np.zeros((blocks, sets, runs), dtype=np.uint16)
    cell_parts = np.zeros((blocks, layout.cells, runs), dtype=np.uint16)
    parallel = parallel and words.shape[1] * len(layout.swept) >= PARALLEL_MIN_WORDS
    parts = max(1, min(_workers(), blocks)) if parallel else 1
    bounds = [blocks * p // parts for p in range(parts + 1)]
    count = functools.partial(
        _count_blocks, words, operand_rows=rows.operand_rows, layout=layout, chain=rows.chain
    )
    _in_parts(
        lambda p: count(
            range(bounds[p], bounds[p + 1]), set_parts=set_parts, cell_parts=cell_parts
        ),
        parts,
    )
    return set_parts.sum(axis=(0, 2), dtype=np.int64), cell_parts.sum(axis=(0, 2), dtype=np.int64)


def _in_parts(work: Callable[[int], object], parts: int) -> None:
    """``work(p)`` for each part ``p``: part 0 on this thread, the others on the shared counting
    threads at the same time; returns when all are done (raising the first error)."""
    futures = [_shared_pool().submit(work, p) for p in range(1, parts)]
    try:
        work(0)  # this thread works too
    finally:
        for future in futures:
            future.result()


def _count_compiled(
    compiled: kernel.Kernel, words: np.ndarray, rows: SetRows, layout: Layout, parallel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``_count`` by the compiled loop: the words split in ranges of whole blocks between the
    shared counting threads when ``parallel`` (the loop runs without the GIL), each range
    counted into its own arrays, added up at the end."""
    words = np.ascontiguousarray(words)
    width = words.shape[1]
    block = kernel.BLOCK_WORDS
    sets = rows.sets
    built = layout.used
    if rows.chain is not None:  # a union is built with the later ones it is ORed with
        built = layout.used.copy()
        for s, then in enumerate(rows.chain):
            if built[s] and then >= 0:
                built[then] = True
    blocks = -(-width // block)
    parallel = parallel and len(layout.swept) * width >= kernel.PARALLEL_MIN_WORDS
    parts = max(1, min(_workers(), blocks)) if parallel else 1
    bounds = [min(width, block * (blocks * p // parts)) for p in range(parts + 1)]
    sizes = np.zeros((parts, sets), dtype=np.int64)
    counts = np.zeros((parts, len(layout.swept)), dtype=np.int64)
    built_rows = sets + 1 if rows.operand_rows is not None else 1

    def work(part: int) -> None:
        scratch = np.empty((built_rows, min(block, width) or 1), dtype=np.uint64)
        compiled(
            words, bounds[part], bounds[part + 1], block, rows.source, rows.set_ops,
            rows.op_keys, rows.key_rows, rows.later, built, layout.sized, layout.left,
            layout.right, sizes[part], counts[part], scratch,
        )  # fmt: skip

    _in_parts(work, parts)
    overlaps = np.zeros(layout.cells, dtype=np.int64)
    overlaps[layout.swept] = counts.sum(axis=0)
    return sizes.sum(axis=0), overlaps
