"""The bitmapist half of ``bench/core.py``: the real bitmapist 3.119, timed on request.

bitmapist pins ``redis<6``, so it runs in its own throwaway environment, started by ``core.py``::

    uv run --isolated --no-project --with 'bitmapist==3.119' \\
        python bench/_bitmapist_side.py --host 127.0.0.1 --port 50123

It reads one JSON request per line on stdin and answers each with one JSON line on stdout, so
``core.py`` can interleave bitmapist's runs with bitcore's: a load spike hits both alike:

    {"op": "hello"}                        -> {"bitmapist": "3.119", "redis-py": "5.3.1"}
    {"op": "mark_event", "count": 2000}    -> {"seconds": 0.5, "marked": 2000}
    {"op": "iterate"}                      -> {"seconds": 1.6, "fingerprint": {...}}

bitmapist's ``"default"`` system points at localhost:6379 when imported; it is replaced before any
command is sent. This script never flushes: before a run it deletes only the keys that run writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import cache
from importlib.metadata import version
from typing import Any

import _common  # bench/ is on sys.path: it is this script's directory
import bitmapist


def connect(host: str, port: int) -> Any:
    """Point bitmapist's ``"default"`` system at the benchmark's server, and prove it is it."""
    bitmapist.setup_redis("default", host, port)
    client = bitmapist.get_redis("default")
    settings = client.connection_pool.connection_kwargs
    if (settings.get("host"), settings.get("port")) != (host, port):
        raise SystemExit(f"bitmapist's default system is {settings}, not {host}:{port}")
    client.ping()
    return client


@cache
def marks(count: int) -> list[tuple[str, int]]:
    return _common.marks(count)


def keys_marked() -> list[str]:
    """Every key ``mark_event`` writes at ``MARK_TIME`` (hourly and unique tracking are off)."""
    classes = (bitmapist.MonthEvents, bitmapist.WeekEvents, bitmapist.DayEvents)
    return [
        cls.from_date(event, _common.MARK_TIME).redis_key
        for event in _common.MARK_EVENTS
        for cls in classes
    ]


def mark_event(client: Any, count: int) -> dict[str, Any]:
    """One timed run of ``mark_event`` per mark, on keys emptied first."""
    data = marks(count)

    def run() -> None:
        for event, uuid in data:
            bitmapist.mark_event(event, uuid, now=_common.MARK_TIME)

    cpu: list[float] = []
    seconds = _common.timed(
        lambda: cpu.append(_common.cpu_of(run, client)()), lambda: client.delete(*keys_marked())
    )
    days = [bitmapist.DayEvents.from_date(e, _common.MARK_TIME) for e in _common.MARK_EVENTS]
    return {"seconds": seconds, "cpu": cpu[0], "marked": sum(len(day) for day in days)}


def iterate() -> dict[str, Any]:
    """One timed ``list(MonthEvents(...))`` of the bitmap ``core.py`` stored."""
    result: list[int] = []

    def run() -> None:
        event = bitmapist.MonthEvents(_common.ITER_EVENT, _common.ITER_YEAR, _common.ITER_MONTH)
        result[:] = list(event)

    return {"seconds": _common.timed(run), "fingerprint": _common.fingerprint(result)}


def answer(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "hello":
        return {"bitmapist": version("bitmapist"), "redis-py": version("redis")}
    if op == "mark_event":
        return mark_event(client, int(request["count"]))
    if op == "iterate":
        return iterate()
    return {"error": f"unknown request {request!r}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    client = connect(args.host, args.port)
    for line in sys.stdin:
        print(json.dumps(answer(client, json.loads(line))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
