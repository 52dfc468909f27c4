"""Benchmark: bitcore's cohort tables and funnel against the real bitmapist's, same data, one run.

    uv run python bench/cohort.py                          # 1,000,000 and 10,000,000 users
    uv run python bench/cohort.py --users 10000000 --rounds 5
    uv run python bench/cohort.py --users 1000000 --quick  # fewer rounds, no funnel
    uv run python bench/cohort.py --quick --shapes months weeks  # only those shapes

For each user count it starts its own redis-server (never localhost:6379) and writes every bitmap
the shapes read straight from numpy (SET of random bytes: the same bytes ``SETBIT`` would leave,
every key as long as the user count; ``active`` p = 1/4, ``signup`` 1/16, the ``web`` flag 1/2),
a few seconds even at 10M users. Then, round after round, it times each shape once with bitmapist
3.119 (in its own environment, ``_bitmapist_cohort.py``, answering one JSON request per line) and
once with ``bitcore.cohort.cohort_table``, in alternating order, so a load spike on a shared
machine lands on both. The numbers must be identical (percentages or counts, ``''`` cells
included), also when bitcore reads in its narrowest slices (``max_fetch_bytes=0``, checked once).

Per shape it prints bitmapist's and bitcore's times (best, median, worst), the ratio of the bests
and the range of the per-round ratios, the peak of Python allocations during one bitcore run
(``tracemalloc``: numpy arrays and ``bytes`` included) against the bytes the table reads, and the
machine's limit for those bytes: one bare ``MGET`` of the same keys (redis-py), a bare numpy
AND + popcount of every cell (one thread) and the same cells by bitcore's compiled loop
(``loop``: one thread, no set built). Targets: days 31 x 12 active -> active >= 15x at 1M and
>= 10x at 10M; every other shape >= 3x; peak memory < 4x the bytes read. The funnel (5 steps,
30 days, day periods) is compared with the same recurrence as server-side ``BITOP``s sent by hand
(target: not slower; bitcore's server path runs the same BITOPs in bounded round trips). Exit
status 1 on a mismatch or a missed target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

import bitcore
import bitcore.cohort as bitcore_cohort
from bitcore import embedded, funnel, periods, reading
from bitcore.cohort import counting, engine, kernel, server
from bitcore.events import UniqueEvents

HERE = Path(__file__).resolve().parent
START = date(2024, 5, 1)
FUNNEL_STEPS = ("signup", "active", "play", "share", "buy")
FUNNEL_WINDOW = 30
#: ``event -> how many random bytes are ANDed per byte``: p = 2 ** -n that a user has the bit.
DENSITY = {"active": 2, "signup": 4, "web": 1, "play": 2, "share": 3, "buy": 4}


@dataclass(frozen=True)
class Shape:
    name: str
    time_group: str
    rows: int
    columns: int
    select1: str
    select1b: str | None
    select2: str
    select2b: str | None
    as_percent: bool
    target_1m: float
    target_10m: float

    def target(self, users: int) -> float:
        return self.target_10m if users >= 10_000_000 else self.target_1m

    def request(self) -> dict[str, Any]:
        return {
            "op": "cohort", "select1": self.select1, "select2": self.select2,
            "select1b": self.select1b, "select2b": self.select2b,
            "time_group": self.time_group, "num_results": self.rows,
            "num_of_rows": self.columns, "start_date": START.isoformat(),
            "as_percent": int(self.as_percent),
        }  # fmt: skip


SHAPES = (
    Shape("days 31x12 active -> active", "days", 31, 12, "active", None, "active", None,
          True, 15.0, 10.0),
    Shape("days 31x12 signup&web -> active", "days", 31, 12, "signup", "web", "active", None,
          True, 3.0, 3.0),
    Shape("weeks 8x6 active -> active&web, n", "weeks", 8, 6, "active", None, "active", "web",
          False, 3.0, 3.0),
    Shape("months 3x2 signup -> active", "months", 3, 2, "signup", None, "active", None,
          True, 3.0, 3.0),
)  # fmt: skip
#: The funnel's server path: against the same recurrence by hand, fewer BITOPs
#: (``bitcore.funnel_server``); "never slower than bitmapist" is the target.
FUNNEL_TARGET = 1.0
#: Retention "on or after": weeks 8 x 6 ``active -> active``, the table's last row the current
#: week (``until``), against the fewest hand-written BITOPs (``_bitmapist_cohort.run_unions``).
ON_OR_AFTER = Shape("weeks 8x6 active -> active, on or after", "weeks", 8, 6, "active", None,
                    "active", None, False, 3.0, 3.0)  # fmt: skip
MEMORY_TARGET = 4.0


def web_handler(key: str, cls: Any, cls_args: tuple[Any, ...]) -> Any:
    """bitmapist's way to use a flag without a period in a cohort: a custom handler."""
    return UniqueEvents("web", system=cls_args[-1])


def plan_of(client: bitcore.BitCore, shape: Shape) -> engine.Plan:
    """The engine's plan for ``shape``: which keys it reads."""
    group = engine.check_time_group(shape.time_group)
    starts = engine.row_starts(group, shape.rows, START.isoformat())
    first = engine.period_for(group, starts[0])
    selections = (shape.select1, shape.select1b, shape.select2, shape.select2b)
    resolver = bitcore_cohort._handler_resolver(client)
    return engine.plan_table(client, first, len(starts), shape.columns, selections, resolver)


def funnel_keys(client: bitcore.BitCore) -> tuple[str, list[list[str]]]:
    """Step 1's key in the start day, then per window day the keys of steps 2..5."""
    start = periods.day(START.year, START.month, START.day)
    window = funnel.window_periods(start, FUNNEL_WINDOW)
    first = client.keys.event_key(FUNNEL_STEPS[0], start)
    return first, [[client.keys.event_key(s, p) for s in FUNNEL_STEPS[1:]] for p in window]


def on_or_after(
    client: bitcore.BitCore, max_fetch_bytes: int = engine.DEFAULT_MAX_FETCH_BYTES
) -> engine.CohortTable:
    """bitcore's on-or-after table (``ON_OR_AFTER``), its last row's week the current one."""
    shape = ON_OR_AFTER
    group = engine.check_time_group(shape.time_group)
    until = engine.row_starts(group, shape.rows, START.isoformat())[-1]
    return engine.cohort_table(
        client, shape.select1, shape.select2, None, None, shape.time_group, shape.rows,
        shape.columns, START.isoformat(), retention="on_or_after", until=until,
        max_fetch_bytes=max_fetch_bytes,
    )  # fmt: skip


def unions_request(client: bitcore.BitCore, table: engine.CohortTable) -> dict[str, Any]:
    """The same table as keys for bitmapist's side: per row its cohort's key, per column the
    keys whose union the cell counts (that period up to the current one)."""
    assert table.current is not None
    shape = ON_OR_AFTER
    rows = []
    for row in range(len(table.starts)):
        cells = []
        for column in range(table.num_of_rows + 1):
            first = periods.shift(table.period(row), column)
            reach = max(1, periods.count_between(first, table.current))
            cells.append(
                [
                    client.keys.event_key(shape.select2, periods.shift(first, j))
                    for j in range(reach)
                ]
            )
        cohort = client.keys.event_key(shape.select1, table.period(row))
        rows.append({"cohort": cohort, "cells": cells})
    return {"op": "unions", "rows": rows}


def write_data(client: bitcore.BitCore, users: int, with_funnel: bool, seed: int = 7) -> int:
    """Random bitmaps for every key a shape (and the funnel) reads; returns how many."""
    keys = {k for shape in SHAPES for k in plan_of(client, shape).source_keys()}
    request = unions_request(client, on_or_after(client))
    keys |= {k for row in request["rows"] for k in (row["cohort"], *sum(row["cells"], []))}
    if with_funnel:
        first, per_period = funnel_keys(client)
        keys |= {first, *(k for ks in per_period for k in ks)}
    rng = np.random.default_rng(seed)
    size = -(-users // 8)
    for key in sorted(keys):
        event = next(e for e in DENSITY if f"_{e}_" in key)
        bits = np.frombuffer(rng.bytes(size), dtype=np.uint8)
        for _ in range(DENSITY[event] - 1):
            bits = bits & np.frombuffer(rng.bytes(size), dtype=np.uint8)
        client.redis.set(key, bits.tobytes())
    return len(keys)


class Bitmapist:
    """The bitmapist process: one JSON request per line, one answer per line."""

    def __init__(self, port: int) -> None:
        command = [
            "uv", "run", "--isolated", "--no-project", "--with", "bitmapist==3.119",
            "python", str(HERE / "_bitmapist_cohort.py"), "--port", str(port),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.hello = self.ask({"op": "hello"})

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            sys.exit("bitmapist's side stopped")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            sys.exit(f"bitmapist's side: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def ours(client: bitcore.BitCore, shape: Shape, max_fetch_bytes: int) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    table = bitcore_cohort.cohort_table(
        shape.select1, shape.select2, shape.select1b, shape.select2b, shape.time_group,
        client, shape.rows, shape.columns, START.isoformat(), max_fetch_bytes=max_fetch_bytes,
    )  # fmt: skip
    rows = table.bitmapist_rows(as_percent=shape.as_percent)
    seconds = time.perf_counter() - started
    return seconds, [[r[0].isoformat(), *r[1:]] for r in rows]


def timed_ours(client: bitcore.BitCore, shape: Shape) -> float:
    return ours(client, shape, engine.DEFAULT_MAX_FETCH_BYTES)[0]


def redis_cpu(client: bitcore.BitCore) -> float:
    """CPU seconds redis-server has used (``INFO cpu``: user + system, all its threads)."""
    info = client.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def with_cpu(client: bitcore.BitCore, run: Callable[[], float]) -> tuple[float, float]:
    """``run``'s wall seconds (it returns them) and the CPU seconds it cost this process and
    Redis together: what a loaded machine moves far less than wall time (``bench/README.md``)."""
    redis_before, ours_before = redis_cpu(client), time.process_time()
    seconds = run()
    return seconds, time.process_time() - ours_before + redis_cpu(client) - redis_before


def theirs_with_cpu(client: bitcore.BitCore, side: Bitmapist, shape: Shape) -> tuple[float, float]:
    """bitmapist's wall seconds, and the CPU seconds of its process and Redis together."""
    redis_before = redis_cpu(client)
    answer = side.ask(shape.request())
    return float(answer["seconds"]), float(answer["cpu"]) + redis_cpu(client) - redis_before


def peak_python_bytes(run: Callable[[], object]) -> int:
    """The peak of Python allocations (tracemalloc) while ``run`` runs, over what was held."""
    reading._spare.clear()  # arrays kept from earlier reports would hide what one needs
    engine.counting._spare.clear()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def limits(client: bitcore.BitCore, plan: engine.Plan) -> tuple[float, float, float]:
    """Seconds of a bare MGET of the plan's keys, of a bare numpy AND + popcount of every cell
    over whole rows (one thread), and of the same cells by the compiled loop
    (``bitcore.cohort.kernel``, one thread; ``nan`` without numba), best of three."""
    sources = plan.source_keys()
    fetch = min(timed(lambda: client.redis.mget(sources)) for _ in range(3))
    raw = client.redis.mget(sources)
    width = max(len(v or b"") for v in raw) // 8
    rows = np.zeros((len(sources), width), dtype=np.uint64)
    for k, value in enumerate(raw):
        rows[k, : len(value or b"") // 8] = np.frombuffer(value or b"", np.uint64)
    index = {key: k for k, key in enumerate(sources)}
    first = [index[ops[0][0]] for ops in plan.sets]
    anded, counted = np.empty(width, np.uint64), np.empty(width, np.uint8)

    def count() -> None:
        for a, b in plan.pairs:
            np.bitwise_and(rows[first[a]], rows[first[b]], out=anded)
            np.bitwise_count(anded, out=counted)
            counted.sum(dtype=np.uint64)

    keys_only = engine.Plan()  # the same cells, every set its first key: the loop's direct case
    for key in sources:
        keys_only.add_set(((key,),))
    keys_only.pairs = [(first[a], first[b]) for a, b in plan.pairs]
    lengths = [len(v or b"") for v in raw]

    def compiled() -> None:
        counting.count_words(keys_only, sources, rows, lengths, parallel=False)

    loop = min(timed(compiled) for _ in range(3)) if kernel.load() else float("nan")
    return fetch, min(timed(count) for _ in range(3)), loop


def phases(client: bitcore.BitCore, shape: Shape) -> dict[str, float]:
    """Best-of-three seconds of each part of a bitcore table: planning, measuring the keys (one
    EVALSHA), receiving their bytes (``read_words``, nothing counted) and counting them in numpy
    (the received slices kept in memory, counted as the engine does); the server's way (one
    EVALSHA, ``bitcore.cohort.server``) and whether ``where="auto"`` takes it."""
    group = engine.check_time_group(shape.time_group)
    plan = plan_of(client, shape)
    sources = plan.source_keys()
    read = reading.Reading(sources, reading.measure(client, sources, {}))
    kept = [(p.words.copy(), p.lengths) for p in reading.read_words(client.redis, read)]
    sized = [False] * len(plan.sets)  # as the engine counts: only the cohorts' sizes
    for a, _b in plan.pairs:
        sized[a] = True

    def count() -> None:
        for words, lengths in kept:  # on threads where the table is large enough, as the engine
            engine.counting.count_words(plan, sources, words, lengths, True, sized)

    def receive() -> None:
        for _ in reading.read_words(client.redis, read):
            pass

    def best(run: Callable[[], object]) -> float:
        return min(timed(run) for _ in range(3))

    return {
        "plan": best(lambda: engine.row_starts(group, shape.rows, START.isoformat())
                     and plan_of(client, shape)),
        "lengths": best(lambda: reading.measure(client, sources, {})),
        "receive": best(receive),
        "count": best(count),
        "server": best(lambda: server.count(client, plan, sources)),
        "auto": float(server.server_is_cheaper(plan)),
    }  # fmt: skip


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def spread(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{ms[0]:7.1f} {statistics.median(ms):7.1f} {ms[-1]:7.1f}"


def bench_size(users: int, args: argparse.Namespace) -> list[tuple[str, bool]]:
    """Every shape (and the funnel) at ``users``: prints a table, returns (check, passed)."""
    checks: list[tuple[str, bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = embedded.start(tmp, port=0, persist=False)
        side = None
        try:
            client = bitcore.BitCore(server.client())
            started = time.perf_counter()
            written = write_data(client, users, not args.quick)
            print(f"\n== {users:,} users: {written} bitmaps of {users // 8:,} bytes written in "
                  f"{time.perf_counter() - started:.1f}s")  # fmt: skip
            side = Bitmapist(int(urlparse(server.url).port or 0))
            keys_before = set(client.redis.scan_iter(count=1000))
            times: dict[str, tuple[list[float], list[float]]] = {}
            cpus: dict[str, tuple[list[float], list[float]]] = {}  # client + Redis CPU seconds
            for shape in SHAPES:  # warm-up, and the numbers checked once
                theirs = side.ask(shape.request())
                _, mine = ours(client, shape, engine.DEFAULT_MAX_FETCH_BYTES)
                _, sliced = ours(client, shape, 0)
                same = mine == theirs["rows"] == sliced
                checks.append((f"{users:,} {shape.name}: identical numbers", same))
                times[shape.name] = ([], [])
                cpus[shape.name] = ([], [])
            for round_ in range(args.rounds):
                for shape in SHAPES:
                    order = ("ours", "theirs") if round_ % 2 else ("theirs", "ours")
                    for who in order:
                        if who == "ours":
                            both = with_cpu(client, partial(timed_ours, client, shape))
                        else:
                            both = theirs_with_cpu(client, side, shape)
                        index = 1 if who == "ours" else 0
                        times[shape.name][index].append(both[0])
                        cpus[shape.name][index].append(both[1])
            print(
                f"{'shape':<34}{'bitmapist ms':>24}{'bitcore ms':>24}{'ratio':>7}"
                f"{'(rounds)':>13}{'target':>8}{'peak/read':>16}{'MGET':>7}{'numpy':>7}{'loop':>6}"
            )
            print(f"{'':<34}{'best  median   worst':>24}{'best  median   worst':>24}")
            for shape in SHAPES:
                theirs_s, ours_s = times[shape.name]
                ratio = min(theirs_s) / min(ours_s)
                per_round = sorted(t / o for t, o in zip(theirs_s, ours_s, strict=True))
                plan = plan_of(client, shape)
                read = sum(reading.measure(client, plan.source_keys(), {}))
                peak = peak_python_bytes(
                    partial(ours, client, shape, engine.DEFAULT_MAX_FETCH_BYTES)
                )
                fetch, count, loop = limits(client, plan)
                target = shape.target(users)
                ok = ratio >= target and min(per_round) >= 1.0
                checks.append((f"{users:,} {shape.name}: >= {target:g}x", ok))
                checks.append((f"{users:,} {shape.name}: memory", peak < MEMORY_TARGET * read))
                print(f"{shape.name:<34}{spread(theirs_s):>24}{spread(ours_s):>24}"
                      f"{ratio:6.1f}x {per_round[0]:5.1f}-{per_round[-1]:4.1f}x{target:7g}x"
                      f"{peak / 2**20:6.0f}/{read / 2**20:4.0f} MiB{fetch * 1000:7.1f}"
                      f"{count * 1000:7.1f}{loop * 1000:6.1f}"
                      f"  {'PASS' if ok else 'FAIL'}")  # fmt: skip
            print("\nCPU of a table, client process + redis-server (ms; what load moves least)")
            print(f"{'shape':<34}{'bitmapist':>24}{'bitcore':>24}{'ratio':>7}{'(rounds)':>13}")
            for shape in SHAPES:
                theirs_c, ours_c = cpus[shape.name]
                per_round = sorted(t / max(o, 1e-9) for t, o in zip(theirs_c, ours_c, strict=True))
                print(f"{shape.name:<34}{spread(theirs_c):>24}{spread(ours_c):>24}"
                      f"{min(theirs_c) / max(min(ours_c), 1e-9):6.1f}x "
                      f"{per_round[0]:5.1f}-{per_round[-1]:4.1f}x")  # fmt: skip
            print(
                "\nwhere bitcore's time goes (best of 3, ms): numpy's path is plan + lengths + "
                "receive + count, the server's plan + one EVALSHA; auto: the one it takes"
            )
            print(f"{'shape':<34}{'plan':>8}{'lengths':>9}{'receive':>9}{'count':>8}"
                  f"{'server':>8}  auto")  # fmt: skip
            for shape in SHAPES:
                part = phases(client, shape)
                print(f"{shape.name:<34}" + "".join(
                    f"{part[k] * 1000:{w}.1f}" for k, w in (
                        ("plan", 8), ("lengths", 9), ("receive", 9), ("count", 8),
                        ("server", 8))) + ("  server" if part["auto"] else "  numpy"))  # fmt: skip
            checks += bench_on_or_after(client, side, users, args.rounds)
            if not args.quick:
                checks += bench_funnel(client, side, users, args.rounds)
            leftovers = set(client.redis.scan_iter(count=1000)) ^ keys_before
            checks.append((f"{users:,} no keys left behind", not leftovers))
        finally:
            if side is not None:
                side.close()
            server.stop()
    return checks


def bench_on_or_after(
    client: bitcore.BitCore, side: Bitmapist, users: int, rounds: int
) -> list[tuple[str, bool]]:
    """The on-or-after table, interleaved with its hand-written BITOPs; numbers compared whole
    and in the narrowest slices (an empty cell, ``None`` in bitcore's table, is 0 there)."""
    request = unions_request(client, on_or_after(client))

    def counts(table: engine.CohortTable) -> tuple[list[int], list[list[int]]]:
        return table.sizes, [[c or 0 for c in row] for row in table.cells]

    theirs = side.ask(request)
    same = (
        counts(on_or_after(client))
        == counts(on_or_after(client, 0))
        == (theirs["sizes"], theirs["cells"])
    )
    theirs_s: list[float] = []
    ours_s: list[float] = []
    for round_ in range(rounds):
        for who in ("ours", "theirs") if round_ % 2 else ("theirs", "ours"):
            if who == "ours":
                ours_s.append(timed(partial(on_or_after, client)))
            else:
                theirs_s.append(side.ask(request)["seconds"])
    read = sum(
        reading.measure(
            client,
            sorted({k for row in request["rows"] for k in (row["cohort"], *sum(row["cells"], []))}),
            {},
        )
    )
    peak = peak_python_bytes(partial(on_or_after, client))
    ratio = min(theirs_s) / min(ours_s)
    per_round = sorted(t / o for t, o in zip(theirs_s, ours_s, strict=True))
    target = ON_OR_AFTER.target(users)
    ok = ratio >= target and per_round[0] >= 1.0
    print(
        f"{ON_OR_AFTER.name[:34]:<34}{spread(theirs_s):>24}{spread(ours_s):>24}"
        f"{ratio:6.1f}x {per_round[0]:5.1f}-{per_round[-1]:4.1f}x{target:7g}x"
        f"{peak / 2**20:6.0f}/{read / 2**20:4.0f} MiB{'':14}  {'PASS' if ok and same else 'FAIL'}"
        "  (bitmapist: fewest BITOPs by hand)"
    )  # fmt: skip
    return [
        (f"{users:,} on or after: identical numbers", same),
        (f"{users:,} on or after: >= {target:g}x", ok),
        (f"{users:,} on or after: memory", peak < MEMORY_TARGET * read),
    ]


def bench_funnel(
    client: bitcore.BitCore, side: Bitmapist, users: int, rounds: int
) -> list[tuple[str, bool]]:
    """The 5-step, 30-day funnel, interleaved with the server-side BITOP recurrence."""
    first, per_period = funnel_keys(client)
    request = {"op": "funnel", "first": first, "periods": per_period}
    start = periods.day(START.year, START.month, START.day)

    def run() -> list[int]:
        return [s.count for s in funnel.funnel(client, FUNNEL_STEPS, start, FUNNEL_WINDOW).steps]

    same = run() == side.ask(request)["counts"]
    theirs_s: list[float] = []
    ours_s: list[float] = []
    for _ in range(rounds):
        theirs_s.append(side.ask(request)["seconds"])
        ours_s.append(timed(run))
    read = sum(reading.measure(client, [first, *(k for ks in per_period for k in ks)], {}))
    peak = peak_python_bytes(run)
    ratio = min(theirs_s) / min(ours_s)
    ok = ratio >= FUNNEL_TARGET
    print(
        f"{'funnel 5 steps x 30 days':<34}{spread(theirs_s):>24}{spread(ours_s):>24}"
        f"{ratio:6.1f}x{'':12}{FUNNEL_TARGET:7g}x{peak / 2**20:6.0f}/{read / 2**20:4.0f} MiB"
        f"{'':14}  {'PASS' if ok and same else 'FAIL'}  (bitmapist: same BITOPs by hand)"
    )
    return [
        (f"{users:,} funnel: identical counts", same),
        (f"{users:,} funnel: >= {FUNNEL_TARGET:g}x", ok),
        (f"{users:,} funnel: memory", peak < MEMORY_TARGET * read),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each side per shape")
    parser.add_argument("--quick", action="store_true", help="3 rounds and no funnel")
    parser.add_argument("--shapes", nargs="+", help="only shapes whose name holds one of these")
    args = parser.parse_args()
    if args.shapes:
        global SHAPES
        SHAPES = tuple(s for s in SHAPES if any(word in s.name for word in args.shapes))
    if args.quick:
        args.rounds = min(args.rounds, 3)
    bitcore_cohort.set_custom_handler("web", web_handler)
    checks = [check for users in args.users for check in bench_size(users, args)]
    failed = [name for name, ok in checks if not ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks pass")
    for name in failed:
        print(f"FAIL {name}")
    print("PASS" if not failed else "FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
