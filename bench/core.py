"""Benchmark of bitcore's core against the real bitmapist 3.119, on one redis-server of our own.

    uv run python bench/core.py           # full run (a few minutes on 2 cores)
    uv run python bench/core.py --quick   # smaller run

Measures marks per second (``mark_event`` one by one, ``mark_many`` in batches) and the time to
iterate a 1,000,000-member bitmap, for bitcore here and for bitmapist in a throwaway ``uv``
environment (it pins ``redis<6``), against the same server and the same data. The runs of both
libraries are interleaved, so a load spike on the machine does not favour one of them. Prints a
table and PASS/FAIL per target; exits 1 when a target is missed and 2 when the benchmark itself is
broken (wrong results, bitmapist's side failed), so CI can run it. It is not in the pytest suite.

``--id-mapping`` runs bitcore's side with the id map on (``BitCore(id_mapping=True)``): every run
starts on an emptied Redis with a new client, so each marked id is new to the map (allocated);
the iterated bitmap's members are mapped first (internal id k for the k-th member), so iterating
it maps every member back (bitmapist, reading the same key, sees the internal ids 0..N-1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import _common  # bench/ is on sys.path: it is this script's directory
import redis

from bitcore import BitCore, embedded, idmap

BULK_BATCHES = (1_000, 10_000)
#: Targets: bulk marking vs bitmapist's one-by-one ``mark_event``; iteration speed-up over it.
BULK_TARGET = 10.0
ITER_TARGET = 5.0
#: One-by-one mark_event: at least as fast as bitmapist's, though it also sets the universe bit.
EVENT_TARGET = 1.0
BITMAPIST = "bitmapist==3.119"
SIDE_SCRIPT = Path(__file__).resolve().with_name("_bitmapist_side.py")
#: Seconds bitmapist's side may take to answer one request (its first includes installing it).
SIDE_TIMEOUT = 600.0


class BenchmarkBroken(Exception):
    """The numbers cannot be trusted: wrong results, or bitmapist's side failed."""


@dataclass(frozen=True)
class Measurement:
    """Repeated timings of one operation that handles ``items`` things per run."""

    items: int
    durations: list[float]

    @property
    def seconds(self) -> float:
        return _common.median(self.durations)

    @property
    def per_second(self) -> float:
        return self.items / self.seconds

    def spread(self) -> str:
        low, high = min(self.durations), max(self.durations)
        return f"{len(self.durations)} runs, {low:.4f}..{high:.4f} s"


class BitmapistSide:
    """``_bitmapist_side.py`` under bitmapist 3.119 in its own environment: one run per request."""

    def __init__(self, url: str) -> None:
        uv = shutil.which("uv")
        if uv is None:
            raise BenchmarkBroken("uv is not on PATH: it runs bitmapist in its own environment")
        address = urlsplit(url)
        command = [uv, "run", "--isolated", "--no-project", "--with", BITMAPIST, "python"]
        command += [str(SIDE_SCRIPT), "--host", str(address.hostname), "--port", str(address.port)]
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "REDIS_URL")}
        self.process = subprocess.Popen(
            command,
            cwd=SIDE_SCRIPT.parent.parent,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, op: str, **params: Any) -> dict[str, Any]:
        """Send one request and wait (bounded) for its one-line JSON answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps({"op": op, **params}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise BenchmarkBroken(f"bitmapist's side exited with {self.process.wait()}") from None
        ready, _, _ = select.select([self.process.stdout], [], [], SIDE_TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise BenchmarkBroken(f"bitmapist's side gave no answer to {op!r} (see its stderr)")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchmarkBroken(f"bitmapist's side: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> BitmapistSide:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def interleave(
    contestants: dict[str, Callable[[], float]], sizes: _common.Sizes
) -> dict[str, list[float]]:
    """Warm every contestant up, then time them in turn, round after round."""
    for _ in range(sizes.warmups):
        for run in contestants.values():
            run()
    durations: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(sizes.repeats):
        for name, run in contestants.items():
            durations[name].append(run())
    return durations


def check_marked(library: str, marked: int, expected: int) -> None:
    """Each mark has a distinct id, so the events' day counts must add up to the marks made."""
    if marked != expected:
        raise BenchmarkBroken(f"{library} marked {marked} ids, expected {expected}")


def marked_by_bitcore(b: BitCore) -> int:
    days = [b.DayEvents(event, _common.MARK_TIME) for event in _common.MARK_EVENTS]
    if len(b.universe_bitmap()) != sum(len(day) for day in days):
        raise BenchmarkBroken("bitcore's universe does not hold every marked id")
    return sum(len(day) for day in days)


class Fresh:
    """bitcore's client for the runs: ``empty()`` flushes Redis and, with the id map on, makes a
    new client (a mapped dataset's marker goes with the flush; the new one claims it again)."""

    def __init__(self, b: BitCore) -> None:
        self.b = b

    def empty(self) -> None:
        self.b.redis.flushdb()
        if self.b.id_mapping:
            self.b = BitCore(self.b.redis, id_mapping=True)
            self.b._dataset_id_map()  # noqa: SLF001 - the dataset claimed as mapped, untimed


def bench_marking(
    fresh: Fresh, side: BitmapistSide, sizes: _common.Sizes, cpu: dict[str, list[float]]
) -> dict[str, Measurement]:
    """``mark_event`` one by one in both libraries, and bitcore's ``mark_many`` in batches;
    ``cpu`` gets each ``mark_event`` run's CPU seconds (client process + Redis)."""
    one_by_one = _common.marks(sizes.one_by_one_marks)
    bulk = [(event, uuid, _common.MARK_TIME) for event, uuid in _common.marks(sizes.bulk_marks)]

    def bitcore_mark_event() -> float:
        def run() -> None:
            b = fresh.b
            for event, uuid in one_by_one:
                b.mark_event(event, uuid, _common.MARK_TIME)

        measured = _common.cpu_of(run, fresh.b.redis)
        seconds = _common.timed(
            lambda: cpu.setdefault("bitcore", []).append(measured()), fresh.empty
        )
        check_marked("bitcore", marked_by_bitcore(fresh.b), len(one_by_one))
        return seconds

    def bitmapist_mark_event() -> float:
        answer = side.ask("mark_event", count=len(one_by_one))
        check_marked("bitmapist", answer["marked"], len(one_by_one))
        cpu.setdefault("bitmapist", []).append(float(answer["cpu"]))
        return float(answer["seconds"])

    def bitcore_mark_many(batch_size: int) -> Callable[[], float]:
        batches = [bulk[i : i + batch_size] for i in range(0, len(bulk), batch_size)]

        def timed_run() -> float:
            def run() -> None:
                b = fresh.b
                for batch in batches:
                    b.mark_many(batch)

            seconds = _common.timed(run, fresh.empty)
            check_marked("bitcore", marked_by_bitcore(fresh.b), len(bulk))
            return seconds

        return timed_run

    contestants = {
        "bitcore mark_event": bitcore_mark_event,
        "bitmapist mark_event": bitmapist_mark_event,
    }
    for batch_size in BULK_BATCHES:
        contestants[f"bitcore mark_many {batch_size}"] = bitcore_mark_many(batch_size)
    durations = interleave(contestants, sizes)
    counts = {name: len(bulk) if "mark_many" in name else len(one_by_one) for name in contestants}
    return {name: Measurement(counts[name], durations[name]) for name in contestants}


def bench_iteration(
    b: BitCore, side: BitmapistSide, sizes: _common.Sizes
) -> dict[str, Measurement]:
    """``list(MonthEvents(...))`` over one stored bitmap of ``sizes.iter_members`` members."""
    members = _common.iteration_members(sizes.iter_members)
    b.redis.flushdb()
    month = b.MonthEvents(_common.ITER_EVENT, _common.ITER_YEAR, _common.ITER_MONTH)
    stored = members
    if b.id_mapping:
        b = BitCore(b.redis, id_mapping=True)
        id_map = b._dataset_id_map()  # noqa: SLF001 - the map alone, filled in members' order
        assert id_map is not None
        tokens = [idmap.token_of(member) for member in members]
        for start in range(0, len(tokens), idmap.RESOLVE_BATCH):
            id_map.resolve(tokens[start : start + idmap.RESOLVE_BATCH], create=True)
        stored = list(range(len(members)))  # the k-th member's internal id is k
    b.redis.set(month.redis_key, _common.bitmap_bytes(stored))
    seen_by_bitmapist = _common.fingerprint(stored)  # the internal ids, when mapped

    def bitcore_iterate() -> float:
        result: list[int] = []

        def run() -> None:
            result[:] = list(
                b.MonthEvents(_common.ITER_EVENT, _common.ITER_YEAR, _common.ITER_MONTH)
            )

        seconds = _common.timed(run)
        if result != members:
            raise BenchmarkBroken(
                "bitcore's iteration did not return the bitmap's members in order"
            )
        return seconds

    def bitmapist_iterate() -> float:
        answer = side.ask("iterate")
        if answer["fingerprint"] != seen_by_bitmapist:
            raise BenchmarkBroken("bitmapist's iteration returned other members than the bitmap's")
        return float(answer["seconds"])

    contestants = {"bitcore iterate": bitcore_iterate, "bitmapist iterate": bitmapist_iterate}
    durations = interleave(contestants, sizes)
    return {name: Measurement(len(members), durations[name]) for name in contestants}


def ratio(value: float) -> str:
    return f"{value:,.1f}x"


def table(measured: dict[str, Measurement]) -> list[tuple[str, str, str, str]]:
    """Rows of (operation, bitcore, bitmapist, ratio); bulk is set against bitmapist one by one."""
    theirs = measured["bitmapist mark_event"].per_second
    ours = measured["bitcore mark_event"].per_second
    rows = [
        ("mark_event, one by one (marks/s)", f"{ours:,.0f}", f"{theirs:,.0f}", ratio(ours / theirs))
    ]
    for batch_size in BULK_BATCHES:
        bulk = measured[f"bitcore mark_many {batch_size}"].per_second
        label = f"mark_many, batches of {batch_size:,} (marks/s)"
        rows.append((label, f"{bulk:,.0f}", f"{theirs:,.0f} *", ratio(bulk / theirs)))
    ours_s, theirs_s = measured["bitcore iterate"].seconds, measured["bitmapist iterate"].seconds
    label = f"iterate {measured['bitcore iterate'].items:,} members (s)"
    rows.append((label, f"{ours_s:.3f}", f"{theirs_s:.3f}", ratio(theirs_s / ours_s) + " faster"))
    return rows


def targets(measured: dict[str, Measurement]) -> list[tuple[str, float, float]]:
    """(target, achieved, wanted) for every target the benchmark checks."""
    theirs = measured["bitmapist mark_event"].per_second
    checks = [
        (
            f"mark_many (batches of {batch_size:,}) >= {BULK_TARGET:g}x bitmapist's mark_event",
            measured[f"bitcore mark_many {batch_size}"].per_second / theirs,
            BULK_TARGET,
        )
        for batch_size in BULK_BATCHES
    ]
    ours = measured["bitcore mark_event"].per_second
    checks.append((f"mark_event >= {EVENT_TARGET:g}x bitmapist's", ours / theirs, EVENT_TARGET))
    speedup = measured["bitmapist iterate"].seconds / measured["bitcore iterate"].seconds
    checks.append((f"iteration >= {ITER_TARGET:g}x faster than bitmapist's", speedup, ITER_TARGET))
    return checks


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("operation", "bitcore", "bitmapist", "ratio")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = [f"{row[0]:<{widths[0]}}"] + [f"{row[i]:>{widths[i]}}" for i in range(1, 4)]
        print("  ".join(cells))


def measure(
    sizes: _common.Sizes, cpu: dict[str, list[float]], id_mapping: bool = False
) -> dict[str, Measurement]:
    """Start our own redis-server and bitmapist's side, time both libraries on it, stop both;
    ``cpu`` gets the CPU seconds of each ``mark_event`` run (see ``bench_marking``)."""
    with tempfile.TemporaryDirectory(prefix="bitcore-bench-") as data_dir:
        server = embedded.start(data_dir, port=0, persist=False)
        try:
            if not server.owned:
                raise BenchmarkBroken(f"{server.url} is not a server this benchmark started")
            client = server.client(socket_timeout=60.0)
            b = BitCore(client, id_mapping=id_mapping)
            print(f"redis-server {client.info('server')['redis_version']} at {server.url} (ours)")
            print(f"bitcore's id map: {'on' if id_mapping else 'off'}")
            with BitmapistSide(server.url) as side:
                versions = side.ask("hello")
                print(f"python {platform.python_version()}, {os.cpu_count()} cores")
                print(f"bitcore: redis-py {version('redis')}")
                print(f"bitmapist {versions['bitmapist']}: redis-py {versions['redis-py']}")
                print(f"{sizes}\n")
                print("marking: both libraries' runs interleaved ...", flush=True)
                measured = bench_marking(Fresh(b), side, sizes, cpu)
                print("iteration: both libraries' runs interleaved ...\n", flush=True)
                measured |= bench_iteration(b, side, sizes)
            client.close()
        finally:
            server.stop()
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer marks and repeats")
    parser.add_argument("--id-mapping", action="store_true", help="bitcore with the id map on")
    args = parser.parse_args(argv)
    cpu: dict[str, list[float]] = {}
    measured = measure(_common.QUICK if args.quick else _common.FULL, cpu, args.id_mapping)

    print_table(table(measured))
    print("* bulk rows are set against bitmapist's mark_event one by one: it has no bulk call\n")
    print("medians of:")
    for name, measurement in measured.items():
        print(f"  {name:<26} {measurement.spread()}")
    marks = measured["bitcore mark_event"].items
    ours_cpu, theirs_cpu = (_common.median(cpu[side]) / marks for side in ("bitcore", "bitmapist"))
    print(
        f"\nmark_event CPU per mark, client process + Redis (median): bitcore "
        f"{ours_cpu * 1e6:.0f} us, bitmapist {theirs_cpu * 1e6:.0f} us: "
        f"{ratio(theirs_cpu / ours_cpu)} (what a loaded machine moves least)"
    )
    print()
    failed = 0
    for name, achieved, wanted in targets(measured):
        passed = achieved >= wanted
        failed += not passed
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {ratio(achieved)}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchmarkBroken, redis.RedisError) as exc:
        print(f"BROKEN  {exc}", file=sys.stderr)
        sys.exit(2)
