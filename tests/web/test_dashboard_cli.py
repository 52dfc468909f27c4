"""``flask --app wsgi demo | hash-password | stop-redis``."""

from __future__ import annotations

from pathlib import Path

import redis
from dashboard_support import make_app
from werkzeug.security import check_password_hash

from dashboard import auth, store


def test_demo_command_loads_data(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    app = make_app(redis_url, tmp_path)
    result = app.test_cli_runner().invoke(
        args=["demo", "--users", "500", "--days", "14", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "for 500 users over 14 days" in result.output
    names = set(app.extensions["bitcore"].get_event_names())
    assert names == {
        "signup",
        "active",
        "song:played",
        "project:created",
        "teammate:invited",
        "ios",
        "android",
        "web",
    }


def test_demo_command_refuses_nonsense(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    app = make_app(redis_url, tmp_path)
    result = app.test_cli_runner().invoke(args=["demo", "--users", "0"])
    assert result.exit_code == 2 and "--users" in result.output
    assert app.extensions["bitcore"].get_event_names() == []


def test_hash_password_makes_a_usable_users_entry(redis_url: str, tmp_path: Path) -> None:
    app = make_app(redis_url, tmp_path)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["hash-password", "--username", "alice", "--password", "s3cret"])
    assert result.exit_code == 0, result.output
    users = auth.parse_users(result.output.strip())
    assert check_password_hash(users["alice"], "s3cret") and not check_password_hash(
        users["alice"], "x"
    )
    prompted = runner.invoke(args=["hash-password"], input="pw\npw\n")
    assert prompted.exit_code == 0 and check_password_hash(
        prompted.output.strip().splitlines()[-1], "pw"
    )
    assert runner.invoke(args=["hash-password"], input="a\nb\n").exit_code != 0


def test_stop_redis(tmp_path: Path, redis_url: str) -> None:
    external = make_app(redis_url, tmp_path)
    refused = external.test_cli_runner().invoke(args=["stop-redis"])
    assert refused.exit_code == 1 and "REDIS_URL is set" in refused.output

    data_dir = tmp_path / "data"
    running = make_app("", tmp_path, REDIS_URL=None, BITCORE_DATA_DIR=str(data_dir))
    joined = make_app("", tmp_path, REDIS_URL=None, BITCORE_DATA_DIR=str(data_dir))
    result = joined.test_cli_runner().invoke(args=["stop-redis"])
    assert result.exit_code == 0 and "Stopped the embedded Redis" in result.output
    assert not store.shutdown_embedded(data_dir), "nothing answers any more"
    assert running.extensions["bitcore_embedded"].owned

    fresh = make_app("", tmp_path, REDIS_URL=None, BITCORE_DATA_DIR=str(data_dir))
    result = fresh.test_cli_runner().invoke(args=["stop-redis"])
    assert "No embedded Redis was running" in result.output
    assert not store.shutdown_embedded(data_dir)


def test_rebuild_first_time_command_resumes_and_restarts(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    import bitcore
    from bitcore import first_time, periods

    plain = bitcore.BitCore(redis_client, track_first_time=False)
    plain.mark_many([("a", 1, periods.start(periods.day(2024, 5, 6)))])
    plain.mark_many([("a", 1, periods.start(periods.day(2024, 5, 7)))])
    plain.mark_many([("b", 2, periods.start(periods.day(2024, 5, 7)))])
    app = make_app(redis_url, tmp_path)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rebuild-first-time"])
    assert result.exit_code == 0, result.output
    assert "Rebuilt 2 events (7 first-time bitmaps); 0 were done" in result.output
    b = bitcore.BitCore(redis_client)
    assert list(first_time.first_time_bitmap(b, "a", periods.day(2024, 5, 6))) == [1]
    assert list(first_time.first_time_bitmap(b, "a", periods.day(2024, 5, 7))) == []
    again = runner.invoke(args=["rebuild-first-time"])
    assert "Rebuilt 0 events" in again.output and "2 were done already" in again.output
    assert "Rebuilt 2 events" in runner.invoke(args=["rebuild-first-time", "--restart"]).output
