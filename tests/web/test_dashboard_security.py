"""Security headers on every answer, and report links from other sites held back without any
Redis work (``dashboard/security.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from dashboard_support import make_app
from flask import Flask

from bitcore import embedded
from dashboard.security import SECURITY_HEADERS

ORIGIN = "https://shop.example"


@pytest.fixture
def app(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Flask:
    return make_app(redis_url, tmp_path, BITCORE_TRACK_KEYS="k", BITCORE_TRACK_ORIGINS=ORIGIN)


@pytest.mark.parametrize(
    "url",
    ["/", "/index.json", "/event/active", "/cohort", "/funnel", "/segments", "/system",
     "/healthz", "/static/style.css", "/no/such/page", "/login"],
)  # fmt: skip
def test_every_answer_carries_the_security_headers(app: Flask, url: str) -> None:
    response = app.test_client().get(url)
    assert response.status_code < 500
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_a_dead_redis_503_carries_them_too(tmp_path: Path) -> None:
    dead = make_app(f"redis://127.0.0.1:{embedded.free_port()}/0", tmp_path)
    response = dead.test_client().get("/")
    assert response.status_code == 503 and response.headers["X-Frame-Options"] == "DENY"


def test_the_tracking_endpoint_keeps_its_cors_answers(app: Flask) -> None:
    client = app.test_client()
    preflight = client.options("/track", headers={"Origin": ORIGIN})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    beacon = client.post("/track", json={"event": "play", "uid": 1},
                         headers={"Origin": ORIGIN, "X-Bitcore-Key": "k"})  # fmt: skip
    assert beacon.status_code == 200
    assert beacon.headers["Access-Control-Allow-Origin"] == ORIGIN


HEAVY = "/funnel?steps=a&steps=b&steps=c"


@pytest.mark.parametrize("url", ["/", HEAVY, "/cohort?x=1", "/event/active", "/index.json"])
def test_a_cross_site_link_to_a_page_is_held_without_touching_redis(
    tmp_path: Path, url: str
) -> None:
    """A dead Redis proves no Redis work: the page would be a 503 if anything asked it."""
    dead = make_app(f"redis://127.0.0.1:{embedded.free_port()}/0", tmp_path)
    response = dead.test_client().get(url, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    if url.endswith(".json"):
        assert response.get_json()["error"]["link"] == url
    else:
        text = response.get_data(as_text=True)
        assert "came from another site" in text
        assert f'href="{url.replace("&", "&amp;")}"' in text, "a same-site link to go on"


@pytest.mark.parametrize("site", ["same-origin", "same-site", "none", None])
def test_same_site_typed_and_headerless_requests_pass(app: Flask, site: str | None) -> None:
    headers = {"Sec-Fetch-Site": site} if site else {}
    assert app.test_client().get("/", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [("GET", "/healthz", 200), ("GET", "/static/style.css", 200), ("GET", "/login", 302),
     ("GET", "/track/p.gif?e=x&u=1&k=k", 200), ("POST", "/logout", 400)],
)  # fmt: skip
def test_linkable_endpoints_and_posts_are_not_held(
    app: Flask, method: str, url: str, status: int
) -> None:
    response = app.test_client().open(url, method=method, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == status


def test_the_held_link_is_never_an_open_redirect(app: Flask) -> None:
    response = app.test_client().get("//evil.example/x", headers={"Sec-Fetch-Site": "cross-site"})
    assert b'href="//evil' not in response.data
