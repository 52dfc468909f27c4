"""The report pages' compare inputs (``by=``: a saved segment and a flag) on a sharded app
(issue 17), on one Redis (``BITCORE_LAYOUT=sharded``) and on a Redis Cluster
(``BITCORE_REDIS_CLUSTER=1``): the cohort, funnel, lifecycle and stickiness pages, their JSON and
CSV twins and a compared cell's drill-down give the flat app's answers over the same marks."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import make_app
from flask import Flask

from bitcore.segments import SegmentStore

SHARD = 1 << 20
#: Users of shards 0, 1 and 4: every group's numbers cross shards.
USERS = [0, 3, SHARD, SHARD + 1, SHARD + 6, 4 * SHARD + 2, 4 * SHARD + 5]
DAY = datetime(2024, 5, 6, 12)
BY = "&by=segment:evens&by=unique:premium"
PAGES = [
    "/cohort.json?select1=active&select2=play&num_results=3&num_of_rows=2"
    "&start_date=2024-05-06&as_percent=0" + BY,
    "/funnel.json?steps-0=event:active&steps-1=event:play&kind=day&start=2024-05-06"
    "&window=3&trend=2" + BY,
    "/lifecycle.json?event=active&period=day&count=3&end=2024-05-08" + BY,
    "/stickiness.json?event=active&period=week&start=2024-W19" + BY,
    "/lifecycle.csv?event=active&period=day&count=3&end=2024-05-08" + BY,
]


def _mark(app: Flask) -> None:
    client = app.extensions["bitcore"]
    marks = [("active", u, DAY) for u in USERS]
    marks += [("active", u, DAY + timedelta(days=1)) for u in USERS[::2]]
    marks += [("play", u, DAY + timedelta(days=1)) for u in USERS[1:]]
    marks += [("even", u, DAY) for u in USERS if u % 2 == 0]
    client.mark_many(marks)
    client.mark_unique_many([("premium", u) for u in (3, SHARD + 1, 4 * SHARD + 2)])
    SegmentStore(client).save("evens", "even")


def _answers(app: Flask) -> dict[str, Any]:
    _mark(app)
    web = app.test_client()
    answers: dict[str, Any] = {}
    for page in PAGES:
        response = web.get(page)
        assert response.status_code == 200, (page, response.get_data(as_text=True)[:300])
        answers[page] = response.get_json() if ".json" in page else response.text
    for page in (p.replace(".json", "", 1) for p in PAGES[:4]):
        html = web.get(page)
        text = html.get_data(as_text=True)
        assert html.status_code == 200, (page, text[:300])
        assert "evens (segment)" in text and "premium (flag)" in text
        found = [unescape(h) for h in re.findall(r'href="(/users\?[^"]*)"', text)]
        drilled = [h for h in found if "by=flag:premium" in h or "by=unique%3Apremium" in h]
        answers[f"{page} drill-down"] = [
            sorted(web.get(h.replace("/users?", "/users.json?")).get_json()["users"])
            for h in drilled[:2]
        ]
    return answers


@pytest.fixture
def flat_answers(flat_app: Flask) -> dict[str, Any]:
    return _answers(flat_app)


def _check(answers: dict[str, Any], flat: dict[str, Any]) -> None:
    assert answers == flat
    cohort = answers[PAGES[0]]
    evens, premium = (g["table"]["rows"][0] for g in cohort["groups"])
    assert (evens["size"], premium["size"]) == (4, 3)  # 0, 1048576, 1048582, 4194306; 3 ...
    assert [c["count"] for c in premium["cells"]] == [None, 3, None]  # play on day 2 only
    funnel = answers[PAGES[1]]
    assert [[s["users"] for s in g["funnel"]["steps"]] for g in funnel["groups"]] == [
        [4, 3],
        [3, 3],
    ]
    sticky = [[h["users"] for h in g["histogram"]][:3] for g in answers[PAGES[3]]["groups"]]
    assert sticky == [[1, 3, 0], [3, 0, 0]]  # evens: three of four on both days
    assert "unique:premium,2024-05-07,0,0,0,3" in answers[PAGES[4]].splitlines()
    drilled = answers[PAGES[0].replace(".json", "", 1) + " drill-down"]
    assert drilled == [[3, SHARD + 1, 4 * SHARD + 2]] * 2  # premium's cohort, and who played


def test_the_sharded_app_answers_as_the_flat_app(
    flat_answers: dict[str, Any], sharded_app: Flask
) -> None:
    _check(_answers(sharded_app), flat_answers)


def test_what_the_layout_refuses_is_a_501_page_not_a_500(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal of the library (``ShardedLayoutUnsupported``, raised before anything is read)
    reaching a page is said plainly, in every format."""
    from bitcore import lifecycle
    from bitcore.shards import ShardedLayoutUnsupported

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise ShardedLayoutUnsupported("a report is not built for the sharded layout yet")

    app = make_app(redis_url, tmp_path / "sharded", BITCORE_LAYOUT="sharded")
    _mark(app)
    monkeypatch.setattr(lifecycle, "lifecycle_groups", refused)
    web = app.test_client()
    page = PAGES[2]
    answer = web.get(page)
    assert answer.status_code == 501
    assert "not built for the sharded layout" in answer.get_json()["error"]["message"]
    html = web.get(page.replace(".json", "", 1))
    assert html.status_code == 501 and "Not available on this layout" in html.text
