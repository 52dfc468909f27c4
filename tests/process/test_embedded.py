"""The embedded redis-server: data survives a restart, and a second start joins the first."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bitcore import BitCore, embedded


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[], embedded.EmbeddedRedis]]:
    """``embedded.start`` on one data directory; every server it starts is stopped at the end."""
    started: list[embedded.EmbeddedRedis] = []

    def start_in_data_dir() -> embedded.EmbeddedRedis:
        server = embedded.start(tmp_path / "data")
        started.append(server)
        return server

    yield start_in_data_dir
    for server in reversed(started):
        server.stop()


def test_data_persists_across_stop_and_start(start: Callable[[], embedded.EmbeddedRedis]) -> None:
    first = start()
    assert first.owned
    assert first.url.startswith("unix://")
    b = BitCore(first.url)
    b.mark_event("active", 42)
    b.mark_unique("premium", 7)
    first.stop()
    assert first.process is not None and first.process.poll() is not None  # really stopped
    assert not embedded._answers(first.url)

    second = start()
    assert second.owned and second.url == first.url
    b = BitCore(second.url)
    assert 42 in b.MonthEvents("active")
    assert list(b.UniqueEvents("premium")) == [7]


def test_a_second_start_joins_the_running_server(
    start: Callable[[], embedded.EmbeddedRedis],
) -> None:
    owner = start()
    joiner = start()
    assert owner.owned and not joiner.owned
    assert joiner.url == owner.url and joiner.process is None
    BitCore(joiner.url).mark_unique("premium", 3)
    assert 3 in BitCore(owner.url).UniqueEvents("premium")
    joiner.stop()  # a joiner never stops a server it did not start
    assert embedded._answers(owner.url)
    owner.stop()
    assert not embedded._answers(owner.url)


def test_a_tcp_server_without_persistence(tmp_path: Path) -> None:
    server = embedded.start(tmp_path, port=0, persist=False)
    try:
        assert server.owned and server.url.startswith("redis://127.0.0.1:")
        assert server.client().ping()
        assert server.client().config_get("appendonly") == {"appendonly": "no"}
    finally:
        server.stop()


def test_long_data_directories_get_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    path = embedded._socket_path(deep)
    assert len(str(path)) <= 100
    assert path == embedded._socket_path(deep)  # the same directory always finds the same socket
    assert path != embedded._socket_path(tmp_path / "other" / ("y" * 120))


def test_the_server_keeps_freed_memory_instead_of_faulting_it_in_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libc malloc's trim and mmap thresholds are raised in the server's environment
    (redis-server rewrites its own /proc environ for its process title, so the launch is watched
    instead)."""
    launched: list[dict[str, str]] = []
    real_popen = subprocess.Popen

    def watching(*args: Any, **kwargs: Any) -> Any:
        launched.append(kwargs["env"])
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(embedded.subprocess, "Popen", watching)
    server = embedded.start(tmp_path, port=0, persist=False)
    try:
        assert server.client().ping()
        [env] = launched
        assert env["MALLOC_TRIM_THRESHOLD_"] == str(128 << 20)
        assert env["MALLOC_MMAP_THRESHOLD_"] == str(64 << 20)  # big blocks stay on the heap
        assert env["PATH"] == os.environ["PATH"]  # the rest of the environment is passed on
    finally:
        server.stop()


def test_maxmemory_with_noeviction_by_default_and_as_asked(tmp_path: Path) -> None:
    """No embedded server runs without a memory cap: past it Redis refuses writes instead of
    the kernel's OOM killer ending it, and it never evicts data to make room."""
    default = embedded.start(tmp_path / "default", port=0, persist=False)
    asked = embedded.start(tmp_path / "asked", port=0, persist=False, maxmemory="64mb")
    try:
        config = default.client().config_get("maxmemory*")
        assert int(config["maxmemory"]) == embedded.default_maxmemory()
        assert 256 << 20 <= embedded.default_maxmemory() <= 4 << 30
        assert config["maxmemory-policy"] == "noeviction"
        assert int(asked.client().config_get("maxmemory")["maxmemory"]) == 64 << 20
    finally:
        default.stop()
        asked.stop()


@pytest.mark.parametrize("size", ["0", "lots", "-5mb", "5 tb"])
def test_a_bad_maxmemory_is_refused(size: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        embedded.check_maxmemory(size)


def test_locate_takes_a_url_when_set_and_starts_nothing(tmp_path: Path) -> None:
    where = embedded.locate("redis://db:6379/1", tmp_path / "data", maxmemory="64mb")
    assert where == embedded.RedisLocation("redis://db:6379/1", None)
    assert not (tmp_path / "data").exists(), "no embedded server was started"


def test_locate_without_a_url_starts_the_embedded_server_then_joins_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = embedded.locate(None, tmp_path / "data", maxmemory="64mb")
    try:
        assert first.server is not None and first.server.owned and first.url == first.server.url
        assert first.server.client().config_get("maxmemory")["maxmemory"] == str(64 << 20)
        joined = embedded.locate("", tmp_path / "data")
        assert joined.server is not None and not joined.server.owned and joined.url == first.url
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.setenv("BITCORE_DATA_DIR", str(tmp_path / "data"))
        default = embedded.default_redis()  # the library's default asks the same question
        assert default.connection_pool.connection_kwargs["path"] == first.url.removeprefix(
            "unix://"
        )
    finally:
        assert first.server is not None
        first.server.stop()


def test_shutdown_stops_the_server_of_a_data_directory_whoever_started_it(
    start: Callable[[], embedded.EmbeddedRedis], tmp_path: Path
) -> None:
    server = start()
    server.client().set("kept", "1")
    assert embedded.shutdown(tmp_path / "data")
    assert server.process is not None and server.process.wait(timeout=10) == 0
    assert not embedded.shutdown(tmp_path / "data"), "nothing answers any more"
    assert not embedded.shutdown(tmp_path / "nothing-here")
    assert start().client().get("kept") == b"1", "it saved on the way down"
