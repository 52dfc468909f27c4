"""Overview pages: what events exist and how many users did each."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from dashboard import render, store

bp = Blueprint("pages", __name__)


@bp.route("/index.json")
@bp.route("/")
def overview() -> ResponseReturnValue:
    names = sorted(store.client().get_event_names())
    return render.page("overview.html", {"events": names})
