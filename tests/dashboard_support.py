"""Helpers shared by the dashboard tests: an app on the session's test Redis, and form scraping."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.security import generate_password_hash

from dashboard import create_app

PASSWORD = "correct horse battery staple"
#: Hashing with scrypt is slow on purpose; one cheap hash serves every test.
USERS = f"alice:{generate_password_hash(PASSWORD, method='pbkdf2:sha256:1000')}"


def make_app(redis_url: str, tmp_path: Path | None = None, **config: Any) -> Flask:
    """The one way tests build the dashboard: a testing app on ``redis_url``, no users and no demo
    unless given, its instance folder under ``tmp_path`` (else the session's, see conftest.py)."""
    settings: dict[str, Any] = {
        "TESTING": True,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret",
        "BITCORE_USERS": "",
        "BITCORE_DEMO": False,
    }
    if tmp_path is not None:
        settings["INSTANCE_PATH"] = str(tmp_path / "instance")
    settings.update(config)
    return create_app(settings)


def csrf_token(html: str) -> str:
    """The CSRF token of the first form in ``html``."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no csrf_token in the page"
    return match.group(1)
