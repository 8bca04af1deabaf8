"""Appointments across time zones and daylight-saving changes, rescheduling, cancelling,
environment choice, and the waiting room's opening window (library level)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from therapy import accounts, appointments, care, consent, schema, waiting_room
from therapy.accounts import Role, ScryptCost, ValidationError
from therapy.appointments import expand, local_to_utc
from therapy.audit import Actor
from therapy.datadir import prepare
from therapy.permissions import Denied
from therapy.storage import open_database

COST = ScryptCost(n=2**4, r=1, p=1)
# The fixed 2026 dates below lie in the window the scheduler accepts around this clock.
CLOCK = datetime(2026, 3, 1, tzinfo=UTC)
ZONES = ["Europe/London", "America/New_York", "Europe/Berlin", "Australia/Sydney",
         "Asia/Kolkata", "America/Sao_Paulo", "Pacific/Auckland", "UTC", "America/St_Johns",
         "Australia/Lord_Howe"]


def row(start_local: str, zone: str, weeks: int, duration: int = 50) -> dict:
    return {"id": 1, "therapist_id": 1, "patient_id": 2, "start_local": start_local,
            "time_zone": zone, "duration_minutes": duration, "weekly": 1,
            "occurrences": weeks, "environment_id": "beach", "cancelled_at": None}


def test_weekly_london_1800_stays_1800_local_across_both_changes():
    # Mondays from 2 March 2026: the UK changes on 29 March and 25 October 2026.
    occ = expand(row("2026-03-02T18:00", "Europe/London", 40))
    london = [o.local_start("Europe/London") for o in occ]
    assert all(t.hour == 18 and t.minute == 0 and t.weekday() == 0 for t in london)
    utc_hours = {o.local_start("Europe/London").date(): o.start_utc.hour for o in occ}
    assert utc_hours[date(2026, 3, 23)] == 18  # GMT
    assert utc_hours[date(2026, 3, 30)] == 17  # BST: the UTC instant moves an hour earlier
    assert utc_hours[date(2026, 10, 19)] == 17
    assert utc_hours[date(2026, 10, 26)] == 18  # back to GMT


def test_new_york_patient_sees_the_right_time_when_us_and_uk_change_apart():
    occ = expand(row("2026-03-02T18:00", "Europe/London", 40))
    ny = {o.local_start("Europe/London").date(): o.local_start("America/New_York")
          for o in occ}
    # Before either change: GMT vs EST, 5 hours.
    assert ny[date(2026, 3, 2)].hour == 13
    # US changed on 8 March, UK not yet: 4 hours apart for these weeks.
    assert ny[date(2026, 3, 9)].hour == 14
    assert ny[date(2026, 3, 23)].hour == 14
    # Both on summer time: 5 hours again.
    assert ny[date(2026, 3, 30)].hour == 13
    assert ny[date(2026, 10, 19)].hour == 13
    # UK back on 25 October, US only on 1 November: 4 hours for one week.
    assert ny[date(2026, 10, 26)].hour == 14
    assert ny[date(2026, 11, 2)].hour == 13
    assert ny[date(2026, 11, 2)].tzname() == "EST"
    label = occ[1].public("America/New_York")["local_label"]
    assert label == "Monday 9 March 2026, 14:00 EDT"


def test_wall_time_in_the_spring_gap_moves_forward_and_fold_takes_the_first():
    # 01:30 on 29 March 2026 does not exist in London; it becomes 02:30 BST.
    occ = expand(row("2026-03-22T01:30", "Europe/London", 3))
    assert occ[1].local_start("Europe/London").strftime("%H:%M %Z") == "02:30 BST"
    assert occ[2].local_start("Europe/London").strftime("%H:%M %Z") == "01:30 BST"
    # 01:30 on 25 October 2026 happens twice; the first (BST) is used.
    occ = expand(row("2026-10-18T01:30", "Europe/London", 2))
    assert occ[1].start_utc == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    at=st.times().map(lambda t: time(t.hour, (t.minute // 5) * 5)),
    weeks=st.integers(1, 60),
    viewer=st.sampled_from(ZONES),
)
def test_weekly_occurrences_keep_their_wall_time(zone, start, at, weeks, viewer):
    base = datetime.combine(start, at)
    occ = expand(row(base.isoformat(timespec="minutes"), zone, weeks))
    assert len(occ) == weeks
    tz = ZoneInfo(zone)
    for i, o in enumerate(occ):
        wanted = base + timedelta(weeks=i)
        local = o.local_start(zone)
        # The wall time exists that day (no gap) exactly when it round-trips.
        exists = wanted.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(
            tzinfo=None) == wanted
        if exists:
            assert local.replace(tzinfo=None) == wanted
        else:
            assert local.date() == wanted.date() and local.replace(tzinfo=None) > wanted
        # Every viewer sees the same instant, in their own zone.
        seen = o.local_start(viewer)
        assert seen.utcoffset() == ZoneInfo(viewer).utcoffset(seen.replace(tzinfo=None))
        assert seen.astimezone(UTC) == o.start_utc
        assert o.end_utc - o.start_utc == timedelta(minutes=50)
        if i:
            gap = o.start_utc - occ[i - 1].start_utc
            assert timedelta(days=7) - timedelta(hours=3) <= gap <= timedelta(days=7,
                                                                               hours=3)


@given(zone=st.sampled_from(ZONES), start=st.datetimes(min_value=datetime(2024, 1, 1),
                                                       max_value=datetime(2030, 1, 1)))
def test_local_to_utc_is_an_instant_in_that_zone(zone, start):
    start = start.replace(second=0, microsecond=0)
    utc = local_to_utc(start, zone)
    assert utc.tzinfo == UTC
    back = utc.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    assert timedelta(0) <= back - start <= timedelta(hours=2)


def test_parse_local_rejects_offsets_and_garbage():
    for bad in ["2026-03-02", "2026-03-02T18:00+01:00", "tomorrow", 5, "2026-13-02T18:00"]:
        with pytest.raises(ValidationError):
            appointments.parse_local(bad)


# --- with a database -----------------------------------------------------------------------

@pytest.fixture
def clinic(tmp_path):
    data = prepare(tmp_path / "data", [schema.migrations])
    db = open_database(data.db_path)
    t = accounts.create_user(db, "therapist", "correct horse battery", Role.THERAPIST,
                             time_zone="Europe/London", cost=COST)
    t2 = accounts.create_user(db, "therapist2", "correct horse battery", Role.THERAPIST,
                              cost=COST)
    p = accounts.create_user(db, "patient", "correct horse battery", Role.PATIENT,
                             time_zone="America/New_York", cost=COST)
    care.link(db, t.id, p.id, actor=Actor.system())
    yield db, t, t2, p
    db.close()


def test_schedule_list_reschedule_cancel(clinic):
    db, t, t2, p = clinic
    a = appointments.schedule(db, t, p.id, "2026-03-02T18:00", "Europe/London", 50,
                              weekly=True, occurrences=10, now=CLOCK, actor=Actor(t.id))
    now = datetime(2026, 3, 1, tzinfo=UTC)
    mine = appointments.occurrences_for(db, p, now=now)
    assert len(mine) == 10 and mine[0].public(p.time_zone)["local_label"].endswith("13:00 EST")
    assert [o.index for o in appointments.occurrences_for(db, t, now=now)] == list(range(10))
    # Move one occurrence.
    appointments.reschedule(db, t, a, 2, "2026-03-17T09:00", now=CLOCK, actor=Actor(t.id))
    occ = appointments.occurrence(db, a, 2)
    assert occ.moved and occ.local_start("Europe/London").hour == 9
    assert appointments.occurrence(db, a, 3).local_start("Europe/London").hour == 18
    # Cancel one.
    appointments.cancel(db, t, a, 4, actor=Actor(t.id))
    assert len(appointments.occurrences_for(db, p, now=now)) == 9
    # This and following: the series splits.
    b = appointments.reschedule(db, t, a, 6, "2026-04-14T17:00", scope="following",
                                now=CLOCK, actor=Actor(t.id))
    assert b != a
    assert len(appointments.occurrences(db, a)) == 6
    later = appointments.occurrences(db, b)
    assert len(later) == 4 and all(o.local_start("Europe/London").hour == 17 for o in later)
    assert len(appointments.occurrences_for(db, p, now=now)) == 9
    # Cancel the rest of the first series from occurrence 5.
    appointments.cancel(db, t, a, 5, scope="following", actor=Actor(t.id))
    assert len(appointments.occurrences(db, a)) == 5
    # Cancel everything.
    appointments.cancel(db, t, b, None, actor=Actor(t.id))
    assert all(o.cancelled for o in appointments.occurrences(db, b))
    actions = [r["action"] for r in db.query("SELECT action FROM audit_log")]
    assert actions.count("appointment.cancel") == 3


def test_only_the_patients_therapist_schedules_and_only_the_patient_chooses(clinic):
    db, t, t2, p = clinic
    with pytest.raises(Denied):
        appointments.schedule(db, t2, p.id, "2026-03-02T18:00", "UTC", now=CLOCK, actor=Actor(t2.id))
    with pytest.raises(Denied):
        appointments.schedule(db, p, p.id, "2026-03-02T18:00", "UTC", now=CLOCK, actor=Actor(p.id))
    a = appointments.schedule(db, t, p.id, "2026-03-02T18:00", "UTC", weekly=True,
                              occurrences=3, now=CLOCK, actor=Actor(t.id))
    with pytest.raises(Denied):
        appointments.cancel(db, t2, a, actor=Actor(t2.id))
    with pytest.raises(Denied):
        appointments.choose_environment(db, t, a, "forest", actor=Actor(t.id))
    appointments.choose_environment(db, p, a, "forest", 1, actor=Actor(p.id))
    envs = [o.environment_id for o in appointments.occurrences(db, a)]
    assert envs == ["beach", "forest", "beach"]
    appointments.choose_environment(db, p, a, "forest", actor=Actor(p.id))
    assert {o.environment_id for o in appointments.occurrences(db, a)} == {"forest"}
    with pytest.raises(ValidationError):
        appointments.choose_environment(db, p, a, "moon", actor=Actor(p.id))


def test_check_in_window_and_admission(clinic):
    db, t, t2, p = clinic
    for doc in consent.current_documents():
        consent.sign(db, p, doc.id, doc.version, doc.sha256, "Sam P", actor=Actor(p.id))
    start = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    a = appointments.schedule(db, t, p.id, "2026-03-02T18:00", "UTC", 50, now=CLOCK, actor=Actor(t.id))
    with pytest.raises(waiting_room.WaitingRoomError) as exc:
        waiting_room.check_in(db, p, a, 0, now=start - timedelta(minutes=11), actor=Actor(p.id))
    assert exc.value.code == "not_open_yet"
    with pytest.raises(Denied):
        waiting_room.check_in(db, t, a, 0, now=start, actor=Actor(t.id))
    visit = waiting_room.check_in(db, p, a, 0, now=start - timedelta(minutes=10),
                                  actor=Actor(p.id))
    assert visit["status"] == "waiting" and visit["room_id"] is None
    assert waiting_room.patient_join(db, p, visit["id"], actor=Actor(p.id)) is None
    assert [v["id"] for v in waiting_room.waiting_list(db, t)] == [visit["id"]]
    assert waiting_room.waiting_list(db, t2) == []
    with pytest.raises(Denied):
        waiting_room.admit(db, t2, visit["id"], actor=Actor(t2.id))
    room_id, host = waiting_room.admit(db, t, visit["id"], actor=Actor(t.id))
    got_room, member = waiting_room.patient_join(db, p, visit["id"], actor=Actor(p.id))
    assert got_room == room_id and member != host
    tokens = {r["room_role"] for r in db.query(
        "SELECT room_role FROM join_tokens WHERE room_id = ?", [room_id])}
    assert tokens == {"host", "member"}
    # ending names the room, so the live voice connections can be dropped too
    assert waiting_room.end(db, t, visit["id"], actor=Actor(t.id)) == room_id
    assert waiting_room.end(db, t, visit["id"], actor=Actor(t.id)) == room_id  # idempotent
    with pytest.raises(waiting_room.WaitingRoomError):
        waiting_room.patient_join(db, p, visit["id"], actor=Actor(p.id))
    with pytest.raises(waiting_room.WaitingRoomError):
        waiting_room.check_in(db, p, a, 0, now=start, actor=Actor(p.id))


def test_check_in_needs_telehealth_consent(clinic):
    db, t, t2, p = clinic
    a = appointments.schedule(db, t, p.id, "2026-03-02T18:00", "UTC", 50, now=CLOCK, actor=Actor(t.id))
    with pytest.raises(Denied) as exc:
        waiting_room.check_in(db, p, a, 0, now=datetime(2026, 3, 2, 18, tzinfo=UTC),
                              actor=Actor(p.id))
    assert exc.value.code == "consent_required"
