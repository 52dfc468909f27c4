"""Benchmark: the reports beyond bitmapist's cohort table, with their times and round trips.

    uv run python bench/reports.py                    # 1,000,000 users, 5 rounds
    uv run python bench/reports.py --users 100000 --rounds 3

It starts its own redis-server (never localhost:6379), writes random bitmaps straight from numpy
(``SET`` of random bytes, every key as long as the user count: ``active`` p = 1/4 a day and 1/2 a
week, ``signup`` 1/16, ``play`` 1/8, first times 1/32 a week, the flags ``ios``, ``android`` and
``web`` 1/2), and times, best and median of ``--rounds`` runs:

- the lifecycle of ``active`` over 12 weeks (``bitcore.lifecycle``);
- the stickiness of ``active`` in a month (31 day bitmaps, ``bitcore.stickiness``);
- a 31 x 13 daily cohort table, signup -> active, retention "on" and "on or after"
  (``bitcore.cohort.engine``: suffix ORs over the return rows);
- a 3-step funnel over a 7-day window, alone and compared across 3 saved segments
  (``bitcore.funnel.funnel_groups``), and a cohort table compared across the same 3.

Round trips are counted as redis-py sends them (``send_packed_command``: one per command or
pipeline, including the MGETs ``bitcore.transfer`` receives straight into numpy). Exit status 1
when a compared report's first result differs from the report alone, or a segment's table from
the same users asked for without segments.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import numpy as np
import redis.connection

import bitcore
from bitcore import breakdown, embedded, funnel, lifecycle, periods, stickiness
from bitcore.cohort import engine
from bitcore.segments import SegmentStore

START = date(2024, 5, 1)
#: The 31 x 13 table's last column is 2024-06-12: "on or after" reads nothing beyond it.
UNTIL = datetime(2024, 6, 12, 12, tzinfo=UTC)
LIFECYCLE_END = periods.week(2024, 23)
MONTH = periods.month(2024, 5)
FUNNEL_STEPS = ("signup", "active", "play")
SEGMENTS = {
    "ios": "unique(ios)",
    "android": "unique(android)",
    "web active": "unique(web) AND active",
}
GROUPS = [breakdown.parse_group(f"segment:{name}") for name in SEGMENTS]
FLAGS = [breakdown.parse_group(f"flag:{name}") for name in ("ios", "android", "web")]
#: event -> random bytes ANDed per byte (p = 2 ** -n a user has the bit), by period kind
DENSITY = {"active": {"day": 2, "week": 1}, "signup": {"day": 4}, "play": {"day": 3}}

_sent = 0


def _counting(send: Callable[..., Any]) -> Callable[..., Any]:
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        global _sent
        _sent += 1
        return send(self, *args, **kwargs)

    return counted


redis.connection.AbstractConnection.send_packed_command = _counting(  # type: ignore[method-assign]
    redis.connection.AbstractConnection.send_packed_command
)


def random_bitmap(rng: np.random.Generator, size: int, ands: int) -> bytes:
    bits = np.frombuffer(rng.bytes(size), dtype=np.uint8)
    for _ in range(ands - 1):
        bits = bits & np.frombuffer(rng.bytes(size), dtype=np.uint8)
    return bits.tobytes()


def write_data(b: bitcore.BitCore, users: int, seed: int = 11) -> int:
    """Every key the reports read; returns how many were written."""
    rng, size = np.random.default_rng(seed), -(-users // 8)
    days = [periods.shift(periods.day(2024, 4, 1), k) for k in range(100)]  # to 2024-07-09
    weeks = [periods.shift(LIFECYCLE_END, -k) for k in range(13)]
    keys: dict[str, bytes] = {}
    for event, by_kind in DENSITY.items():
        for day in days:
            keys[b.keys.event_key(event, day)] = random_bitmap(rng, size, by_kind["day"])
        for week in weeks if "week" in by_kind else []:
            keys[b.keys.event_key(event, week)] = random_bitmap(rng, size, by_kind["week"])
            keys[b.keys.first_time_key(event, week)] = random_bitmap(rng, size, 5)
    for flag in ("ios", "android", "web"):
        keys[b.keys.unique_key(flag)] = random_bitmap(rng, size, 1)
    for key, value in keys.items():
        b.redis.set(key, value)
    segments = SegmentStore(b)
    for name, expression in SEGMENTS.items():
        segments.save(name, expression)
    return len(keys)


def measure(run: Callable[[], object], rounds: int) -> tuple[float, float, int, object]:
    """Best and median seconds of ``rounds`` runs, the round trips of one, and its result."""
    global _sent
    times, trips, result = [], 0, None
    for _ in range(rounds):
        before = _sent
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
        trips = _sent - before
    return min(times), statistics.median(times), trips, result


def cohort(
    b: bitcore.BitCore, retention: str, groups: list[str] | None = None, also: str | None = None
) -> Any:
    return engine.cohort_tables(
        b, "signup", "active", also, None, "days", 31, 12, START.isoformat(),
        retention=retention, until=UNTIL, groups=groups or [],
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    start = periods.day(START.year, START.month, START.day)
    with tempfile.TemporaryDirectory() as tmp:
        server = embedded.start(tmp, port=0, persist=False)
        try:
            b = bitcore.BitCore(server.client())
            written = write_data(b, args.users)
            print(f"{args.users:,} users, {written} keys of {-(-args.users // 8):,} bytes")
            reports: list[tuple[str, Callable[[], object]]] = [
                (
                    "lifecycle, 12 weeks",
                    lambda: lifecycle.lifecycle(b, "active", "week", 12, LIFECYCLE_END),
                ),
                (
                    "stickiness, a month (31 days)",
                    lambda: stickiness.stickiness(b, "active", MONTH),
                ),
                ("cohort 31 x 13, on", lambda: cohort(b, "on")),
                ("cohort 31 x 13, on or after", lambda: cohort(b, "on_or_after")),
                ("funnel 3 steps x 7 days", lambda: funnel.funnel(b, FUNNEL_STEPS, start, 7)),
            ]
            for what, groups in (("3 segments", GROUPS), ("3 flags", FLAGS)):
                reports += [
                    (
                        f"cohort 31 x 13 on or after, {what}",
                        partial(cohort, b, "on_or_after", [g.token for g in groups]),
                    ),
                    (
                        f"funnel 3 steps x 7 days, {what}",
                        partial(funnel.funnel_groups, b, FUNNEL_STEPS, start, 7, groups),
                    ),
                    (
                        f"lifecycle, 12 weeks, {what}",
                        partial(
                            lifecycle.lifecycle_groups,
                            b,
                            "active",
                            "week",
                            12,
                            LIFECYCLE_END,
                            groups,
                        ),
                    ),
                    (
                        f"stickiness, a month, {what}",
                        partial(stickiness.stickiness_groups, b, "active", MONTH, groups),
                    ),
                ]
            print(f"\n{'report':<42} {'best ms':>9} {'median ms':>10} {'round trips':>12}")
            results: dict[str, object] = {}
            for name, run in reports:
                best, median, trips, results[name] = measure(run, args.rounds)
                print(f"{name:<42} {best * 1000:>9.1f} {median * 1000:>10.1f} {trips:>12}")
            # the dated segment "unique(web) AND active" without any segment: the flag web as a
            # group of the cohort table whose cohorts are also active that day
            results["web flag, cohorts also active"] = cohort(
                b, "on_or_after", ["flag:web"], "active"
            )
            return check(results)
        finally:
            server.stop()


def check(results: dict[str, Any]) -> int:
    """Everyone's part of a compared report is the report alone; "on or after" never counts
    fewer than "on"; a segment of one flag counts what the flag does, and the dated segment what
    its flag does over cohorts that also did its event."""
    ok = True
    on, after = results["cohort 31 x 13, on"], results["cohort 31 x 13, on or after"]
    grouped = results["cohort 31 x 13 on or after, 3 segments"]
    flagged = results["cohort 31 x 13 on or after, 3 flags"]
    ok &= grouped[0].cells == after[0].cells
    ok &= grouped[1].cells == flagged[1].cells and grouped[2].cells == flagged[2].cells
    web_active = results["web flag, cohorts also active"][1]
    ok &= grouped[3].cells == web_active.cells and grouped[3].sizes == web_active.sizes
    ok &= all(
        (a or 0) >= (o or 0)
        for ra, ro in zip(after[0].cells, on[0].cells, strict=True)
        for a, o in zip(ra, ro, strict=True)
    )
    everyone, _ = results["funnel 3 steps x 7 days, 3 segments"]
    alone = results["funnel 3 steps x 7 days"]
    ok &= [s.count for s in everyone.funnels[-1].steps] == [s.count for s in alone.steps]
    ok &= results["lifecycle, 12 weeks, 3 segments"][0] == results["lifecycle, 12 weeks"]
    ok &= results["stickiness, a month, 3 segments"][0] == results["stickiness, a month (31 days)"]
    print("\nPASS: compared reports agree with the reports alone" if ok else "\nFAIL: mismatch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
