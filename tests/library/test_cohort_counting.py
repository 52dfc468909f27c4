"""bitcore.cohort.counting against Python ints: bitmaps of uneven lengths (not multiples of 8, some
empty or missing), sets that AND several ORs, blocks and sweeps cut small enough that every table
spans several of each, on one thread or split between threads, with and without numpy's popcount,
compiled (``bitcore.cohort.kernel``) and in numpy.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitcore import compiled
from bitcore.cohort import counting, kernel
from bitcore.cohort.engine import Plan

pytestmark = pytest.mark.all_layouts

KEYS = [f"k{i}" for i in range(6)]


def as_int(stored: bytes | None) -> int:
    """A Redis bitmap as a Python int whose bit ``i`` is bitmap offset ``i`` (Redis: MSB first)."""
    return int.from_bytes(bytes(int(f"{b:08b}"[::-1], 2) for b in stored or b""), "little")


def oracle(plan: Plan, raw: dict[str, bytes | None]) -> tuple[list[int], list[int | None]]:
    values = []
    for operands in plan.sets:
        value = -1
        for keys in operands:
            ored = 0
            for key in keys:
                ored |= as_int(raw[key])
            value &= ored
        values.append(value)
    sizes = [v.bit_count() for v in values]
    cells = [
        (values[a] & values[b]).bit_count() if sizes[a] and sizes[b] else None
        for a, b in plan.pairs
    ]
    return sizes, cells


def make_plan(sets: list[tuple[tuple[str, ...], ...]], pairs: list[tuple[int, int]]) -> Plan:
    plan = Plan()
    for operand_keys in sets:
        plan.add_set(operand_keys)
    plan.pairs = [(a % len(plan.sets), b % len(plan.sets)) for a, b in pairs]
    return plan


#: Lengths spread evenly over 0..40 bytes, so sets of different widths (0 to 5 words) meet.
bitmaps = st.none() | st.integers(0, 40).flatmap(lambda n: st.binary(min_size=n, max_size=n))
operands = st.lists(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(tuple), max_size=3)
one_key_sets = st.permutations(KEYS).map(lambda keys: [((k,),) for k in keys])


@settings(max_examples=150, deadline=None)
@given(
    stored=st.lists(bitmaps, min_size=len(KEYS), max_size=len(KEYS)),
    sets=one_key_sets | st.lists(operands.filter(bool).map(tuple), min_size=1, max_size=6),
    pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=16),
    layout=st.sampled_from([(8, 1, 1), (16, 1, 3), (32, 2, 4), (1 << 14, 512, 512)]),
    parallel=st.booleans(),
    sized=st.none() | st.lists(st.booleans(), min_size=6, max_size=6),
    compiled=st.booleans(),
)
def test_counts_match_python_ints(
    stored: list[bytes | None],
    sets: list[tuple[tuple[str, ...], ...]],
    pairs: list[tuple[int, int]],
    layout: tuple[int, int, int],
    parallel: bool,
    sized: list[bool] | None,
    compiled: bool,
) -> None:
    """``layout`` is (block bytes, words per partial sum, cells per sweep): the small ones cut a
    40-byte bitmap into several blocks, partial sums and sweeps (the compiled loop's blocks are
    as many bytes). A set not ``sized`` is only known to have users or not."""
    plan = make_plan(sets, pairs)
    sources = plan.source_keys()
    raw = dict(zip(KEYS, stored, strict=True))
    block_bytes, sum_words, sweep_cells = layout
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(counting, "BLOCK_BYTES", block_bytes)
        patch.setattr(counting, "SUM_WORDS", sum_words)
        patch.setattr(counting, "SWEEP_CELLS", sweep_cells)
        patch.setattr(counting, "_workers", lambda: 2)
        patch.setattr(kernel, "BLOCK_WORDS", block_bytes // 8)
        patch.setattr(kernel, "PARALLEL_MIN_WORDS", 0)  # a tiny table split too, when parallel
        if not compiled:
            patch.setattr(kernel, "load", lambda: None)
        got = counting.count_in_python(plan, sources, [raw[k] for k in sources], parallel, sized)
    sizes, cells = oracle(plan, raw)
    assert got[1] == cells
    for s, (size, counted) in enumerate(zip(sizes, got[0], strict=True)):
        assert counted == size if sized is None or sized[s] else bool(counted) == bool(size)


def test_byte_table_popcount_without_numpy_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy < 2 has no ``bitwise_count``: the byte-table popcount gives the same counts."""
    plan = make_plan([((k,),) for k in KEYS], [(a, b) for a in range(3) for b in range(3, 6)])
    raw = {key: bytes(range(i * 40, i * 40 + 37)) for i, key in enumerate(KEYS)}
    monkeypatch.setattr(counting, "BLOCK_BYTES", 16)
    monkeypatch.setattr(kernel, "load", lambda: None)  # the numpy path is the one without numba
    monkeypatch.delattr(np, "bitwise_count")
    got = counting.count_in_python(plan, KEYS, [raw[k] for k in KEYS])
    assert got == oracle(plan, raw)
    assert any(got[1])


def test_sweeps_cover_a_band_in_one_call() -> None:
    """A 3 x 2 table (cohorts 0-2, returns 3-6) is one sweep: rows 0..2 against rows 3+t..5+t."""
    cells = sorted((i, 3 + i + t) for i in range(3) for t in range(2))
    cells.sort(key=lambda ab: (ab[1] - ab[0], ab[0]))
    assert counting.sweeps_of(cells, [True] * 6, 512) == [counting.Sweep(0, 0, 3, 3, 2)]
    assert counting.sweeps_of(cells, [True] * 6, 3) == [
        counting.Sweep(0, 0, 3, 3, 1),
        counting.Sweep(3, 0, 4, 3, 1),
    ]
    wanted = [True, False, True, True, True, True]  # cell (1, 4) is left out
    assert counting.sweeps_of(cells, wanted, 512) == [
        counting.Sweep(0, 0, 3, 1, 1),
        counting.Sweep(2, 2, 3, 1, 1),
        counting.Sweep(3, 0, 4, 3, 1),
    ]


def test_spare_arrays_stay_under_their_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counting, "_spare", [])
    monkeypatch.setattr(counting, "SPARE_BYTES", 1000)
    big, small = counting._take(100), counting._take(10)  # 800 and 80 bytes
    counting._give(big, small, counting._take(50))
    assert [a.size for a in counting._spare] == [100, 10]  # the third would pass 1000 bytes
    assert counting._take(5) is small  # the smallest that fits
    assert counting._take(5) is big


def test_forked_child_gets_its_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counting, "_workers", lambda: 2)
    pool = counting._shared_pool()
    assert counting._shared_pool() is pool
    monkeypatch.setattr(os, "getpid", lambda: -1)  # what a forked child sees: another pid
    child = counting._shared_pool()
    assert isinstance(child, ThreadPoolExecutor) and child is not pool
    monkeypatch.setattr(counting, "BLOCK_BYTES", 8)  # two blocks: one for each thread
    monkeypatch.setattr(kernel, "BLOCK_WORDS", 1)
    monkeypatch.setattr(kernel, "PARALLEL_MIN_WORDS", 0)
    plan = make_plan([((k,),) for k in KEYS[:2]], [(0, 1)])
    assert counting.count_in_python(plan, KEYS[:2], [b"\xf0" * 9, b"\x3c" * 9], True) == (
        [36, 36],
        [18],
    )


def test_the_compiled_count_is_the_one_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """numba is a dependency: the tests above count compiled unless told not to, and
    ``BITCORE_COUNTING=numpy`` (read once per process) turns it off."""
    assert kernel.load() is not None
    monkeypatch.setenv("BITCORE_COUNTING", "numpy")
    kernel.load.cache_clear()
    compiled.tools.cache_clear()
    try:
        assert kernel.load() is None
    finally:
        monkeypatch.delenv("BITCORE_COUNTING")
        kernel.load.cache_clear()
        compiled.tools.cache_clear()
    assert kernel.load() is not None


def test_compiled_and_numpy_agree_on_a_wide_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A days-shaped table (31 cohorts, 13 columns, every set one key) over rows of several
    blocks, split between two threads: the compiled loop and numpy give the same counts."""
    rng = np.random.default_rng(3)
    keys = [f"d{i}" for i in range(43)]
    raw = [rng.bytes(3 * 4096 + 5) for _ in keys]
    plan = make_plan([((k,),) for k in keys], [(i, i + t) for i in range(31) for t in range(13)])
    monkeypatch.setattr(counting, "_workers", lambda: 2)
    monkeypatch.setattr(counting, "PARALLEL_MIN_WORDS", 1)
    monkeypatch.setattr(kernel, "PARALLEL_MIN_WORDS", 1)
    compiled = counting.count_in_python(plan, keys, raw, True)
    monkeypatch.setattr(kernel, "load", lambda: None)
    assert counting.count_in_python(plan, keys, raw, True) == compiled
    assert sum(c or 0 for c in compiled[1]) > 0


def one_word_blocks(monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    """Blocks of one word (8 bytes in numpy), split between threads however small the table:
    every table spans many blocks; ``compiled=False`` counts in numpy."""
    monkeypatch.setattr(counting, "BLOCK_BYTES", 8)
    monkeypatch.setattr(kernel, "BLOCK_WORDS", 1)
    monkeypatch.setattr(kernel, "PARALLEL_MIN_WORDS", 0)
    monkeypatch.setattr(counting, "PARALLEL_MIN_WORDS", 0)
    if not compiled:
        monkeypatch.setattr(kernel, "load", lambda: None)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_built_sets_over_many_blocks(monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    """Sets that AND ORs of keys, over bitmaps of a dozen one-word blocks with bits in every
    block: each block's counts must add to the last's (dense random bytes, unlike most of
    Hypothesis's short examples above)."""
    rng = np.random.default_rng(5)
    raw = {key: rng.bytes(97) for key in KEYS}
    sets = [(("k0", "k1"),), (("k2",), ("k3", "k4")), (("k5",),), (("k1",), ("k5",))]
    plan = make_plan(sets, [(0, 1), (1, 2), (0, 3), (2, 2), (3, 0)])
    one_word_blocks(monkeypatch, compiled)
    sources = plan.source_keys()
    for parallel in (False, True):
        assert counting.count_in_python(plan, sources, [raw[k] for k in sources], parallel) == (
            oracle(plan, raw)
        )


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_on_or_after_unions_over_many_blocks(
    monkeypatch: pytest.MonkeyPatch, compiled: bool
) -> None:
    """An on-or-after plan's unions (``Plan.suffix``: set ``len(sets) + j`` is the OR of the sets
    ``suffix[j:]``) built block by block from the last one back, over a dozen one-word blocks:
    a period with no key (its union is the later ones'), a filtered period (an AND of ORs), a
    union no cell meets between two that are met, cells sharing a cohort four and two at a
    time, on one thread and split."""
    rng = np.random.default_rng(11)
    raw: dict[str, bytes | None] = {key: rng.bytes(97) for key in KEYS}
    raw["k3"] = None  # a period nobody returned in
    sets = [(("k0",),), (("k1",),), (("k2",),), (("k3",),), (("k4",), ("k5", "k1")), (("k5",),)]
    plan = make_plan(sets, [])
    plan.suffix = [1, 2, 3, 4, 5]
    unions = len(plan.sets)  # set unions + j is the union of suffix[j:]
    plan.pairs = [(0, unions + j) for j in (0, 1, 2, 4)]
    plan.pairs += [(1, unions + 3), (1, unions + 4), (2, 5)]
    values = [0] * (unions + len(plan.suffix))
    for n, operands in enumerate(sets):
        value = -1
        for keys in operands:
            value &= functools.reduce(lambda a, b: a | b, (as_int(raw[k]) for k in keys))
        values[n] = value
    for j in range(len(plan.suffix) - 1, -1, -1):
        later = values[unions + j + 1] if j + 1 < len(plan.suffix) else 0
        values[unions + j] = values[plan.suffix[j]] | later
    sizes = [v.bit_count() for v in values]
    cells = [(values[a] & values[b]).bit_count() for a, b in plan.pairs]
    one_word_blocks(monkeypatch, compiled)
    sources = plan.source_keys()
    for parallel in (False, True):
        got_sizes, got_cells = counting.count_in_python(
            plan, sources, [raw[k] for k in sources], parallel
        )
        assert got_cells == cells
        assert [got_sizes[a] for a, _b in plan.pairs] == [sizes[a] for a, _b in plan.pairs]
        assert all(c > 0 for c in cells)


def test_warming_compiles_the_loop_before_any_report() -> None:
    """``wsgi.py`` warms the count so no page pays for numba's import and compile; afterwards the
    loop has machine code for the types every table passes it."""
    from bitcore.cohort.engine import warm_counting

    warm_counting()
    compiled = kernel.load()
    assert compiled is not None and len(compiled.signatures) >= 1
    before = len(compiled.signatures)
    plan = make_plan([((k,),) for k in KEYS[:2]], [(0, 1)])
    counting.count_in_python(plan, KEYS[:2], [b"\xf0" * 9, b"\x3c" * 9])
    assert len(compiled.signatures) == before  # a real table needed nothing more compiled


@pytest.mark.parametrize(
    ("module", "real_call"),
    [
        (
            "funnel",
            lambda m: m._count_slice(
                m._Plan(list("abcdef"), {}, [(0, [[1, 2], [3, 4]])], [5]),
                3,
                np.ones((6, 9), dtype=np.uint64),
                [1] * 6,
            ),
        ),
        (
            "lifecycle",
            lambda m: m.states_of(
                np.ones((9, 9), dtype=np.uint64), [0, 1, 2, 3, 4], [[5, 6, 7], [6, 7, 8]], 2
            ),
        ),
        ("lifecycle", lambda m: m.states_of(np.ones((5, 9), dtype=np.uint64), [0, 1, 2], [], 1)),
        (
            "stickiness",
            lambda m: m.histograms_of(
                np.ones((8, 9), dtype=np.uint64), [0, 1, 2, 3, 4, 5, 6], [7], 7
            ),
        ),
    ],
)
def test_warming_compiles_the_reports_loops_too(module: str, real_call: Any) -> None:
    """``wsgi.py`` warms the funnel's, lifecycle's and stickiness' loops as well: afterwards a
    report's call (groups or none) needs nothing more compiled."""
    import importlib

    reports = importlib.import_module(f"bitcore.{module}")
    reports.warm()
    loop = reports._compiled_counter()
    assert loop is not None and len(loop.signatures) >= 1
    before = len(loop.signatures)
    real_call(reports)
    assert len(loop.signatures) == before
