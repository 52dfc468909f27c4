"""Real server processes: ``gunicorn wsgi:app`` with two workers (on the test Redis and on the
embedded one), and ``flask run`` stopping its embedded Redis when it is terminated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from process_support import TEST_SECRET_KEY, stop

from bitcore import embedded
from dashboard import store

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def get_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def gunicorn(
    env: dict[str, str], tmp_path: Path, *options: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = embedded.free_port()
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BITCORE_", "REDIS_URL", "SECRET_KEY"))
    }
    environ.update(
        {"BITCORE_INSTANCE_PATH": str(tmp_path / "instance"), "BITCORE_CLEANUP_ENABLED": "0"}, **env
    )
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(GUNICORN), *options, "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop(process)
        log.close()


def wait_healthy(
    process: subprocess.Popen[bytes], base: str, log: Path, seconds: float = 30
) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"gunicorn exited:\n{log.read_text()}"
        try:
            status, body = get_json(f"{base}/healthz")
            if status == 200:
                return body
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not answer /healthz within {seconds}s:\n{log.read_text()}")


def test_gunicorn_two_workers_on_redis_url(redis_url: str, tmp_path: Path) -> None:
    with gunicorn({"REDIS_URL": redis_url, "SECRET_KEY": TEST_SECRET_KEY}, tmp_path) as (
        process,
        base,
    ):
        body = wait_healthy(process, base, tmp_path / "gunicorn.log")
        assert body["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_gunicorn_refuses_to_start_without_secret_key(redis_url: str, tmp_path: Path) -> None:
    with gunicorn({"REDIS_URL": redis_url}, tmp_path) as (process, _):
        assert process.wait(timeout=30) != 0
    assert "SECRET_KEY is not set" in (tmp_path / "gunicorn.log").read_text()


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="needs Linux /proc to find gunicorn's workers"
)
def test_gunicorn_workers_share_one_embedded_redis_that_outlives_a_worker(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"SECRET_KEY": TEST_SECRET_KEY, "BITCORE_DATA_DIR": str(data_dir)}
    with gunicorn(env, tmp_path) as (process, base):
        log = tmp_path / "gunicorn.log"
        wait_healthy(process, base, log)
        deadline = time.monotonic() + 30
        while len(worker_pids(process.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the workers boot one after the other
        server_pids = [
            pid
            for pid in worker_pids(process.pid)
            if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(server_pids) == 1, "the master started the one embedded server"
        workers = [pid for pid in worker_pids(process.pid) if pid not in server_pids]
        assert len(workers) == 2
        os.kill(
            workers[0], signal.SIGTERM
        )  # a worker exits (as on max_requests); the master forks another
        time.sleep(1.0)
        for _ in range(6):
            assert wait_healthy(process, base, log)["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert not store.shutdown_embedded(data_dir), "gunicorn's exit stopped the embedded Redis"
    assert (data_dir / "appendonlydir").exists() or list(data_dir.glob("*.aof*")), (
        "it kept its data on disk"
    )


def test_flask_run_stops_its_embedded_redis_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = embedded.free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("BITCORE_", "REDIS_URL"))}
    environ.update(
        BITCORE_INSTANCE_PATH=str(tmp_path / "instance"),
        BITCORE_DATA_DIR=str(data_dir),
        BITCORE_CLEANUP_ENABLED="0",
    )
    log_path = tmp_path / "flask.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(GUNICORN.with_name("flask")), "--app", "wsgi", "run", "--port", str(port)],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(process, f"http://127.0.0.1:{port}", log_path)
            assert "keeps its data in" in log_path.read_text(), "it says where the data is"
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert not store.shutdown_embedded(data_dir), "the embedded Redis stopped with the app"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_gunicorn_without_the_config_file_leaves_the_shared_redis_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"SECRET_KEY": TEST_SECRET_KEY, "BITCORE_DATA_DIR": str(data_dir)}
    with gunicorn(env, tmp_path, "--config", "/dev/null") as (process, base):
        log = tmp_path / "gunicorn.log"
        wait_healthy(process, base, log)
        deadline = time.monotonic() + 30
        while len(worker_pids(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the second worker joins the server the first one started
        for worker in worker_pids(process.pid):
            os.kill(worker, signal.SIGTERM)  # every worker that might have started it exits
        time.sleep(1.0)
        for _ in range(4):
            assert wait_healthy(process, base, log)["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert store.shutdown_embedded(data_dir), "still running for `flask stop-redis` to stop"
