"""Who may see the dashboard: session login when users are configured, else localhost only.

Enforced app-wide in one ``before_request`` hook with an allow-list (the login page, static files
and ``/healthz``), so a new blueprint is protected without a decorator. The tracking endpoint is
public too, but Flask never sees it: it is its own WSGI app, mounted at ``/track`` in
``create_app``, gated by write keys.

Login attempts are rate-limited per client address (``BITCORE_LOGIN_RATE_LIMIT`` per
``BITCORE_LOGIN_RATE_WINDOW`` seconds, counted in Redis so the limit holds across gunicorn
workers): beyond it the form answers 429 with ``Retry-After``, even for the right password, so a
password cannot be guessed at the speed of the network.

A login session lives ``BITCORE_SESSION_DAYS`` (7) days and is also kept server-side: the signed
cookie names a random session id whose key in Redis (``bitcore:session:<digest>``) expires with
it. Logging out deletes that key, so a copy of the cookie taken before stops working; the cookie
also carries a fingerprint of the user's password hash, so changing a password in
``BITCORE_USERS`` ends every session of that user.

Users come from ``BITCORE_USERS="alice:<hash>,bob:<hash>"`` where each hash is made by
``flask --app wsgi hash-password`` (werkzeug's salted scrypt). With no users the dashboard is open,
so it answers only requests from the loopback interface and shows a banner saying so.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from bitcore.keys import SESSION_PREFIX
from bitcore.tracking import ratelimit
from dashboard import negotiation, store

bp = Blueprint("auth", __name__)

#: Endpoints anyone may reach, logged in or not.
PUBLIC_ENDPOINTS = frozenset({"static", "auth.login", "health.healthz"})
#: Checked against when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))


class LoginForm(FlaskForm):
    username = StringField("User", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    next = HiddenField()


def parse_users(spec: str) -> dict[str, str]:
    """``{"alice": hash}`` from ``"alice:<hash>,bob:<hash>"``; a malformed entry raises
    ``ValueError`` naming the entry's position and user (never the hash)."""
    users: dict[str, str] = {}
    for position, entry in enumerate(spec.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, password_hash = entry.partition(":")
        name = name.strip()
        if not sep or not name or password_hash.count("$") < 2:
            raise ValueError(
                f"BITCORE_USERS entry {position} ({name or '?'}) is not 'name:<hash>'; "
                "make the hash with `flask --app wsgi hash-password`"
            )
        users[name] = password_hash
    return users


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback); False for anything unparsable."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the overview: no open redirects after login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.overview")


#: Shortest ``SECRET_KEY`` accepted under gunicorn, and the fewest distinct characters in it.
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 8
MAKE_A_KEY = "SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"


def weak_secret_reason(key: str) -> str | None:
    """Why ``key`` is too weak to sign sessions with (anyone who guesses it can make a cookie
    that logs them in as anyone), or None. A heuristic: long enough, and not one character or a
    short word repeated.

    >>> weak_secret_reason("secret")
    'it has 6 characters (at least 32 needed)'
    >>> weak_secret_reason("ab" * 20)
    'it has only 2 different characters (at least 8 needed)'
    >>> weak_secret_reason("6f1c0a4e9b2d7c35a8e0f1b2c3d4e5f6a7b8c9d0e1f2a3b4")
    """
    if len(key) < MIN_SECRET_LENGTH:
        return f"it has {len(key)} characters (at least {MIN_SECRET_LENGTH} needed)"
    if len(set(key)) < MIN_SECRET_DISTINCT:
        return (
            f"it has only {len(set(key))} different characters "
            f"(at least {MIN_SECRET_DISTINCT} needed)"
        )
    return None


def load_secret_key(app: Flask) -> None:
    """Keep ``SECRET_KEY`` if set. Under gunicorn refuse to start without one (sessions must survive
    restarts and be shared by workers) or with a weak one; in development make a random one, kept
    under ``instance/``."""
    key = app.config.get("SECRET_KEY")
    if key:
        reason = weak_secret_reason(str(key))
        if reason and store.running_under_gunicorn():
            raise RuntimeError(
                f"SECRET_KEY is too weak: {reason}; refusing to start under gunicorn, since "
                f"anyone who guesses it can sign a session cookie. Make one, e.g. {MAKE_A_KEY}"
            )
        if reason:
            app.logger.warning("bitcore: SECRET_KEY is weak (%s); gunicorn would refuse it", reason)
        return
    if store.running_under_gunicorn():
        raise RuntimeError(
            "SECRET_KEY is not set: refusing to start under gunicorn, where every worker needs "
            f"the same key. Set it in the environment, e.g. {MAKE_A_KEY}"
        )
    path = Path(app.instance_path) / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        app.config["SECRET_KEY"] = path.read_text().strip()
        return
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as out:
        out.write(key)
    app.config["SECRET_KEY"] = key


def init_app(app: Flask) -> None:
    """Secret key, cookie flags, the users table and the app-wide login check (its blueprint,
    ``/login`` and ``/logout``, is registered by ``create_app``)."""
    load_secret_key(app)
    app.config["BITCORE_USER_HASHES"] = parse_users(app.config.get("BITCORE_USERS") or "")
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # Flask's own default (31 days) is always set, so this is assigned, not ``setdefault``.
    days = float(app.config.get("BITCORE_SESSION_DAYS") or 7)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(days=days)
    app.before_request(require_login)
    app.context_processor(auth_context)


def users() -> dict[str, str]:
    return current_app.config["BITCORE_USER_HASHES"]  # type: ignore[no-any-return]


#: What a save records as its author when the dashboard is open (no ``BITCORE_USERS``: no login).
OPEN_AUTHOR = "local"


def author() -> str:
    """Who is saving something (a segment, a report): the logged-in user, or ``OPEN_AUTHOR``."""
    return str(g.get("user") or OPEN_AUTHOR)


def who(saved_by: str) -> str:
    """Who saved it, for people: on an open dashboard ``local`` means someone on this machine
    (with logins it is a user's name); the library's saves may record nobody."""
    if not saved_by:
        return "the library (no author given)"
    if saved_by == OPEN_AUTHOR and not users():
        return "someone on this machine (no login)"
    return saved_by


def auth_context() -> dict[str, Any]:
    return {"auth_open": not users(), "current_user": g.get("user")}


def require_login() -> ResponseReturnValue | None:
    """Let public endpoints through; otherwise ask for a login, or (no users) refuse non-local
    clients."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    configured = users()
    if not configured:
        if not is_loopback(request.remote_addr):
            abort(
                403,
                description="This dashboard has no users configured, so it only answers on "
                "localhost. Set BITCORE_USERS to open it to the network with a login.",
            )
        return None
    name = session_user(configured)
    if name is not None:
        g.user = name
        return None
    if negotiation.wants_json():
        return jsonify(negotiation.error_body(401, "log in first (POST /login)")), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if not users():
        return redirect(url_for("pages.overview"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    status = 200
    error: dict[str, Any] | None = None
    if request.method == "POST" and (retry_after := _login_refused_for()) is not None:
        message = f"Too many login attempts from your address: try again in {retry_after} s."
        flash(message)
        error = negotiation.error_body(429, message, limit="BITCORE_LOGIN_RATE_LIMIT")
        page = negotiation.page("login.html", {"login_required": True}, 429, error=error, form=form)
        response = current_app.make_response(page)
        response.headers["Retry-After"] = str(retry_after)
        return response
    if form.validate_on_submit():
        name = form.username.data or ""
        stored = users().get(name)
        matches = check_password_hash(stored or _DUMMY_HASH, form.password.data or "")
        if stored is not None and matches:
            session.clear()  # a fresh session: nothing from before the login carries over
            start_session(name, stored)
            return redirect(safe_next(form.next.data))
        flash("Unknown user or wrong password.")
        error = negotiation.error_body(401, "Unknown user or wrong password.")
        status = 401
    elif request.method == "POST":
        error = negotiation.form_error(400, form.errors)
        status = 400
    return negotiation.page("login.html", {"login_required": True}, status, error=error, form=form)


def _session_key(session_id: str) -> str:
    """The session's key in Redis: a digest of its id, so reading Redis gives no cookie away."""
    return SESSION_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def _fingerprint(password_hash: str) -> str:
    """A keyed digest of the user's password hash: changes when the password does."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def start_session(name: str, password_hash: str) -> None:
    """Log ``name`` in: a new random session id, kept in Redis for the session's lifetime."""
    session_id = secrets.token_urlsafe(24)
    lifetime = current_app.permanent_session_lifetime
    store.client().redis.set(_session_key(session_id), name, ex=lifetime)
    session["user"] = name
    session["sid"] = session_id
    session["pw"] = _fingerprint(password_hash)
    session.permanent = True


def session_user(configured: dict[str, str]) -> str | None:
    """The user this request's session logs in, if it is still valid: a configured user, the same
    password hash as at login, and a session id that logout has not deleted."""
    name, session_id = session.get("user"), session.get("sid")
    if not isinstance(name, str) or name not in configured or not isinstance(session_id, str):
        return None
    if not hmac.compare_digest(str(session.get("pw", "")), _fingerprint(configured[name])):
        return None
    stored = store.client().redis.get(_session_key(session_id))
    return name if stored in (name, name.encode()) else None


def end_session() -> None:
    """Log out: the session's key is deleted, so the cookie (or any copy of it) no longer works."""
    session_id = session.get("sid")
    if isinstance(session_id, str):
        store.client().redis.delete(_session_key(session_id))
    session.clear()


def _login_refused_for() -> int | None:
    """Count this login attempt against its address; seconds to wait if over the limit, else
    None (also when the limit is off)."""
    limit = int(current_app.config["BITCORE_LOGIN_RATE_LIMIT"])
    if limit <= 0:
        return None
    window = int(current_app.config["BITCORE_LOGIN_RATE_WINDOW"])
    counter = ratelimit.window_for(f"login|{request.remote_addr}", limit, window)
    verdict = ratelimit.hit(store.client().redis, counter)
    return None if verdict.allowed else verdict.retry_after


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    end_session()
    return redirect(url_for("auth.login") if users() else url_for("pages.overview"))
