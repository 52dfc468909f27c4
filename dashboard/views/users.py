"""The users page: who is behind a number of a report. ``/users`` (the first ``PAGE_USERS`` and
how many in all), ``/users.csv`` (a ``user_id`` column) and ``/users.json``, both streamed.

``?of=cohort`` (a cohort's selections, ``time_group``, the row's period ``cohort`` and the column
``offset``, none for the row's own users), ``?of=funnel`` (the funnel's steps, ``kind``,
``start``, ``window``, and ``step``, with ``part=dropoff`` for its drop-off) or ``?of=segment``
(``expression``, ``kind``, ``when``, as the preview). The reports link here for every number.

Every input is checked by the report's own form (``dashboard.forms.users``): nonsense is a 400
naming the field, a drill-down that would read more than ``BITCORE_REPORT_MAX_BYTES`` a 422, a
segment over its own limit a 422, before anything is computed. The users are read in bounded
slices and written out in batches as they come (``bitcore.drilldown``): the whole list is never
in memory. The downloads' ids are external ids with the id map on, integers otherwise; a
download cut short by a failure is a JSON document without its end, or a CSV short of rows (the
JSON ends with ``"count"``, the number of ids it holds).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from flask import Blueprint, Response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from wtforms import Form

from bitcore import BitCore, drilldown, funnel, periods
from bitcore.bitmaps import Bitmap
from bitcore.cohort import engine
from bitcore.limits import TooCostly
from bitcore.segments import SegmentError, SegmentStore
from bitcore.selections import Selection
from dashboard import negotiation, report_limits, store
from dashboard.forms.choices import selection_choices
from dashboard.forms.funnel import normalise_steps, step_values
from dashboard.forms.users import SOURCES, CohortCellForm, FunnelStepForm, SegmentUsersForm

bp = Blueprint("users", __name__)

#: Users listed on the page; the downloads have them all.
PAGE_USERS = 1000
#: Ids per chunk of a download: one write per few thousand ids, not per id.
STREAM_BATCH = 5000
FORMATS = ("html", "json", "csv")
COHORT_SELECTIONS = ("select1", "select1b", "select2", "select2b")


@dataclass(frozen=True)
class Drill:
    """The users of one number: their bitmap, and what they are in words."""

    bitmap: Bitmap
    title: str


class Refused(Exception):
    """A drill-down that cannot be answered: the status and the message to answer with."""

    def __init__(self, status: int, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.limit = limit


def _and(first: str, second: str | None) -> str:
    return f"{first} and {second}" if second else first


def _cohort(client: BitCore, args: MultiDict[str, str]) -> tuple[Form, Drill | None]:
    choices = selection_choices(client, [args.get(f, "") for f in COHORT_SELECTIONS])
    form = CohortCellForm(args, choices=choices)
    if not form.validate():
        return form, None
    period, offset = form.cohort_period(), form.offset.data
    selections = form.selections()
    first_times = form.cohort_type.data == "first_time"
    after = form.retention.data == "on_or_after"
    until = periods.period_of(period.kind, client.now()) if after else None
    bitmap = drilldown.cohort_cell(
        client, selections, period, offset, first_times=first_times, until=until
    )
    for group in form.by.groups:  # a compared group's cell: its members in the cohort's period
        bitmap = drilldown.AndOf(bitmap, group.bitmap(client, period))
    did = _and(selections[0], selections[1]) + (" for the first time" if first_times else "")
    title = f"Cohort {periods.label(period)}: did {did}"
    title += "".join(f" (only {group.label})" for group in form.by.groups)
    if offset is not None:
        unit = engine.period_kind(form.time_group.data)
        later = f"{offset} {unit}{'s' if offset != 1 else ''} later"
        later += " or any time after" if after else ""
        title += f"; {later} did {_and(selections[2], selections[3])}"
    return form, Drill(bitmap, title)


def _funnel(client: BitCore, args: MultiDict[str, str]) -> tuple[Form, Drill | None]:
    args = normalise_steps(args)
    form = FunnelStepForm(args)
    form.set_step_choices(selection_choices(client, step_values(args)))
    if not form.validate():
        return form, None
    sources: list[funnel.StepSource] = [Selection.parse(t) for t in form.step_tokens()]
    for group in form.by.groups:  # a compared group's funnel: step 1 only its users
        sources[0] = funnel.RestrictedStep(sources[0], group)
    start, window, step = form.start_period(), form.window.data, form.step.data
    bitmap = drilldown.funnel_step(client, sources, start, window, step, form.dropoff)
    end = periods.shift(start, window - 1)
    span = f"Funnel {periods.label(start)} → {periods.label(end)}"
    span += "".join(f" (only {group.label})" for group in form.by.groups)
    reached = f"step {step} ({sources[step - 1].label})"
    if form.dropoff:
        before = f"step {step - 1} ({sources[step - 2].label})"
        return form, Drill(bitmap, f"{span}: reached {before} but not {reached}")
    return form, Drill(bitmap, f"{span}: reached {reached}")


def _segment(client: BitCore, args: MultiDict[str, str]) -> tuple[Form, Drill | None]:
    form = SegmentUsersForm(args)
    if not form.validate():
        return form, None
    segments = SegmentStore(client)  # the app's limit, BITCORE_SEGMENT_MAX_BYTES
    period = form.period()
    expression = form.expression.data
    try:
        bitmap = segments.preview(expression, period, form.name.data or None, compute=False)
    except SegmentError as error:
        raise _segment_refusal(error) from None
    return form, Drill(bitmap, f"Segment {expression} in {periods.label(period)}")


def _segment_refusal(error: SegmentError) -> Refused:
    """422 for a segment too costly to compute (``report_limits.refusal``), else 400."""
    if isinstance(error, TooCostly):
        return Refused(*report_limits.refusal(error))
    return Refused(400, str(error))


BUILDERS = {"cohort": _cohort, "funnel": _funnel, "segment": _segment}


def _computed(client: BitCore, drill: Drill, fmt: str) -> tuple[list[Any], Iterator[Any]]:
    """The first ids (``PAGE_USERS`` for the page, one for a download) and the rest, lazily: the
    bitmap is computed here, so its failures answer with their status, not a cut download."""
    try:
        drilldown.check_cost(client, drill.bitmap, report_limits.max_bytes())
        members = drilldown.external_members(client, drill.bitmap)
        head = list(islice(members, PAGE_USERS if fmt == "html" else 1))
    except TooCostly as error:
        raise Refused(*report_limits.refusal(error)) from None
    except SegmentError as error:
        raise _segment_refusal(error) from None
    return head, members


def _batches(ids: Iterable[Any]) -> Iterator[list[Any]]:
    iterator = iter(ids)
    while batch := list(islice(iterator, STREAM_BATCH)):
        yield batch


def _plain(batch: list[Any]) -> bool:
    """Whether every id of ``batch`` is an integer: written as digits, no quoting to decide
    (five times faster than the ``csv`` and ``json`` modules, id by id)."""
    return set(map(type, batch)) == {int}


def _csv_stream(ids: Iterable[Any]) -> Iterator[str]:
    yield "user_id\n"
    for batch in _batches(ids):
        if _plain(batch):
            yield "\n".join(map(str, batch)) + "\n"
            continue
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([user] for user in batch)
        yield out.getvalue()


def _json_stream(of: str, title: str, ids: Iterable[Any]) -> Iterator[str]:
    yield f'{{"of": {json.dumps(of)}, "title": {json.dumps(title)}, "users": ['
    count = 0
    for batch in _batches(ids):
        text = ",".join(map(str if _plain(batch) else json.dumps, batch))
        yield ("," if count else "") + text
        count += len(batch)
    yield f'], "count": {count}}}'


def _error(status: int, message: str | None, form: Form | None, limit: str | None = None) -> Any:
    fields = form.errors if form is not None else {}
    if message:
        body = negotiation.error_body(status, message, fields=fields, limit=limit)
    else:
        body = negotiation.form_error(status, fields)
    return negotiation.page(
        "users.html",
        None,
        status,
        error=body,
        csv=lambda: negotiation.nothing_to_download(),
        message=body["error"]["message"],
        form=form,
        drill=None,
    )


def _report() -> ResponseReturnValue:
    fmt = negotiation.requested_format(FORMATS)
    of = request.args.get("of", "")
    if of not in SOURCES:
        return _error(400, f"Say whose users: of={' | '.join(SOURCES)}.", None)
    client = store.client()
    form: Form | None = None
    try:
        form, drill = BUILDERS[of](client, request.args)
        if drill is None:
            return _error(400, None, form)
        head, rest = _computed(client, drill, fmt)
    except Refused as refusal:
        return _error(refusal.status, refusal.message, form, refusal.limit)
    except SegmentError as error:  # a cohort's or funnel's segment selection, computed when made
        refused = _segment_refusal(error)
        return _error(refused.status, refused.message, form, refused.limit)
    except ValueError as error:
        return _error(400, str(error), form)
    query: dict[str, Any] = request.args.to_dict(flat=False)
    if fmt == "csv":
        return Response(
            _csv_stream(chain(head, rest)),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="users.csv"'},
        )
    if fmt == "json":
        return Response(
            _json_stream(of, drill.title, chain(head, rest)), mimetype="application/json"
        )
    count = len(head) if len(head) < PAGE_USERS else len(drill.bitmap)
    urls = {
        "csv": url_for("users.users_csv", **query),
        "json": url_for("users.users_json", **query),
    }
    page = render_template(
        "users.html", drill=drill, users=head, count=count, urls=urls, form=form, message=None
    )
    return page, 200


@bp.route("/users.csv", endpoint="users_csv")
@bp.route("/users.json", endpoint="users_json")
@bp.route("/users")
def users_page() -> ResponseReturnValue:
    """``/users``; ``.csv``, ``.json`` or an ``Accept`` header ask for the streamed downloads."""
    return _report()
