"""Login, the localhost-only open mode, cookie flags and the allow-list of public endpoints."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import redis
from dashboard_support import PASSWORD, USERS, csrf_token, make_app
from flask import Flask

from dashboard import auth, tracking

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}


@pytest.fixture
def open_app(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Flask:
    return make_app(redis_url, tmp_path)


@pytest.fixture
def locked_app(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Flask:
    return make_app(redis_url, tmp_path, BITCORE_USERS=USERS)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", {}),
        ("alice:pbkdf2:sha256:1$salt$abc", {"alice": "pbkdf2:sha256:1$salt$abc"}),
        (" a:m$s$h , b:scrypt:1:2:3$s$h ,", {"a": "m$s$h", "b": "scrypt:1:2:3$s$h"}),
    ],
)
def test_parse_users(spec: str, expected: dict[str, str]) -> None:
    assert auth.parse_users(spec) == expected


@pytest.mark.parametrize("spec", ["alice", "alice:plaintext", ":m$s$h", "a:m$s$h,bob:secret"])
def test_parse_users_refuses_malformed_entries_without_echoing_them(spec: str) -> None:
    with pytest.raises(ValueError, match="hash-password") as error:
        auth.parse_users(spec)
    assert "secret" not in str(error.value) and "plaintext" not in str(error.value)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("203.0.113.9", False),
        ("::ffff:10.0.0.1", False),
        ("", False),
        (None, False),
        ("localhost", False),
    ],
)
def test_is_loopback(address: str | None, loopback: bool) -> None:
    assert auth.is_loopback(address) is loopback


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/event/x?q=1", "/event/x?q=1"),
        ("/", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_safe_next_only_allows_local_paths(
    open_app: Flask, target: str | None, expected: str
) -> None:
    with open_app.test_request_context():
        assert auth.safe_next(target) == expected


def test_open_dashboard_serves_localhost_with_a_banner(open_app: Flask) -> None:
    response = open_app.test_client().get("/")
    assert response.status_code == 200
    assert b"Open dashboard" in response.data and b"BITCORE_USERS" in response.data


@pytest.mark.parametrize("url", ["/", "/index.json", "/event/x", "/nope"])
def test_open_dashboard_refuses_other_machines(open_app: Flask, url: str) -> None:
    response = open_app.test_client().get(url, environ_base=REMOTE)
    assert response.status_code == 403
    assert b"localhost" in response.data


def test_healthz_and_tracking_stay_public(open_app: Flask, locked_app: Flask) -> None:
    tracking_rules = [
        (tracking.PREFIX + path, methods) for path, (_, methods) in tracking.ROUTES.items()
    ]
    assert tracking_rules, "the tracking endpoint has routes"
    for app in (open_app, locked_app):
        client = app.test_client()
        assert client.get("/healthz", environ_base=REMOTE).status_code == 200
        for rule, methods in tracking_rules:
            method = "GET" if "GET" in methods else "OPTIONS"
            response = client.open(rule, method=method, environ_base=REMOTE)
            # the beacon may refuse a request without a write key, but never because of the login
            assert response.status_code != 302, rule
            assert b"log in first" not in response.data, rule
            assert b"only answers on localhost" not in response.data, rule


def test_locked_dashboard_redirects_to_login_and_json_gets_401(locked_app: Flask) -> None:
    client = locked_app.test_client()
    response = client.get("/event/song?user=1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/event/song?user%3D1") or (
        "/login?next=" in response.headers["Location"]
    )
    assert client.get("/index.json").status_code == 401
    page = client.get("/login")
    assert page.status_code == 200 and b"Open dashboard" not in page.data


def login(client, password: str = PASSWORD, next_url: str = "", token: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
    if token is None:
        token = csrf_token(client.get("/login", **kwargs).get_data(as_text=True))
    form = {"username": "alice", "password": password, "next": next_url, "csrf_token": token}
    return client.post("/login", data=form, **kwargs)


def test_login_with_the_right_password_opens_every_page(locked_app: Flask) -> None:
    client = locked_app.test_client()
    response = login(client, next_url="/index.json?q=a")
    assert response.status_code == 302 and response.headers["Location"] == "/index.json?q=a"
    assert client.get("/index.json").status_code == 200
    page = client.get("/").get_data(as_text=True)
    assert "alice" in page and "Log out" in page


@pytest.mark.parametrize(
    ("password", "token", "status"),
    [("wrong", None, 401), ("", None, 400), (PASSWORD, "not-a-token", 400)],
)
def test_failed_logins(locked_app: Flask, password: str, token: str | None, status: int) -> None:
    client = locked_app.test_client()
    assert login(client, password=password, token=token).status_code == status
    assert client.get("/index.json").status_code == 401


def test_unknown_user_is_refused_like_a_wrong_password(locked_app: Flask) -> None:
    client = locked_app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": "mallory", "password": "x", "csrf_token": token}
    )
    assert response.status_code == 401 and b"Unknown user or wrong password" in response.data


def test_open_redirect_after_login_goes_to_the_overview(locked_app: Flask) -> None:
    response = login(locked_app.test_client(), next_url="//evil.example/")
    assert response.headers["Location"] == "/"


def test_logout_needs_csrf_and_ends_the_session(locked_app: Flask) -> None:
    client = locked_app.test_client()
    login(client)
    assert client.post("/logout").status_code == 400  # no CSRF token
    token = csrf_token(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/index.json").status_code == 401


@pytest.mark.parametrize(
    "new_users",
    [
        USERS.replace("alice:", "bob:"),  # alice removed
        f"alice:{auth.generate_password_hash('another one', method='pbkdf2:sha256:1000')}",
    ],
    ids=["user removed", "password changed"],
)
def test_a_user_removed_or_with_a_new_password_is_logged_out(
    locked_app: Flask, new_users: str
) -> None:
    client = locked_app.test_client()
    login(client)
    assert client.get("/index.json").status_code == 200
    locked_app.config["BITCORE_USER_HASHES"] = auth.parse_users(new_users)
    assert client.get("/index.json").status_code == 401


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_flags(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path, secure: bool
) -> None:
    app = make_app(redis_url, tmp_path, BITCORE_USERS=USERS, SESSION_COOKIE_SECURE=secure)
    response = login(app.test_client())
    cookie = next(
        v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("session=")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure


def test_login_page_without_users_goes_to_the_overview(open_app: Flask) -> None:
    response = open_app.test_client().get("/login")
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_login_attempts_are_rate_limited_per_address(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Past the limit even the right password is refused (429, Retry-After) from that address;
    another address still logs in, and the counters live in Redis, outside the event prefix."""
    app = make_app(redis_url, tmp_path, BITCORE_USERS=USERS, BITCORE_LOGIN_RATE_LIMIT=3)
    guesser = app.test_client()
    assert [login(guesser, password="wrong").status_code for _ in range(3)] == [401] * 3
    refused = login(guesser)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 300
    assert b"Too many login attempts" in refused.data
    assert guesser.get("/index.json").status_code == 401
    other = app.test_client()
    assert login(other, environ_base=REMOTE).status_code == 302
    assert all(key.startswith((b"bitcore:ratelimit:", b"bitcore:session:"))
               for key in redis_client.keys("*"))  # fmt: skip


def test_login_rate_limit_can_be_turned_off(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    app = make_app(redis_url, tmp_path, BITCORE_USERS=USERS, BITCORE_LOGIN_RATE_LIMIT=0)
    client = app.test_client()
    assert [login(client, password="wrong").status_code for _ in range(12)] == [401] * 12
    assert login(client).status_code == 302
    assert [key[:16] for key in redis_client.keys("*")] == [b"bitcore:session:"]  # no counter


@pytest.mark.parametrize(("proxies", "status"), [(0, 200), (1, 403)])
def test_behind_a_proxy_the_forwarded_client_is_the_one_checked(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path, proxies: int, status: int
) -> None:
    """A proxy on the same machine connects from 127.0.0.1: only with BITCORE_PROXIES does the
    localhost-only guard see the real, remote client."""
    app = make_app(redis_url, tmp_path, BITCORE_PROXIES=proxies)
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert app.test_client().get("/index.json", headers=forwarded).status_code == status


def test_tracking_rate_limit_counts_the_forwarded_client(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    app = make_app(
        redis_url,
        tmp_path,
        BITCORE_PROXIES=1,
        BITCORE_TRACK_KEYS="k",
        BITCORE_TRACK_RATE_LIMIT=1,
    )
    client = app.test_client()

    def beacon(client_ip: str) -> int:
        headers = {"X-Bitcore-Key": "k", "X-Forwarded-For": client_ip}
        return client.post("/track", json={"event": "a", "uid": 1}, headers=headers).status_code

    assert [beacon("203.0.113.1"), beacon("203.0.113.1"), beacon("203.0.113.2")] == [200, 429, 200]


def session_cookie(client) -> str:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("session")
    assert cookie is not None
    return str(cookie.value)


def test_a_cookie_copied_before_logout_does_not_work_after_it(locked_app: Flask) -> None:
    client = locked_app.test_client()
    login(client)
    copied = session_cookie(client)
    other_device = locked_app.test_client()
    login(other_device)
    token = csrf_token(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    thief = locked_app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/index.json").status_code == 401
    assert other_device.get("/index.json").status_code == 200, "only that session ended"


def test_a_cookie_signed_with_the_key_but_no_live_session_is_refused(locked_app: Flask) -> None:
    """What an attacker who learnt SECRET_KEY (or an old cookie) could make: refused without a
    session id that Redis knows."""
    client = locked_app.test_client()
    with client.session_transaction() as forged:
        forged["user"] = "alice"
        forged["sid"] = "made-up"
    assert client.get("/index.json").status_code == 401


def test_sessions_last_seven_days_not_flasks_thirty_one(
    locked_app: Flask, redis_client: redis.Redis
) -> None:
    assert locked_app.permanent_session_lifetime.days == 7
    response = login(locked_app.test_client())
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie")
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    assert 6.9 < (expires - datetime.now(UTC)).total_seconds() / 86400 <= 7
    (key,) = redis_client.keys("bitcore:session:*")
    assert 7 * 86400 - 60 < redis_client.ttl(key) <= 7 * 86400


@pytest.mark.parametrize(
    "key", [" ", "secret", "test", "x" * 64, "ab" * 32, "password" * 4, "0123456789abcdef" * 1]
)
def test_gunicorn_refuses_a_weak_secret_key_saying_how_to_make_one(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/23.0.0")
    with pytest.raises(RuntimeError, match="SECRET_KEY is too weak") as refused:
        make_app(redis_url, tmp_path, SECRET_KEY=key)
    assert "secrets.token_hex(32)" in str(refused.value)


def test_gunicorn_accepts_a_generated_secret_key(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/23.0.0")
    for _ in range(20):
        key = secrets.token_hex(32)
        assert make_app(redis_url, tmp_path, SECRET_KEY=key).config["SECRET_KEY"] == key


def test_logged_out_visitors_see_no_navigation_nor_the_data_path(
    locked_app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from dashboard import store

    secret = tmp_path / "secret-data-dir"
    monkeypatch.setattr(store, "embedded_server", lambda: SimpleNamespace(data_dir=secret))
    client = locked_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "<nav" not in page and 'href="/cohort"' not in page
    assert str(secret) not in page, "the server's folders are for logged-in users"
    token = csrf_token(page)
    wrong = client.post("/login", data={"username": "alice", "password": "no", "csrf_token": token})
    html = wrong.get_data(as_text=True)
    main = html.split("<main>")[1].split("</main>")[0]
    assert "Unknown user or wrong password." in main, "the error is inside <main>"
    assert html.count("Unknown user or wrong password.") == 1
    token = csrf_token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    inside = client.get("/").get_data(as_text=True)
    assert "<nav" in inside and str(secret) in inside
