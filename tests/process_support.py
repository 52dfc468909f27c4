"""Helpers shared by the tests that start real server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bitcore import embedded

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
#: Strong enough for gunicorn, which refuses a short or repetitive SECRET_KEY.
TEST_SECRET_KEY = "test-6f1c0a4e9b2d7c35a8e0f1b2c3d4e5f6"


def start_gunicorn(
    tmp_path: Path, redis_url: str, **env: str
) -> tuple[subprocess.Popen[bytes], int]:
    """``gunicorn wsgi:app`` as production runs it (``gunicorn.conf.py``), on a free port of
    127.0.0.1 and ``redis_url``, its log in ``tmp_path/gunicorn.log``; returns once it listens."""
    port = embedded.free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("BITCORE_", "REDIS_URL"))}
    environ.update(
        REDIS_URL=redis_url,
        SECRET_KEY=TEST_SECRET_KEY,
        BITCORE_INSTANCE_PATH=str(tmp_path / "instance"),
        BITCORE_CLEANUP_ENABLED="0",
        BITCORE_BIND=f"127.0.0.1:{port}",
        **env,
    )
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - the process owns it
    process = subprocess.Popen([str(GUNICORN), "wsgi:app"], cwd=ROOT, env=environ, stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.1)
    stop(process)
    raise AssertionError(f"gunicorn did not listen on {port}")


def stop(process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    """SIGTERM, as a process manager would send it; killed if it has not exited in ``seconds``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
