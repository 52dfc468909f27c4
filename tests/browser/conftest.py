"""Real-browser tests: Debian's chromium through Playwright (fixtures in tests/browser_support.py).
Each test carries the ``browser`` marker itself."""

from browser_support import browser, page  # noqa: F401 - the layer's fixtures
