"""The public tracking endpoint as one WSGI app: beacons from browsers, apps and e-mails.

``POST /track`` takes one event or a batch as JSON (``application/json`` or the ``text/plain`` that
``navigator.sendBeacon`` sends); ``GET /track/p.gif?e=..&u=..&k=..`` is a pixel for ``<img>`` tags
and e-mail. No login, no session, no CSRF: a configured write key gates it instead, optionally
with HMAC-signed ids.

``create_app`` mounts ``TrackingApp`` at ``/track`` in front of Flask (werkzeug's
``DispatcherMiddleware``), so Flask never sees a beacon: its per-request work (contexts, URL
matching, hooks, session) was about half of a single beacon's server time, and beacons are the
one route called thousands of times a second. This module routes a request (``PATH_INFO`` under
the mount, and method) to ``intake.answer``, which decides the answer, and hands that to the
server; it answers 404 and 405 itself, and a bug with a logged 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bitcore import BitCore
from dashboard.tracking import intake

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: Where ``create_app`` mounts the endpoint.
PREFIX = "/track"

#: The routes, by path under ``PREFIX``: their name and the methods they take.
ROUTES: dict[str, tuple[intake.Route, tuple[str, ...]]] = {
    "": ("collect", ("POST", "OPTIONS")),
    "/p.gif": ("pixel", ("GET", "HEAD")),
}


class TrackingApp:
    """The tracking endpoint: a WSGI app answering the paths under the mount point it is given
    (``PATH_INFO`` is ``""`` for ``/track`` itself, ``/p.gif`` for the pixel)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        client: Callable[[], BitCore],
        logger: logging.Logger,
    ) -> None:
        self.endpoint = intake.Endpoint(config, client, logger)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answer(environ)
        start_response(answer.status_line, answer.headers)
        # A HEAD gets a GET's headers (Content-Length included) and no body.
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [answer.body]

    def answer(self, environ: WSGIEnvironment) -> intake.Answer:
        """The whole answer to ``environ``."""
        route = ROUTES.get(environ.get("PATH_INFO", ""))
        if route is None:
            return intake.not_found()
        name, methods = route
        request = intake.BeaconRequest(environ)  # type: ignore[arg-type]
        if request.method not in methods:
            return intake.method_not_allowed(methods)
        try:
            return intake.answer(request, name, self.endpoint)
        except Exception:
            # What Flask does with a bug in a view: log it, answer 500 (JSON here).
            self.endpoint.logger.exception("tracking: unexpected error")
            return intake.internal_error()
