"""Counting a cohort table in numpy: the fetched bitmaps become rows of a uint64 matrix, and each
cohort's cells are one vectorised AND + popcount against the slice of return sets it meets.

numpy >= 2 has a C popcount (``np.bitwise_count``); older numpy falls back to a byte lookup table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bitcore.cohort.engine import Plan


def popcount(words: np.ndarray, axis: int = -1) -> np.ndarray:
    """Set bits along ``axis`` of a uint64 array (numpy >= 2 has a C popcount; else a byte
    table)."""
    bitwise_count = getattr(np, "bitwise_count", None)
    if bitwise_count is not None:
        return bitwise_count(words).sum(axis=axis, dtype=np.int64)  # type: ignore[no-any-return]
    as_bytes = words.view(np.uint8).reshape(*words.shape[:-1], -1)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=axis, dtype=np.int64)  # type: ignore[no-any-return]


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _count_rows(words: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Set bits per row of ``words`` (uint64); ``scratch`` (same shape, uint8) holds the counts."""
    if getattr(np, "bitwise_count", None) is None:
        return popcount(words)
    np.bitwise_count(words, out=scratch)
    return scratch.sum(axis=1, dtype=np.uint64)


def count_in_python(
    plan: Plan, sources: list[str], raw: list[bytes | None]
) -> tuple[list[int], list[int | None]]:
    """The counts from the fetched bitmaps: ANDs and ORs on uint64 words, popcount in C via numpy.

    Each set becomes one row of a (sets x words) matrix; a row's cells are then one vectorised AND
    of the cohort row against the slice of return rows, so there are ``rows`` numpy calls, not
    ``rows x columns``.
    """
    words = -(-max((len(r) for r in raw if r), default=0) // 8)
    data = {key: (r or b"") for key, r in zip(sources, raw, strict=True)}
    sets = np.zeros((len(plan.sets), words), dtype=np.uint64)
    as_bytes = sets.view(np.uint8)
    for s, operands in enumerate(plan.sets):
        if len(operands) == 1 and len(operands[0]) == 1:
            stored = data[operands[0][0]]
            as_bytes[s, : len(stored)] = np.frombuffer(stored, dtype=np.uint8)
            continue
        for o, keys in enumerate(operands):
            operand = np.zeros(words * 8, dtype=np.uint8)
            for key in keys:
                chunk = np.frombuffer(data[key], dtype=np.uint8)
                operand[: len(chunk)] |= chunk
            if o == 0:
                as_bytes[s] = operand
            else:
                as_bytes[s] &= operand
    set_counts = [int(c) for c in popcount(sets)]
    cells: list[int | None] = [None] * len(plan.pairs)
    by_cohort: dict[int, list[int]] = {}
    for p, (a, b) in enumerate(plan.pairs):
        if set_counts[a] and set_counts[b]:
            by_cohort.setdefault(a, []).append(p)
    widest = max((len(p) for p in by_cohort.values()), default=0)
    anded = np.empty((widest, words), dtype=np.uint64)  # reused: no allocation per row
    counted = np.empty((widest, words), dtype=np.uint8)
    for a, pair_numbers in by_cohort.items():
        others = [plan.pairs[p][1] for p in pair_numbers]
        n = len(others)
        contiguous = others == list(range(others[0], others[0] + n))
        rows = sets[others[0] : others[0] + n] if contiguous else sets[others]
        np.bitwise_and(rows, sets[a], out=anded[:n])
        for p, count in zip(pair_numbers, _count_rows(anded[:n], counted[:n]), strict=True):
            cells[p] = int(count)
    return set_counts, cells
