"""The app's one ``BitCore`` client: made at start-up from the config, reached from views through
here.

With no ``REDIS_URL`` the app runs on an embedded redis-server keeping its data under
``instance/`` (the same default as the library's facade, so a script that calls
``bitcore.mark_event`` from the checkout and the dashboard see the same data). Who stops that
server matters once there are several processes:

- ``flask run`` / ``flask demo`` (one process): whoever started it stops it when that process exits.
- ``gunicorn wsgi:app`` with the repository's ``gunicorn.conf.py`` (``preload_app = True``): the
  app is made once in gunicorn's master, which starts the server; the forked workers share it, and
  only the master stops it on exit (the stop is guarded by process id, since workers inherit the
  master's ``atexit``).
- gunicorn without that file: each worker joins the server the first one started
  (``bitcore.embedded`` holds a file lock while it decides, so only one is started) and nobody
  stops it, so a worker that exits cannot pull it from under the others;
  ``flask --app wsgi stop-redis`` stops it.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from pathlib import Path

from flask import Flask, current_app

import bitcore
from bitcore import embedded, idmap
from bitcore.connection import connect_url

#: Set by ``gunicorn.conf.py`` in gunicorn's master: the one process allowed to stop the embedded
#: server.
MASTER_PID_VARIABLE = "BITCORE_GUNICORN_MASTER_PID"


def running_under_gunicorn() -> bool:
    """True in gunicorn's master and workers (its arbiter exports
    ``SERVER_SOFTWARE=gunicorn/...``)."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn")


def data_dir(app: Flask) -> Path:
    """Where the embedded Redis keeps its data: ``BITCORE_DATA_DIR``, else the instance folder."""
    return Path(app.config.get("BITCORE_DATA_DIR") or app.instance_path).resolve()


def may_stop_embedded() -> bool:
    """Whether this process should stop an embedded server it started, when it exits."""
    if not running_under_gunicorn():
        return True
    return os.environ.get(MASTER_PID_VARIABLE) == str(os.getpid())


def _stop_in(server: embedded.EmbeddedRedis, pid: int) -> None:
    """``atexit`` hook that stops ``server`` only in the process that started it, not in forked
    children. A second Ctrl-C or SIGTERM while it saves (impatient hands, ``timeout`` passing a
    signal on) is ignored: it would cut the save short. The stop is bounded by its socket
    timeout."""
    if os.getpid() == pid:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server.stop()


def own_embedded(server: embedded.EmbeddedRedis, stop_at_exit: bool) -> None:
    """Take charge of stopping the embedded ``server`` (started, or joined, by
    ``embedded.locate``; processes starting at the same moment, like gunicorn workers, are
    serialised by ``embedded.start``'s lock).

    ``embedded.start`` would stop a server it started when the process exits; that is replaced by a
    hook that does so only in this very process, and only if ``stop_at_exit``. Then the server also
    ends (SIGTERM: it saves first) if this process is killed outright (gunicorn's master
    SIGKILLed), so it never runs on unowned; otherwise (workers of a gunicorn without its config
    file) it outlives whoever started it, as the others need it.
    """
    if server.owned:
        atexit.unregister(server.stop)
        if stop_at_exit:
            atexit.register(_stop_in, server, os.getpid())
            _exit_cleanly_on_sigterm()


def _exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM (``kill``, ``docker stop``) run ``atexit`` hooks, so the embedded server is
    stopped and saved; Python's default would end the process on the spot. Only in the main thread,
    and only if nobody else (gunicorn, a test runner) handles SIGTERM already."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def shutdown_embedded(directory: Path) -> bool:
    """Shut down (saving) the embedded server of ``directory`` if one answers. True if one did."""
    return embedded.shutdown(directory)


def init_app(app: Flask) -> None:
    """Connect to ``REDIS_URL``, or start (or join) the embedded Redis under the data directory:
    the library decides which (``bitcore.embedded.locate``), the app only owns the server's stop.

    Every connection of the app goes through one client with ``BITCORE_REDIS_TIMEOUT`` as its
    socket timeout and a circuit breaker (``bitcore.breaker``): after a failure or a timeout, Redis
    is not asked for ``BITCORE_REDIS_BREAKER_SECONDS`` and every request needing it answers 503 at
    once."""
    stop_at_exit = may_stop_embedded()
    where = embedded.locate(
        app.config.get("REDIS_URL"),
        data_dir(app),
        maxmemory=app.config.get("BITCORE_REDIS_MAXMEMORY"),
        die_with_process=stop_at_exit,
    )
    server = where.server
    if server is not None:
        own_embedded(server, stop_at_exit)
        app.extensions["bitcore_embedded"] = server
        app.logger.info(
            "bitcore: no REDIS_URL set; embedded Redis on %s keeps its data in %s%s",
            server.url,
            server.data_dir,
            ""
            if not server.owned or stop_at_exit
            else " (left running when workers exit: stop it with `flask --app wsgi stop-redis`)",
        )
    app.extensions["bitcore"] = bitcore.BitCore(
        connect_url(  # a Redis Cluster client when BITCORE_REDIS_CLUSTER=1: the sharded layout
            where.url,
            socket_timeout=float(app.config["BITCORE_REDIS_TIMEOUT"]),
            breaker_seconds=float(app.config["BITCORE_REDIS_BREAKER_SECONDS"]),
        ),
        key_prefix=app.config["BITCORE_KEY_PREFIX"],
        layout=app.config.get("BITCORE_LAYOUT") or None,  # None: flat, or sharded on a cluster
        timezone=app.config["BITCORE_TIMEZONE"],
        track_hourly=app.config["BITCORE_TRACK_HOURLY"],
        remember_bitop_keys=0,  # workers live for months; their bit-op keys expire by TTL
        id_mapping=bool(app.config.get("BITCORE_ID_MAPPING", False)),
        id_map_buckets=int(app.config.get("BITCORE_ID_MAP_BUCKETS") or idmap.DEFAULT_BUCKETS),
        # every segment the app evaluates, on the segments pages or as a report's step
        segment_max_bytes=int(app.config.get("BITCORE_SEGMENT_MAX_BYTES") or 0) or None,
    )


def embedded_server(app: Flask | None = None) -> embedded.EmbeddedRedis | None:
    """The embedded server the app runs on, or ``None`` when it uses ``REDIS_URL``."""
    return (app or current_app).extensions.get("bitcore_embedded")


def client() -> bitcore.BitCore:
    """The current app's client."""
    return current_app.extensions["bitcore"]  # type: ignore[no-any-return]
