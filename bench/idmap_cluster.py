"""Benchmark: the id map on single-flat, single-sharded and a 3-primary Redis Cluster (issue 17).

    uv run python bench/idmap_cluster.py                  # 1,000,000 UUIDs, 2 rounds
    uv run python bench/idmap_cluster.py --users 100000   # quicker

It starts its own redis-server and its own 3-primary cluster (``tests/cluster_support.py``; never
localhost:6379). Per layout, from an empty Redis, round after round in alternating order: bulk
marks (``mark_many`` of one mark per user, batches of 100,000) of N UUIDs never seen (every id
allocated: on the sharded layout one script call per map group, one round trip per node), then
the same N on another event by a new writer (every id known to the map, none to the writer's
memory), then ``len`` and the members of the first event mapped back to UUIDs. Prints best and
median times, the ratio to single-flat, and what the dataset (the map and the bitmaps) adds to each
node's ``used_memory``. First-time tracking is off unless ``--first-time`` (as in
``bench/cluster.py``: its per-shard split is the sharded writer's cost, not the map's). Exit
status 1 when a layout's members differ from the ids marked.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid as uuid_module
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import cluster_support  # noqa: E402  (the tests' cluster, started the same way)

import bitcore  # noqa: E402
from bitcore import embedded  # noqa: E402

BATCH = 100_000
DAY = datetime(2024, 5, 7, 13)


def uuids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid_module.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def primaries(client: Any) -> list[Any]:
    """Every Redis of a layout: the one, or each primary of the cluster."""
    if hasattr(client, "get_primaries"):
        return [node.redis_connection for node in client.get_primaries()]
    return [client]


def used(client: Any) -> list[int]:
    return [int(node.info("memory")["used_memory"]) for node in primaries(client)]


def mark_all(make: Callable[[], bitcore.BitCore], event: str, ids: list[str]) -> float:
    """Seconds a new mapped writer takes to mark every id once on ``event``."""
    writer = make()
    writer.mark_many([("warm-up", ids[0], DAY)])  # the dataset checked, the scripts loaded
    began = time.perf_counter()
    for first in range(0, len(ids), BATCH):
        writer.mark_many([(event, uid, DAY) for uid in ids[first : first + BATCH]])
    return time.perf_counter() - began


def run_layout(make: Callable[[], bitcore.BitCore], ids: list[str]) -> dict[str, Any]:
    """One round on one layout, from an empty Redis."""
    reader = make()
    for node in primaries(reader.redis):
        node.flushall()
    before = used(reader.redis)
    new = mark_all(make, "new", ids)
    grown = [after - was for after, was in zip(used(reader.redis), before, strict=True)]
    known = mark_all(make, "known", ids)
    began = time.perf_counter()
    members = list(make().DayEvents("new", DAY.year, DAY.month, DAY.day))
    read = time.perf_counter() - began
    return {"new": new, "known": known, "read": read, "grown": grown, "members": members}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--first-time", action="store_true", help="track first times too (off, as bench/cluster.py)"
    )
    args = parser.parse_args()
    first = args.first_time
    ids = uuids(args.users, 1)
    with tempfile.TemporaryDirectory() as scratch:
        single = embedded.start(Path(scratch) / "single", port=0, persist=False, maxmemory="4gb")
        try:
            with cluster_support.local_cluster(Path(scratch) / "cluster") as cluster:
                for node in cluster.primaries:
                    node.client().config_set("maxmemory", str(2 << 30))
                on_single, on_cluster = single.client(socket_timeout=120), cluster.client()
                makers: dict[str, Callable[[], bitcore.BitCore]] = {
                    "single-flat": lambda: bitcore.BitCore(
                        on_single, id_mapping=True, track_first_time=first
                    ),
                    "single-sharded": lambda: bitcore.BitCore(
                        on_single, id_mapping=True, layout="sharded", track_first_time=first
                    ),
                    "cluster": lambda: bitcore.BitCore(
                        on_cluster, id_mapping=True, track_first_time=first
                    ),
                }
                return report(makers, ids, args.rounds)
        finally:
            single.stop()


def report(makers: dict[str, Callable[[], bitcore.BitCore]], ids: list[str], rounds: int) -> int:
    results: dict[str, list[dict[str, Any]]] = {layout: [] for layout in makers}
    for number in range(rounds):
        order = list(makers) if number % 2 == 0 else list(reversed(makers))
        for layout in order:
            results[layout].append(run_layout(makers[layout], ids))
    expected, failed = set(ids), False
    print(f"{len(ids):,} UUIDs, mapped, {rounds} rounds (best / median)\n")
    print("| layout | marks, all new | marks, all known (new writer) | members read back |")
    print("|---|---:|---:|---:|")
    flat = {part: min(r[part] for r in results["single-flat"]) for part in ("new", "known", "read")}
    for layout, runs in results.items():
        cells = []
        for part in ("new", "known", "read"):
            times = [r[part] for r in runs]
            ratio = min(times) / flat[part]
            cells.append(f"{min(times):.2f} s / {statistics.median(times):.2f} s ({ratio:.2f}x)")
        print(f"| {layout} | {' | '.join(cells)} |")
        for run in runs:
            failed |= set(run["members"]) != expected or len(run["members"]) != len(ids)
    print(
        "\nWhat the dataset (the map and every bitmap of the marks) adds to used_memory, "
        "MiB per node:\n"
    )
    for layout, runs in results.items():
        grown = runs[-1]["grown"]
        per_user = sum(grown) / len(ids)
        nodes = ", ".join(f"{g / 2**20:.1f}" for g in grown)
        print(f"  {layout:15} {nodes}  ({per_user:.0f} bytes per user in all)")
    print(f"\nmembers: {'identical to the ids marked' if not failed else 'DIFFER'} on every layout")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
