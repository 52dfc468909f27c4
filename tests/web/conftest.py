"""The web layer: the Flask app through its test client. ``app`` is the shared ``make_app`` on the
emptied session Redis; a test file that needs other settings or data first defines its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from dashboard_support import make_app
from flask import Flask
from flask.testing import FlaskClient


@pytest.fixture
def app(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Flask:
    return make_app(redis_url, tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
