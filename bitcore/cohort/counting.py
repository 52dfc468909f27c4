"""Counting a cohort table in numpy: the fetched bitmaps become rows of a uint64 matrix, and each
cohort's cells are one vectorised AND + popcount against the slice of return sets it meets.

numpy >= 2 has a C popcount (``np.bitwise_count``); older numpy falls back to a byte lookup table.
numpy's AND, popcount and sum loops release the GIL, so big tables are split over a few threads
(one per core, at most ``MAX_WORKERS``): on two cores that halves the counting, which is half of a
table's time. Small tables stay on the calling thread, where a thread hop would cost more than it
saves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from bitcore.cohort.engine import Plan

T = TypeVar("T")

#: Threads that count at once; more than the cores only adds switching.
MAX_WORKERS = 4
#: Below this many uint64 words ANDed (cells x words) one thread is faster than handing work off.
PARALLEL_MIN_WORDS = 1 << 20

_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, pool)
_pool_lock = threading.Lock()


def _workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _shared_pool() -> ThreadPoolExecutor:
    """The process's counting threads, made on first use; a forked child (a pre-forking web
    server) makes its own, since its parent's threads did not come along and would never run."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(_workers() - 1, "bitcore-count"))
        return _pool[1]


def _run(tasks: Sequence[Callable[[], T]], parallel: bool) -> list[T]:
    """Each task's result, in order; on the shared pool when ``parallel`` (the first task runs
    here, so the calling thread works too)."""
    if not parallel or len(tasks) < 2:
        return [task() for task in tasks]
    futures = [_shared_pool().submit(task) for task in tasks[1:]]
    first = tasks[0]()
    return [first, *(future.result() for future in futures)]


def popcount(words: np.ndarray, axis: int = -1) -> np.ndarray:
    """Set bits along ``axis`` of a uint64 array (numpy >= 2 has a C popcount; else a byte
    table)."""
    bitwise_count = getattr(np, "bitwise_count", None)
    if bitwise_count is not None:
        return bitwise_count(words).sum(axis=axis, dtype=np.int64)  # type: ignore[no-any-return]
    as_bytes = words.view(np.uint8).reshape(*words.shape[:-1], -1)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=axis, dtype=np.int64)  # type: ignore[no-any-return]


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _fill_set(
    row: np.ndarray, operands: tuple[tuple[str, ...], ...], data: dict[str, bytes]
) -> int:
    """Write the set (AND of ORs of keys) into ``row`` (uint8, zero-padded); returns how many of
    its leading bytes can be non-zero (an OR is as long as its longest key, an AND as its shortest
    operand), so ANDs with it can stop there."""
    size = len(row)
    for o, keys in enumerate(operands):
        target = row if o == 0 else np.empty(len(row), dtype=np.uint8)
        longest = 0
        for k, key in enumerate(keys):
            chunk = np.frombuffer(data[key], dtype=np.uint8)
            if k == 0:
                target[: len(chunk)] = chunk
                target[len(chunk) :] = 0
            else:
                target[: len(chunk)] |= chunk
            longest = max(longest, len(chunk))
        if o:
            row[:longest] &= target[:longest]
            row[longest:size] = 0
        size = min(size, longest)
    return size


def _chunks(items: list[T], parts: int) -> list[list[T]]:
    """``items`` dealt round-robin into ``parts`` non-empty lists (neighbouring rows have similar
    work, so dealing balances the threads)."""
    return [chunk for chunk in (items[i::parts] for i in range(parts)) if chunk]


def _sum_dtype(words: int) -> type[np.unsignedinteger[Any]]:
    """uint32 sums are a third faster than uint64 and cannot overflow below 2**32 bits a row."""
    return np.uint32 if words * 64 < 2**32 else np.uint64


def _count_rows(words: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Set bits per row of ``words`` (uint64); ``counted`` (same shape, uint8) is scratch."""
    if getattr(np, "bitwise_count", None) is None:
        return popcount(words)
    np.bitwise_count(words, out=counted)
    return counted.sum(axis=1, dtype=_sum_dtype(words.shape[1]))


def count_in_python(
    plan: Plan, sources: list[str], raw: list[bytes | None]
) -> tuple[list[int], list[int | None]]:
    """The counts from the fetched bitmaps: ANDs and ORs on uint64 words, popcount in C via numpy.

    Each set becomes one row of a (sets x words) matrix (one large array: numpy backs it with huge
    pages, which the ANDs below read much faster than scattered ``bytes``); a row's cells are then
    one vectorised AND of the cohort row against the slice of return rows, trimmed to the shorter
    bitmap, so there are ``rows`` numpy calls, not ``rows x columns``.
    """
    words = -(-max((len(r) for r in raw if r), default=0) // 8)
    data = {key: (r or b"") for key, r in zip(sources, raw, strict=True)}
    sets = np.empty((len(plan.sets), words), dtype=np.uint64)
    as_bytes = sets.view(np.uint8)
    set_words = [0] * len(plan.sets)
    set_counts = [0] * len(plan.sets)
    parallel = _workers() > 1 and words * len(plan.pairs) >= PARALLEL_MIN_WORDS
    parts = _workers() if parallel else 1

    def build(numbers: list[int]) -> None:
        counted = np.empty((1, words), dtype=np.uint8)
        for s in numbers:
            w = set_words[s] = -(-_fill_set(as_bytes[s], plan.sets[s], data) // 8)
            set_counts[s] = int(_count_rows(sets[s : s + 1, :w], counted[:, :w])[0])

    _run(
        [partial(build, chunk) for chunk in _chunks(list(range(len(plan.sets))), parts)],
        parallel,
    )

    cells: list[int | None] = [None] * len(plan.pairs)
    by_cohort: dict[int, list[int]] = {}
    for p, (a, b) in enumerate(plan.pairs):
        if set_counts[a] and set_counts[b]:
            by_cohort.setdefault(a, []).append(p)
    widest = max((len(p) for p in by_cohort.values()), default=0)

    def intersect(cohorts: list[int]) -> None:
        anded = np.empty((widest, words), dtype=np.uint64)  # reused: no allocation per row
        counted = np.empty((widest, words), dtype=np.uint8)
        for a in cohorts:
            pair_numbers = by_cohort[a]
            others = [plan.pairs[p][1] for p in pair_numbers]
            n = len(others)
            w = min(set_words[a], max(set_words[b] for b in others))
            if others == list(range(others[0], others[0] + n)):
                rows = sets[others[0] : others[0] + n, :w]
            else:
                rows = sets[others, :w]
            np.bitwise_and(rows, sets[a, :w], out=anded[:n, :w])
            counts = _count_rows(anded[:n, :w], counted[:n, :w])
            for p, count in zip(pair_numbers, counts, strict=True):
                cells[p] = int(count)

    _run([partial(intersect, chunk) for chunk in _chunks(list(by_cohort), parts)], parallel)
    return set_counts, cells
