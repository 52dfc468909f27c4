"""Two real processes that see the same new external ids at once get the same internal ids: on
single-flat, single-sharded and the cluster (where each group's script runs on its own node)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import redis

import bitcore
from bitcore.idmap_groups import GroupedIdMap
from bitcore.keys import KeyLayout

WRITER = """
import sys, time
from datetime import datetime
import bitcore

url, seed, start_at, layout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ids = [f"user-{n}" if n % 2 else 2**62 + n for n in range(4000)]
order = ids[seed * 1000:] + ids[:seed * 1000]
client = bitcore.BitCore(url, id_mapping=True, id_map_buckets=128, layout=layout or None)
while time.time() < start_at:
    time.sleep(0.001)
for first in range(0, len(order), 50):
    batch = order[first:first + 50]
    client.mark_many([("active", x, datetime(2024, 5, 7)) for x in batch])
print("done")
"""


@pytest.mark.parametrize("layout", ["flat", "sharded", "cluster"])
def test_two_processes_allocate_each_new_id_once(
    request: pytest.FixtureRequest, redis_client: redis.Redis, redis_url: str, layout: str
) -> None:
    env = dict(os.environ)
    url, named = redis_url, layout
    if layout == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        request.getfixturevalue("cluster_client")  # emptied
        url, named = f"redis://127.0.0.1:{cluster.primaries[0].port}/0", ""
        env["BITCORE_REDIS_CLUSTER"] = "1"
    start_at = time.time() + 1.5  # both are running by then: their batches overlap
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(seed), str(start_at), named],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for seed in (0, 2)
    ]
    try:
        for writer in writers:
            out, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err.decode()
            assert out.strip() == b"done"
    finally:
        for writer in writers:  # only if a wait above failed: stopped by their own pids
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    ids = [f"user-{n}" if n % 2 else 2**62 + n for n in range(4000)]
    if layout == "cluster":
        b = bitcore.BitCore(request.getfixturevalue("cluster_client"), id_mapping=True)
    else:
        b = bitcore.BitCore(redis_client, id_mapping=True, layout=layout)
    internals = [b.internal_id(x) for x in ids]
    id_map = b._dataset_id_map()
    if isinstance(id_map, GroupedIdMap):
        layout_keys = id_map.layout
        counters = [layout_keys.id_map_group_key("next", tag) for tag in id_map.tags]
        allocated = sum(int(b.redis.get(key) or 0) for key in counters)
        assert len(set(internals)) == len(ids)
    else:
        allocated = int(redis_client.get(KeyLayout().id_map_counter_key()) or 0)
        assert sorted(internals) == list(range(len(ids)))  # type: ignore[type-var]
    assert allocated == len(ids)  # each new id allocated once, by one of the two
    assert list(b.external_ids(internals)) == ids  # type: ignore[arg-type]
    assert set(b.MonthEvents("active", 2024, 5)) == set(ids)
    assert len(b.MonthEvents("active", 2024, 5)) == len(ids)
