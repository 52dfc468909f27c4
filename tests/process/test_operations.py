"""Operations, with real processes: a second gunicorn on a taken address refuses to start instead
of taking a share of the connections, and the embedded Redis does not outlive a gunicorn master
killed outright."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from process_support import GUNICORN, ROOT, TEST_SECRET_KEY, start_gunicorn, stop

from bitcore import embedded

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="needs Linux /proc to find gunicorn's children"
)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its (dead) parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_second_gunicorn_on_a_taken_address_refuses_to_start(
    tmp_path: Path, redis_url: str
) -> None:
    first, port = start_gunicorn(tmp_path, redis_url)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("BITCORE_", "REDIS_URL"))}
    environ.update(REDIS_URL=redis_url, SECRET_KEY=TEST_SECRET_KEY[::-1],  # another app's
                   BITCORE_INSTANCE_PATH=str(tmp_path / "second"), BITCORE_CLEANUP_ENABLED="0",
                   BITCORE_BIND=f"127.0.0.1:{port}")  # fmt: skip
    try:
        second = subprocess.run(
            [str(GUNICORN), "wsgi:app"],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            timeout=60,
        )
        assert second.returncode != 0
        message = second.stderr.decode()
        assert f"127.0.0.1:{port} is already in use by another process" in message, message
        for _ in range(20):  # every new connection still reaches the first one
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/healthz")
            assert connection.getresponse().status == 200
            connection.close()
        assert first.poll() is None
    finally:
        stop(first)


def test_the_embedded_redis_ends_with_a_killed_master_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    master, port = start_gunicorn(tmp_path, "", BITCORE_DATA_DIR=str(data_dir))
    family: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(children(master.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the embedded server and two workers
        family = children(master.pid)
        (server_pid,) = [
            pid for pid in family if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        sock = embedded._socket_path(data_dir)
        writer = redis.Redis(unix_socket_path=str(sock), socket_timeout=5)
        writer.set("survivor", "yes")
        writer.close()
        os.kill(master.pid, signal.SIGKILL)  # the master alone, by its pid
        master.wait(timeout=10)
        deadline = time.monotonic() + 5
        while alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(server_pid), "the embedded Redis outlived the master that owned it"
    finally:
        for pid in family:  # whatever is left of what this test started, by pid
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if master.poll() is None:
            master.kill()
            master.wait()
    restarted = embedded.start(data_dir, persist=True)
    try:
        assert restarted.owned, "the next start owns a fresh server"
        assert restarted.client().get("survivor") == b"yes"
    finally:
        restarted.stop()
