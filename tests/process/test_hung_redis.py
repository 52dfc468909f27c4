"""A hung Redis under load, for real: gunicorn as ``gunicorn.conf.py`` runs it, a private
redis-server stopped with ``SIGSTOP`` (by its own pid) while a few threads send beacons and ask
for pages. Every request is answered, none waits much longer than the socket timeout, every 503
says ``Retry-After``, pages that need no Redis answer normally, and it all recovers."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from process_support import start_gunicorn, stop

from bitcore import embedded

KEY = "hung-key"
SOCKET_TIMEOUT = 1.0
#: (method, path, body, needs Redis): beacons and pages, each in threads of their own.
REQUESTS = [
    ("POST", "/track", b'{"event":"play","uid":7}', True),
    ("GET", "/healthz", None, True),
    ("GET", "/", None, True),
    ("GET", "/static/style.css", None, False),
    ("POST", "/track", b'{"event":"play","uid":8}', True),
]
THREADS = 4
MAX_PER_THREAD = 300  # at most a thousand-odd requests, whatever the timing


@dataclass
class Answer:
    path: str
    needs_redis: bool
    status: int  # 0: no answer at all
    seconds: float
    retry_after: str | None
    phase: str


def load(
    port: int, phase: list[str], until: float, out: list[Answer], lock: threading.Lock
) -> None:
    """Send REQUESTS round-robin on one kept-alive connection until ``until``; record each answer,
    or its absence (status 0), and go on on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT + 10)
    for n in range(MAX_PER_THREAD):
        if time.monotonic() >= until:
            break
        method, path, body, needs_redis = REQUESTS[n % len(REQUESTS)]
        current = phase[0]
        began = time.monotonic()
        try:
            connection.request(method, path, body=body, headers={"X-Bitcore-Key": KEY})
            response = connection.getresponse()
            response.read()
            answer = Answer(path, needs_redis, response.status, time.monotonic() - began,
                            response.getheader("Retry-After"), current)  # fmt: skip
        except (OSError, http.client.HTTPException):
            answer = Answer(path, needs_redis, 0, time.monotonic() - began, None, current)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT + 10)
        with lock:
            out.append(answer)
        time.sleep(0.03)
    connection.close()


def serve(
    tmp_path: Path, timeout: float, breaker_seconds: float
) -> tuple[embedded.EmbeddedRedis, int, subprocess.Popen[bytes], int]:
    """A private redis-server and gunicorn on it: the server, its pid, gunicorn and its port."""
    server = embedded.start(tmp_path / "redis", port=0, persist=False)
    assert server.process is not None
    process, port = start_gunicorn(
        tmp_path, server.url, BITCORE_TRACK_KEYS=KEY, BITCORE_TRACK_RATE_LIMIT="0",
        BITCORE_REDIS_TIMEOUT=str(timeout), BITCORE_REDIS_BREAKER_SECONDS=str(breaker_seconds),
    )  # fmt: skip
    return server, server.process.pid, process, port


def test_a_stopped_redis_is_answered_503_at_once_and_recovers(tmp_path: Path) -> None:
    server, pid, process, port = serve(tmp_path, SOCKET_TIMEOUT, 1)
    answers: list[Answer] = []
    lock = threading.Lock()
    phase = ["before"]
    try:
        began = time.monotonic()
        threads = [
            threading.Thread(target=load, args=(port, phase, began + 10, answers, lock))
            for _ in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1)
        os.kill(pid, signal.SIGSTOP)
        phase[0] = "stopped"
        time.sleep(5)
        os.kill(pid, signal.SIGCONT)
        phase[0] = "continued"
        time.sleep(2.5)  # a probe's timeout and the breaker's time
        phase[0] = "after"
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        os.kill(pid, signal.SIGCONT)
        stop(process)
        server.stop()
    by_status = Counter((a.phase, a.status) for a in answers)
    assert len(answers) >= 100, by_status
    assert all(a.status != 0 for a in answers), f"requests without an answer: {by_status}"
    assert all(a.status < 500 or a.status == 503 for a in answers), by_status
    assert all(a.retry_after for a in answers if a.status == 503), "a 503 without Retry-After"
    slowest = max(answers, key=lambda a: a.seconds)
    assert slowest.seconds < SOCKET_TIMEOUT + 2, slowest
    stopped = [a for a in answers if a.phase == "stopped"]
    assert sum(a.status == 503 for a in stopped) >= 20, by_status
    assert all(a.status == 200 for a in stopped if not a.needs_redis), by_status
    after = [a for a in answers if a.phase == "after"]
    assert after and all(a.status == 200 for a in after), by_status
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log and "WORKER TIMEOUT" not in log, log[-3000:]


def test_pages_are_answered_while_beacons_wait_on_a_hung_redis(tmp_path: Path) -> None:
    """Beacons waiting on a Redis that accepts connections but never answers are held for one
    socket timeout, and nothing else is: a page of the same workers, asked meanwhile, is
    answered at once (the beacons await their replies on the loop, ``bitcore.aio``)."""
    timeout = 3.0
    server, pid, process, port = serve(tmp_path, timeout, 30)

    def ask(method: str, path: str, body: bytes | None = None) -> tuple[int, float]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout + 10)
        began = time.monotonic()
        try:
            connection.request(method, path, body=body, headers={"X-Bitcore-Key": KEY})
            response = connection.getresponse()
            response.read()
            return response.status, time.monotonic() - began
        finally:
            connection.close()

    beacon = b'{"event":"play","uid":7}'
    beacons: list[tuple[int, float]] = []
    try:
        for _ in range(4):  # every worker has its Redis connections and has served a page
            assert ask("POST", "/track", beacon)[0] == 200
            assert ask("GET", "/static/style.css")[0] == 200
        os.kill(pid, signal.SIGSTOP)
        stuck = [
            threading.Thread(target=lambda: beacons.append(ask("POST", "/track", beacon)))
            for _ in range(3)
        ]
        for thread in stuck:
            thread.start()
        time.sleep(0.5)  # the beacons are waiting on Redis now
        pages = [ask("GET", "/static/style.css") for _ in range(6)]
        for thread in stuck:
            thread.join(timeout=timeout + 10)
    finally:
        os.kill(pid, signal.SIGCONT)
        stop(process)
        server.stop()
    assert all(status == 200 for status, _ in pages), pages
    assert max(seconds for _, seconds in pages) < timeout / 3, pages
    assert [status for status, _ in beacons] == [503] * 3, beacons
    assert min(seconds for _, seconds in beacons) > timeout / 2, beacons  # they did wait
