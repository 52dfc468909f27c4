"""Browser-side protections, app-wide: security headers on every answer, and report links from
other sites held back.

Headers (on every answer Flask makes: pages, JSON, static files, errors; not on ``/track``'s JSON
and GIF answers for other sites' pages, which keep their own CORS headers, answered alike by the
shortcut before Flask and by the tracking blueprint):

* ``Content-Security-Policy``: scripts, styles, images and connections from this site only, no
  script at all inline; inline *style attributes* are allowed (``style-src-attr``), since the
  cohort table colours each cell with one, but no inline ``<style>`` element; forms post only
  here; ``frame-ancestors 'none'`` so no other site can frame the delete and edit forms;
* ``X-Frame-Options: DENY`` (the same, for old browsers), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin`` (report URLs, which carry their query, never leave the site).

Cross-site GETs: a link on another site (``Sec-Fetch-Site: cross-site``) to a report would run
it with the visitor's session (``SameSite=Lax`` lets top-level GETs through) or, on an open
localhost dashboard, with no cookie at all: a page could make every visitor's browser run a heavy
funnel. Such a GET gets a small 403 page instead, with no Redis work, that says where the link
came from and offers a link to open the report from here. Same-site, same-origin, typed or
bookmarked URLs (``none``) and clients that send no such header pass.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from flask.typing import ResponseReturnValue

from dashboard import auth, errors

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        # style-src is what browsers without CSP level 3 use; the two below override it elsewhere
        "style-src 'self' 'unsafe-inline'",
        "style-src-elem 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: Endpoints any site may link to: nothing heavy behind them.
LINKABLE_ENDPOINTS = frozenset({"static", "auth.login", "health.healthz"})
LINKABLE_BLUEPRINTS = frozenset({"tracking"})


def add_security_headers(response: Response) -> Response:
    """Every header of ``SECURITY_HEADERS`` the view did not set itself; not on the tracking
    endpoint's answers, which must be the same through Flask as through the shortcut."""
    if request.blueprint in LINKABLE_BLUEPRINTS:
        return response
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def hold_cross_site_links() -> ResponseReturnValue | None:
    """A GET of a dashboard page that another site's link started: a small page instead."""
    if request.method not in {"GET", "HEAD"}:
        return None  # POSTs need a CSRF token
    if request.headers.get("Sec-Fetch-Site") != "cross-site":
        return None
    if request.endpoint in LINKABLE_ENDPOINTS or request.blueprint in LINKABLE_BLUEPRINTS:
        return None
    here = auth.safe_next(request.full_path.rstrip("?"))
    current_app.logger.info("cross-site link to %s held back", request.path)
    return errors.error_page(
        403,
        "Opened from another site",
        "This link came from another site, so the page was not run: a report can take a while "
        "to compute, and a link elsewhere should not start it for you. Open it from here if you "
        "meant to.",
        link=here,
    )


def init_app(app: Flask) -> None:
    """Called before ``auth.init_app``: the cross-site check runs before the login check, which
    asks Redis."""
    app.before_request(hold_cross_site_links)
    app.after_request(add_security_headers)
