"""Redis at its ``maxmemory`` (``noeviction``): what needs memory answers 507 saying so, pages
that only read keep working, never a 500. On a private redis-server whose cap is set below what
it already holds, so nothing can grow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dashboard_support import PASSWORD, USERS, csrf_token, make_app
from flask import Flask

from bitcore import BitCore, embedded
from dashboard import errors


@pytest.fixture
def full(tmp_path: Path) -> Iterator[tuple[Flask, redis.Redis]]:
    server = embedded.start(tmp_path / "redis", port=0, persist=False, maxmemory="64mb")
    try:
        writer = BitCore(server.url)
        for uid in (1, 2, 3, 500):
            writer.mark_event("active", uid)
            writer.mark_event("signup", uid)
        client = server.client()
        client.config_set("maxmemory", 1)  # full: every write that needs memory is refused
        yield make_app(server.url, tmp_path), client
    finally:
        server.stop()


def test_the_server_really_is_full(full: tuple[Flask, redis.Redis]) -> None:
    _app, client = full
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("more", "x")


def test_saving_a_segment_is_a_507_saying_redis_is_full(full: tuple[Flask, redis.Redis]) -> None:
    app, _client = full
    web = app.test_client()
    token = csrf_token(web.get("/segments/new").get_data(as_text=True))
    form = {"name": "keen", "expression": "active & signup", "csrf_token": token}
    response = web.post("/segments/new", data=form)
    assert response.status_code == 507, response.get_data(as_text=True)[:2000]
    assert "Redis is full" in response.get_data(as_text=True)
    assert web.post("/segments/new.json", data=form).get_json()["error"]["status"] == 507


@pytest.mark.parametrize(
    "url",
    ["/", "/index.json", "/segments", "/segments.json", "/event/active", "/event/active.json",
     "/segments/preview?expression=active+%26+signup", "/system", "/healthz"],
)  # fmt: skip
def test_pages_answer_without_a_500(full: tuple[Flask, redis.Redis], url: str) -> None:
    response = full[0].test_client().get(url)
    assert response.status_code in {200, 507}, (url, response.status_code)


@pytest.mark.parametrize(
    "url",
    ["/", "/index.json", "/segments", "/segments.json", "/event/active", "/event/active.json",
     "/funnel?steps-0=active&steps-1=signup", "/funnel.json?steps-0=active&steps-1=signup",
     "/cohort?select1=active&select2=signup", "/cohort.json?select1=active&select2=signup"],
)  # fmt: skip
def test_pages_that_only_read_keep_working(full: tuple[Flask, redis.Redis], url: str) -> None:
    """Events, funnels and cohorts over events are read and counted without writing a key, so a
    full Redis still answers them."""
    response = full[0].test_client().get(url)
    assert response.status_code == 200, (url, response.get_data(as_text=True)[:2000])


OOM = "command not allowed when used memory > 'maxmemory'."


@pytest.mark.parametrize(
    ("error", "full_"),
    [
        (redis.exceptions.OutOfMemoryError(OOM), True),
        (redis.exceptions.ExecAbortError(
            "Transaction discarded because of: OOM command not allowed when used memory > "
            "'maxmemory'."), True),
        (redis.ResponseError("Error running script (call to f_1): @user_script:1: "
                             "-OOM command not allowed when used memory > 'maxmemory'."), True),
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
    ],
)  # fmt: skip
def test_what_counts_as_out_of_memory(error: Exception, full_: bool) -> None:
    assert errors.is_out_of_memory(error) is full_


def test_a_logged_in_user_keeps_reading_and_can_log_out(tmp_path: Path) -> None:
    """Logging in needs a few bytes (the rate-limit counter, the session's key): it is a 507 on a
    full Redis. A session opened before keeps working, and logging out (a delete) still works."""
    server = embedded.start(tmp_path / "redis", port=0, persist=False, maxmemory="64mb")
    try:
        app = make_app(server.url, tmp_path, BITCORE_USERS=USERS)
        web = app.test_client()
        token = csrf_token(web.get("/login").get_data(as_text=True))
        form = {"username": "alice", "password": PASSWORD, "csrf_token": token}
        assert web.post("/login", data=form).status_code == 302
        server.client().config_set("maxmemory", 1)
        assert web.get("/index.json").status_code == 200
        late = app.test_client()
        token = csrf_token(late.get("/login").get_data(as_text=True))
        assert late.post("/login", data={**form, "csrf_token": token}).status_code == 507
        token = csrf_token(web.get("/").get_data(as_text=True))
        assert web.post("/logout", data={"csrf_token": token}).status_code == 302
        assert web.get("/index.json").status_code == 401
    finally:
        server.stop()
