"""Benchmark: single-flat, single-sharded and a 3-primary Redis Cluster, same data, one run.

    uv run python bench/cluster.py                     # 1,000,000 users
    uv run python bench/cluster.py --users 10000000    # 10M users (about 650 MB of Redis memory)
    uv run python bench/cluster.py --shapes cohort,funnel --report-rounds 15

It starts its own redis-server and its own 3-primary cluster (``tests/cluster_support.py``; never
localhost:6379). The report data are written as random bytes straight into each layout's keys (the
flat key, or each shard's slice of it under the shard's key: the same bits either way), so every
layout holds the same users: ``active`` on 31 + 12 days, and the five funnel events on 30 + 1 days.
Then, round after round in alternating order, it times on each layout a cohort table (days, 31 rows
x 13 columns, ``active -> active``), a 5-step funnel with a 30-day window, the compared reports
(that cohort and funnel, a 12-day lifecycle and a month's stickiness, each by a saved segment and a
flag), and bulk marks (``mark_many`` of one mark per user, in batches of 100,000), checks that every
answer is identical across the layouts, and prints best/median times, the ratio to single-flat, and
the memory of every node. Targets (issue 17): the cluster within 1.5x of single-flat for reports, at
least 0.8x its speed for bulk writes. Exit status 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import cluster_support  # noqa: E402  (the tests' cluster, started the same way)

import bitcore  # noqa: E402
from bitcore import breakdown, embedded, first_time, periods  # noqa: E402
from bitcore.cohort import engine  # noqa: E402
from bitcore.cohort.engine import cohort_table  # noqa: E402
from bitcore.funnel import funnel, funnel_groups  # noqa: E402
from bitcore.lifecycle import lifecycle_groups  # noqa: E402
from bitcore.segments import SegmentStore  # noqa: E402
from bitcore.stickiness import stickiness_groups  # noqa: E402

START = datetime(2024, 5, 1)
FUNNEL_STEPS = ("signup", "active", "play", "share", "buy")
#: ``event -> random bytes ANDed per byte``: p = 2 ** -n that a user has the bit.
DENSITY = {"active": 2, "signup": 4, "play": 2, "share": 3, "buy": 4}
BATCH = 100_000
#: What ``--shapes`` may choose.
SHAPES = ("cohort", "funnel", "compared", "bulk")


def _random_bitmap(users: int, density: int, rng: np.random.Generator) -> bytes:
    raw = np.full((users + 7) // 8, 0xFF, dtype=np.uint8)
    for _ in range(density):
        raw &= rng.integers(0, 256, raw.size, dtype=np.uint8)
    return raw.tobytes()


def _store(client: bitcore.BitCore, key: str, data: bytes) -> None:
    """``data`` as the bits of flat-named ``key``: the key itself, or each shard's slice."""
    if client.layout == "flat":
        client.redis.set(key, data)
        return
    per_shard = 1 << (client.shard_bits - 3)
    for shard, start in enumerate(range(0, len(data), per_shard)):
        chunk = data[start : start + per_shard]
        if chunk.strip(b"\0"):
            client.register_shards([shard])
            client.node_of_shard(shard).set(client.shard_key(key, shard), chunk)


def write_reports_data(clients: list[bitcore.BitCore], users: int) -> int:
    """The same random bits into every layout; returns the bytes of one layout's data."""
    rng = np.random.default_rng(17)
    total = 0
    days = [START + timedelta(days=d) for d in range(43)]
    for event, density in DENSITY.items():
        for day in days if event == "active" else days[:31]:
            data = _random_bitmap(users, density, rng)
            period = periods.day(day.year, day.month, day.day)
            for client in clients:
                _store(client, client.keys.event_key(event, period), data)
            total += len(data)
    universe = _random_bitmap(users, 0, rng)
    for client in clients:
        _store(client, client.keys.unique_key(client.universe), universe)
    return total


def cohort(client: bitcore.BitCore) -> Any:
    table = cohort_table(
        client, "active", "active", None, None, "days", 31, 12, now=START + timedelta(days=30)
    )
    return table.sizes, table.cells


def funnel_counts(client: bitcore.BitCore) -> Any:
    found = funnel(client, list(FUNNEL_STEPS), periods.day(2024, 5, 1), 30)
    return [step.count for step in found.steps]


#: What the compared reports are compared by: a dated segment and a flag (``write_groups``).
GROUPS = ("segment:players", "flag:premium")


def write_groups(clients: list[bitcore.BitCore], users: int) -> None:
    """The compared reports' groups in every layout: a flag of random users and a saved segment."""
    premium = _random_bitmap(users, 3, np.random.default_rng(3))
    for client in clients:
        _store(client, client.keys.unique_key("premium"), premium)
        SegmentStore(client).save("players", "play OR share")


def compared(client: bitcore.BitCore) -> Any:
    """The cohort table, funnel, lifecycle and stickiness, each by ``GROUPS``, as plain numbers."""
    groups = breakdown.parse_groups(GROUPS)
    tables = engine.cohort_tables(
        client, "active", "active", None, None, "days", 31, 12, now=START + timedelta(days=30),
        groups=list(GROUPS),
    )  # fmt: skip
    everyone, by = funnel_groups(client, list(FUNNEL_STEPS), periods.day(2024, 5, 1), 30, groups)
    cycles = lifecycle_groups(client, "active", "day", 12, periods.day(2024, 5, 20), groups)
    sticky = stickiness_groups(client, "active", periods.month(2024, 5), groups)
    return (
        [(t.sizes, t.cells) for t in tables],
        [[s.count for s in f.steps] for f in (*everyone.funnels, *by)],
        [r.as_dict() for r in cycles],
        [r.histogram for r in sticky],
    )


def bulk(users: int) -> Callable[[bitcore.BitCore], Any]:
    day = START + timedelta(days=60)

    def write(client: bitcore.BitCore) -> Any:
        for first in range(0, users, BATCH):
            client.mark_many(
                [("bulk", uid, day) for uid in range(first, min(first + BATCH, users))]
            )
        return len(client.DayEvents("bulk", day.year, day.month, day.day))

    return write


def _clean_bulk(client: bitcore.BitCore) -> None:
    """The bulk marks' day gone, and their first times with it, so every round marks each user
    for the first time again (``--first-time``)."""
    day = START + timedelta(days=60)
    client.DayEvents("bulk", day.year, day.month, day.day).delete()
    if client.track_first_time:
        first_time.ever_bitmap(client, "bulk").delete()
        for kind in ("day", "week", "month"):
            period = periods.period_of(kind, day)
            first_time.first_time_bitmap(client, "bulk", period).delete()


def redis_cpu(client: Any) -> float:
    """CPU seconds (user + system) the Redis servers behind ``client`` have used so far."""
    nodes = (
        [node.redis_connection for node in client.get_primaries()]
        if hasattr(client, "get_primaries")
        else [client]
    )
    stats = [node.info("cpu") for node in nodes]
    return sum(float(s["used_cpu_user"]) + float(s["used_cpu_sys"]) for s in stats)


def memory(client: Any) -> list[int]:
    nodes = client.get_primaries() if hasattr(client, "get_primaries") else None
    if nodes is None:
        return [int(client.info("memory")["used_memory"])]
    return [int(node.redis_connection.info("memory")["used_memory"]) for node in nodes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of bulk marks")
    parser.add_argument(
        "--report-rounds",
        type=int,
        default=9,
        help="rounds of each report (short and noisy on a shared machine: more of them)",
    )
    parser.add_argument(
        "--shapes",
        default="cohort,funnel,compared,bulk",
        help="comma-separated subset of cohort, funnel, compared, bulk (default: all)",
    )
    parser.add_argument(
        "--first-time",
        action="store_true",
        help="bulk marks keep first-time bitmaps too (BitCore's default; off: as bitmapist writes)",
    )
    args = parser.parse_args()
    wanted = set(args.shapes.split(","))
    if not wanted or wanted - set(SHAPES):
        parser.error(f"--shapes: choose from {', '.join(SHAPES)}")
    with tempfile.TemporaryDirectory() as scratch:
        single = embedded.start(Path(scratch) / "single", port=0, persist=False, maxmemory="4gb")
        try:
            with cluster_support.local_cluster(Path(scratch) / "cluster") as cluster:
                for node in cluster.primaries:
                    node.client().config_set("maxmemory", str(2 << 30))
                rounds = (args.rounds, args.report_rounds)
                return run(single.client(), cluster, args.users, rounds, wanted, args.first_time)
        finally:
            single.stop()


def run(
    single: Any,
    cluster: Any,
    users: int,
    rounds: tuple[int, int],
    wanted: set[str],
    first_time: bool = False,
) -> int:
    """Write the data, time every shape of ``wanted`` (``rounds``: of bulk marks, of each
    report), print the table; 1 if any answer differs between the layouts."""
    clients = {
        "single-flat": bitcore.BitCore(single, track_first_time=first_time),
        "single-sharded": bitcore.BitCore(
            single, layout="sharded", key_prefix="sh_", track_first_time=first_time
        ),
        "cluster": bitcore.BitCore(cluster.client(), track_first_time=first_time),
    }
    started = time.perf_counter()
    size = write_reports_data(list(clients.values()), users)
    write_groups(list(clients.values()), users)
    print(
        f"{users:,} users: {size / 2**20:.0f} MiB of bitmaps per layout, written in "
        f"{time.perf_counter() - started:.1f} s"
    )
    shapes: dict[str, Callable[[bitcore.BitCore], Any]] = {
        label: shape
        for key, label, shape in (
            ("cohort", "cohort days 31x13", cohort),
            ("funnel", "funnel 5 steps, 30 days", funnel_counts),
            ("compared", "compared by 2 groups (cohort, funnel, lifecycle, stickiness)", compared),
            ("bulk", f"bulk marks ({users:,})", bulk(users)),
        )
        if key in wanted
    }
    failed = False
    for name, shape in shapes.items():
        times: dict[str, list[float]] = {layout: [] for layout in clients}
        answers: dict[str, Any] = {}
        client_cpu: dict[str, list[float]] = {layout: [] for layout in clients}
        server_cpu: dict[str, list[float]] = {layout: [] for layout in clients}
        for number in range(rounds[0] if name.startswith("bulk") else rounds[1]):
            order = list(clients) if number % 2 == 0 else list(reversed(clients))
            for layout in order:
                client = clients[layout]
                if name.startswith("bulk"):
                    _clean_bulk(client)
                servers = redis_cpu(client.redis)
                began, cpu = time.perf_counter(), time.process_time()
                answers[layout] = shape(client)
                times[layout].append(time.perf_counter() - began)
                client_cpu[layout].append(time.process_time() - cpu)
                server_cpu[layout].append(redis_cpu(client.redis) - servers)
        same = len({repr(answer) for answer in answers.values()}) == 1
        failed |= not same
        best_flat = min(times["single-flat"])
        print(f"\n{name}: answers {'identical' if same else 'DIFFER'}")
        for layout, measured in times.items():
            ratio = min(measured) / best_flat
            print(
                f"  {layout:15} best {min(measured) * 1000:8.1f} ms  median "
                f"{statistics.median(measured) * 1000:8.1f} ms  x{ratio:.2f} of single-flat  "
                f"(median CPU: bench {statistics.median(client_cpu[layout]) * 1000:.1f} ms, "
                f"Redis {statistics.median(server_cpu[layout]) * 1000:.1f} ms)"
            )
        paired = [
            statistics.median(
                mine / flat for mine, flat in zip(measured, times["single-flat"], strict=True)
            )
            for measured in times.values()
        ]
        print(
            "  median of the rounds' ratios to single-flat (interleaved): "
            + ", ".join(f"{layout} x{r:.2f}" for layout, r in zip(times, paired, strict=True))
        )
    print("\nmemory (used_memory, MiB):")
    print(f"  single Redis (flat + sharded): {memory(single)[0] / 2**20:.0f}")
    cluster_memory = memory(clients["cluster"].redis)
    print(f"  cluster primaries: {', '.join(f'{m / 2**20:.0f}' for m in cluster_memory)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
