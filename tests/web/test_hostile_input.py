"""Malformed and hostile input on every route: never a 500.

The routes come from the app's own ``url_map``, so a route added later is swept without anyone
remembering to list it. For every route and method, logged in and not, the sweep sends: each form
field of the route (and every field any form knows, for a route it has no table for) set to each
hostile value in turn, every field hostile at once, repeated and unknown parameters, undecodable
query strings, other extensions (``.json``, ``.csv``, ``.xml``), hostile path arguments, and for
POST routes: with a valid CSRF token, without one and with a forged one, form bodies, JSON bodies
of the wrong type, malformed JSON and JSON nested 100,000 deep.

The app runs on a private redis-server with a small ``maxmemory``, and the tracking endpoint's uid
cap is low, so no request can make Redis allocate more than a few kilobytes. An exception escaping
a view (the test app propagates them) is reported with the line of our code it came from.
"""

from __future__ import annotations

import json
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from dashboard_support import PASSWORD, USERS, csrf_token, make_app
from flask import Flask
from flask.testing import FlaskClient

from bitcore import BitCore, embedded
from bitcore.segments import SegmentStore
from dashboard import tracking

REPO = str(Path(__file__).resolve().parents[2])
HUGE = "x" * 100_000
#: What goes into every field, one field at a time.
VALUES: dict[str, str] = {
    "huge": HUGE,
    "non-ascii": "ü名\u202e🙂",
    "nul": "a\x00b",
    "dot-dot": "../../../etc/passwd",
    "negative": "-1",
    "long-number": "9" * 400,
    "float": "1e309",
    "json": '{"$gt": ""}',
    "empty": "",
    "bitop": "bitop_AND_trackist_x",
    "glob": "*?[\\",
    "bare-kind": "segment:",
}
#: Path arguments, by the argument's name.
PATH_VALUES: dict[str, list[str]] = {
    "name": ["seg", "..", "ü名", "a\x00b", "bitop_AND_x", "_seen", "song.json", HUGE],
    "filename": ["style.css", "../pyproject.toml", "..%2f..%2fpyproject.toml", "a\x00b", HUGE],
}
#: Valid values of each endpoint's fields, so a hostile value in one field reaches deep code.
BASELINES: dict[str, dict[str, str]] = {
    "pages.overview": {"q": "song", "page": "1"},
    "pages.event": {"user": "1", "date": "2024-05-07"},
    "funnel": {
        "steps-0": "event:signup",
        "steps-1": "event:song",
        "kind": "day",
        "start": "2024-05-06",
        "window": "3",
        "trend": "2",
        "table": "trend",
    },
    "cohort": {
        "select1": "signup",
        "select2": "song",
        "time_group": "days",
        "as_percent": "1",
        "num_results": "3",
        "num_of_rows": "2",
        "start_date": "2024-05-06",
    },
    "segments.preview": {"expression": "signup & ~song", "kind": "week", "when": "2024-05-07"},
    "segments.new": {"name": "made", "expression": "signup", "description": "d", "save": "Save"},
    "segments.edit": {"name": "seg", "expression": "song", "description": "d", "save": "Save"},
    "segments.delete": {"delete": "Delete"},
    "auth.login": {"username": "alice", "password": PASSWORD, "next": "/"},
    "tracking.pixel": {"k": "public-key", "e": "signup", "u": "7", "t": "1700000000", "s": "x"},
    "tracking.collect": {"k": "public-key"},
}
EVERY_FIELD = {field: value for fields in BASELINES.values() for field, value in fields.items()}
TRACK_BODY = {"event": "signup", "uid": 7, "key": "public-key"}
JSON_VALUES: list[Any] = [None, [], {}, HUGE, "ü", -1, 2**70, 1.5, "bitop"]
DEEP = 100_000
BODIES: dict[str, tuple[str, bytes]] = {
    "deep-list": ("application/json", b"[" * DEEP + b"]" * DEEP),
    "deep-object": ("application/json", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
    "deep-events": ("application/json", b'{"events":' + b"[" * DEEP + b"]" * DEEP + b"}"),
    "not-json": ("application/json", b"{'event': nope"),
    "json-string": ("application/json", b'"signup"'),
    "json-array": ("application/json", b'[{"event": "signup", "uid": 7}]'),
    "json-number": ("application/json", b"1e999999"),
    "bad-utf8": ("application/json", b'{"event": "\xff\xfe", "uid": 7}'),
    "non-ascii-key": ("application/json", json.dumps({**TRACK_BODY, "key": "ké"}).encode()),
    "events-not-list": ("application/json", b'{"events": "signup", "uid": 7}'),
    "many-events": (
        "application/json",
        json.dumps({"events": [{"event": f"e{i}"} for i in range(600)], "uid": 7}).encode(),
    ),
    "garbage-type": ("text/x-garbage; charset=ü", b"\x00\x01\x02"),
    "form-huge": ("application/x-www-form-urlencoded", b"a=" + b"x" * 100_000),
    "multipart-junk": ("multipart/form-data; boundary=zz", b"--zz\r\nnot a part\r\n--zz--"),
}


def _routes() -> list[tuple[str, str, str]]:
    """``(rule, endpoint, method)`` for every route of an app (built without connecting)."""
    with tempfile.TemporaryDirectory() as directory:
        app = make_app("redis://127.0.0.1:9/0", Path(directory))
        flask_routes = [
            (rule.rule, rule.endpoint, method)
            for rule in app.url_map.iter_rules()
            for method in rule.methods or ()
        ]
    # the tracking endpoint is its own WSGI app, mounted in front of Flask's URL map
    beacon_routes = [
        (tracking.PREFIX + path, f"tracking.{name}", method)
        for path, (name, methods) in tracking.ROUTES.items()
        for method in methods
    ]
    return sorted(flask_routes + beacon_routes)


ROUTES = _routes()


#: One rule per view and method is swept field by field; its twins (``.json``, ``.csv``) run the
#: same code on the same fields, so they get every field hostile at once.
def _stem(rule: str) -> str:
    return rule.removesuffix(".json").removesuffix(".csv")


PRIMARY = {
    min((r for r, _, m in ROUTES if (_stem(r), m) == (_stem(rule), method)), key=len) + " " + method
    for rule, _, method in ROUTES
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The app on a private Redis of at most 64 MB, with a few events and a saved segment."""
    server = embedded.start(tmp_path_factory.mktemp("hostile-redis"), port=0, persist=False)
    try:
        r = server.client()
        r.config_set("maxmemory", str(64 << 20))
        r.config_set("maxmemory-policy", "noeviction")
        made = make_app(
            server.url,
            tmp_path_factory.mktemp("hostile-app"),
            BITCORE_USERS=USERS,
            BITCORE_TRACK_KEYS="public-key",
            BITCORE_TRACK_MAX_UID=10_000,
            BITCORE_TRACK_RATE_LIMIT=0,
            BITCORE_LOGIN_RATE_LIMIT=0,
        )
        client: BitCore = made.extensions["bitcore"]
        client.mark_many([("signup", u, day) for u in range(5) for day in _days()])
        client.mark_many([("song", u, day) for u in range(3) for day in _days()])
        yield made
    finally:
        server.stop()


def _days() -> list[Any]:
    from datetime import date

    return [date(2024, 5, 6), date(2024, 5, 7)]


@pytest.fixture(autouse=True)
def saved_segment(app: Flask) -> None:
    """``seg`` exists at the start of every route's sweep (a sweep of delete removes it)."""
    segments = SegmentStore(app.extensions["bitcore"])
    if "seg" not in segments.names():
        segments.save("seg", "signup | song")


def _client(app: Flask, logged_in: bool) -> tuple[FlaskClient, str]:
    """A test client (logged in or not) and a CSRF token of its session."""
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    if logged_in:
        response = client.post(
            "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 302, "the sweep logs in first"
        token = csrf_token(client.get("/segments/new").get_data(as_text=True))
    return client, token


def _paths(rule: str, endpoint: str) -> list[str]:
    """The rule with each hostile value in each path argument (the first is the baseline)."""
    if "<" not in rule:
        return [rule]
    head, _, rest = rule.partition("<")
    spec, _, tail = rest.partition(">")
    name = spec.rpartition(":")[2]
    safe = "/" if spec.startswith("path:") else ""
    values = PATH_VALUES.get(name, PATH_VALUES["name"])
    if endpoint == "pages.event":
        values = ["signup", *values]  # an event that exists, so the lookup fields are read
    return [
        head + quote(value, safe=safe) + path
        for value in values
        for path in _paths(tail, endpoint)[:1]
    ]


def _baseline(endpoint: str) -> tuple[dict[str, str], bool]:
    """The endpoint's valid fields, and whether it has a table of its own (else every field any
    form knows, swept all at once: a route with no fields of its own reads none one by one)."""
    for prefix, fields in BASELINES.items():
        if endpoint == prefix or endpoint.startswith(f"{prefix}."):
            return dict(fields), True
    return dict(EVERY_FIELD), False


def _field_variants(base: dict[str, str], one_by_one: bool) -> Iterator[tuple[str, dict[str, str]]]:
    """Each field hostile in turn, then every field hostile at once."""
    for field in base if one_by_one else ():
        for label, value in VALUES.items():
            yield f"{field}={label}", {**base, field: value}
    for label, value in VALUES.items():
        yield f"all={label}", dict.fromkeys(base, value)


def _query_extras(base: dict[str, str]) -> Iterator[tuple[str, Any]]:
    """Query strings no form would make."""
    yield "repeated", [(k, v) for k, v in base.items() for _ in range(2)]
    yield "many-params", [*base.items(), *((f"p{i}", "x") for i in range(2000))]
    yield "bad-utf8", "q=%ff%fe&steps-0=%c3%28&select1=%80&name=%ed%a0%80"
    yield "huge-index", {**base, "steps-99999999999": "event:signup", "remove": "99999999999"}
    yield "huge-key", {**base, "k" * 100_000: "v"}
    yield "add-remove", {**base, "add": "1", "remove": "-1"}


def _requests(
    rule: str, endpoint: str, method: str, token: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(label, keyword arguments of client.open)`` of every hostile request for one route."""
    paths = _paths(rule, endpoint)
    base, one_by_one = _baseline(endpoint)
    one_by_one = one_by_one and f"{rule} {method}" in PRIMARY
    path = paths[0]
    yield "baseline", {"path": path, "query_string": base}
    for other in paths[1:]:
        yield f"path={other[:60]!r}", {"path": other, "query_string": base}
    if not rule.endswith((".json", ".csv")) and "<" not in rule:
        for extension in (".json", ".csv", ".xml", ".JSON"):
            yield f"extension {extension}", {"path": path + extension, "query_string": base}
    if method in {"HEAD", "OPTIONS"}:  # the GET (or POST) sweep reads the same fields
        for label in ("huge", "non-ascii", "nul", "long-number"):
            yield f"all={label}", {"path": path, "query_string": dict.fromkeys(base, VALUES[label])}
        return
    headers = {"Accept": "application/json", "Origin": "https://evil.example"}
    for label, query in _field_variants(base, one_by_one):
        # every field at once is also asked for as JSON, which some views answer differently
        extra = {"headers": headers} if label.startswith("all=") else {}
        if method == "GET":
            yield label, {"path": path, "query_string": query, **extra}
        else:
            yield label, {"path": path, "data": {**query, "csrf_token": token}, **extra}
    for label, query in _query_extras(base):
        yield label, {"path": path, "query_string": query}
    yield (
        "hostile headers",
        {
            "path": path,
            "query_string": base,
            "headers": {
                "Accept": "*/*;q=abc, text/html;q=-1",
                "X-Bitcore-Key": "ké",
                "Origin": "null",
                "X-Forwarded-For": "ü, 999.1.1.1",
                "Cookie": "session=" + "x" * 4000,
                "Content-Type": "application/json",
            },
        },
    )
    if method == "GET":
        return
    yield "no csrf", {"path": path, "data": base}
    yield "forged csrf", {"path": path, "data": {**base, "csrf_token": HUGE}}
    yield "non-ascii csrf", {"path": path, "data": {**base, "csrf_token": "ü名"}}
    yield "json body", {"path": path, "json": {**TRACK_BODY, **base}}
    for value in JSON_VALUES:
        for field in ("event", "uid", "key"):
            body = {**TRACK_BODY, field: value}
            yield f"json {field}={str(value)[:20]!r}", {"path": path, "json": body}
    for label, (content_type, raw) in BODIES.items():  # with a CSRF token, to reach the view
        yield (
            label,
            {
                "path": path,
                "data": raw,
                "content_type": content_type,
                "headers": {"X-CSRFToken": token},
            },
        )


def _where(error: BaseException) -> str:
    """The last line of our own code in the traceback, and the error."""
    ours = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename.startswith(REPO) and "/.venv/" not in frame.filename
    ]
    place = (
        f"{ours[-1].filename[len(REPO) + 1 :]}:{ours[-1].lineno}: {ours[-1].line}" if ours else "?"
    )
    return f"{place} -> {type(error).__name__}: {str(error)[:160]}"


def _sweep(
    app: Flask, rule: str, endpoint: str, method: str, logged_in: bool
) -> list[tuple[str, str]]:
    """``(request label, what went wrong)`` of every request answered 5xx or raising."""
    client, token = _client(app, logged_in)
    failures = []
    for label, request in _requests(rule, endpoint, method, token):
        try:
            status = client.open(method=method, **request).status_code
        except Exception as error:  # the test app propagates what a real one answers with a 500
            failures.append((label, _where(error)))
            continue
        if status >= 500:
            failures.append((label, f"HTTP {status}"))
    return failures


@pytest.mark.parametrize(
    ("rule", "endpoint", "method"),
    [pytest.param(*route, id=f"{route[2]} {route[0]}") for route in ROUTES],
)
@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_no_route_answers_500(
    app: Flask, rule: str, endpoint: str, method: str, logged_in: bool
) -> None:
    route = f"{method} {rule}"
    failures = [
        f"{route} [{label}]: {what}"
        for label, what in _sweep(app, rule, endpoint, method, logged_in)
    ]
    assert not failures, f"{len(failures)} requests failed:\n" + "\n".join(failures[:40])


def test_every_route_is_swept() -> None:
    """The sweep covers the app's routes, whatever they are: none is left out by a table."""
    assert {"/", "/track", "/segments/<name>/edit", "/funnel.json", "/login"} <= {
        rule for rule, _, _ in ROUTES
    }
    assert len(ROUTES) >= 60
