"""What both sides of the benchmark share: the data and the way one run is timed.

Standard library only: ``_bitmapist_side.py`` imports this from an environment that has bitmapist
and its pinned redis-py, but neither bitcore nor numpy. Both sides build their data here from fixed
seeds, so bitcore and bitmapist are timed on exactly the same marks and the same bitmap.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Every mark is written at this moment: naive, so both libraries read the same wall-clock fields.
MARK_TIME = datetime(2024, 5, 7, 13, 30)
#: Marks cycle through these events, as a tracking endpoint sees a few events interleaved.
MARK_EVENTS = ("active", "song:played", "signup")
#: User ids are drawn from this range (a service with a few million users).
ID_SPACE = 4_000_000
#: The iterated bitmap is ``MonthEvents(ITER_EVENT, ITER_YEAR, ITER_MONTH)``.
ITER_EVENT, ITER_YEAR, ITER_MONTH = "active", 2024, 5


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does; ``--quick`` picks the smaller set."""

    one_by_one_marks: int
    bulk_marks: int
    iter_members: int
    repeats: int
    warmups: int = 1


FULL = Sizes(one_by_one_marks=10_000, bulk_marks=100_000, iter_members=1_000_000, repeats=5)
QUICK = Sizes(one_by_one_marks=2_000, bulk_marks=20_000, iter_members=1_000_000, repeats=3)


def marks(count: int, seed: int = 2) -> list[tuple[str, int]]:
    """``count`` ``(event, uuid)`` pairs: distinct random ids, events taken in turn."""
    uuids = random.Random(seed).sample(range(ID_SPACE), count)
    return [(MARK_EVENTS[i % len(MARK_EVENTS)], uuid) for i, uuid in enumerate(uuids)]


def iteration_members(count: int, seed: int = 3) -> list[int]:
    """The ``count`` ids of the iterated bitmap, ascending."""
    return sorted(random.Random(seed).sample(range(ID_SPACE), count))


def bitmap_bytes(members: list[int]) -> bytes:
    """``members`` as a Redis bitmap value (bit order: the high bit of byte 0 is id 0)."""
    value = bytearray(max(members) // 8 + 1 if members else 0)
    for uuid in members:
        value[uuid >> 3] |= 0x80 >> (uuid & 7)
    return bytes(value)


def fingerprint(ids: list[int]) -> dict[str, int]:
    """Enough of an id list to tell whether two iterations returned the same members in order."""
    return {
        "count": len(ids),
        "sum": sum(ids),
        "weighted": sum(i * uuid for i, uuid in enumerate(ids)),
        "last": ids[-1] if ids else -1,
    }


def timed(run: Callable[[], object], prepare: Callable[[], object] | None = None) -> float:
    """Seconds one call of ``run`` takes, after an untimed ``prepare`` (e.g. emptying its keys).

    The garbage collector is off while ``run`` is timed, as ``timeit`` does, so a collection that
    an earlier run provoked does not land on this one.
    """
    if prepare is not None:
        prepare()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        gc.enable()


def median(values: list[float]) -> float:
    return statistics.median(values)


def cpu_of(run: Callable[[], object], redis_client: Any) -> Callable[[], float]:
    """``run`` wrapped to return the CPU seconds it cost this process and Redis together
    (``time.process_time`` and ``INFO cpu``): what a loaded shared machine moves far less than
    wall time."""

    def redis_cpu() -> float:
        info = redis_client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def measured() -> float:
        redis_before, ours_before = redis_cpu(), time.process_time()
        run()
        return time.process_time() - ours_before + redis_cpu() - redis_before

    return measured
