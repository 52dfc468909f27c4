"""The app factory: configuration from the environment, the secret key, and the embedded Redis."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from dashboard_support import make_app

from bitcore import BitCore, embedded
from dashboard import config, create_app, store


@pytest.mark.parametrize(
    ("environ", "key", "expected"),
    [
        ({}, "REDIS_URL", None),
        ({"REDIS_URL": "redis://db:6379/1"}, "REDIS_URL", "redis://db:6379/1"),
        ({}, "BITCORE_KEY_PREFIX", "trackist_"),
        ({}, "BITCORE_TIMEZONE", "UTC"),
        ({"BITCORE_TIMEZONE": "Europe/Berlin"}, "BITCORE_TIMEZONE", "Europe/Berlin"),
        ({}, "SESSION_COOKIE_SECURE", False),
        ({"BITCORE_SECURE_COOKIES": "1"}, "SESSION_COOKIE_SECURE", True),
        ({"BITCORE_SECURE_COOKIES": "no"}, "SESSION_COOKIE_SECURE", False),
        ({}, "BITCORE_USERS", ""),
        ({}, "BITCORE_DEMO", False),
        ({"BITCORE_DEMO": "yes"}, "BITCORE_DEMO", True),
        ({"BITCORE_DEMO": ""}, "BITCORE_DEMO", False),
        ({}, "SECRET_KEY", None),
    ],
)
def test_settings_from_environment(environ: dict[str, str], key: str, expected: object) -> None:
    assert config.from_environ(environ)[key] == expected


def test_environment_reaches_the_app(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.setenv("BITCORE_KEY_PREFIX", "other_")
    monkeypatch.setenv("BITCORE_INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.delenv("BITCORE_USERS", raising=False)
    app = create_app({"TESTING": True})
    client: BitCore = app.extensions["bitcore"]
    assert app.config["SECRET_KEY"] == "from-env"
    assert client.keys.prefix == "other_"
    assert app.instance_path == str(tmp_path / "inst")
    assert store.embedded_server(app) is None


def test_the_app_asks_the_library_where_its_redis_is(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One decision "REDIS_URL or the embedded Redis": ``bitcore.embedded.locate``'s."""
    asked: list[tuple[object, ...]] = []
    real = embedded.locate

    def locate(url: str | None, data_dir: Path, **options: object) -> embedded.RedisLocation:
        asked.append((url, data_dir, options))
        return real(url, data_dir, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(embedded, "locate", locate)
    app = make_app(redis_url, tmp_path, BITCORE_REDIS_MAXMEMORY="64mb")
    [(url, data_dir, options)] = asked
    assert (url, data_dir) == (redis_url, store.data_dir(app))
    assert options["maxmemory"] == "64mb"
    assert app.extensions["bitcore"].ping() and store.embedded_server(app) is None


def test_development_secret_key_is_random_and_kept(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    first = make_app(redis_url, tmp_path, SECRET_KEY=None)
    second = make_app(redis_url, tmp_path, SECRET_KEY=None)
    other = make_app(redis_url, tmp_path / "elsewhere", SECRET_KEY=None)
    assert len(first.config["SECRET_KEY"]) == 64
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] != other.config["SECRET_KEY"]
    key_file = tmp_path / "instance" / "secret_key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_gunicorn_without_secret_key_refuses_to_start(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/23.0.0")
    with pytest.raises(
        RuntimeError, match="SECRET_KEY is not set: refusing to start under gunicorn"
    ):
        make_app(redis_url, tmp_path, SECRET_KEY=None)
    assert not (tmp_path / "instance" / "secret_key").exists()
    strong = "6f1c0a4e9b2d7c35a8e0f1b2c3d4e5f6"
    assert make_app(redis_url, tmp_path, SECRET_KEY=strong).config["SECRET_KEY"] == strong


def test_bad_users_setting_stops_the_start(redis_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="BITCORE_USERS entry 1"):
        make_app(redis_url, tmp_path, BITCORE_USERS="alice:hunter2")


@pytest.mark.parametrize(
    ("server_software", "master_pid", "may_stop"),
    [
        ("", None, True),  # flask run, flask demo: whoever starts it stops it
        ("gunicorn/23.0.0", None, False),  # a worker, gunicorn.conf.py not used: leave it running
        ("gunicorn/23.0.0", "self", True),  # gunicorn's master (preload_app)
        ("gunicorn/23.0.0", "1", False),  # a worker forked from master 1
    ],
)
def test_who_may_stop_the_embedded_redis(
    monkeypatch: pytest.MonkeyPatch, server_software: str, master_pid: str | None, may_stop: bool
) -> None:
    monkeypatch.setenv("SERVER_SOFTWARE", server_software)
    if master_pid is None:
        monkeypatch.delenv(store.MASTER_PID_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(
            store.MASTER_PID_VARIABLE, str(os.getpid()) if master_pid == "self" else master_pid
        )
    assert store.may_stop_embedded() is may_stop


def test_embedded_redis_is_shared_keeps_data_and_is_stopped_only_by_its_owner(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    settings = {"REDIS_URL": None, "BITCORE_DATA_DIR": str(data_dir)}
    first = make_app("", tmp_path, **settings)
    server = store.embedded_server(first)
    assert server is not None and server.owned and server.data_dir == data_dir.resolve()
    page = first.test_client().get("/").get_data(as_text=True)
    assert str(data_dir.resolve()) in page, "the page says where the data is kept"
    first.extensions["bitcore"].mark_event("active", 42)

    second = make_app("", tmp_path, **settings)
    joined = store.embedded_server(second)
    assert joined is not None and not joined.owned and joined.url == server.url
    assert 42 in second.extensions["bitcore"].MonthEvents("active")

    store._stop_in(server, os.getpid() + 1)  # what a forked gunicorn worker runs at exit: nothing
    assert first.extensions["bitcore"].ping()
    server.stop()
    assert not store.shutdown_embedded(data_dir), "it is stopped"

    restarted = make_app("", tmp_path, **settings)
    assert 42 in restarted.extensions["bitcore"].MonthEvents("active"), "data survives a restart"
    assert store.shutdown_embedded(data_dir)
    assert not store.shutdown_embedded(data_dir)


def test_demo_flag_loads_demo_data_once(
    redis_client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bitcore import demo

    calls: list[int] = []
    real = demo.load_demo
    monkeypatch.setattr(
        demo, "load_demo", lambda client: calls.append(1) or real(client, users=300, days=20)
    )
    with caplog.at_level(logging.DEBUG, logger="dashboard"):
        app = make_app(redis_url, tmp_path, BITCORE_DEMO=True)
    names = set(app.extensions["bitcore"].get_event_names())
    assert {"signup", "active", "song:played", "churned", "ios"} <= names
    [loaded] = [r for r in caplog.records if "loaded demo data" in r.getMessage()]
    assert loaded.levelno == logging.INFO, "an ordinary start is no warning"
    assert "3 saved segments" in loaded.getMessage()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="dashboard"):
        make_app(redis_url, tmp_path, BITCORE_DEMO=True)
    assert calls == [1], "a second start finds events and loads nothing"
    [skipped] = [r for r in caplog.records if "demo data not loaded" in r.getMessage()]
    assert skipped.levelno == logging.INFO and "already holds" in skipped.getMessage()


def test_the_embedded_redis_start_is_logged_as_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="dashboard"):
        app = make_app("", tmp_path / "one")
        assert app.logger.getEffectiveLevel() == logging.INFO, "INFO lines reach the log"
    try:
        [started] = [r for r in caplog.records if "no REDIS_URL set" in r.getMessage()]
        assert started.levelno == logging.INFO
    finally:
        store.shutdown_embedded(store.data_dir(app))


def test_a_setting_that_does_not_parse_names_its_variable() -> None:
    with pytest.raises(ValueError, match=r"^BITCORE_TRACK_MAX_UID='lots' is not valid"):
        config.from_environ({"BITCORE_TRACK_MAX_UID": "lots"})


SECOND_SIGNAL_SCRIPT = """
import atexit, os, signal, sys, time
from dashboard import store

class SlowServer:
    def stop(self):
        os.kill(os.getpid(), signal.{signal})  # the second signal arrives while saving
        time.sleep(0.3)
        open(sys.argv[1], "w").write("saved")

store._exit_cleanly_on_sigterm()
atexit.register(store._stop_in, SlowServer(), os.getpid())
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
"""


@pytest.mark.process
@pytest.mark.parametrize("second", ["SIGTERM", "SIGINT"])
def test_a_second_signal_does_not_cut_the_embedded_save_short(tmp_path: Path, second: str) -> None:
    marker = tmp_path / "saved"
    script = SECOND_SIGNAL_SCRIPT.replace("{signal}", second)
    done = subprocess.run(
        [sys.executable, "-c", script, str(marker)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 128 + 15, done.stderr
    assert marker.read_text() == "saved", done.stderr
