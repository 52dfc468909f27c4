"""``flask --app wsgi forget-user ID [--dry-run]``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import redis
from dashboard_support import make_app


def _app_with_users(redis_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    app = make_app(redis_url, tmp_path)
    client = app.extensions["bitcore"]
    client.mark_many([("active", 7, datetime(2025, 1, 2)), ("active", 8, datetime(2025, 1, 2))])
    return app, client


def test_forget_user_clears_the_bit_and_says_how_many_keys(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    app, client = _app_with_users(redis_url, tmp_path)
    dry = app.test_cli_runner().invoke(args=["forget-user", "7", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would clear user 7's bit in 4 keys" in dry.output
    assert 7 in client.MonthEvents("active", 2025, 1)
    real = app.test_cli_runner().invoke(args=["forget-user", "7"])
    assert real.exit_code == 0, real.output
    assert "Cleared user 7's bit in 4 keys (4 of events, 0 cached results)" in real.output
    assert 7 not in client.MonthEvents("active", 2025, 1)
    assert 8 in client.MonthEvents("active", 2025, 1)
    again = app.test_cli_runner().invoke(args=["forget-user", "7"])
    assert "in 0 keys" in again.output


def test_forget_user_refuses_nonsense(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    app, client = _app_with_users(redis_url, tmp_path)
    for args in (
        ["forget-user", "-5"],
        ["forget-user", "99999999999"],
        ["forget-user", "abc"],
        ["forget-user", "7", "--string"],
        ["forget-user", "7", "--batch", "0"],
    ):
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 2, (args, result.output)
    assert 7 in client.MonthEvents("active", 2025, 1)
