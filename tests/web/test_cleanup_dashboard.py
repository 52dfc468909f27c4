"""Cleanup in the dashboard: the /system page and its JSON twin, the CLI, the scheduler thread."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import click
import pytest
import redis
from dashboard_support import make_app
from flask import Flask

from bitcore import cleanup as job
from bitcore.keys import KeyLayout
from dashboard.views.cleanup import CleanupScheduler

LAYOUT = KeyLayout()
IDLE_KEY = LAYOUT.bitop_key("AND", ["trackist_a_2024-5", "trackist_b_2024-5"])
FRESH_KEY = LAYOUT.bitop_key("OR", ["trackist_a_2024-5", "trackist_b_2024-5"])
TTL_KEY = LAYOUT.bitop_key("XOR", ["trackist_a_2024-5", "trackist_b_2024-5"])


@pytest.fixture
def app(redis_url: str, redis_client: redis.Redis) -> Iterator[Flask]:
    app = make_app(redis_url, BITCORE_CLEANUP_MAX_IDLE=3600)
    yield app
    app.extensions["bitcore_cleanup"].stop()


def seed(r: redis.Redis) -> None:
    """Two events, a segment, three bit-op keys: idle without TTL, fresh without TTL, with TTL."""
    r.setbit("trackist_a_2024-5", 1, 1)
    r.setbit("trackist_b_2024-5", 2, 1)
    r.hset("bitcore:segment:s", mapping={"expression": "a & b"})
    payload = r.dump("trackist_a_2024-5")
    r.execute_command("RESTORE", IDLE_KEY, 0, payload, "IDLETIME", 7200)
    r.set(FRESH_KEY, b"\x01")
    r.set(TTL_KEY, b"\x01", ex=600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- /system and /system.json


def test_status_before_any_run(app: Flask, redis_client: redis.Redis) -> None:
    seed(redis_client)
    data = app.test_client().get("/system.json").get_json()
    assert data["cleanup"]["last_run"] is None and data["cleanup"]["last_dry_run"] is None
    assert data["temporary_keys"] == {"total": 3, "without_ttl": 2, "complete": True}
    schedule = data["cleanup"]["schedule"]
    assert schedule["enabled"] is False  # BITCORE_CLEANUP_ENABLED=0 from the environment
    assert schedule["scheduler_thread_alive"] is False
    assert (schedule["interval"], schedule["max_idle"]) == (3600, 3600)
    page = app.test_client().get("/system")
    assert page.status_code == 200 and b"Cleanup has not run yet." in page.data
    assert b"3 bit-op keys" in page.data and b'<a href="/system.json">' in page.data


def test_status_after_a_run_shows_what_it_freed(app: Flask, redis_client: redis.Redis) -> None:
    seed(redis_client)
    size = redis_client.memory_usage(IDLE_KEY)
    result = app.test_cli_runner().invoke(args=["cleanup"])
    assert result.exit_code == 0, result.output
    data = app.test_client().get("/system.json").get_json()
    last = data["cleanup"]["last_run"]
    assert (last["keys"], last["bytes"], last["dry_run"], last["max_idle"]) == (
        1,
        size,
        False,
        3600,
    )
    assert 0 <= last["seconds_ago"] < 60
    assert data["temporary_keys"]["total"] == 2
    assert 3500 < data["cleanup"]["schedule"]["next_due_in"] <= 3600
    page = app.test_client().get("/system", headers={"Accept": "text/html"})
    assert f"Freed</th><td>1 key, {size} bytes</td>".encode() in page.data
    assert b"once idle for 1 h." in page.data, "durations for people, not 3600 s"


def test_durations_and_sizes_read_as_people_write_them(app: Flask) -> None:
    app.test_cli_runner().invoke(args=["cleanup"])  # nothing to free
    page = app.test_client().get("/system").get_data(as_text=True)
    assert "Freed</th><td>0 keys</td>" in page, "no '0 Bytes (0 bytes)'"
    assert "Bytes" not in page and "3600" not in page and ".0 s" not in page
    assert re.search(r"0 bit-op keys\.\s*</p>", page), "no dangling comma"


def test_status_json_via_accept_header(app: Flask) -> None:
    answer = app.test_client().get("/system", headers={"Accept": "application/json"})
    assert answer.is_json and "temporary_keys" in answer.get_json()


def test_status_when_redis_is_down_is_a_clear_503(redis_client: redis.Redis) -> None:
    app = make_app(f"redis://127.0.0.1:{free_port()}/0")
    for path in ("/system", "/system.json"):
        answer = app.test_client().get(path)
        assert answer.status_code == 503
        assert b"Redis is not answering" in answer.data
        assert b"127.0.0.1" not in answer.data


@pytest.mark.parametrize("path", ["/system", "/system.json"])
def test_status_is_not_public(app: Flask, path: str) -> None:
    """The dashboard's login rules cover it: an open dashboard answers only on localhost."""
    answer = app.test_client().get(path, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert answer.status_code == 403 and b"temporary_keys" not in answer.data


# --- the CLI


def test_cli_dry_run_deletes_nothing_and_reports_what_a_run_frees(
    app: Flask, redis_client: redis.Redis
) -> None:
    seed(redis_client)
    size = redis_client.memory_usage(IDLE_KEY)
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["cleanup", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would delete 1 temporary bit-op key (no TTL, idle >= 3600s)" in dry.output
    assert f"which would free {size} bytes" in dry.output
    assert redis_client.exists(IDLE_KEY, FRESH_KEY, TTL_KEY) == 3
    assert job.last_run(redis_client) is None  # a dry run does not count as the interval's run
    real = runner.invoke(args=["cleanup"])
    assert f"Deleted 1 temporary bit-op key (no TTL, idle >= 3600s), freeing {size} bytes" in (
        real.output
    )
    assert redis_client.exists(IDLE_KEY) == 0 and redis_client.exists(FRESH_KEY, TTL_KEY) == 2


@pytest.mark.parametrize(
    ("args", "left"),
    [
        (["cleanup", "--max-idle", "0"], {TTL_KEY}),
        (["cleanup", "--max-idle", "100000"], {IDLE_KEY, FRESH_KEY, TTL_KEY}),
        (["cleanup", "--all"], set()),
    ],
)
def test_cli_options(
    app: Flask, redis_client: redis.Redis, args: list[str], left: set[str]
) -> None:
    seed(redis_client)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    bitops = {k.decode() for k in redis_client.scan_iter(match=LAYOUT.bitop_keys_pattern())}
    assert bitops == left
    assert redis_client.exists("trackist_a_2024-5", "trackist_b_2024-5", "bitcore:segment:s") == 3
    deleted = 3 - len(left)
    noun = "key" if deleted == 1 else "keys"
    assert f"Deleted {deleted} temporary bit-op {noun} (" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cleanup", "--all", "--max-idle", "5"], "takes no --max-idle"),
        (["cleanup", "--max-idle", "-1"], "-1"),
        (["cleanup", "--max-idle", "soon"], "soon"),
    ],
)
def test_cli_bad_options_are_usage_errors(
    app: Flask, redis_client: redis.Redis, args: list[str], message: str
) -> None:
    seed(redis_client)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 2 and message in result.output
    assert redis_client.exists(IDLE_KEY, FRESH_KEY, TTL_KEY) == 3


def test_cli_while_another_run_holds_the_lock(app: Flask, redis_client: redis.Redis) -> None:
    seed(redis_client)
    lock = job.try_lock(redis_client)
    assert lock is not None
    result = app.test_cli_runner().invoke(args=["cleanup", "--all"])
    assert result.exit_code == 1 and "another cleanup is running" in result.output
    assert redis_client.exists(IDLE_KEY, FRESH_KEY, TTL_KEY) == 3
    lock.release()


def test_cli_when_redis_is_down(redis_client: redis.Redis) -> None:
    app = make_app(f"redis://127.0.0.1:{free_port()}/0")
    result = app.test_cli_runner().invoke(args=["cleanup"])
    assert result.exit_code == 1 and "cleanup failed" in result.output


# --- settings and the scheduler


@pytest.mark.parametrize(
    ("overrides", "enabled"),
    [
        ({}, True),  # unset: on, in tests too (the suite turns it off in its environment)
        ({"BITCORE_CLEANUP_ENABLED": True}, True),
        ({"TESTING": False}, True),  # production default: on
        ({"TESTING": False, "BITCORE_CLEANUP_ENABLED": False}, False),
    ],
)
def test_scheduler_switch(
    redis_url: str,
    redis_client: redis.Redis,
    overrides: dict[str, Any],
    enabled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BITCORE_CLEANUP_ENABLED")  # the defaults, as with nothing configured
    app = make_app(redis_url, BITCORE_CLEANUP_INTERVAL=3600, **overrides)
    scheduler = app.extensions["bitcore_cleanup"]
    try:
        assert scheduler.running is enabled
    finally:
        scheduler.stop()
    assert not scheduler.running


@pytest.mark.parametrize(
    ("command", "enabled"), [("cleanup", False), ("routes", False), ("run", True)]
)
def test_one_shot_cli_commands_start_no_scheduler(
    redis_url: str,
    redis_client: redis.Redis,
    command: str,
    enabled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BITCORE_CLEANUP_ENABLED")  # the defaults, as with nothing configured
    with click.Context(click.Command(command), info_name=command):
        app = make_app(redis_url, TESTING=False)
    scheduler = app.extensions["bitcore_cleanup"]
    try:
        assert scheduler.running is enabled
    finally:
        scheduler.stop()


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("BITCORE_CLEANUP_INTERVAL", 0),
        ("BITCORE_CLEANUP_INTERVAL", "hourly"),
        ("BITCORE_CLEANUP_MAX_IDLE", -5),
        ("BITCORE_CLEANUP_LOCK_TTL", 0),
    ],
)
def test_bad_settings_are_refused_at_start(redis_url: str, setting: str, value: Any) -> None:
    with pytest.raises(ValueError, match=setting):
        make_app(redis_url, **{setting: value})


def test_enabled_scheduler_runs_by_itself(redis_url: str, redis_client: redis.Redis) -> None:
    seed(redis_client)
    app = make_app(
        redis_url,
        BITCORE_CLEANUP_ENABLED=True,
        BITCORE_CLEANUP_INTERVAL=1,
        BITCORE_CLEANUP_MAX_IDLE=3600,
    )
    try:
        deadline = time.monotonic() + 30  # returns as soon as it has run; slack for a loaded CI
        while job.last_run(redis_client) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        last = job.last_run(redis_client)
        assert last is not None and last.keys == 1
        assert not redis_client.exists(IDLE_KEY) and redis_client.exists(FRESH_KEY)
        data = app.test_client().get("/system.json").get_json()
        assert data["cleanup"]["schedule"]["scheduler_thread_alive"] is True
    finally:
        app.extensions["bitcore_cleanup"].stop()


def test_eight_apps_ticking_together_run_once(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(redis_client)
    runs: list[int] = []
    real = job.cleanup

    def counted(*args: Any, **kwargs: Any) -> job.CleanupResult:
        runs.append(1)
        time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(job, "cleanup", counted)
    apps = [make_app(redis_url, BITCORE_CLEANUP_MAX_IDLE=3600) for _ in range(8)]
    barrier = threading.Barrier(len(apps))
    sleeps: list[float] = []

    def tick(app: Flask) -> None:
        barrier.wait()
        for _ in range(3):
            sleeps.append(app.extensions["bitcore_cleanup"].tick())

    threads = [threading.Thread(target=tick, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(runs) == 1 and len(sleeps) == 24
    assert all(60 <= s <= 3600 + 30 for s in sleeps)  # next wake-up: when the interval is due
    assert not redis_client.exists(IDLE_KEY)


def test_a_failing_tick_is_logged_and_retried_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    import bitcore

    dead = bitcore.BitCore(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
    scheduler = CleanupScheduler(
        dead, interval=3600, max_idle=0, lock_ttl=10, logger=logging.getLogger("test.cleanup")
    )
    with caplog.at_level(logging.ERROR, logger="test.cleanup"):
        wait = scheduler.tick()
    assert 60 <= wait <= 90  # retried after the floor, plus jitter
    assert "bitcore cleanup failed" in caplog.text
