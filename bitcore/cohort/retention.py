"""Retention "on or after" (Amplitude's and Mixpanel's default, also called unbounded): column k of
cohort t counts its members who did the return selections in period t + k or in any later period
up to the current one, where bitmapist's "on" counts period t + k alone.

A cell's return set is then a union of every later period's, so a table needs only one union per
period, each the previous (later) one ORed with one more period: suffix ORs, one bitwise OR of two
rows per period, block by block as the fetched words are counted (``chained_sets``), or one ``BITOP
OR`` per period on the server (``bitcore.cohort.server``), never a union rebuilt per cell. The
plan (``Plan.suffix``) lists the per-period return sets in period order, from the table's first
period to the current one; set number ``len(plan.sets) + j`` stands for the union of
``plan.suffix[j:]``. Periods after the current one keep their own return set (nobody has done
anything in them yet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from bitcore import periods

if TYPE_CHECKING:
    from bitcore.cohort.engine import Operands, Plan

Retention = Literal["on", "on_or_after"]
RETENTIONS: tuple[Retention, ...] = ("on", "on_or_after")
#: Periods an on-or-after table may read beyond its own columns, up to the current period (a
#: table of days that starts years ago reads every day since: ten years at most), more is a
#: ``ValueError``.
MAX_PERIODS_AFTER = 3660


def check_retention(retention: str) -> Retention:
    if retention not in RETENTIONS:
        raise ValueError(f"retention must be one of {RETENTIONS}, got {retention!r}")
    return retention  # type: ignore[return-value]


def reach(first: periods.Period, covered: int, current: periods.Period) -> int:
    """How many periods from ``first`` to ``current`` an on-or-after table unites (0 when
    ``current`` is before ``first``), of which ``covered`` are its own; ``ValueError`` when the
    rest is more than ``MAX_PERIODS_AFTER``."""
    count = periods.count_between(first, current)
    if count - covered > MAX_PERIODS_AFTER:
        raise ValueError(
            f"on-or-after retention reads every {first.kind} up to the current one, and this "
            f"table ends {count - covered:,} {first.kind}s before it: at most "
            f"{MAX_PERIODS_AFTER:,}. Ask for later cohorts."
        )
    return count


def chained_sets(
    sets: Sequence[Operands], suffix: Sequence[int]
) -> tuple[tuple[Operands, ...], list[int]]:
    """A plan's ``sets`` with union ``j`` of its ``suffix`` a set of its own after them (the set
    number its pairs use): the operands of its period's return set, ORed with union ``j + 1``,
    the set ``chain[s]`` names (-1: none). Counting builds them block by block from the last
    one back (``bitcore.cohort.counting``), one OR of two rows each, never a union rebuilt per
    cell."""
    base, last = len(sets), len(suffix) - 1
    chain = [-1] * base + [base + j + 1 if j < last else -1 for j in range(len(suffix))]
    return (*sets, *(sets[s] for s in suffix)), chain


def server_unions(
    plan: Plan, set_keys: list[str], scratch: Callable[[], str]
) -> list[tuple[str, ...]]:
    """The ``BITOP OR`` commands that build the unions on Redis from the built sets'
    ``set_keys`` (from the last period back, each one OR of two keys), appending each union's key
    to ``set_keys``; ``scratch()`` names a new temporary key."""
    commands: list[tuple[str, ...]] = []
    keys: list[str] = []
    for s in reversed(plan.suffix):
        if not keys:
            keys.append(set_keys[s])
            continue
        keys.append(scratch())
        commands.append(("BITOP", "OR", keys[-1], set_keys[s], keys[-2]))
    set_keys += reversed(keys)
    return commands
