"""Every page in a real browser under the Content-Security-Policy the app sends: no violation
(no inline script, no inline ``<style>``, nothing loaded from elsewhere)."""

from __future__ import annotations

from typing import Any

import pytest
import test_browser_dashboard
from test_browser_dashboard import log_in

from dashboard import security

pytestmark = pytest.mark.browser
#: The dashboard's browser tests' site: demo data, a user to log in as.
site = test_browser_dashboard.base_url

PAGES = [
    "/",
    "/?q=song",
    "/event/active",
    "/event/active?user=1&date=2024-01-01",
    "/cohort",
    "/cohort?select1=event:signup&select2=event:active&as_percent=1&num_results=5",
    "/funnel",
    "/funnel?steps-0=event:signup&steps-1=event:active&window=30",
    "/segments",
    "/segments/new",
    "/segments/preview?expression=active",
    "/system",
    "/no/such/page",
]


def watch_violations(page: Any) -> list[str]:
    """Console reports of CSP violations, and ``securitypolicyviolation`` events, as they come."""
    seen: list[str] = []
    page.on(
        "console",
        lambda message: (
            seen.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.expose_function("reportViolation", lambda text: seen.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "window.reportViolation(e.violatedDirective + ' ' + e.blockedURI))"
    )
    return seen


def visit_all(page: Any, base_url: str) -> list[str]:
    """Log in through the form, then open every page; the violations seen meanwhile."""
    seen = watch_violations(page)
    log_in(page, base_url)  # the login page included
    for path in PAGES:
        response = page.goto(f"{base_url}{path}")
        assert response.status < 500, path
        assert response.headers["content-security-policy"] == security.CONTENT_SECURITY_POLICY
        page.wait_for_load_state("load")
    return seen


def test_no_page_violates_the_policy(page: Any, site: str) -> None:
    assert visit_all(page, site) == []


def test_the_watch_sees_a_violation_when_there_is_one(
    page: Any, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without inline style attributes allowed, the cohort table's heat colours are refused:
    proof that the test above would see a violation."""
    strict = security.CONTENT_SECURITY_POLICY.replace(
        "style-src-attr 'unsafe-inline'", "style-src-attr 'none'"
    )
    monkeypatch.setitem(security.SECURITY_HEADERS, "Content-Security-Policy", strict)
    monkeypatch.setattr(security, "CONTENT_SECURITY_POLICY", strict)
    assert any("style" in text for text in visit_all(page, site))
