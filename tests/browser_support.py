"""Reusable real-browser fixtures: Debian's chromium driven by Playwright, and a live app server.

Imported by ``tests/conftest.py`` so every test module can ask for ``browser`` or ``page``. Browser
tests are marked ``@pytest.mark.browser``; without chromium they skip with a message saying how to
enable them, unless ``BITCORE_REQUIRE_BROWSER=1`` (CI), where a missing browser is a failure.
Playwright never downloads a browser here: it launches the system one.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from werkzeug.serving import make_server

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's chromium, if installed (``BITCORE_CHROMIUM`` may point elsewhere)."""
    for candidate in (os.environ.get("BITCORE_CHROMIUM", ""), *CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    return found


def require_chromium() -> str:
    """The chromium path, or skip (fail when ``BITCORE_REQUIRE_BROWSER=1``) saying how to get
    one."""
    path = chromium_path()
    if path:
        return path
    message = (
        "browser tests need Debian's chromium at /usr/bin/chromium: `apt-get install chromium` "
        "(or set BITCORE_CHROMIUM to a chromium binary)"
    )
    if os.environ.get("BITCORE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"BITCORE_REQUIRE_BROWSER=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium for the session."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab in its own context (no cookies shared between tests), failing fast on waits."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


@contextmanager
def live_server(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the WSGI ``app`` on a free port in a background thread; yields its base URL."""
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
