"""A WSGI app that reads the request and answers as a beacon does, doing nothing else: served by
the same gunicorn setup, it shows what gunicorn alone can carry on this machine right now."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"accepted":1}\n'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    start_response("200 OK", headers)
    return [BODY]
