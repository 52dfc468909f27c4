"""The browser fixtures' skip-or-fail rule when chromium is missing."""

from __future__ import annotations

import browser_support
import pytest


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser_support, "CHROMIUM_CANDIDATES", ("/nonexistent/chromium",))
    monkeypatch.setattr(browser_support.shutil, "which", lambda name: None)
    monkeypatch.delenv("BITCORE_CHROMIUM", raising=False)


def test_missing_chromium_skips_with_instructions(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BITCORE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        browser_support.require_chromium()


def test_missing_chromium_fails_when_required(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BITCORE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="BITCORE_REQUIRE_BROWSER=1"):
        browser_support.require_chromium()
