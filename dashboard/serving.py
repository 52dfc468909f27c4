"""The gunicorn worker that serves the app: connections on an asyncio event loop, beacons
answered on the loop, every other request in a thread.

gunicorn's own threaded worker (gthread) spends about 300 µs of CPU on each request before the
app sees it, twice what its asyncio (ASGI) worker spends; for a single beacon that is about as
much as the app's whole answer, and it holds the endpoint well under the asyncio worker's rate
(``bench/beacons.py --worker-class gthread``; numbers in ``docs/benchmarks.md``). ``Worker`` is
that asyncio worker serving the same WSGI app:

* a beacon (a path under ``/track``, where ``create_app`` mounts the tracking app) is read and
  answered on the loop, by the whole WSGI app (proxy fix, then the mounted tracking app), run by
  ``bitcore.aio``: its one Redis round trip is awaited on an asyncio connection, so the loop
  serves other connections meanwhile, without a hop to a thread and back (that hop cost more CPU
  than the rest of the beacon's answer; ``bench/README.md``);
* anything else (dashboard pages, which may count cohorts for a while) runs in a pool of
  ``threads`` threads, through ``a2wsgi``.

The app stays a plain WSGI app: ``flask run`` and any other WSGI server serve it unchanged, and
answer exactly the same (``tests/process/test_serving.py`` compares them).

Nothing blocks the loop on Redis. A Redis that hangs (accepts connections, never answers) holds
the beacons asking it for one socket timeout (``BITCORE_REDIS_TIMEOUT``), each awaiting its reply,
and pages and other connections go on being served meanwhile; after that timeout the circuit
breaker (``bitcore/breaker.py``) refuses every Redis call at once for
``BITCORE_REDIS_BREAKER_SECONDS``, so beacons and pages answer 503 without waiting, then lets one
probe through (``tests/process/test_hung_redis.py``).
"""

from __future__ import annotations

import errno
import io
import os
import socket
from typing import Any

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ
from flask import Flask
from gunicorn.workers.gasgi import ASGIWorker

from bitcore import aio
from dashboard.tracking import PREFIX
from dashboard.tracking.intake import body_limit

Scope = dict[str, Any]


class BeaconsOnTheLoop:
    """ASGI app over a Flask app: beacon requests read and answered on the loop (their Redis round
    trip awaited), the rest in the pages' threads."""

    def __init__(self, app: Flask, threads: int) -> None:
        self.app = app
        self.threaded = WSGIMiddleware(_whole_body(app), workers=threads)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        # With the id map on, a beacon's write also looks ids up through redis-py, which must not
        # block the loop: those beacons wait in the pages' threads (a hung Redis still freezes
        # nothing), the price being the thread hop.
        inline = not self.app.config.get("BITCORE_ID_MAPPING", False)
        if inline and scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self._inline(scope, receive, send)
        else:
            await self.threaded(scope, receive, send)  # type: ignore[arg-type]

    async def _inline(self, scope: Scope, receive: Any, send: Any) -> None:
        # At most one byte past the limit is read: enough for the app to refuse the body as too
        # large, without holding a huge one in memory; none when its announced length is too large.
        limit = body_limit(self.app.config) + 1
        parts: list[bytes] = []
        size = 0
        more = _announced_length(scope) < limit
        while more and size < limit:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            more = message.get("more_body", False)
        body = b"".join(parts)
        environ: dict[str, Any] = build_environ(scope, io.BytesIO(body[:limit]))  # type: ignore[arg-type, assignment]
        # The body ends where the stream ends (a chunked one has no length): werkzeug reads it.
        environ["wsgi.input_terminated"] = True
        status, headers, content = await aio.run(self._call, environ)
        await send(
            {
                "type": "http.response.start",
                "status": int(status[:3]),
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """The WSGI app's whole answer to ``environ``: status, headers, body."""
        answer: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> None:
            answer[:] = [status, headers]

        chunks = self.app(environ, start_response)  # type: ignore[arg-type]
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        status, headers = answer
        return status, headers, content


def _whole_body(app: Any) -> Any:
    """``app``, told that its request body ends where the stream ends, which is true of a2wsgi's:
    without ``wsgi.input_terminated``, werkzeug reads a chunked body (no length) as empty."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return wsgi


def _announced_length(scope: Scope) -> int:
    """The request's ``Content-Length``, 0 if it has none or an unreadable one (the app decides)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


class Worker(ASGIWorker):
    """gunicorn's asyncio worker, serving the (WSGI) app it loads through ``BeaconsOnTheLoop``
    with gunicorn's ``threads`` setting as the size of the thread pool."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """The asyncio worker warns that it ignores ``threads``; this one uses it."""

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app: Any = self.asgi  # type: ignore[has-type]  # ``wsgi:app``: the Flask app
        self.asgi = BeaconsOnTheLoop(app, max(1, self.cfg.threads))


def refuse_taken_addresses(server: Any) -> None:
    """gunicorn's ``on_starting`` hook: stop with a clear error if another process already listens
    on an address this gunicorn is to serve.

    Each worker binds its own socket with ``SO_REUSEPORT`` (``gunicorn.conf.py``), which the kernel
    also lets a second, unrelated gunicorn do on the same address: it would silently take a share
    of the new connections, with its own secret and keys. A probe bound without ``SO_REUSEPORT``
    fails exactly when someone listens there. Skipped when gunicorn re-executes itself (USR2) or
    systemd hands it its sockets: the address is meant to be held then."""
    if "GUNICORN_PID" in os.environ or os.environ.get("LISTEN_FDS"):
        return
    for address in server.cfg.address:
        holder = _listener_on(address)
        if holder:
            raise RuntimeError(
                f"{holder} is already in use by another process (another gunicorn?); refusing "
                "to share it. Stop that process or choose another address (BITCORE_BIND)."
            )


def _listener_on(address: Any) -> str | None:
    """``address`` as text if something listens on it, else None."""
    if isinstance(address, str):  # a unix socket path: taken if something answers there
        with socket.socket(socket.AF_UNIX) as probe:
            return f"unix:{address}" if probe.connect_ex(address) == 0 else None
    if not isinstance(address, tuple):
        return None  # a file descriptor handed over: nothing to check
    host, port = address[0], int(address[1])
    for family, kind, proto, _name, sockaddr in socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            # TIME_WAIT leftovers of an earlier run are no listener: gunicorn may bind over them.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return f"{host}:{port}"
    return None
