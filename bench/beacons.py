"""How many beacons per second the tracking endpoint takes through gunicorn, next to Redis's SETBIT
rate.

    uv run python bench/beacons.py [--seconds 5] [--clients 16] [--loader wrk|python]

Starts its own redis-server (nothing on disk) and ``gunicorn wsgi:app`` (set up as in
``gunicorn.conf.py``, 2 workers) on free
ports of 127.0.0.1, drives ``POST /track`` with ``wrk`` (a C load generator, ``apt-get install
wrk``; its Lua script sends random uids) or, without it, from Python client processes with
keep-alive ``http.client`` connections, bounded both in time and in request count, and prints a
table with PASS/FAIL against the targets:

* >= 3,000 single-event beacons per second;
* >= 100,000 events per second in batches of 500.

Redis's own SETBIT rate (redis-benchmark, 50 connections, unpipelined and ``-P 16``) is the
ceiling, and ``GET /healthz`` (the app answering one Redis PING) the floor under any Flask request.
Last, the same gunicorn setup serves a do-nothing app (``bench/_null_app.py``) with the same
load: what gunicorn alone carries on this machine at that moment, since a small virtual machine's
speed can halve from one minute to the next. The
load generator shares the cores with gunicorn and Redis, as a real one would not (the Python one
uses about as much CPU as the server it measures: use wrk), and the table
also shows the server's CPU time per event and the rate the cores would carry if idle: on a shared
machine the wall-clock rates say more about the neighbours than about the code.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bitcore import embedded  # noqa: E402

KEY = "bench-key"
HOST = "127.0.0.1"
BATCH = 500
MAX_REQUESTS_PER_CLIENT = 200_000
TARGET_SINGLE = 3_000
TARGET_BATCH_EVENTS = 100_000
#: Random uids are drawn below this (wrk's script too), under the default
#: BITCORE_TRACK_MAX_UID (2**22): higher ones are refused.
UIDS = 4_000_000


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout}s")


def start_gunicorn(
    redis_url: str,
    port: int,
    args: argparse.Namespace,
    app_dir: Path = ROOT,
    app: str = "wsgi:app",
) -> subprocess.Popen[bytes]:
    """gunicorn as the ``gunicorn.conf.py`` of the checkout measured (``--app-dir``) sets it up,
    but for the workers, threads and worker class given on the bench's command line; it serves
    ``app`` from ``app_dir``. (An older checkout's settings import what this one may lack.)"""
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_hex(32),  # gunicorn refuses a weak one
        BITCORE_TRACK_KEYS=KEY,
        BITCORE_TRACK_RATE_LIMIT="1000000000",  # on, as in production, but never reached
    )
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", str(args.app_dir / "gunicorn.conf.py"), "--workers", str(args.workers),
        *(["--worker-class", args.worker_class] if args.worker_class else []),
        *(["--threads", str(args.threads)] if args.threads else []),
        "--bind", f"{HOST}:{port}", "--log-level", "warning", "--keep-alive", "30",
        app,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=app_dir, env=env)
    wait_for_port(port)
    return process


def client_loop(port: int, batch: int, seconds: float, seed: int, results: mp.Queue) -> None:
    """Send requests on one keep-alive connection until ``seconds`` pass; report (ok, failed)."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    headers = {"Content-Type": "application/json", "X-Bitcore-Key": KEY}
    ok = failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and ok + failed < MAX_REQUESTS_PER_CLIENT:
        method, path = ("GET", "/healthz") if batch == 0 else ("POST", "/track")
        if batch <= 1:
            payload: object = {"event": "bench:single", "uid": rng.randrange(UIDS)}
        else:
            events = [
                {"event": f"bench:batch{rng.randrange(4)}", "uid": rng.randrange(UIDS)}
                for _ in range(batch)
            ]
            payload = {"events": events}
        body = json.dumps(payload) if method == "POST" else None
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                ok += 1
            else:
                failed += 1
        except (OSError, http.client.HTTPException):
            failed += 1
            connection.close()
            connection = http.client.HTTPConnection(HOST, port, timeout=10)
    connection.close()
    results.put((ok, failed))


#: wrk's request generator: a single event or a batch of ``BATCH`` events with random uids (batches
#: are built once, 16 of them, and sent in turn, so wrk spends its time sending); ``done`` prints
#: the totals on one line for ``wrk_load`` to read.
WRK_SCRIPT = """
local batch = tonumber(os.getenv("BENCH_BATCH"))
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Bitcore-Key"] = os.getenv("BENCH_KEY")
local bodies, turn = {}, 0
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  if batch > 1 then
    for b = 1, 16 do
      local events = {}
      for i = 1, batch do
        events[i] = string.format('{"event":"bench:batch%d","uid":%d}',
                                  math.random(0, 3), math.random(0, 3999999))
      end
      bodies[b] = '{"events":[' .. table.concat(events, ",") .. ']}'
    end
  end
end
function request()
  if batch == 0 then
    return wrk.format("GET", "/healthz")
  elseif batch == 1 then
    local body = string.format('{"event":"bench:single","uid":%d}', math.random(0, 3999999))
    return wrk.format("POST", "/track", nil, body)
  end
  turn = turn % #bodies + 1
  return wrk.format("POST", "/track", nil, bodies[turn])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH-TOTALS %d %d %d\\n", summary.requests, summary.duration,
                         e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def find_wrk() -> str | None:
    """``wrk`` on the PATH (Debian: ``apt-get install wrk``), or None."""
    return shutil.which("wrk")


def wrk_load(
    wrk: str, port: int, batch: int, clients: int, seconds: float
) -> tuple[int, int, float]:
    """Requests answered 2xx, requests failed, and seconds taken, by wrk with ``clients``
    connections on 2 threads."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    env = dict(os.environ, BENCH_BATCH=str(batch), BENCH_KEY=KEY)
    command = [
        wrk,
        "-t",
        str(min(2, clients)),
        "-c",
        str(clients),
        "-d",
        f"{max(1, round(seconds))}s",
    ]
    command += ["--timeout", "10s", "-s", script.name, f"http://{HOST}:{port}/"]
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=seconds + 60
        ).stdout
    finally:
        os.unlink(script.name)
    found = re.search(r"BENCH-TOTALS (\d+) (\d+) (\d+)", out)
    if not found:
        raise RuntimeError(f"wrk printed no totals:\n{out}")
    requests, micros, failed = (int(x) for x in found.groups())
    return requests - failed, failed, micros / 1e6


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def server_pids(gunicorn: subprocess.Popen[bytes], redis_pid: int | None) -> list[int]:
    """The gunicorn master, its workers, and redis-server: the processes that serve a beacon."""
    pids = [gunicorn.pid] + ([redis_pid] if redis_pid else [])
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == gunicorn.pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def serving_pids(
    gunicorn: subprocess.Popen[bytes], redis_pid: int | None, workers: int
) -> list[int]:
    """``server_pids`` once all ``workers`` have forked (the port answers before they have), or
    after 20 s with those there are."""
    pids = server_pids(gunicorn, redis_pid)
    deadline = time.monotonic() + 20
    while len(pids) < workers + 1 + bool(redis_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = server_pids(gunicorn, redis_pid)
    return pids


def run_load(
    port: int, batch: int, clients: int, seconds: float, pids: list[int], wrk: str | None
) -> tuple[float, int, float]:
    """Requests per second that succeeded, how many failed, and the server's CPU seconds per
    successful request, over ``clients`` connections (wrk's, else as many Python processes)."""
    cpu_before = cpu_seconds(pids)
    if wrk is not None:
        ok, failed, elapsed = wrk_load(wrk, port, batch, clients, seconds)
        return ok / elapsed, failed, (cpu_seconds(pids) - cpu_before) / max(ok, 1)
    results: mp.Queue = mp.Queue()
    processes = [
        mp.Process(target=client_loop, args=(port, batch, seconds, seed, results))
        for seed in range(clients)
    ]
    started = time.monotonic()
    for p in processes:
        p.start()
    totals = [results.get(timeout=seconds + 60) for _ in processes]
    elapsed = time.monotonic() - started
    for p in processes:
        p.join(timeout=10)
    ok = sum(t[0] for t in totals)
    failed = sum(t[1] for t in totals)
    cpu_per_request = (cpu_seconds(pids) - cpu_before) / max(ok, 1)
    return ok / elapsed, failed, cpu_per_request


def redis_benchmark(port: int, pipeline: int) -> float | None:
    """SETBIT commands per second by redis-benchmark (50 connections), or None without the binary.

    ``-t setbit`` is not one of redis-benchmark's built-in tests, so the command is spelled out;
    the offset is fixed: ``__rand_int__`` is zero-padded, which Redis refuses as a bit offset.
    """
    bundled = Path(embedded.find_redis_server()).with_name("redis-benchmark")
    binary = str(bundled) if bundled.exists() else shutil.which("redis-benchmark")
    if not binary or not os.access(binary, os.X_OK):
        return None
    command = [binary, "-h", HOST, "-p", str(port), "-n", "200000", "-q", "-c", "50"]
    command += ["-P", str(pipeline), "-r", "1000"]
    command += ["setbit", "bench:bits:__rand_int__", "9999999", "1"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = re.findall(r"([\d.]+) requests per second", out.replace("\r", "\n"))
    return float(found[-1]) if found else None


def null_app_load(redis_url: str, args: argparse.Namespace, wrk: str | None) -> tuple[float, float]:
    """Single beacons per second, and CPU seconds per request, of a do-nothing app
    (``bench/_null_app.py``) under the same gunicorn setup: the most this machine can carry
    through gunicorn at this moment, whatever the app does. With the configured worker, that is
    gunicorn's asyncio worker (ours minus the app) serving the ASGI one."""
    port = embedded.free_port()
    here = Path(__file__).resolve().parent
    if args.worker_class:
        null_args, app = args, "_null_app:wsgi"
    else:
        null_args, app = (
            argparse.Namespace(**{**vars(args), "worker_class": "asgi"}),
            "_null_app:asgi",
        )
    gunicorn = start_gunicorn(redis_url, port, null_args, here, app=app)
    try:
        pids = serving_pids(gunicorn, None, args.workers)
        run_load(port, 1, 2, 1, pids, wrk)  # warm up both workers
        rps, _failed, cpu = run_load(port, 1, args.clients, args.seconds, pids, wrk)
        return rps, cpu
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--clients", type=int, default=None,
        help="keep-alive connections (default: 16 with wrk, 4 Python processes without)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-class", default=None,
        help="gunicorn worker class (default: gunicorn.conf.py's; e.g. gthread, to compare)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=None, help="threads per worker (default: gunicorn.conf.py's)"
    )
    parser.add_argument(
        "--loader", choices=("wrk", "python"), default="wrk",
        help="load generator: wrk (falls back to python when not installed) or python processes",
    )  # fmt: skip
    parser.add_argument(
        "--app-dir", type=Path, default=ROOT,
        help="checkout whose wsgi:app gunicorn serves (to compare versions on the same machine)",
    )  # fmt: skip
    args = parser.parse_args()
    wrk = find_wrk() if args.loader == "wrk" else None
    if args.clients is None:
        # A beacon endpoint serves many browsers at once. With only a few connections, which worker
        # gets which is a coin toss (the kernel spreads them by address), and one worker can sit
        # idle while the other has them all; Python clients cost as much CPU as the server, so
        # fewer of them.
        args.clients = 16 if wrk else 4
    if args.loader == "wrk" and wrk is None:
        print("wrk not found (apt-get install wrk): falling back to the Python load generator")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine skews all

    with tempfile.TemporaryDirectory() as data_dir:
        redis_server = embedded.start(data_dir, port=0, persist=False)
        gunicorn = None
        try:
            port = embedded.free_port()
            gunicorn = start_gunicorn(redis_server.url, port, args, args.app_dir)
            redis_pid = redis_server.process.pid if redis_server.process else None
            pids = serving_pids(gunicorn, redis_pid, args.workers)
            run_load(port, 1, 2, 1, pids, wrk)  # warm up both workers
            single_rps, single_failed, single_cpu = run_load(
                port, 1, args.clients, args.seconds, pids, wrk
            )
            batch_rps, batch_failed, batch_cpu = run_load(
                port, BATCH, args.clients, args.seconds, pids, wrk
            )
            # the floor under every request: the app answering /healthz (one Redis PING)
            health_rps, health_failed, health_cpu = run_load(
                port, 0, args.clients, args.seconds, pids, wrk
            )
            null_rps, null_cpu = null_app_load(redis_server.url, args, wrk)
            redis_port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
            setbit_plain = redis_benchmark(redis_port, 1)
            setbit_piped = redis_benchmark(redis_port, 16)
        finally:
            if gunicorn is not None:
                gunicorn.send_signal(signal.SIGTERM)
                gunicorn.wait(timeout=30)
            redis_server.stop()

    batch_events = batch_rps * BATCH
    cores = os.cpu_count() or 1
    rows = [
        ("single-event beacons/s", single_rps, TARGET_SINGLE, single_failed, cores / single_cpu),
        (
            f"events/s in batches of {BATCH}",
            batch_events,
            TARGET_BATCH_EVENTS,
            batch_failed,
            cores * BATCH / batch_cpu,
        ),
    ]
    worker_class = args.worker_class or "gunicorn.conf.py's worker class"
    print(f"\nbitcore tracking bench: {args.workers} gunicorn workers ({worker_class}), "
          f"{os.cpu_count()} cores, {args.clients} clients ({'wrk' if wrk else 'python'}), "
          f"{args.seconds:g}s a run")  # fmt: skip
    print(f"load average before the runs: {load} (other work on the machine lowers every rate)")
    print("'server CPU': what gunicorn + redis-server used per event (per request for /healthz);")
    print("'if idle': the cores divided by it, the rate with nothing else on them (nor the load).")
    print(f"{'measure':<32} {'rate':>10} {'target':>9} {'failed':>6}  verdict  {'server CPU':>12}"
          f" {'if idle':>10}")  # fmt: skip
    for name, rate, target, failed, idle_rate in rows:
        verdict = "PASS" if rate >= target and failed == 0 else "FAIL"
        per_event = cores / idle_rate * 1e6
        print(f"{name:<32} {rate:>10,.0f} {target:>9,} {failed:>6}  {verdict:<7}  "
              f"{per_event:>9,.1f} us {idle_rate:>10,.0f}")  # fmt: skip
    ceilings: list[tuple[str, float | None]] = [
        ("redis SETBIT/s (ceiling)", setbit_plain),
        ("redis SETBIT/s -P 16", setbit_piped),
    ]
    for name, ceiling in ceilings:
        shown = f"{ceiling:,.0f}" if ceiling is not None else "n/a"
        print(f"{name:<32} {shown:>10}")
    if health_failed == 0:
        print(
            f"{'GET /healthz/s (app baseline)':<32} {health_rps:>10,.0f} {'':>9} {'':>6}  {'':<7}  "
            f"{health_cpu * 1e6:>9,.1f} us {cores / health_cpu:>10,.0f}"
        )
    print(
        f"{'gunicorn, do-nothing app':<32} {null_rps:>10,.0f} {'':>9} {'':>6}  {'':<7}  "
        f"{null_cpu * 1e6:>9,.1f} us {cores / null_cpu:>10,.0f}"
    )
    print(f"(batch requests/s: {batch_rps:,.1f}; single beacons are {single_rps / null_rps:.0%} of "
          "what gunicorn carried with a do-nothing app in the same run)")  # fmt: skip
    passed = all(rate >= target and failed == 0 for _, rate, target, failed, _ in rows)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
