"""Error pages: 404/405/500 in the house style with JSON twins, and a dead Redis as a calm 503."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from dashboard_support import make_app
from flask import Flask

from bitcore import embedded


@pytest.fixture
def dead_app(tmp_path: Path) -> Flask:
    """An app whose Redis is a closed port: nothing listens there."""
    return make_app(f"redis://127.0.0.1:{embedded.free_port()}/0", tmp_path)


@pytest.mark.parametrize(
    "url", ["/", "/?q=a", "/event/active", "/event/active?user=1&date=2024-01-01"]
)
def test_dead_redis_is_a_503_page_never_a_traceback(dead_app: Flask, url: str) -> None:
    response = dead_app.test_client().get(url)
    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert "Redis is not answering" in text and "/healthz" in text
    assert "Traceback" not in text and "ConnectionError" not in text
    assert 'href="/cohort"' in text, "the error page keeps the site's navigation"


@pytest.mark.parametrize("url", ["/index.json", "/event/active.json"])
def test_dead_redis_json_twin(dead_app: Flask, url: str) -> None:
    response = dead_app.test_client().get(url)
    assert response.status_code == 503 and response.get_json()["error"]["status"] == 503


def test_healthz_reports_a_dead_redis_as_503_without_details(dead_app: Flask) -> None:
    response = dead_app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and "127.0.0.1" not in response.get_data(as_text=True)


def test_healthz_reports_the_round_trip(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    body = make_app(redis_url, tmp_path).test_client().get("/healthz").get_json()
    assert body["status"] == "ok" and 0 < body["redis_ms"] < 1000


def test_404_page_and_json(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/no/such/page")
    assert (
        page.status_code == 404 and b"Not Found" in page.data and b'href="/segments"' in page.data
    )
    twin = client.get("/no/such/page.json")
    assert twin.status_code == 404 and twin.get_json()["error"]["status"] == 404


def test_405_keeps_the_allow_header(app: Flask) -> None:
    response = app.test_client().put("/healthz")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert b"Method Not Allowed" in response.data


def test_500_page_hides_the_error(app: Flask) -> None:
    def broken() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule("/broken", "broken", broken)
    app.add_url_rule("/broken.json", "broken_json", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    page = client.get("/broken")
    assert page.status_code == 500 and b"Something went wrong" in page.data
    assert b"secret internals" not in page.data and b"Traceback" not in page.data
    assert client.get("/broken.json").get_json()["error"]["status"] == 500


def test_a_redis_timeout_is_a_503_too(app: Flask) -> None:
    def slow() -> str:
        raise redis.TimeoutError("Timeout reading from socket")

    app.add_url_rule("/slow", "slow", slow)
    response = app.test_client().get("/slow")
    assert response.status_code == 503 and b"Redis is not answering" in response.data
