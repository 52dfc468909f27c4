"""Two real processes that see the same new external ids at once get the same internal ids."""

from __future__ import annotations

import subprocess
import sys
import time

import redis

import bitcore
from bitcore.keys import KeyLayout

WRITER = """
import sys, time
from datetime import datetime
import bitcore

url, seed, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ids = [f"user-{n}" if n % 2 else 2**62 + n for n in range(4000)]
order = ids[seed * 1000:] + ids[:seed * 1000]
client = bitcore.BitCore(url, id_mapping=True, id_map_buckets=128)
while time.time() < start_at:
    time.sleep(0.001)
for first in range(0, len(order), 50):
    batch = order[first:first + 50]
    client.mark_many([("active", x, datetime(2024, 5, 7)) for x in batch])
print("done")
"""


def test_two_processes_allocate_each_new_id_once(redis_client: redis.Redis, redis_url: str) -> None:
    start_at = time.time() + 1.5  # both are running by then: their batches overlap
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, redis_url, str(seed), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
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
    b = bitcore.BitCore(redis_client, id_mapping=True)
    assert int(redis_client.get(KeyLayout().id_map_counter_key()) or 0) == len(ids)
    internals = [b.internal_id(x) for x in ids]
    assert sorted(internals) == list(range(len(ids)))  # type: ignore[type-var]
    assert list(b.external_ids(internals)) == ids  # type: ignore[arg-type]
    assert set(b.MonthEvents("active", 2024, 5)) == set(ids)
    assert len(b.MonthEvents("active", 2024, 5)) == len(ids)
