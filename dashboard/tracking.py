"""The public tracking endpoint: beacons from browsers, apps and e-mails, written to Redis bitmaps.

``POST /track`` takes one event or a batch as JSON (``application/json`` or the ``text/plain`` that
``navigator.sendBeacon`` sends); ``GET /track/p.gif?e=..&u=..&k=..`` is a pixel for ``<img>`` tags
and e-mail. No login, no session and no CSRF (the auth allow-list exempts this blueprint by name):
a configured write key gates it instead, optionally with HMAC-signed ids. What each request gets is
decided in ``dashboard.beacon_intake``; this module only routes requests to it.

Two routes lead there. The blueprint's views are the plain Flask way. In front of them, the
blueprint installs ``TrackingShortcut``, WSGI middleware that sends the same requests straight to
``beacon_intake.answer`` with a bare werkzeug request: Flask's per-request work (contexts, URL
matching, hooks, session) is about half of a single beacon's server time, and beacons are the one
route called thousands of times a second. ``BITCORE_TRACK_SHORTCUT=0`` turns it off, for an app
that needs its own Flask hooks to see beacons. Either way the answer is the same, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, request
from flask.sessions import SessionInterface, SessionMixin
from flask.wrappers import Request as FlaskRequest

from dashboard import beacon_intake
from dashboard.extensions import csrf

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PREFIX = "/track"
bp = Blueprint("tracking", __name__, url_prefix=PREFIX)
csrf.exempt(bp)

#: What the shortcut answers itself: (method, path) -> route. Anything else (``HEAD``, a wrong
#: method, an unknown path) goes on to Flask, which answers it as it answers any other URL.
_SHORTCUT_ROUTES: dict[tuple[str, str], beacon_intake.Route] = {
    ("POST", PREFIX): "collect",
    ("OPTIONS", PREFIX): "collect",
    ("GET", PREFIX + "/p.gif"): "pixel",
}


@bp.route("", methods=["POST", "OPTIONS"])
def collect() -> Any:
    """One event or a batch of events as JSON."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return beacon_intake.answer(request, "collect", app).to_response()


@bp.route("/p.gif", methods=["GET"])
def pixel() -> Any:
    """``<img src="/track/p.gif?e=email:opened&u=123&k=KEY">``: one event, answered with a GIF."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return beacon_intake.answer(request, "pixel", app).to_response()


def shortcut_route(method: str, path: str, app: Flask) -> beacon_intake.Route | None:
    """The beacon route the shortcut answers ``method path`` with, or None: not a beacon, or the
    shortcut is turned off. ``dashboard.serving`` asks it too, to run beacons on its event loop."""
    route = _SHORTCUT_ROUTES.get((method, path))
    if route is None or not app.config.get("BITCORE_TRACK_SHORTCUT", True):
        return None
    return route


class TrackingShortcut:
    """WSGI middleware: beacon requests go to ``beacon_intake`` directly, the rest to ``inner``."""

    def __init__(self, app: Flask, inner: WSGIApplication) -> None:
        self.app = app
        self.inner = inner

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = shortcut_route(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), self.app)
        if route is None:
            return self.inner(environ, start_response)
        try:
            answer = beacon_intake.answer(beacon_intake.EnvironRequest(environ), route, self.app)
        except Exception:
            # What Flask would do with a bug in a view: log it, answer 500 (JSON here).
            self.app.logger.exception("tracking: unexpected error")
            answer = beacon_intake.internal_error()
        start_response(answer.status_line, answer.headers)
        return [answer.body]


class SessionlessTracking(SessionInterface):
    """The app's session interface, except that requests under ``/track`` get Flask's null session.

    Beacons carry write keys, never a login, so opening (and re-signing) the session cookie on each
    of them is wasted work (the shortcut never opens one; this covers the views). The null
    session reads as empty and refuses writes, so nothing under ``/track`` can come to depend on a
    session by accident. Installed by the blueprint when it is registered.
    """

    def __init__(self, inner: SessionInterface, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_session(self, app: Flask, request: FlaskRequest) -> SessionMixin | None:
        path = request.path
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return None  # Flask makes it the null session
        return self.inner.open_session(app, request)

    def make_null_session(self, app: Flask) -> Any:
        return self.inner.make_null_session(app)

    def is_null_session(self, obj: object) -> bool:
        return self.inner.is_null_session(obj)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        self.inner.save_session(app, session, response)


@bp.record_once
def _install(state: Any) -> None:
    app: Flask = state.app
    app.session_interface = SessionlessTracking(app.session_interface, PREFIX)
    app.wsgi_app = TrackingShortcut(app, app.wsgi_app)  # type: ignore[method-assign]
