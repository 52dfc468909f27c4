"""bitmapist's README examples, as written, with ``bitmapist`` resolved to ``bitcore``.

The snippets are copied from bitmapist's README (``shared/seeds/bitmapist-readme.txt``) and run in
order in one namespace, as a reader would paste them. Where the README itself is broken, the
smallest obvious fix is applied and marked ``# FIX:``; everything else is verbatim.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any

import pytest
import redis

import bitcore
import bitcore.cohort  # so ``from bitmapist import cohort`` finds it as an attribute

SETTING_UP = """
from datetime import datetime, timedelta, timezone
from bitmapist import setup_redis, delete_all_events, mark_event,\\
MonthEvents, WeekEvents, DayEvents, HourEvents,\\
BitOpAnd, BitOpOr
now = datetime.now(tz=timezone.utc)
last_month = now - timedelta(days=30)
"""

MARKING = """
mark_event('active', 123)
mark_event('song:played', 123)
"""

ANSWERING = """
assert 123 in MonthEvents('active', now.year, now.month)
assert 123 in MonthEvents('song:played', now.year, now.month)
assert MonthEvents('active', now.year, now.month).has_events_marked() == True
"""

THIS_WEEK = """
print(len(WeekEvents('active', now.year, now.isocalendar()[1])))
for uid in WeekEvents('active'):
    print(uid)
"""

CURRENT_EVENTS = """
# the README says these are equal; asserted here
assert MonthEvents('active') == MonthEvents('active', now.year, now.month)
assert MonthEvents('active').from_date(now) == MonthEvents('active', now.year, now.month)
print(list(WeekEvents('active', now.year, now.isocalendar()[1])))
"""

WALKING = """
current_month = MonthEvents('active')  # FIX: the README omits the event name, which is required
prev_month = current_month.prev()
next_month = current_month.next()
year_ago = current_month.delta(-12)
"""

PERIOD_END = """
from bitmapist import MonthEvent  # FIX: the README uses MonthEvent without importing it
dt = now  # FIX: nor does it define dt
cache = type("Cache", (dict,), {"set": dict.__setitem__})()  # FIX: nor cache
ev = MonthEvent('active', dt)
if ev.period_end() < now:
    cache.set('active_users_<...>', len(ev))
ev = ev.prev()  # (added: a month that is over, so the branch runs)
if ev.period_end() < now:
    cache.set('active_users_<...>', len(ev))
"""

HOURLY = """
import bitmapist
bitmapist.TRACK_HOURLY = True
mark_event('active', 123, track_hourly=False)
"""

AB_TESTING = """
from bitmapist import DailyEvents, UniqueEvents, mark_unique, unmark_unique  # FIX: not imported
active_today = DailyEvents('active')
a = UniqueEvents('signup_form:classic')
b = UniqueEvents('signup_form:new')
active = active_today  # FIX: the README uses an undefined name `active` for active_today
print("Active users, signed up with classic form", len(active & a))
print("Active users, signed up with new form", len(active & b))
"""

PREMIUM = """
karma = []
add_extra_karma = karma.append  # FIX: the README leaves this to the reader

def premium_up(uid):
    # called when user promoted to premium
    ...
    mark_unique('premium', uid)

def premium_down(uid):
    # called when user loses the premium status
    ...
    unmark_unique('premium', uid)

premium_up(123)  # FIX: the README never calls them
premium_up(456)
premium_down(456)
active_today = DailyEvents('active')
premium = UniqueEvents('premium')
# Add extra Karma for all premium users active today,
# just because today is a special day
for uid in premium & active_today:
    add_extra_karma(uid)
assert karma == [123]

def premium_up(uid):
    # called when user promoted to premium
    ...
    mark_event('premium', uid, track_unique=True)

premium_up(789)
assert 789 in UniqueEvents('premium') and 789 in DailyEvents('premium')
"""

TWO_MONTHS = """
mark_event('active', 123, now=last_month)  # FIX: else 123 was only active this month
active_2_months = BitOpAnd(
    MonthEvents('active', last_month.year, last_month.month),
    MonthEvents('active', now.year, now.month)
)
print(len(active_2_months))
# Is 123 active for 2 months?
assert 123 in active_2_months
last_month_event = MonthEvents('active', last_month.year, last_month.month)
this_month_event = MonthEvents('active', now.year, now.month)
active_two_months = last_month_event & this_month_event
assert list(active_two_months) == list(active_2_months) == [123]
"""

NESTED = """
active_2_months = BitOpAnd(
    BitOpAnd(
        MonthEvents('active', last_month.year, last_month.month),
        MonthEvents('active', now.year, now.month)
    ),
    MonthEvents('active', now.year, now.month)
)
print(len(active_2_months))
assert 123 in active_2_months
# Delete the temporary AND operation
active_2_months.delete()
"""

CLEANUP = """
active_2_months = BitOpAnd(
    MonthEvents('active', last_month.year, last_month.month),
    MonthEvents('active', now.year, now.month)
)
# Delete the temporary AND operation
active_2_months.delete()
# delete all bit operations created in runtime up to this point
bitmapist.delete_runtime_bitop_keys()
# delete all bit operations (slow if you have many millions of keys in Redis)
bitmapist.delete_temporary_bitop_keys()
"""

DELETING = """
last_month_event = MonthEvents('active', last_month.year, last_month.month)
last_month_event.delete()
bitmapist.delete_all_events()
"""

COHORT = """
from bitmapist import cohort
html_form = cohort.render_html_form(
    action_url='/_Cohort',
    selections1=[ ('Are Active', 'user:active'), ],
    selections2=[ ('Task completed', 'task:complete'), ]
)
print(html_form)
dates_data = cohort.get_dates_data(select1='user:active',
    select2='task:complete',
    time_group='days')
html_data = cohort.render_html_data(dates_data,
    time_group='days')
print(html_data)
"""

SNIPPETS = [
    ("setting things up", SETTING_UP),
    ("marking", MARKING),
    ("answering", ANSWERING),
    ("this week", THIS_WEEK),
    ("current events", CURRENT_EVENTS),
    ("walking periods", WALKING),
    ("period_end", PERIOD_END),
    ("hourly", HOURLY),
    ("A/B testing", AB_TESTING),
    ("premium filter", PREMIUM),
    ("two months", TWO_MONTHS),
    ("nested", NESTED),
    ("cleanup", CLEANUP),
    ("deleting", DELETING),
    ("cohort", COHORT),
]


@pytest.fixture
def as_bitmapist(default_system: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    """``import bitmapist`` gives bitcore for the duration of a test."""
    monkeypatch.setitem(sys.modules, "bitmapist", bitcore)
    return default_system


def test_the_readme_runs_as_written(
    as_bitmapist: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {}
    for title, snippet in SNIPPETS:
        code = compile(textwrap.dedent(snippet), f"<README: {title}>", "exec")
        exec(code, namespace)  # the README's own code, on our test Redis
        if title == "this week":
            printed = capsys.readouterr().out.split()
            assert "123" in printed  # iterating this week's actives printed user 123
        if title == "walking periods":
            assert namespace["year_ago"].year == namespace["current_month"].year - 1
        if title == "period_end":
            assert namespace["cache"] == {"active_users_<...>": 0}
        if title == "hourly":
            assert bitcore.TRACK_HOURLY is True
        if title == "A/B testing":
            assert capsys.readouterr().out.count("signed up with") == 2
        if title == "deleting":
            assert as_bitmapist.dbsize() == 0
        if title == "cohort":
            out = capsys.readouterr().out
            assert "<form" in out and "<table" in out
