"""``dashboard.serving.Worker``, the gunicorn worker of ``gunicorn.conf.py``, in a real gunicorn:
beacons and pages answered in threads of their own, the same answers as Flask's own, and bad
requests and a dead Redis answered without a hang or a 500."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from process_support import start_gunicorn, stop

from bitcore import embedded
from dashboard import create_app

KEY = "serving-key"
ORIGIN = "https://shop.example"


def start(tmp_path: Path, redis_url: str, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    settings = {"BITCORE_TRACK_KEYS": KEY, "BITCORE_TRACK_ORIGINS": ORIGIN, **env}
    return start_gunicorn(tmp_path, redis_url, **settings)


@pytest.fixture
def served(tmp_path: Path, redis_url: str) -> Iterator[int]:
    process, port = start(tmp_path, redis_url)
    try:
        yield port
    finally:
        stop(process)
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log


def ask(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


#: Requests whose answers the served app and Flask's test client must agree on.
SAME_ANSWERS: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("POST", "/track", b'{"event":"play","uid":7}', {"X-Bitcore-Key": KEY}),
    ("POST", "/track", b"{not json", {"X-Bitcore-Key": KEY}),
    ("POST", "/track", b'{"event":"play","uid":7}', {"X-Bitcore-Key": "nope"}),
    ("POST", "/track", b'{"event":"play","uid":7}', {"X-Bitcore-Key": KEY, "Origin": "https://x"}),
    ("OPTIONS", "/track", None, {"Origin": ORIGIN}),
    ("GET", f"/track/p.gif?e=mail&u=3&k={KEY}", None, {}),
    ("GET", f"/track/p.gif?e=mail&u=x&k={KEY}", None, {"Origin": ORIGIN}),
    ("GET", "/track", None, {}),  # a wrong method: Flask's 405, from a thread
    ("GET", "/static/bitcore.js", None, {}),  # a file, streamed from a thread
]
#: Headers the server adds or words its own way; everything else must match.
SERVER_HEADERS = {"date", "server", "connection", "keep-alive", "transfer-encoding"}


def comparable(
    status: int, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    kept = {k.lower(): v for k, v in headers.items() if k.lower() not in SERVER_HEADERS}
    if "allow" in kept:  # a set, in whatever order the process's hashing gives
        kept["allow"] = ", ".join(sorted(kept["allow"].split(", ")))
    if "content-length" not in kept and body:
        kept["content-length"] = str(len(body))
    return status, kept, body


def test_beacons_and_pages_are_answered_as_flask_answers_them(
    served: int, redis_url: str, redis_client: redis.Redis
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    through_gunicorn = [
        comparable(*ask(connection, method, path, body, headers))  # one kept-alive connection
        for method, path, body, headers in SAME_ANSWERS
    ]
    connection.close()
    written = sorted(redis_client.keys("trackist_*"))
    redis_client.flushdb()
    app = create_app(
        {"SECRET_KEY": "test", "REDIS_URL": redis_url, "BITCORE_TRACK_KEYS": KEY,
         "BITCORE_TRACK_ORIGINS": ORIGIN, "BITCORE_CLEANUP_ENABLED": False}
    )  # fmt: skip
    client = app.test_client()
    through_flask = []
    for method, path, body, headers in SAME_ANSWERS:
        url = urlsplit(path)
        response = client.open(url.path, method=method, query_string=url.query, data=body,
                               headers=headers)  # fmt: skip
        through_flask.append(
            comparable(response.status_code, dict(response.headers), response.data)
        )
    assert through_gunicorn == through_flask
    assert [status for status, _, _ in through_gunicorn] == [
        200,
        400,
        403,
        403,
        204,
        200,
        400,
        405,
        200,
    ]
    assert written == sorted(redis_client.keys("trackist_*"))
    assert any(b"play" in key for key in written) and any(b"mail" in key for key in written)


def test_a_page_is_served_from_a_thread(served: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    status, headers, body = ask(connection, "GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"</html>" in body


def refused_early(port: int, head: bytes, sent: bytes) -> tuple[int, dict[str, object]]:
    """Send ``head`` and the first part of a body that would be far larger, then read the answer
    without sending the rest: the server must answer from what it has."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + sent)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_a_huge_body_is_refused_without_being_read_whole(served: int) -> None:
    """Ten megabytes announced, a kilobyte sent: a 413 JSON naming the body, at once."""
    head = (
        b"POST /track HTTP/1.1\r\nHost: x\r\nX-Bitcore-Key: " + KEY.encode() +
        b"\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )  # fmt: skip
    status, body = refused_early(served, head, b'{"events":[' + b" " * 1_000)
    assert (status, body["field"]) == (413, "body")
    fresh = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    assert ask(fresh, "GET", "/healthz")[0] == 200


def test_a_chunked_body_without_length_is_bounded_too(served: int) -> None:
    head = (
        b"POST /track HTTP/1.1\r\nHost: x\r\nX-Bitcore-Key: " + KEY.encode() +
        b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )  # fmt: skip
    chunk = b"%x\r\n%s\r\n" % (10_000, b" " * 10_000)
    status, body = refused_early(served, head, chunk * 30)  # past the limit, never a last chunk
    assert (status, body["field"]) == (413, "body")


def test_a_dead_redis_is_a_503_and_the_worker_lives_on(tmp_path: Path) -> None:
    server = embedded.start(str(tmp_path / "data"), port=0, persist=False)
    process, port = start(tmp_path, server.url)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        beacon = b'{"event":"play","uid":7}'
        assert ask(connection, "POST", "/track", beacon, {"X-Bitcore-Key": KEY})[0] == 200
        server.stop()
        for _ in range(3):
            status, headers, body = ask(
                connection, "POST", "/track", beacon, {"X-Bitcore-Key": KEY}
            )
            assert status == 503
            assert headers["retry-after"] == "5"
            assert "unavailable" in json.loads(body)["error"]
        assert ask(connection, "GET", "/track/p.gif?e=mail&u=3&k=" + KEY)[0] == 503
        assert process.poll() is None
    finally:
        stop(process)
        server.stop()
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()


def post_chunked(port: int, parts: list[bytes]) -> tuple[int, bytes]:
    """POST ``parts`` to ``/track`` as a chunked body (no Content-Length), as ``fetch`` sends a
    stream."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/track", body=iter(parts), headers={"X-Bitcore-Key": KEY},
                       encode_chunked=True)  # fmt: skip
    response = connection.getresponse()
    return response.status, response.read()


def test_a_small_chunked_beacon_is_read_whole(served: int, redis_client: redis.Redis) -> None:
    """``fetch`` with a stream body sends chunks and no length: the beacon still counts."""
    answer = post_chunked(served, [b'{"event":"chunked",', b'"uid":12}'])
    assert answer == (200, b'{"accepted":1}\n')
    assert redis_client.keys("trackist_chunked_*")


def test_a_large_chunked_beacon_is_read_whole_too(served: int, redis_client: redis.Redis) -> None:
    """A chunked body of many chunks, longer than one read from the socket, still arrives whole."""
    padding = [b'"pad%d":"%s",' % (n, b"x" * 1000) for n in range(12)]
    answer = post_chunked(served, [b"{", *padding, b'"event":"threaded",', b'"uid":13}'])
    assert answer == (200, b'{"accepted":1}\n')
    assert redis_client.keys("trackist_threaded_*")


def test_mapped_beacons_with_string_ids_are_written_through_the_worker(
    tmp_path: Path, redis_url: str
) -> None:
    """With the id map on, a beacon's ids are looked up through redis-py, which may not block
    the event loop: the worker serves those beacons from its threads, and they are written."""
    redis.Redis.from_url(redis_url).flushall()
    process, port = start(tmp_path, redis_url, BITCORE_ID_MAPPING="1")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for uid in ('"usr_8f3a"', '"usr_8f3a"', "18446744073709551", '"b2f1"'):
            body = b'{"event":"play","uid":%s}' % uid.encode()
            status, _, answer = ask(connection, "POST", "/track", body, {"X-Bitcore-Key": KEY})
            assert status in (200, 204), answer
    finally:
        stop(process)
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log
    from bitcore import BitCore

    mapped = BitCore(redis_url, id_mapping=True)
    assert sorted(map(str, mapped.MonthEvents("play"))) == sorted(
        ["usr_8f3a", "18446744073709551", "b2f1"]
    )
