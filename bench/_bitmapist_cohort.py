"""Run the real bitmapist's ``get_dates_data`` against a given Redis; print the rows and the time as
JSON.

Runs in bitmapist's own environment (it pins redis<6), started by ``bench/cohort.py``::

    uv run --isolated --no-project --with 'bitmapist==3.119' python bench/_bitmapist_cohort.py \
        --port 6400 --select1 active --select2 play --start-date 2024-05-01

It points bitmapist's ``default`` system at ``--host``/``--port`` before anything else, so it never
talks to whatever listens on localhost:6379.
"""

from __future__ import annotations

import argparse
import json
import time

import bitmapist
from bitmapist import cohort


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--select1", required=True)
    parser.add_argument("--select2", required=True)
    parser.add_argument("--select1b", default=None)
    parser.add_argument("--select2b", default=None)
    parser.add_argument("--time-group", default="days")
    parser.add_argument("--num-results", type=int, default=31)
    parser.add_argument("--num-of-rows", type=int, default=12)
    parser.add_argument("--start-date", default=None)
    parser.add_argument("--as-percent", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0, help="untimed runs first")
    args = parser.parse_args()
    if args.port == 6379:
        raise SystemExit("refusing to touch localhost:6379: start a Redis of your own")
    bitmapist.setup_redis("default", args.host, args.port)
    timings = []
    rows = []
    for run in range(args.warmup + args.repeat):
        started = time.perf_counter()
        rows = cohort.get_dates_data(
            select1=args.select1,
            select2=args.select2,
            select1b=args.select1b,
            select2b=args.select2b,
            time_group=args.time_group,
            as_percent=bool(args.as_percent),
            num_results=args.num_results,
            num_of_rows=args.num_of_rows,
            start_date=args.start_date,
        )
        if run >= args.warmup:
            timings.append(time.perf_counter() - started)
    print(json.dumps({"seconds": timings, "rows": [[r[0].isoformat(), *r[1:]] for r in rows]}))


if __name__ == "__main__":
    main()
