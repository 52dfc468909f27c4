"""The app's one ``BitCore`` client: made at start-up from the config, reached from views through here."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app

import bitcore
from bitcore import embedded


def init_app(app: Flask) -> None:
    """Connect to ``REDIS_URL``, or start the embedded Redis under the data directory."""
    url = app.config.get("REDIS_URL")
    if not url:
        data_dir = app.config.get("BITCORE_DATA_DIR") or Path(app.instance_path) / "redis"
        server = embedded.start(data_dir)
        app.extensions["bitcore_embedded"] = server
        app.logger.info("embedded Redis keeps its data in %s", server.data_dir)
        url = server.url
    app.extensions["bitcore"] = bitcore.BitCore(
        url,
        key_prefix=app.config["BITCORE_KEY_PREFIX"],
        timezone=app.config["BITCORE_TIMEZONE"],
        track_hourly=app.config["BITCORE_TRACK_HOURLY"],
    )


def client() -> bitcore.BitCore:
    """The current app's client."""
    return current_app.extensions["bitcore"]  # type: ignore[no-any-return]
