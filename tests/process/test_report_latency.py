"""Big reports do not hold Redis: PINGs from another connection keep answering while they run.

On a private redis-server (``maxmemory`` 192 MB, so nothing here can grow past it), 505 day keys
of 128 KiB (1,048,576 users, 64 MiB in all) make a 5-step, 90-day funnel over 12 start
periods. The old funnel's single MULTI/EXEC of BITOPs, run here as a baseline, holds Redis for
seconds (PINGs wait 0.3 s and more): the probe sees such a hold. The sliced read must keep every
PING (sent by another process, so no Python thread of ours delays it) under 150 ms, and count
what numpy counts on the written bytes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import redis

import bitcore
from bitcore import cohort, embedded, funnel, periods
from bitcore.cohort.engine import cohort_table, cohort_tables
from bitcore.segments import SegmentStore

STEPS, WINDOW, TREND = 5, 90, 12
KEY_BYTES = 128 << 10
LAST_START = periods.day(2024, 6, 1)
FIRST_DAY = periods.shift(LAST_START, 1 - TREND)
MAX_PING_SECONDS = 0.150


@pytest.fixture(scope="module")
def server() -> Iterator[embedded.EmbeddedRedis]:
    with tempfile.TemporaryDirectory() as tmp:
        started = embedded.start(tmp, port=0, persist=False)
        try:
            client = started.client()
            client.config_set("maxmemory", str(192 << 20))
            client.config_set("maxmemory-policy", "noeviction")
            yield started
        finally:
            started.stop()


@pytest.fixture(scope="module")
def data(server: embedded.EmbeddedRedis) -> dict[tuple[int, periods.Period], np.ndarray]:
    """Random day bitmaps of every step over every day a start's window touches, as written."""
    bc = bitcore.BitCore(server.client())
    rng = np.random.default_rng(13)
    written = {}
    for k in range(STEPS):
        with bc.redis.pipeline(transaction=False) as pipe:
            for d in range(WINDOW + TREND - 1):
                day = periods.shift(FIRST_DAY, d)
                bits = rng.integers(0, 256, KEY_BYTES, dtype=np.uint8) & rng.integers(
                    0, 256, KEY_BYTES, dtype=np.uint8
                )  # each bit set with p = 1/4
                pipe.set(bc.keys.event_key(f"s{k}", day), bits.tobytes())
                written[(k, day)] = bits
            pipe.execute()
    return written


def expected_counts(data: dict[tuple[int, periods.Period], np.ndarray]) -> list[list[int]]:
    """The funnel definition on the written bytes, per start period."""
    counts = []
    for offset in range(1 - TREND, 1):
        start = periods.shift(LAST_START, offset)
        reached = [data[(0, start)].copy()] + [np.zeros(KEY_BYTES, np.uint8)] * (STEPS - 1)
        for p in funnel.window_periods(start, WINDOW):
            for k in range(1, STEPS):
                reached[k] = reached[k] | (reached[k - 1] & data[(k, p)])
        counts.append([int(np.unpackbits(r).sum()) for r in reached])
    return counts


#: The probe, in its own process so the work's Python threads cannot delay it: PINGs one at a
#: time until a line arrives on stdin (or 60 s pass), then prints the slowest in seconds.
PROBE = """
import select, sys, time, redis
r = redis.Redis.from_url(sys.argv[1])
r.ping()
print("ready", flush=True)
slowest, deadline = 0.0, time.monotonic() + 60
while time.monotonic() < deadline and not select.select([sys.stdin], [], [], 0.002)[0]:
    sent = time.perf_counter()
    r.ping()
    slowest = max(slowest, time.perf_counter() - sent)
print(slowest, flush=True)
"""


def slowest_ping_while(server: embedded.EmbeddedRedis, work: Callable[[], object]) -> float:
    """Seconds of the slowest PING another process sent (one at a time) while ``work`` ran."""
    with subprocess.Popen(
        [sys.executable, "-c", PROBE, server.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as probe:
        assert probe.stdin is not None and probe.stdout is not None
        try:
            assert probe.stdout.readline().strip() == "ready"
            work()
        finally:
            probe.stdin.write("stop\n")
            probe.stdin.flush()
            answer = probe.stdout.readline()
            probe.wait(timeout=30)
    return float(answer)


#: Times the old transaction's recurrence is repeated inside its one MULTI/EXEC: once took
#: 0.13 s since the embedded Redis stopped faulting in every BITOP result (``embedded``'s mmap
#: threshold), too short a hold for the probe to tell from a slow PING on a loaded machine.
OLD_REPEATS = 6


def old_transaction(r: redis.Redis, bc: bitcore.BitCore) -> None:
    """The old funnel's shape: every BITOP of the recurrence in one MULTI/EXEC (repeated
    ``OLD_REPEATS`` times, as a bigger funnel would), then DEL."""
    scratch = [f"latency_scratch_{k}" for k in range(STEPS + 1)]
    with r.pipeline(transaction=True) as pipe:
        for offset in [o for _ in range(OLD_REPEATS) for o in range(1 - TREND, 1)]:
            start = periods.shift(LAST_START, offset)
            pipe.bitop("OR", scratch[0], bc.keys.event_key("s0", start))
            pipe.delete(*scratch[1:])
            for p in funnel.window_periods(start, WINDOW):
                for k in range(1, STEPS):
                    pipe.bitop("AND", scratch[STEPS], scratch[k - 1], bc.keys.event_key(f"s{k}", p))
                    pipe.bitop("OR", scratch[k], scratch[k], scratch[STEPS])
        pipe.delete(*scratch)
        pipe.execute()


def test_the_probe_sees_a_server_side_transaction_hold_redis(
    server: embedded.EmbeddedRedis, data: dict[tuple[int, periods.Period], np.ndarray]
) -> None:
    r = server.client()
    slowest = slowest_ping_while(server, lambda: old_transaction(r, bitcore.BitCore(r)))
    assert slowest > 2 * MAX_PING_SECONDS


@pytest.mark.parametrize("where", ["auto", "server"])
def test_a_big_funnel_never_holds_redis_for_long(
    server: embedded.EmbeddedRedis,
    data: dict[tuple[int, periods.Period], np.ndarray],
    where: funnel.Where,
) -> None:
    """Read and counted in numpy (``auto`` picks it for a 12-start trend), or as the same 8,640
    BITOPs as the old transaction but in round trips of bounded work (``server``)."""
    bc = bitcore.BitCore(server.client())
    steps = [f"s{k}" for k in range(STEPS)]
    result: list[funnel.FunnelTrend] = []
    before = set(bc.redis.keys())

    def run() -> None:
        result.append(funnel.funnel_trend(bc, steps, LAST_START, WINDOW, TREND, where=where))

    slowest = slowest_ping_while(server, run)
    assert slowest < MAX_PING_SECONDS, f"a PING waited {slowest * 1000:.0f} ms"
    got = [[s.count for s in f.steps] for f in result[0].funnels]
    assert got == expected_counts(data)
    assert set(bc.redis.keys()) == before


@pytest.mark.parametrize("where", ["auto", "server"])
def test_a_big_cohort_table_never_holds_redis_for_long(
    server: embedded.EmbeddedRedis,
    data: dict[tuple[int, periods.Period], np.ndarray],
    where: cohort.Where,
) -> None:
    """60 daily cohorts of s0 x 41 columns of s1: 101 + 101 keys (26 MiB), read in slices
    (the default), or as 2,460 BITOP + BITCOUNT pairs on the server in bounded round trips."""
    bc = bitcore.BitCore(server.client())
    rows, columns = 60, 40
    tables: list[cohort.CohortTable] = []

    def run() -> None:
        first = periods.start(FIRST_DAY).date()
        tables.append(
            cohort_table(bc, "s0", "s1", None, None, "days", rows, columns, str(first), where=where)
        )

    slowest = slowest_ping_while(server, run)
    assert slowest < MAX_PING_SECONDS, f"a PING waited {slowest * 1000:.0f} ms"

    def users(bits: np.ndarray) -> int:
        return int(np.unpackbits(bits).sum())

    days = [periods.shift(FIRST_DAY, d) for d in range(rows + columns + 1)]
    assert tables[0].sizes == [users(data[(0, day)]) for day in days[:rows]]
    assert tables[0].cells == [
        [users(data[(0, days[i])] & data[(1, days[i + t])]) for t in range(columns + 1)]
        for i in range(rows)
    ]


def test_a_big_cohort_compared_by_a_dated_segment_never_holds_redis_for_long(
    server: embedded.EmbeddedRedis, data: dict[tuple[int, periods.Period], np.ndarray]
) -> None:
    """The 60 x 41 table compared by the segment ``(s2 AND s3) OR s4``: its 60 days' programs
    (30 MiB of BITOP work: one plain pipeline, within ``reading.BUILD_BYTES``) never hold Redis
    long, and the group's table is what numpy counts on the written bytes; no key is left."""
    bc = bitcore.BitCore(server.client())
    before = set(bc.redis.keys())
    SegmentStore(bc).save("latency", "(s2 AND s3) OR s4")
    rows, columns = 60, 40
    tables: list[cohort.CohortTable] = []

    def run() -> None:
        first = str(periods.start(FIRST_DAY).date())
        tables.extend(
            cohort_tables(
                bc, "s0", "s1", None, None, "days", rows, columns, first, groups=["segment:latency"]
            )
        )

    try:
        slowest = slowest_ping_while(server, run)
    finally:
        SegmentStore(bc).delete("latency")
    assert slowest < MAX_PING_SECONDS, f"a PING waited {slowest * 1000:.0f} ms"
    assert set(bc.redis.keys()) == before
    days = [periods.shift(FIRST_DAY, d) for d in range(rows + columns + 1)]
    segment = [(data[(2, day)] & data[(3, day)]) | data[(4, day)] for day in days[:rows]]
    members = [data[(0, day)] & segment[i] for i, day in enumerate(days[:rows])]
    assert tables[1].sizes == [int(np.unpackbits(m).sum()) for m in members]
    assert tables[1].cells == [
        [int(np.unpackbits(members[i] & data[(1, days[i + t])]).sum()) for t in range(columns + 1)]
        for i in range(rows)
    ]
