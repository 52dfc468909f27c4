"""static/bitcore.js in a real chromium: a page on another origin tracks events, the user leaves,
and the events are found in Redis (sent by navigator.sendBeacon on pagehide, or by fetch keepalive
without it).

Chromium (``browser``) and the live app server come from tests/browser_support.py; the page is
served by a second tiny server on another port, so each beacon is a real cross-origin request that
CORS has to allow.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from browser_support import live_server
from process_support import start_gunicorn, stop

from bitcore import BitCore, embedded
from dashboard import create_app

pytestmark = pytest.mark.browser

KEY = "browser-key"


def serve_in_thread(server: Any) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def page_port() -> int:
    return embedded.free_port()


def app_config(redis_url: str, page_port: int, **extra: Any) -> dict[str, Any]:
    """The app's settings: the write key, and the page's origin (another port) as CORS origin."""
    return {
        "SECRET_KEY": "browser",
        "REDIS_URL": redis_url,
        "BITCORE_TRACK_KEYS": KEY,
        "BITCORE_TRACK_ORIGINS": f"http://127.0.0.1:{page_port}",
        **extra,
    }


@pytest.fixture(scope="module")
def live_app(redis_url: str, page_port: int) -> Iterator[str]:
    """The real app on a real socket; the page's origin (another port) is its CORS origin."""
    app = create_app(app_config(redis_url, page_port))
    inner = app.wsgi_app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        """Remember each POST's content type and fetch mode: sendBeacon sends text/plain no-cors."""
        if environ["REQUEST_METHOD"] == "POST":
            mode = environ.get("HTTP_SEC_FETCH_MODE", "")
            SEEN_POSTS.append((environ.get("CONTENT_TYPE", ""), mode))
        return inner(environ, start_response)

    app.wsgi_app = recording  # type: ignore[method-assign]
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def gunicorn_app(
    redis_url: str, page_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app as production serves it: ``gunicorn wsgi:app`` with ``gunicorn.conf.py``'s worker,
    which answers beacons on its event loop."""
    log_dir = tmp_path_factory.mktemp("gunicorn")
    process, port = start_gunicorn(
        log_dir, redis_url, BITCORE_TRACK_KEYS=KEY,
        BITCORE_TRACK_ORIGINS=f"http://127.0.0.1:{page_port}",
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
    assert "Traceback" not in (log_dir / "gunicorn.log").read_text()


PAGES: dict[str, str] = {}
SEEN_POSTS: list[tuple[str, str]] = []


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = PAGES.get(self.path.split("?")[0], "<!doctype html><title>next</title><p>next page")
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_server(page_port: int) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", page_port), PageHandler)
    serve_in_thread(server)
    yield f"http://127.0.0.1:{page_port}"
    server.shutdown()


def shop_page(app_url: str, before: str = "") -> str:
    return f"""<!doctype html><title>shop</title>
<script>{before}</script>
<script src="{app_url}/static/bitcore.js"></script>
<script>
  bitcore.track("page:view");              // before identify: waits for it
  bitcore.init({{endpoint: "{app_url}/track", key: "{KEY}", flushInterval: 60000}});
  bitcore.identify(4242);
  bitcore.track("song:played");
  bitcore.track("bad name with spaces");   // dropped in the page, so it cannot spoil the batch
  bitcore.track(null);
  bitcore.identify(-1);                    // no server takes it: ignored
  bitcore.identify("");
  window.loaded = true;
</script>
<a id="leave" href="/next">next</a>"""


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.mark.parametrize(
    ("transport", "fetch_mode"),
    [("sendBeacon", "no-cors"), ("fetch keepalive", "cors")],
)
def test_events_arrive_after_the_visitor_leaves(
    browser: Any,
    live_app: str,
    page_server: str,
    redis_client: redis.Redis,
    transport: str,
    fetch_mode: str,
) -> None:
    SEEN_POSTS.clear()
    shop_then_leave(browser, live_app, page_server, redis_client, transport)
    assert sorted(BitCore(redis_client).get_event_names()) == ["page:view", "song:played"]
    assert [("text/plain;charset=UTF-8", fetch_mode)] == SEEN_POSTS


@pytest.mark.process  # a real gunicorn
@pytest.mark.parametrize("transport", ["sendBeacon", "fetch keepalive"])
def test_events_arrive_through_the_production_server(
    browser: Any, gunicorn_app: str, page_server: str, redis_client: redis.Redis, transport: str
) -> None:
    shop_then_leave(browser, gunicorn_app, page_server, redis_client, transport)


def shop_then_leave(
    browser: Any, app_url: str, page_server: str, redis_client: redis.Redis, transport: str
) -> None:
    """Open the shop page (beacons to ``app_url``), check nothing is sent yet, leave, and check
    the events arrive in Redis with no error in the page."""
    before = "" if transport == "sendBeacon" else "navigator.sendBeacon = undefined;"
    PAGES["/shop"] = shop_page(app_url, before)
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{page_server}/shop")
    assert page.evaluate("window.loaded === true")
    bc = BitCore(redis_client)
    assert bc.get_event_names() == []  # nothing sent yet: the flush interval is a minute
    page.click("#leave")  # navigating away fires pagehide
    page.wait_for_url(f"{page_server}/next")
    assert wait_for(lambda: 4242 in bc.MonthEvents("song:played"))
    assert 4242 in bc.MonthEvents("page:view")
    assert errors == []
    context.close()


def open_page(browser: Any, url: str) -> tuple[Any, Any, list[str]]:
    """A new browser context with ``url`` open, and the list its page's errors land in."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return context, page, errors


def test_a_broken_setup_never_throws_into_the_page(
    browser: Any, live_app: str, page_server: str, redis_client: redis.Redis
) -> None:
    PAGES["/broken"] = f"""<!doctype html><script src="{live_app}/static/bitcore.js"></script>
<script>
  bitcore.track("early");
  bitcore.init(null);
  bitcore.init({{endpoint: "http://127.0.0.1:9/track", key: "{KEY}"}});  // nothing listens there
  bitcore.identify(1);
  bitcore.track("x");
  bitcore.flush();
  window.survived = true;
</script>"""
    context, page, errors = open_page(browser, f"{page_server}/broken")
    assert page.evaluate("window.survived === true")
    page.goto("about:blank")
    assert errors == []
    context.close()


@pytest.fixture(scope="module")
def mapped_app(redis_url: str, page_port: int) -> Iterator[str]:
    """The real app with the id map on (``BITCORE_ID_MAPPING=1``)."""
    app = create_app(app_config(redis_url, page_port, BITCORE_ID_MAPPING=True))
    with live_server(app) as url:
        yield url


def test_identify_takes_string_and_64_bit_ids(
    browser: Any, mapped_app: str, page_server: str, redis_client: redis.Redis
) -> None:
    PAGES["/mapped"] = f"""<!doctype html><script src="{mapped_app}/static/bitcore.js"></script>
<script>
  bitcore.init({{endpoint: "{mapped_app}/track", key: "{KEY}", flushInterval: 60000}});
  bitcore.identify("usr_8f3a");
  bitcore.track("play");
  bitcore.identify("1234567890123456789");  // a snowflake: sent as a string, no digit lost
  bitcore.track("play");
  bitcore.identify("4242");                 // digits JavaScript holds: sent as the number
  bitcore.track("play");
  bitcore.identify("bad\\nid");              // a control character: ignored
  bitcore.track("play");
  window.loaded = true;
</script>
<a id="leave" href="/next">next</a>"""
    context, page, errors = open_page(browser, f"{page_server}/mapped")
    assert page.evaluate("window.loaded === true")
    page.click("#leave")
    page.wait_for_url(f"{page_server}/next")
    bc = BitCore(redis_client, id_mapping=True)
    expected = {"usr_8f3a", 1234567890123456789, 4242}
    assert wait_for(lambda: set(bc.MonthEvents("play")) == expected)
    assert errors == []
    context.close()


def test_a_failed_batch_is_resent_with_the_same_request_id(
    browser: Any, live_app: str, page_server: str, redis_client: redis.Redis
) -> None:
    """The server's first answer is a 503: bitcore.js sends the batch again with its
    ``request_id``, and the events arrive once."""
    PAGES["/retry"] = f"""<!doctype html><script>navigator.sendBeacon = undefined;</script>
<script src="{live_app}/static/bitcore.js"></script>
<script>
  bitcore.init({{endpoint: "{live_app}/track", key: "{KEY}", flushInterval: 60000,
                retryDelay: 50}});
  bitcore.identify(77);
  bitcore.track("retried");
  window.loaded = true;
</script>"""
    bodies: list[str] = []

    def first_fails(route: Any) -> None:
        bodies.append(route.request.post_data or "")
        if len(bodies) == 1:
            origin = {"Access-Control-Allow-Origin": page_server}
            route.fulfill(status=503, body='{"error": "retry later"}', headers=origin)
        else:
            route.continue_()

    context, page, errors = open_page(browser, f"{page_server}/retry")
    page.route(f"{live_app}/track*", first_fails)
    assert page.evaluate("window.loaded === true")
    page.evaluate("bitcore.flush()")  # by fetch: sendBeacon never tells how it went
    bc = BitCore(redis_client)
    for _ in range(100):  # the route's handler runs while Playwright is called, not in a sleep
        if 77 in bc.MonthEvents("retried"):
            break
        page.wait_for_timeout(100)
    assert 77 in bc.MonthEvents("retried"), bodies
    ids = [json.loads(body)["request_id"] for body in bodies]
    assert len(ids) == 2 and ids[0] == ids[1] and 1 <= len(ids[0]) <= 64
    assert errors == []
    context.close()
