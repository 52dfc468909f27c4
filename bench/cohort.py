"""Benchmark: bitcore's cohort table against the real bitmapist's, on the same data, in one run.

    uv run python bench/cohort.py [--users 1000000] [--rows 31] [--columns 12] [--repeat 3]

Starts its own redis-server (never localhost:6379), writes one million users' ``active`` and
``play`` day bitmaps straight from numpy (SET of packed bits: the same bytes ``SETBIT`` would
leave), then times ``bitcore.cohort.get_dates_data`` here and bitmapist 3.119's in its own
environment (it pins redis<6), via ``uv run --isolated --no-project --with bitmapist==3.119``. The
numbers must be identical; the target is bitcore >= 10x faster. Exit status 1 on a mismatch or a
missed target.

Each side first runs once untimed (imports, connection, script loading, first allocations), then
``--repeat`` times; its best run counts. On a small shared machine the ratio still moves a lot:
bitmapist's ~1,500 round trips take ~100 ms when the OS runs its process on the same core as
redis-server and ~300 ms when not (measured by pinning both), so compare several runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

import bitcore
from bitcore import embedded, periods
from bitcore.cohort import cohort_table
from bitcore.cohort.engine import DEFAULT_MAX_FETCH_BYTES

HERE = Path(__file__).resolve().parent
TARGET_SPEEDUP = 10.0
START = date(2024, 5, 1)


def write_data(client: bitcore.BitCore, users: int, days: int, seed: int = 7) -> None:
    """``active`` (~40% of users a day) and ``play`` (~15%), day keys only: what a days cohort
    reads."""
    rng = np.random.default_rng(seed)
    with client.redis.pipeline(transaction=False) as pipe:
        for offset in range(days):
            day = START + timedelta(days=offset)
            period = periods.day(day.year, day.month, day.day)
            for event, share in (("active", 0.4), ("play", 0.15)):
                bits = rng.random(users) < share
                pipe.set(client.keys.event_key(event, period), np.packbits(bits).tobytes())
            pipe.execute()


def run_bitmapist(port: int, args: argparse.Namespace) -> dict[str, object]:
    command = [
        "uv", "run", "--isolated", "--no-project", "--with", "bitmapist==3.119",
        "python", str(HERE / "_bitmapist_cohort.py"),
        "--port", str(port), "--select1", "active", "--select2", "play",
        "--num-results", str(args.rows), "--num-of-rows", str(args.columns),
        "--start-date", START.isoformat(), "--repeat", str(args.repeat),
        "--warmup", str(args.warmup),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode:
        sys.exit(f"bitmapist run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def time_bitcore(
    client: bitcore.BitCore, args: argparse.Namespace, max_fetch_bytes: int
) -> tuple[list[float], list[list[Any]]]:
    """Seconds per timed run and the rows, with one fetch (default) or in byte slices of
    ``bitcore.reading.MIN_SLICE_BYTES`` (``max_fetch_bytes=0``: the most round trips)."""
    timings: list[float] = []
    rows: list[list[Any]] = []
    for run in range(args.warmup + args.repeat):
        started = time.perf_counter()
        table = cohort_table(
            "active", "play", system=client, num_results=args.rows, num_of_rows=args.columns,
            start_date=START.isoformat(), max_fetch_bytes=max_fetch_bytes,
        )  # fmt: skip
        rows = table.bitmapist_rows(as_percent=True)
        if run >= args.warmup:
            timings.append(time.perf_counter() - started)
    return timings, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=31, help="num_results: cohorts (rows)")
    parser.add_argument("--columns", type=int, default=12, help="num_of_rows: later periods - 1")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best one counts")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each, first")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = embedded.start(tmp, port=0, persist=False)
        try:
            client = bitcore.BitCore(server.client())
            started = time.perf_counter()
            write_data(client, args.users, args.rows + args.columns + 1)
            written = time.perf_counter() - started
            keys_before = set(client.redis.keys("*"))

            ours, rows = time_bitcore(client, args, DEFAULT_MAX_FETCH_BYTES)
            ours_sliced, rows_sliced = time_bitcore(client, args, 0)
            leftovers = set(client.redis.keys("*")) ^ keys_before

            theirs = run_bitmapist(int(urlparse(server.url).port or 0), args)
        finally:
            server.stop()

    mine = [[r[0].isoformat(), *r[1:]] for r in rows]
    mine_sliced = [[r[0].isoformat(), *r[1:]] for r in rows_sliced]
    same = mine == theirs["rows"] == mine_sliced
    their_seconds: list[float] = theirs["seconds"]  # type: ignore[assignment]
    best_ours, best_theirs = min(ours), min(their_seconds)
    ratio = best_theirs / best_ours
    cells = sum(1 for r in mine for c in r[2:] if c != "")
    days = args.rows + args.columns + 1
    print(f"data: {args.users:,} users x {days} days x 2 events, written in {written:.2f}s")
    print(f"table: days, {args.rows} rows x {args.columns + 1} columns ({cells} non-empty cells)")
    print(f"{'implementation':<22}{'best s':>10}{'median s':>10}{'runs':>6}{'ratio':>9}")
    for name, seconds, note in (
        ("bitmapist 3.119", their_seconds, ""),
        ("bitcore.cohort", ours, "  (fetch + numpy)"),
        ("bitcore.cohort sliced", ours_sliced, "  (4 KiB slices)"),
    ):
        best = min(seconds)
        shown = f"{best_theirs / best:>8.1f}x{note}" if seconds is not their_seconds else ""
        print(f"{name:<22}{best:>10.4f}{statistics.median(seconds):>10.4f}{len(seconds):>6}{shown}")
    print(f"speed-up: {ratio:.1f}x (target >= {TARGET_SPEEDUP:.0f}x)")
    print(f"identical numbers: {same}; keys left behind by bitcore: {len(leftovers)}")
    ok = same and ratio >= TARGET_SPEEDUP and not leftovers
    print("PASS" if ok else "FAIL")
    if not same:
        for a, b in zip(mine, theirs["rows"], strict=False):  # type: ignore[call-overload]
            if a != b:
                print("first differing row:\n  bitcore  ", a, "\n  bitmapist", b)
                break
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
