"""Overview and event pages: what events exist, how many users did each, and how one event is doing.

The numbers are computed by :mod:`bitcore.overview` (plain dataclasses); this module parses the
query string, calls it and renders. Each page has a JSON twin (``/index.json``,
``/event/<name>.json``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, request, url_for
from flask.typing import ResponseReturnValue

from bitcore import BitCore, event_names
from bitcore import overview as report
from bitcore.saved_reports import ReportStore
from bitcore.segments import format_expression
from bitcore.segments.parser import Unique
from dashboard import negotiation, store
from dashboard.forms.pages import (
    ExternalFlagLookupForm,
    ExternalUserLookupForm,
    FlagLookupForm,
    OverviewFilterForm,
    UserLookupForm,
)
from dashboard.presenters import charts
from dashboard.saved import cards

bp = Blueprint("pages", __name__)


@bp.route("/index.json")
@bp.route("/")
def overview() -> ResponseReturnValue:
    form = OverviewFilterForm(request.args)
    if not form.validate():
        data = {"errors": form.errors, "events": []}
        error = negotiation.form_error(400, form.errors)
        return negotiation.page("overview.html", data, 400, error=error, form=form)
    client = store.client()
    today = report.today_of(client)
    query = form.q.data or ""
    result = report.overview(client, today, query, form.page.data or 1, page_size())
    data = {
        "date": today.isoformat(),  # the day counted up to; "today" is always a count of users
        "filter": query,
        "events": [asdict(row) for row in result.events],
        "page": result.page,
        "per_page": result.per_page,
        "pages": result.pages,
        "total": result.total,
        "complete": result.complete,
        "next": _page_link(query, result.page + 1) if result.has_next else None,
        "previous": _page_link(query, result.page - 1) if result.page > 1 else None,
        "flags": [asdict(flag) for flag in result.flags],
        "flags_complete": result.flags_complete,
    }
    home = result.page == 1 and not query  # the cards top the first page, not a search
    pinned = ReportStore(client).on_overview() if home else []
    shown = [cards.card(saved, client) for saved in pinned]
    data["reports"] = [card.as_dict() for card in shown]
    sparklines = {row.name: charts.sparkline_points(row.trend) for row in result.events}
    example = format_expression(Unique(result.flags[0].name)) if result.flags else ""
    return negotiation.page(
        "overview.html",
        data,
        form=form,
        sparklines=sparklines,
        flag_example=example,
        cards=shown,
    )


def page_size() -> int:
    """Events per overview page: ``BITCORE_OVERVIEW_PAGE_SIZE``, kept within 1..500."""
    size = int(current_app.config.get("BITCORE_OVERVIEW_PAGE_SIZE") or event_names.DEFAULT_LIMIT)
    return min(max(size, 1), 500)


def _page_link(query: str, page: int) -> str:
    """The same listing, another page, in the format asked for (``/`` or ``/index.json``)."""
    args = urlencode({"q": query, "page": page} if query else {"page": page})
    base = url_for("pages.overview")
    path = f"{base}index.json" if request.path.endswith(".json") else base
    return f"{path}?{args}"


def _event_name(name: str) -> str:
    """The event name in the URL; ``/event/<name>.json`` is the JSON twin of ``/event/<name>``."""
    if request.path.endswith(".json") and name.endswith(".json"):
        name = name[: -len(".json")]
    return name


def _kind(client: BitCore, name: str) -> str | None:
    """``"event"``, ``"flag"`` or ``None`` (never tracked, or a name the library refuses, such as
    ``bitop_…``)."""
    try:
        return report.event_kind(client, name)
    except (TypeError, ValueError):
        return None


@bp.route("/event/<path:name>")
def event(name: str) -> ResponseReturnValue:
    name = _event_name(name)
    client = store.client()
    kind = _kind(client, name)
    if kind is None:
        abort(404, description=f"No event named {name!r} has been tracked.")
    if kind == "flag":
        return _flag_page(client, name)
    today = report.today_of(client)
    activity = report.event_activity(client, name, today)
    data: dict[str, Any] = {"kind": "event", **asdict(activity)}
    data["date"] = today.isoformat()
    data["today"] = activity.daily[-1].count  # users today, as in this event's index.json row
    lookup = (ExternalUserLookupForm if client.id_mapping else UserLookupForm)(request.args)
    status = 200
    error = None
    if "user" in request.args or "date" in request.args:
        if lookup.validate():
            day: date = lookup.date.data  # type: ignore[assignment]
            user: int | str = lookup.user.data  # type: ignore[assignment]
            found = report.was_active(client, name, user, day)
            data["lookup"] = {"user": user, "date": day.isoformat(), "active": found}
        else:
            data["lookup"] = {"errors": lookup.errors}
            error, status = negotiation.form_error(400, lookup.errors), 400
    sizes = {"daily": (1000, 280), "weekly": (520, 260), "monthly": (520, 260)}
    chart_of = {
        kind: charts.line_chart(
            [p["label"] for p in data[kind]],
            [p["count"] for p in data[kind]],
            *sizes[kind],
            in_progress=[p is data[kind][-1] for p in data[kind]],  # the current period
        )
        for kind in sizes
    }
    return negotiation.page(
        "event.html", data, status, error=error, lookup=lookup, chart_of=chart_of
    )


def _flag_page(client: BitCore, name: str) -> ResponseReturnValue:
    """A flag (dateless event) has no days to chart: its size, and "does user N carry it?"."""
    data: dict[str, Any] = {
        "kind": "flag",
        "name": name,
        "users": report.flag_size(client, name),
        "expression": format_expression(Unique(name)),
    }
    lookup = (ExternalFlagLookupForm if client.id_mapping else FlagLookupForm)(request.args)
    status, error = 200, None
    if "user" in request.args:
        if lookup.validate():
            user: int | str = lookup.user.data  # type: ignore[assignment]
            data["lookup"] = {"user": user, "flagged": report.has_flag(client, name, user)}
        else:
            data["lookup"] = {"errors": lookup.errors}
            error, status = negotiation.form_error(400, lookup.errors), 400
    return negotiation.page("flag.html", data, status, error=error, lookup=lookup)
