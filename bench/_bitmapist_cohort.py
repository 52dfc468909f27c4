"""The bitmapist half of ``bench/cohort.py``: bitmapist 3.119's cohort table, timed on request.

bitmapist pins ``redis<6``, so this runs in its own throwaway environment, started by
``bench/cohort.py``::

    uv run --isolated --no-project --with 'bitmapist==3.119' python bench/_bitmapist_cohort.py \\
        --port 6400

It reads one JSON request per line on stdin and answers each with one JSON line on stdout, so
``cohort.py`` can interleave bitmapist's runs with bitcore's (a load spike hits both alike):

    {"op": "hello"}                       -> {"bitmapist": "3.119"}
    {"op": "cohort", "select1": "active", "select2": "active", "select1b": null,
     "select2b": "web", "time_group": "weeks", "num_results": 8, "num_of_rows": 6,
     "start_date": "2024-05-01", "as_percent": 0}
                                          -> {"seconds": 0.06, "cpu": 0.05, "rows": [...]}
    {"op": "funnel", "first": "<key>", "periods": [["<key>", ...], ...]}
                                          -> {"seconds": 0.2, "counts": [...]}
    {"op": "unions", "rows": [{"cohort": "<key>", "cells": [["<key>", ...], ...]}, ...]}
                                          -> {"seconds": 0.03, "sizes": [...], "cells": [...]}

``web`` is a custom handler returning ``UniqueEvents("web")`` (a flag without a period), as a
bitmapist user would write it. bitmapist has no funnel: the ``funnel`` request is what a bitmapist
user would write for bitcore's funnel definition, the same recurrence as server-side ``BITOP``s
(``R_k = R_k OR (R_k-1 AND D_k[p])``, one pipelined round trip per window period), then
``BITCOUNT``. Nor has it retention "on or after": the ``unions`` request is a table whose cells
count a cohort's users in the union of their keys, as a bitmapist user would write it with the
fewest BITOPs: each distinct union once, built from the next shorter one by one two-key ``OR`` (a
suffix of later periods), then per cell ``BITOP AND`` + ``BITCOUNT``, all in one pipelined round
trip. bitmapist's ``default`` system is pointed at ``--host``/``--port`` before anything
else, so it never talks to whatever listens on localhost:6379.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from typing import Any

import bitmapist
from bitmapist import cohort

#: The funnel's running results, deleted after each run (bitmapist's own prefix for bit-op keys).
FUNNEL_KEY = "trackist_bitop_bench_funnel_{}"


def web_handler(key: str, cls: Any, cls_args: tuple[Any, ...]) -> Any:
    """The ``web`` flag: users marked with ``mark_unique("web", ...)``, whatever the period."""
    return bitmapist.UniqueEvents("web", system=cls_args[-1])


def run_cohort(request: dict[str, Any]) -> dict[str, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    rows = cohort.get_dates_data(
        select1=request["select1"],
        select2=request["select2"],
        select1b=request.get("select1b"),
        select2b=request.get("select2b"),
        time_group=request["time_group"],
        as_percent=bool(request.get("as_percent", 1)),
        num_results=request["num_results"],
        num_of_rows=request["num_of_rows"],
        start_date=request["start_date"],
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"seconds": seconds, "cpu": cpu, "rows": [[r[0].isoformat(), *r[1:]] for r in rows]}


def run_funnel(request: dict[str, Any]) -> dict[str, Any]:
    client = bitmapist.get_redis("default")
    per_period: list[list[str]] = request["periods"]
    steps = 1 + len(per_period[0])
    reached = [FUNNEL_KEY.format(k) for k in range(steps)]
    both = FUNNEL_KEY.format("and")
    started = time.perf_counter()
    client.delete(*reached[1:])
    client.bitop("OR", reached[0], request["first"])
    for keys in per_period:
        with client.pipeline(transaction=False) as pipe:
            for k, key in enumerate(keys, start=1):
                pipe.bitop("AND", both, reached[k - 1], key)
                pipe.bitop("OR", reached[k], reached[k], both)
            pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for key in reached:
            pipe.bitcount(key)
        counts = pipe.execute()
    seconds = time.perf_counter() - started
    client.delete(*reached, both)
    return {"seconds": seconds, "counts": counts}


def run_unions(request: dict[str, Any]) -> dict[str, Any]:
    client = bitmapist.get_redis("default")
    rows: list[dict[str, Any]] = request["rows"]
    unions: dict[tuple[str, ...], str] = {}
    started = time.perf_counter()
    with client.pipeline(transaction=False) as pipe:
        for keys in sorted({tuple(c) for row in rows for c in row["cells"]}, key=len):
            name = FUNNEL_KEY.format(f"u{len(unions)}")
            rest = unions.get(keys[1:])
            pipe.bitop("OR", name, keys[0], rest) if rest else pipe.bitop("OR", name, *keys)
            unions[keys] = name
        both = FUNNEL_KEY.format("cell")
        for row in rows:
            pipe.bitcount(row["cohort"])
            for keys in row["cells"]:
                pipe.bitop("AND", both, row["cohort"], unions[tuple(keys)])
                pipe.bitcount(both)
        replies = pipe.execute()[len(unions) :]
    seconds = time.perf_counter() - started
    client.delete(*unions.values(), both)
    sizes, cells, at = [], [], 0
    for row in rows:
        sizes.append(replies[at])
        cells.append(replies[at + 2 : at + 2 + 2 * len(row["cells"]) : 2])
        at += 1 + 2 * len(row["cells"])
    return {"seconds": seconds, "sizes": sizes, "cells": cells}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "hello":
        return {"bitmapist": version("bitmapist"), "redis-py": version("redis")}
    if op == "cohort":
        return run_cohort(request)
    if op == "funnel":
        return run_funnel(request)
    if op == "unions":
        return run_unions(request)
    return {"error": f"unknown request {request!r}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.port == 6379:
        raise SystemExit("refusing to touch localhost:6379: start a Redis of your own")
    bitmapist.setup_redis("default", args.host, args.port)
    settings = bitmapist.get_redis("default").connection_pool.connection_kwargs
    if (settings.get("host"), settings.get("port")) != (args.host, args.port):
        raise SystemExit(f"bitmapist's default system is {settings}, not {args.host}:{args.port}")
    cohort.set_custom_handler("web", web_handler)
    for line in sys.stdin:
        print(json.dumps(answer(json.loads(line))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
