"""``flask --app wsgi forget-user`` as the README writes it: a real process on the test Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import redis

import bitcore

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).with_name("flask")


def forget_user(redis_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("BITCORE_", "REDIS_URL"))}
    environ.update(
        REDIS_URL=redis_url,
        BITCORE_INSTANCE_PATH=str(tmp_path / "instance"),
        BITCORE_CLEANUP_ENABLED="0",
    )
    return subprocess.run(
        [str(FLASK), "--app", "wsgi", "forget-user", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_forget_user_from_the_command_line(
    bc: bitcore.BitCore, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    bc.mark_event("active", 42, now=datetime(2025, 3, 3), track_unique=True)
    bc.mark_event("active", 43, now=datetime(2025, 3, 3))
    dry = forget_user(redis_url, tmp_path, "42", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Would clear user 42's bit in 5 keys" in dry.stdout
    assert "Scanning keys" in dry.stderr  # the progress bar, on stderr
    assert 42 in bc.MonthEvents("active", 2025, 3)
    real = forget_user(redis_url, tmp_path, "42")
    assert real.returncode == 0 and "Cleared user 42's bit in 5 keys" in real.stdout
    assert 42 not in bc.MonthEvents("active", 2025, 3) and 43 in bc.MonthEvents("active", 2025, 3)
    bad = forget_user(redis_url, tmp_path, "4294967296")
    assert bad.returncode == 2 and "out of range" in bad.stderr
