"""A cohort table's counting as one compiled loop: AND and popcount fused, in cache, off the GIL.

numpy counts a cell in three passes over memory (AND into an array, ``bitwise_count`` into another,
a sum) and each pass is a separate C loop that cannot keep the ANDed word in a register; its
``bitwise_count`` also runs its AVX2 build on CPUs that have a vector popcount. Here numba
compiles one loop per cell for the machine it runs on (``popcnt``, or ``vpopcntq`` where the CPU
has it): the two operands are read once and only the count is kept. At 10M users the days 31 x
12 table's counting took 28 ms on two threads in numpy and ~11 ms on one thread here
(``bench/README.md``, "A compiled count").

The input is what ``bitcore.cohort.counting`` already has: the fetched key rows, each set as an
AND of ORs of key rows (compressed-row arrays: ``set_ops``, ``op_keys``, ``keys``), which sets to
size and which distinct cells (pairs of sets) to count. Work goes block by block (``BLOCK_WORDS``
of every row), so a block's rows stay in a core's cache while a dozen cells read each of them,
and sets made of several keys are built per block, never as whole rows (a set of one key is read
where it lies). An on-or-after table's unions are such sets too, each its period's set ORed with
the next union (``chain``), built from the last one back.

numba is imported on first use (``load``), not with ``bitcore``: it costs about a second, which a
process that only takes beacons should not pay. Without numba (a platform with no wheel)
``load`` answers ``None`` and the counting stays in numpy.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from bitcore import compiled

#: Words of every row counted per block: 4 KB rows, so a table's few dozen rows and its built sets
#: stay in a core's L2 cache while each is read by a dozen cells (512 to 2,048 measured the same;
#: 16,384 was a third slower: ``bench/README.md``).
BLOCK_WORDS = 512
#: Below this much work in a table (cells x words) one thread counts it. Measured on the quiet
#: machine (2026-12-04, best of 30, the words out of cache / in cache, ms): 10M users' months 3 x 2
#: (1.4M) 1.38 / 0.73 on one thread, 0.98 / 0.46 on two; 1M users' weeks 8 x 6 and on or after
#: (875K) 1.07 / 0.70 and 0.72 / 0.47 on one, 0.80 / 0.45 and 0.65 / 0.34 on two; 1M users'
#: months (140K) 0.31 / 0.11 on one, 0.41 / 0.14 on two: below a few hundred thousand the
#: hand-off costs more than it saves.
PARALLEL_MIN_WORDS = 1 << 19


class Kernel(Protocol):
    def __call__(
        self,
        words: np.ndarray,
        start: int,
        stop: int,
        block: int,
        source: np.ndarray,
        set_ops: np.ndarray,
        op_keys: np.ndarray,
        keys: np.ndarray,
        chain: np.ndarray,
        built: np.ndarray,
        sized: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        sizes: np.ndarray,
        cells: np.ndarray,
        scratch: np.ndarray,
    ) -> None: ...


@compiled.lazily
def load(numba: compiled.Tools) -> Kernel:
    """The compiled counting loop (compiled, or loaded from numba's cache, on the first call), or
    ``None`` when numba cannot be imported or ``BITCORE_COUNTING=numpy`` asks for numpy
    (``bitcore.compiled``)."""
    return _compile(numba.jit, numba.popcount)


def _compile(jit: Any, popcount: Any) -> Kernel:
    @jit(nogil=True, inline="always")  # type: ignore[misc]
    def count_one(row: np.ndarray) -> int:
        total = 0
        for w in range(row.shape[0]):
            total += popcount(row[w])
        return total

    @jit(nogil=True, inline="always")  # type: ignore[misc]
    def count_and(a: np.ndarray, b: np.ndarray) -> int:
        total = 0
        for w in range(a.shape[0]):
            total += popcount(a[w] & b[w])
        return total

    @jit(nogil=True, inline="always")  # type: ignore[misc]
    def count_and4(
        a: np.ndarray, b0: np.ndarray, b1: np.ndarray, b2: np.ndarray, b3: np.ndarray
    ) -> tuple[int, int, int, int]:
        t0 = t1 = t2 = t3 = 0
        for w in range(a.shape[0]):
            x = a[w]
            t0 += popcount(x & b0[w])
            t1 += popcount(x & b1[w])
            t2 += popcount(x & b2[w])
            t3 += popcount(x & b3[w])
        return t0, t1, t2, t3

    @jit(nogil=True, inline="always")  # type: ignore[misc]
    def count_and2(a: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> tuple[int, int]:
        t0 = t1 = 0
        for w in range(a.shape[0]):
            x = a[w]
            t0 += popcount(x & b0[w])
            t1 += popcount(x & b1[w])
        return t0, t1

    @jit(nogil=True, inline="always")  # type: ignore[misc]
    def set_row(
        words: np.ndarray, scratch: np.ndarray, source: np.ndarray, s: int, b0: int, n: int
    ) -> np.ndarray:
        if source[s] >= 0:
            return words[source[s], b0 : b0 + n]
        return scratch[s, :n]

    @jit(nogil=True)  # type: ignore[misc]
    def count_range(
        words: np.ndarray,
        start: int,
        stop: int,
        block: int,
        source: np.ndarray,
        set_ops: np.ndarray,
        op_keys: np.ndarray,
        keys: np.ndarray,
        chain: np.ndarray,
        built: np.ndarray,
        sized: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        sizes: np.ndarray,
        cells: np.ndarray,
        scratch: np.ndarray,
    ) -> None:
        """Add the set sizes and cell counts of words ``start:stop`` of every row to ``sizes`` and
        ``cells``. Set ``s`` is key row ``source[s]`` where that is not -1, read where it lies;
        else, where ``built[s]``, it is built per block into ``scratch[s]`` (row ``-1`` holds an
        OR being ANDed in), from the last set to the first, and ORed with set ``chain[s]`` (a
        later one, built already) where that is not -1."""
        operand = scratch.shape[0] - 1
        for b0 in range(start, stop, block):
            n = min(block, stop - b0)
            for s in range(built.shape[0] - 1, -1, -1):
                if not built[s] or source[s] >= 0:
                    continue
                target = scratch[s, :n]
                for o in range(set_ops[s], set_ops[s + 1]):
                    ored = target if o == set_ops[s] else scratch[operand, :n]
                    ored[:] = words[keys[op_keys[o]], b0 : b0 + n]
                    for k in range(op_keys[o] + 1, op_keys[o + 1]):
                        row = words[keys[k], b0 : b0 + n]
                        for w in range(n):
                            ored[w] |= row[w]
                    if o != set_ops[s]:
                        for w in range(n):
                            target[w] &= ored[w]
                if chain[s] >= 0:
                    later = set_row(words, scratch, source, chain[s], b0, n)
                    for w in range(n):
                        target[w] |= later[w]
            for s in range(sized.shape[0]):
                if sized[s]:
                    sizes[s] += count_one(set_row(words, scratch, source, s, b0, n))
            c = 0
            while c < left.shape[0]:  # cells sorted by their left set: 4 or 2 share its loads
                a = set_row(words, scratch, source, left[c], b0, n)
                if c + 3 < left.shape[0] and left[c + 3] == left[c]:
                    four = count_and4(
                        a,
                        set_row(words, scratch, source, right[c], b0, n),
                        set_row(words, scratch, source, right[c + 1], b0, n),
                        set_row(words, scratch, source, right[c + 2], b0, n),
                        set_row(words, scratch, source, right[c + 3], b0, n),
                    )
                    for k in range(4):
                        cells[c + k] += four[k]
                    c += 4
                elif c + 1 < left.shape[0] and left[c + 1] == left[c]:
                    two = count_and2(
                        a,
                        set_row(words, scratch, source, right[c], b0, n),
                        set_row(words, scratch, source, right[c + 1], b0, n),
                    )
                    cells[c] += two[0]
                    cells[c + 1] += two[1]
                    c += 2
                else:
                    cells[c] += count_and(a, set_row(words, scratch, source, right[c], b0, n))
                    c += 1

    return count_range  # type: ignore[no-any-return]
