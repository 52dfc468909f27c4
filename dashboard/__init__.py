"""The bitcore dashboard: a Flask app factory with one blueprint per concern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from dashboard import config as config_module
from dashboard import store
from dashboard.extensions import csrf

_HERE = Path(__file__).resolve().parent


def _asset_dir(name: str) -> str:
    """``templates``/``static`` inside the installed package, else at the repository root (development)."""
    packaged = _HERE / name
    return str(packaged if packaged.is_dir() else _HERE.parent / name)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: environment config, overridden by ``config`` (tests pass theirs here)."""
    app = Flask(
        __name__,
        template_folder=_asset_dir("templates"),
        static_folder=_asset_dir("static"),
        instance_relative_config=True,
    )
    app.config.from_mapping(config_module.from_environ())
    if config:
        app.config.from_mapping(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    csrf.init_app(app)
    store.init_app(app)
    register_blueprints(app)
    return app


def register_blueprints(app: Flask) -> None:
    """One line per blueprint; each concern lives in its own module."""
    from dashboard import pages

    app.register_blueprint(pages.bp)
