"""The funnel page and its twins: ``/funnel`` (HTML), ``/funnel.json`` and ``/funnel.csv``.

All three come from the same rows (``dashboard.presenters.funnel``), so an export is exactly
what is shown. The view only reads the form, calls ``bitcore.funnel`` and renders. "Add step" and
"Remove step" re-render the edited form with the funnel of its filled steps still shown; links
carry the start period shown (``FunnelForm.pinned_query``) unless the funnel is rolling.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import redis
from flask import Blueprint, Response, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from bitcore import funnel, periods
from bitcore.limits import TooCostly
from dashboard import negotiation, report_limits, store
from dashboard.forms.breakdown import GROUP_CHOICES_ID, offered_group_choices
from dashboard.forms.choices import selection_choices
from dashboard.forms.funnel import (
    FunnelForm,
    edited_args,
    is_edit,
    step_values,
    with_defaults,
    without_empty_steps,
)
from dashboard.forms.selection import input_text
from dashboard.presenters import numbers
from dashboard.presenters.exports import download_name
from dashboard.presenters.funnel import (
    FUNNEL_COLUMNS,
    conversion_line,
    funnel_rows,
    funnel_summary,
    grouped_bars,
    grouped_rows,
    trend_columns,
    trend_rows,
)

bp = Blueprint("funnel", __name__)


def _form(args: MultiDict[str, str], choices: list[tuple[str, str]]) -> FunnelForm:
    form = FunnelForm(with_defaults(args, store.client().now()))
    if not form.steps.entries:
        for _ in range(funnel.MIN_STEPS):
            form.steps.append_entry()
    form.set_step_choices(choices)
    return form


def _share_urls(form: FunnelForm, name: str) -> dict[str, str]:
    """Links to the report shown, its start pinned unless it is rolling (``pinned_query``)."""
    pairs = form.pinned_query()
    query = urlencode(pairs)
    return {
        "html": f"{url_for('funnel.funnel_page')}?{query}",
        "json": f"{url_for('funnel.funnel_json')}?{query}",
        "csv": f"{url_for('funnel.funnel_csv')}?{query}",
        "trend_csv": f"{url_for('funnel.funnel_csv')}?{urlencode([*pairs, ('table', 'trend')])}",
        "json_name": f"{name}.json",
    }


def _users_urls(report: funnel.Funnel, by: str | None = None) -> dict[int, dict[str, str]]:
    """Per step, the users page of who reached it and of who dropped off before it (of a
    compared group, ``by``)."""
    base = [
        ("of", "funnel"),
        *[(f"steps-{k}", step.token) for k, step in enumerate(report.steps)],
        ("kind", report.kind),
        ("start", periods.label(report.start)),
        ("window", str(report.window)),
        *([("by", by)] if by else []),
    ]
    page = url_for("users.users_page")
    return {
        step.position: {
            part: f"{page}?{urlencode([*base, ('step', str(step.position)), ('part', part)])}"
            for part in ("step", "dropoff")
        }
        for step in report.steps
    }


def _respond(
    form: FunnelForm,
    status: int,
    csv: Response | None = None,
    limit: str | None = None,
    **data: Any,
) -> ResponseReturnValue:
    """The page, its JSON twin or its CSV download (``dashboard.negotiation``) of one state;
    errors in every format are the form's field errors and the refusal's message."""
    error = None
    if status >= 400:
        message = data.get("message")
        if message:
            error = negotiation.error_body(status, message, fields=form.errors, limit=limit)
        else:
            error = negotiation.form_error(status, form.errors)
    twin = {"funnel": data.get("funnel"), "trend": data.get("trend")}
    if data.get("groups"):
        twin["groups"] = [{"by": g["by"], "funnel": g["funnel"]} for g in data["groups"]]
    return negotiation.page(
        "funnel.html",
        twin,
        status,
        error=error,
        csv=lambda: csv or negotiation.nothing_to_download(),
        form=form,
        limits=funnel,
        numbers=numbers,
        input_text=input_text,
        group_choices_id=GROUP_CHOICES_ID,
        group_choices=offered_group_choices(store.client()),
        **data,
    )


def _run(form: FunnelForm) -> tuple[int, dict[str, Any]]:
    """The report of a validated form: its status and what the page, JSON and CSV show."""
    client = store.client()
    groups = form.by.groups
    compared: list[funnel.Funnel] = []
    try:
        if groups:  # everyone's trend and each group's funnel, in one read
            trend, compared = funnel.funnel_groups(
                client,
                form.step_tokens(),
                form.start_period(),
                form.window.data,
                groups,
                max_bytes=report_limits.max_bytes(),
                trend=form.trend.data,
            )
        else:
            trend = funnel.funnel_trend(
                client,
                form.step_tokens(),
                form.start_period(),
                form.window.data,
                form.trend.data,
                max_bytes=report_limits.max_bytes(),
            )
    except TooCostly as error:
        refused = report_limits.refusal(error)
        return refused.status, {"message": refused.message, "limit": refused.setting}
    except (funnel.FunnelError, LookupError, ValueError) as error:
        return 400, {"message": str(error)}
    except redis.RedisError as error:
        return 503, {"message": f"Redis is unavailable: {error}"}
    now = client.now()
    report = trend.funnels[-1]
    rows, trend_table = funnel_rows(report), trend_rows(trend, now)
    first = trend.funnels[0]
    names = [input_text(token) for token in form.step_tokens()]
    name = download_name("funnel", *names, report.kind, first.start, report.end)
    by = [(group.by, group.label, shown) for group, shown in zip(groups, compared, strict=True)]
    if request.args.get("table") == "trend":
        download = negotiation.csv_download(
            trend_columns(len(report.steps)), trend_table, f"{name}-trend.csv"
        )
    elif by:
        grouped = grouped_rows(rows, [(g, funnel_rows(shown)) for g, _, shown in by])
        download = negotiation.csv_download(["group", *FUNNEL_COLUMNS], grouped, f"{name}.csv")
    else:
        download = negotiation.csv_download(FUNNEL_COLUMNS, rows, f"{name}.csv")
    summary = funnel_summary(report, now)
    groups_shown = [
        {"by": g, "label": label, "funnel": funnel_summary(shown, now)} for g, label, shown in by
    ]
    return 200, {
        "csv": download,
        "funnel": summary,
        "groups": groups_shown,
        "bars": grouped_bars(summary, groups_shown) if by else None,
        "group_users_urls": [_users_urls(shown, g) for g, _, shown in by],
        "trend": trend_table,
        "line": conversion_line(trend_table),
        "urls": _share_urls(form, name),
        "users_urls": _users_urls(report),
    }


def _report() -> ResponseReturnValue:
    client = store.client()
    choices = selection_choices(client, step_values(request.args))
    args = request.args
    if is_edit(args):
        # "Add step" / "Remove step": the edited form, and the funnel of its filled steps still
        # shown when they make a valid one (an added step is empty until it is filled in)
        args, notice = edited_args(args)
        form = _form(args, choices)
        filled = _form(without_empty_steps(args), choices)
        if len(step_values(without_empty_steps(args))) >= funnel.MIN_STEPS and filled.validate():
            status, shown = _run(filled)
            if status == 200:
                return _respond(form, 200, notice=notice, **shown)
        return _respond(form, 200, notice=notice, urls=None)
    form = _form(args, choices)
    if not any(k.startswith("steps-") for k in args):
        return _respond(form, 200, urls=None)  # a fresh form: nothing asked yet
    if not form.validate():
        return _respond(form, 400, urls=None)
    status, shown = _run(form)
    return _respond(form, status, **({"urls": None} | shown))


@bp.route("/funnel.csv", endpoint="funnel_csv")
@bp.route("/funnel.json", endpoint="funnel_json")
@bp.route("/funnel")
def funnel_page() -> ResponseReturnValue:
    """``/funnel``; ``.json``, ``.csv`` or an ``Accept`` header ask for its twins."""
    return _report()
