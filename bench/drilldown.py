"""Benchmark: drill-down (a funnel step's users, streamed as CSV) and erasure, with a PING prober.

    uv run python bench/drilldown.py [--users 1000000] [--keys 50000] [--rounds 3]

Starts its own redis-server (never localhost:6379). Drill-down: ``--users`` users sign up on day
0, half of them buy on one of days 0..6 (bitmaps written straight from numpy); times computing
the funnel's step-2 users and drop-off (BITOP registers in Redis), and streaming all step-2
users through ``/users.csv`` (the Flask test client, chunk by chunk), with the Python heap's peak
while streaming (tracemalloc). Erasure: ``--keys`` day keys of 1 KiB, half holding the user;
times ``BitCore.forget`` and its dry run. Meanwhile another process PINGs Redis every
millisecond: the slowest PING says how long Redis was held at once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import redis

import bitcore
from bitcore import embedded, funnel, periods

START = periods.day(2025, 3, 3)


def _probe(url: str, running: Any, slowest: Any) -> None:
    client = redis.Redis.from_url(url)
    while running.value:
        started = time.perf_counter()
        client.ping()
        slowest.value = max(slowest.value, time.perf_counter() - started)
        time.sleep(0.001)


class Prober:
    """PINGs Redis from a process of its own (so the GIL of the process under test does not delay
    it) until stopped; keeps the slowest answer."""

    def __init__(self, url: str) -> None:
        self.running = multiprocessing.Value("b", 1)
        self.slowest = multiprocessing.Value("d", 0.0)
        self.process = multiprocessing.Process(
            target=_probe, args=(url, self.running, self.slowest), daemon=True
        )

    def start(self) -> None:
        self.process.start()
        time.sleep(0.2)  # connected and probing before the timed work starts

    def stop(self) -> float:
        self.running.value = 0
        self.process.join()
        return float(self.slowest.value)


class Slowlog:
    """The longest single command Redis ran meanwhile (its SLOWLOG, every command over 200 µs):
    how long Redis was held at once, whatever the machine's load does to a PING's round trip."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        r.config_set("slowlog-log-slower-than", 200)
        r.config_set("slowlog-max-len", 4096)
        r.slowlog_reset()

    def longest(self) -> tuple[float, str]:
        entries = self.r.slowlog_get(4096)
        if not entries:
            return 0.0, "-"
        worst = max(entries, key=lambda e: e["duration"])
        command = worst["command"]
        name = (command.decode() if isinstance(command, bytes) else str(command)).split()[0]
        return worst["duration"] / 1000, name


def packed(ids: np.ndarray, users: int) -> bytes:
    bits = np.zeros(users, dtype=np.uint8)
    bits[ids] = 1
    return np.packbits(bits).tobytes()


def load_funnel(b: bitcore.BitCore, users: int, rng: np.random.Generator) -> int:
    day0 = date(2025, 3, 3)
    b.redis.set(b.keys.event_key("signup", START), packed(np.arange(users), users))
    buyers = rng.choice(users, users // 2, replace=False)
    days = rng.integers(0, 7, buyers.size)
    for d in range(7):
        key = b.keys.event_key("buy", periods.period_of("day", day0 + timedelta(days=d)))
        b.redis.set(key, packed(buyers[days == d], users))
    b.redis.zadd(b.keys.event_names_key(), {"signup": 0, "buy": 0})
    return int(buyers.size)


def bench_drilldown(url: str, b: bitcore.BitCore, users: int, rounds: int) -> None:
    from dashboard import create_app

    buyers = load_funnel(b, users, np.random.default_rng(5))
    report = funnel.funnel(b, ["signup", "buy"], START, 7)
    assert report.steps[1].count == buyers
    app = create_app({"TESTING": True, "REDIS_URL": url, "SECRET_KEY": "x" * 40})
    http = app.test_client()
    link = (
        "/users.csv?of=funnel&steps-0=signup&steps-1=buy&kind=day&start=2025-03-03&window=7&step=2"
    )
    for _ in range(rounds):
        b.delete_temporary_bitop_keys()
        prober = Prober(url)
        prober.start()
        slowlog = Slowlog(b.redis)
        started = time.perf_counter()
        step = report.step_users(2)
        count = len(step)
        computed = time.perf_counter() - started
        dropoff = len(report.dropoff_users(2))
        both = time.perf_counter() - started
        slowest = prober.stop()
        held, command = slowlog.longest()
        assert count == buyers and dropoff == users - buyers
        b.delete_temporary_bitop_keys()
        tracemalloc.start()
        started = time.perf_counter()
        response = http.get(link, buffered=False)
        lines = sum(chunk.count(b"\n") for chunk in response.response)
        streamed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert lines == buyers + 1
        print(
            f"drill-down, {users:,} users: step 2 ({count:,}) {computed * 1000:.0f} ms, "
            f"+ drop-off {both * 1000:.0f} ms, slowest PING {slowest * 1000:.1f} ms, "
            f"longest command {held:.1f} ms ({command}); "
            f"/users.csv {streamed:.2f} s ({buyers / streamed:,.0f} ids/s), "
            f"Python heap peak {peak / 2**20:.1f} MiB"
        )


def bench_erasure(url: str, b: bitcore.BitCore, keys: int, rounds: int) -> None:
    b.redis.flushall()
    target = 4000
    rng = np.random.default_rng(9)
    day0 = date(2000, 1, 1)
    with b.redis.pipeline(transaction=False) as pipe:
        for k in range(keys):
            value = bytearray(rng.integers(0, 256, 1024, dtype=np.uint8).tobytes())
            if k % 2:
                value[target // 8] |= 0x80 >> (target % 8)
            else:
                value[target // 8] &= ~(0x80 >> (target % 8)) & 0xFF
            day = periods.period_of("day", day0 + timedelta(days=k % 3000))
            pipe.set(b.keys.event_key(f"e{k // 3000}", day), bytes(value))
        pipe.execute()
    for _ in range(rounds):
        for dry in (True, False):
            prober = Prober(url)
            prober.start()
            slowlog = Slowlog(b.redis)
            started = time.perf_counter()
            report = b.forget(target, dry_run=dry)
            took = time.perf_counter() - started
            slowest = prober.stop()
            held, command = slowlog.longest()
            assert report.keys_scanned == keys
            print(
                f"erasure{' (dry run)' if dry else ''}, {keys:,} keys: {report.keys_changed:,} "
                f"changed in {took:.2f} s ({keys / took:,.0f} keys/s), "
                f"slowest PING {slowest * 1000:.1f} ms, longest command {held:.1f} ms ({command})"
            )
        with b.redis.pipeline(transaction=False) as pipe:  # put the user back for the next round
            for key in b.redis.scan_iter(match="trackist_*", count=1000):
                pipe.setbit(key, target, 1)
            pipe.execute()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = embedded.start(Path(tmp), port=0, persist=False)
        try:
            b = bitcore.BitCore(server.url)
            bench_drilldown(server.url, b, args.users, args.rounds)
            bench_erasure(server.url, b, args.keys, args.rounds)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
