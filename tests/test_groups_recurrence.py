"""Group schedules: RFC 5545 rules in wall-clock time (python-dateutil), DST both ways,
exceptions, bounds, and the ICS feed round-tripping through icalendar and an independent
expander (recurring-ical-events) to exactly the occurrences Haven computes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groups import calendar
from groups.errors import GroupError
from groups.recurrence import (
    MAX_WINDOW,
    WEEKDAYS,
    Change,
    Rule,
    Schedule,
    in_zone,
    rule_for_start,
    to_utc,
)
from therapy.accounts import ValidationError

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
# Zones with DST in the north and the south, a half-hour shift (Lord Howe), and none.
ZONES = ["America/New_York", "Europe/Berlin", "Europe/London", "Australia/Sydney",
         "America/Santiago", "Australia/Lord_Howe", "Asia/Tokyo", "UTC"]


def exists(local: datetime, zone: str) -> bool:
    return to_utc(local, zone).astimezone(ZoneInfo(zone)).replace(tzinfo=None) == local


@st.composite
def schedules(draw):
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.dates(min_value=NOW.date() - timedelta(days=300),
                        max_value=NOW.date() + timedelta(days=2000)))
    # Times near the small hours, where every DST change happens, are drawn often.
    hour = draw(st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(0, 23)))
    minute = draw(st.sampled_from([0, 15, 30, 45]))
    start = datetime(day.year, day.month, day.day, hour, minute)
    repeat = draw(st.sampled_from(["weekly", "biweekly", "monthly"]))
    ends = draw(st.sampled_from(["never", "count", "until"]))
    count = draw(st.integers(1, 60)) if ends == "count" else None
    until = (day + timedelta(days=draw(st.integers(0, 700)))) if ends == "until" else None
    text = rule_for_start(repeat, start, count=count, until=until)
    return Schedule.build(text, start.strftime("%Y-%m-%dT%H:%M"),
                          draw(st.sampled_from([30, 60, 90])), zone, now=NOW)


def window(sched: Schedule) -> tuple[datetime, datetime]:
    lo = to_utc(sched.start_local, sched.zone) - timedelta(days=1)
    return lo, lo + MAX_WINDOW


@settings(max_examples=80, deadline=None)
@given(schedules())
def test_every_occurrence_is_at_the_rules_wall_clock_time_across_dst(sched):
    lo, hi = window(sched)
    occurrences = sched.expand(lo, hi)
    assert occurrences, "a valid schedule has at least its first meeting"
    assert occurrences[0].original == sched.start_local
    zone = ZoneInfo(sched.zone)
    for occ in occurrences:
        assert (occ.original.hour, occ.original.minute) == (sched.start_local.hour,
                                                            sched.start_local.minute)
        local = in_zone(occ.start_utc, sched.zone).replace(tzinfo=None)
        if exists(occ.original, sched.zone):
            # Same wall clock, and for an ambiguous time the first (earlier) instant.
            assert local == occ.original
            assert occ.start_utc == occ.original.replace(tzinfo=zone, fold=0).astimezone(UTC)
        else:
            # Inside a spring-forward gap: moved forward by exactly the gap.
            before = zone.utcoffset(occ.original - timedelta(hours=3))
            after = zone.utcoffset(occ.original + timedelta(hours=3))
            assert local - occ.original == after - before > timedelta(0)
        assert occ.end_utc - occ.start_utc == timedelta(minutes=sched.duration_minutes)
    # The rule's days: weekly on its weekday, monthly on the same nth (or last) weekday.
    day = sched.rule.byday[0]
    for occ in occurrences:
        assert WEEKDAYS[occ.original.weekday()] == day[-2:]
        if sched.rule.freq == "MONTHLY":
            n = int(day[:-2])
            if n > 0:
                assert (occ.original.day - 1) // 7 + 1 == n
            else:
                assert (occ.original + timedelta(days=7)).month != occ.original.month
    gaps = {b.original - a.original for a, b in zip(occurrences, occurrences[1:], strict=False)}
    if sched.rule.freq == "WEEKLY":
        assert gaps <= {timedelta(weeks=sched.rule.interval)}
    starts = [o.start_utc for o in occurrences]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    if sched.rule.count is not None:
        assert len(occurrences) <= sched.rule.count


@pytest.mark.parametrize("zone, first, rule, expect_utc_hours", [
    # New York springs forward on 8 March 2026: 18:00 EST is 23:00 UTC, 18:00 EDT 22:00.
    ("America/New_York", "2026-03-03T18:00", "FREQ=WEEKLY;BYDAY=TU", [23, 22, 22]),
    # Berlin falls back on 25 October 2026: 19:30 CEST is 17:30 UTC, 19:30 CET 18:30.
    ("Europe/Berlin", "2026-10-14T19:30", "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE", [17, 18, 18]),
    # Sydney (southern) springs forward on 4 October 2026.
    ("Australia/Sydney", "2026-09-22T18:00", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", [8, 7, 7]),
])
def test_dst_changes_move_the_utc_instant_not_the_wall_clock(zone, first, rule,
                                                              expect_utc_hours):
    sched = Schedule.build(rule, first, 60, zone, now=NOW)
    occ = sched.expand(*window(sched))[:3]
    assert [o.start_utc.hour for o in occ] == expect_utc_hours
    assert len({in_zone(o.start_utc, zone).strftime("%H:%M") for o in occ}) == 1


def test_monthly_by_weekday_is_the_second_tuesday_and_last_friday():
    second_tue = Schedule.build("FREQ=MONTHLY;BYDAY=2TU", "2026-03-10T18:00", 60,
                                "Europe/London", now=NOW)
    days = [o.original.day for o in second_tue.expand(*window(second_tue))[:6]]
    assert days == [10, 14, 12, 9, 14, 11]
    last_fri = Schedule.build(rule_for_start("monthly", datetime(2026, 1, 30, 9)),
                              "2026-01-30T09:00", 60, "UTC", now=NOW)
    assert last_fri.rule.byday == ("-1FR",)
    assert [o.original.day for o in last_fri.expand(*window(last_fri))[:3]] == [30, 27, 27]


@settings(max_examples=50, deadline=None)
@given(schedules(), st.data())
def test_an_exception_removes_or_moves_exactly_one_occurrence(sched, data):
    lo, hi = window(sched)
    plain = sched.expand(lo, hi)
    target = data.draw(st.sampled_from([o for o in plain if o.start_utc < hi - timedelta(
        days=40)] or plain[:1]))
    cancelled = sched.expand(lo, hi, {target.original: Change(target.original, "cancelled")})
    assert [o.original for o in cancelled] == [o.original for o in plain if o is not target]
    with_cancelled = sched.expand(lo, hi, {target.original: Change(target.original, "cancelled")},
                                  include_cancelled=True)
    assert [o.original for o in with_cancelled if o.cancelled] == [target.original]

    shift = timedelta(minutes=data.draw(st.integers(-3 * 24 * 60, 3 * 24 * 60).filter(
        lambda m: m != 0)))
    new_start = target.original + shift
    # A window wider than the move on both sides, so the moved one is in it either way.
    wide_lo, wide_hi = lo - timedelta(days=4), lo + MAX_WINDOW - timedelta(days=30)
    moved = sched.expand(wide_lo, wide_hi,
                         {target.original: Change(target.original, "moved", new_start, "n")})
    plain_wide = sched.expand(wide_lo, wide_hi)
    assert len(moved) == len(plain_wide)
    changed = [o for o in moved if o.status == "moved"]
    assert [o.original for o in changed] == [target.original]
    assert changed[0].start_local == new_start
    assert changed[0].start_utc == to_utc(new_start, sched.zone)
    untouched = {o.original: o.start_utc for o in moved if o.original != target.original}
    assert untouched == {o.original: o.start_utc for o in plain_wide
                         if o.original != target.original}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules(), st.data())
def test_the_ics_feed_round_trips_to_the_same_occurrences(sched, data):
    lo, hi = window(sched)
    plain = sched.expand(lo, hi)
    changes: dict[datetime, Change] = {}
    for occ in data.draw(st.lists(st.sampled_from(plain), max_size=4, unique_by=lambda o:
                                  o.original)):
        if data.draw(st.booleans()):
            changes[occ.original] = Change(occ.original, "cancelled")
        else:
            minutes = data.draw(st.integers(-2 * 24 * 60, 2 * 24 * 60).filter(bool))
            changes[occ.original] = Change(occ.original, "moved",
                                           occ.original + timedelta(minutes=minutes))
    ours = sched.expand(lo, hi, changes)

    cal = calendar.new_calendar()
    for ev in calendar.schedule_events(sched, changes, uid="u@haven", title="Haven group "
                                       "meeting", link="https://h.example/", now=NOW):
        cal.add_component(ev)
    parsed = icalendar.Calendar.from_ical(calendar.finish(cal, NOW))
    master = next(e for e in parsed.walk("VEVENT") if "RECURRENCE-ID" not in e)
    assert master["RRULE"].to_ical().decode() == icalendar.vRecur(
        sched.rule.ical(sched.zone)).to_ical().decode()
    assert {e["RECURRENCE-ID"].dt.replace(tzinfo=None) for e in parsed.walk("VEVENT")
            if "RECURRENCE-ID" in e} == {o for o, c in changes.items() if c.status == "moved"}
    # An independent expander over a slightly wider window, then the same [lo, hi) cut.
    theirs = recurring_ical_events.of(parsed).between(lo - timedelta(days=3),
                                                     hi + timedelta(days=3))
    got = sorted(e["DTSTART"].dt.astimezone(UTC) for e in theirs
                 if lo <= e["DTSTART"].dt.astimezone(UTC) < hi)
    assert got == [o.start_utc for o in ours]
    assert {str(e["SUMMARY"]) for e in theirs} <= {"Haven group meeting"}


@pytest.mark.parametrize("rule, start, message", [
    ("FREQ=DAILY", "2026-03-10T18:00", "weekly"),
    ("FREQ=WEEKLY;INTERVAL=3;BYDAY=TU", "2026-03-10T18:00", "every other week"),
    ("FREQ=MONTHLY;BYMONTHDAY=10", "2026-03-10T18:00", "not supported"),
    ("FREQ=MONTHLY;BYDAY=TU", "2026-03-10T18:00", "by weekday"),
    ("FREQ=MONTHLY;BYDAY=5TU", "2026-03-31T18:00", "1 to 4"),
    ("FREQ=WEEKLY;BYDAY=TU;COUNT=3;UNTIL=20270101", "2026-03-10T18:00", "not both"),
    ("FREQ=WEEKLY;BYDAY=TU;COUNT=99999", "2026-03-10T18:00", "COUNT"),
    ("FREQ=WEEKLY;BYDAY=TU;UNTIL=20260301", "2026-03-10T18:00", "no meeting"),
    ("FREQ=WEEKLY;BYDAY=TU;UNTIL=99991231", "2026-03-10T18:00", "ten years"),
    ("FREQ=WEEKLY;BYDAY=WE", "2026-03-10T18:00", "rule's day"),
    ("FREQ=WEEKLY;BYDAY=TU", "9999-03-10T18:00", "ten years"),
    ("FREQ=WEEKLY;BYDAY=TU", "1900-03-10T18:00", "year back"),
    ("FREQ=WEEKLY;BYDAY=TU", "2026-02-30T18:00", "real date"),
    ("FREQ=WEEKLY;;BYDAY=TU", "2026-03-10T18:00", "NAME=VALUE"),
    ("FREQ=WEEKLY;BYDAY=TU,TU", "2026-03-10T18:00", "twice"),
    ("x" * 300, "2026-03-10T18:00", "rrule must be"),
])
def test_bad_rules_and_far_dates_are_refused_with_a_reason(rule, start, message):
    with pytest.raises(ValidationError) as err:
        Schedule.build(rule, start, 60, "America/New_York", now=NOW)
    assert message in err.value.message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120), st.text(max_size=30))
def test_arbitrary_rule_text_is_refused_or_valid_never_a_crash(text, start):
    try:
        sched = Schedule.build(text, start, 60, "Europe/Berlin", now=NOW)
    except ValidationError:
        return
    assert sched.expand(*window(sched))


def test_expansion_windows_are_capped():
    sched = Schedule.build("FREQ=WEEKLY;BYDAY=TU", "2026-03-10T18:00", 60, "UTC", now=NOW)
    with pytest.raises(GroupError) as err:
        sched.expand(NOW, NOW + MAX_WINDOW + timedelta(days=1))
    assert err.value.code == "window_too_large"
    assert not sched.is_occurrence(datetime(9999, 3, 14, 18, 0))


def test_rule_text_round_trips():
    for text in ("FREQ=WEEKLY;BYDAY=TU,TH", "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE;COUNT=10",
                 "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20271231T235959"):
        start = datetime(2026, 3, 11, 18) if "WE" in text else datetime(2026, 3, 10, 18)
        rule = Rule.parse(text, start)
        assert Rule.parse(rule.text(), start) == rule
