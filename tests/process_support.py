"""Helpers shared by the tests that start real server processes."""

from __future__ import annotations

import signal
import subprocess


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
