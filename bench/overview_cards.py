"""Benchmark: the overview (``/``) with its saved-report cards, at a given number of users.

    uv run python bench/overview_cards.py                    # 1,000,000 users
    uv run python bench/overview_cards.py --users 100000 --rounds 5

It starts its own redis-server (never localhost:6379), writes random bitmaps straight from numpy
(``active`` p = 1/4 and ``signup`` 1/16, every day, ISO week and month of the last 12 weeks), then
times ``GET /`` through the test client with no card, and with six cards pinned (a 12-week
lifecycle, a month's stickiness, an 8 x 8 weekly cohort, a 31 x 13 daily cohort, a 3-step weekly
funnel, a segment), each reading at most ``BITCORE_CARD_MAX_BYTES``. Prints the best and median of
each and what the cards add.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from bitcore import embedded, periods
from bitcore.saved_reports import ReportStore
from dashboard import create_app

CARDS = {
    "lifecycle": ("lifecycle", "event=active&period=week&count=12"),
    "stickiness": ("stickiness", "event=active&period=month"),
    "weekly cohort": ("cohort", "select1=signup&select2=active&time_group=weeks&num_results=8"),
    "daily cohort": ("cohort", "select1=active&select2=active&num_results=31&num_of_rows=12"),
    "funnel": ("funnel", "steps-0=signup&steps-1=active&steps-2=signup&kind=week&window=2"),
    "segment": ("segment", "expression=active+AND+signup&kind=week"),
}


def write_data(client: object, users: int, seed: int = 1) -> None:
    """Random bitmaps for every day, week and month of the last 12 weeks."""
    rng = np.random.default_rng(seed)
    now = client.now()  # type: ignore[attr-defined]
    keys = client.keys  # type: ignore[attr-defined]
    redis = client.redis  # type: ignore[attr-defined]
    size = (users + 7) // 8
    wanted: set[periods.Period] = set()
    for back in range(12 * 7):
        moment = now - timedelta(days=back)
        wanted |= {periods.period_of(kind, moment) for kind in ("day", "week", "month")}
    with redis.pipeline(transaction=False) as pipe:
        for event, share in (("active", 4), ("signup", 16)):
            for period in wanted:
                bits = rng.integers(0, share, size * 8) == 0
                pipe.set(keys.event_key(event, period), np.packbits(bits).tobytes())
            pipe.execute()


def timed(client: object, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = client.get("/")  # type: ignore[attr-defined]
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.status_code
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = embedded.start(Path(tmp) / "redis", maxmemory="2gb")
        try:
            app = create_app(
                {
                    "REDIS_URL": server.url,
                    "SECRET_KEY": "bench-" + "x" * 40,
                    "BITCORE_USERS": "",
                    "INSTANCE_PATH": str(Path(tmp) / "instance"),
                }
            )
            bc = app.extensions["bitcore"]
            write_data(bc, args.users)
            web = app.test_client()
            web.get("/")  # the registry is built from the keyspace once
            bare = timed(web, args.rounds)
            reports = ReportStore(bc)
            for name, (page, query) in CARDS.items():
                reports.save(name, page, query, on_overview=True)
            errors = [c for c in web.get("/index.json").get_json()["reports"] if c["error"]]
            assert not errors, errors
            with_cards = timed(web, args.rounds)
        finally:
            server.stop()
    print(f"{args.users:,} users, {args.rounds} rounds")
    for label, times in (("no card", bare), ("6 cards", with_cards)):
        print(
            f"  GET / {label:8}: best {min(times) * 1e3:7.1f} ms, median "
            f"{statistics.median(times) * 1e3:7.1f} ms"
        )
    print(f"  the cards add {(min(with_cards) - min(bare)) * 1e3:.1f} ms (best)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
