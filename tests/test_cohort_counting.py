"""bitcore.cohort.counting against Python ints: bitmaps of uneven lengths (not multiples of 8, some
empty or missing), sets that AND several ORs, and the threaded path as well as the single one."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitcore.cohort import counting
from bitcore.cohort.engine import Plan

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


#: Lengths spread evenly over 0..40 bytes, so sets of different widths (0 to 5 words) meet.
bitmaps = st.none() | st.integers(0, 40).flatmap(lambda n: st.binary(min_size=n, max_size=n))
operands = st.lists(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(tuple), max_size=3)


@settings(max_examples=100, deadline=None)
@given(
    stored=st.lists(bitmaps, min_size=len(KEYS), max_size=len(KEYS)),
    sets=st.lists(operands.filter(bool).map(tuple), min_size=1, max_size=6, unique=True),
    pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=12),
    threaded=st.booleans(),
)
def test_counts_match_python_ints(
    stored: list[bytes | None],
    sets: list[tuple[tuple[str, ...], ...]],
    pairs: list[tuple[int, int]],
    threaded: bool,
) -> None:
    plan = Plan()
    for operand_keys in sets:
        plan.add_set(operand_keys)
    plan.pairs = [(a % len(plan.sets), b % len(plan.sets)) for a, b in pairs]
    sources = plan.source_keys()
    raw = dict(zip(KEYS, stored, strict=True))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(counting, "PARALLEL_MIN_WORDS", 0 if threaded else 1 << 62)
        patch.setattr(counting, "_workers", lambda: 2 if threaded else 1)
        got = counting.count_in_python(plan, sources, [raw[k] for k in sources])
    assert got == oracle(plan, raw)


def test_forked_child_gets_its_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counting, "_workers", lambda: 2)
    pool = counting._shared_pool()
    assert counting._shared_pool() is pool
    monkeypatch.setattr(os, "getpid", lambda: -1)  # what a forked child sees: another pid
    child = counting._shared_pool()
    assert isinstance(child, ThreadPoolExecutor) and child is not pool
    assert counting._run([lambda: 1, lambda: 2, lambda: 3], parallel=True) == [1, 2, 3]
