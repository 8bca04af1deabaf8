"""Fault 1 of issue 11: a far-away date must never break a page.

Every date the API accepts is held to a window (one year back to ten years ahead); a write
is validated before it commits; and every view survives a stored appointment it cannot
expand (rows a server before this fix could have committed), showing it as an error entry.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from therapy import appointments
from therapy.accounts import Role, User, ValidationError
from therapy.appointments import BrokenAppointment, Occurrence
from therapy.storage import open_database
from web import appkeys

from .test_practice_http import clinic, error_of, json_ok, sign_consents  # noqa: F401

FAR_AWAY = [
    # (start_local, time_zone, weekly, occurrences): the three from the issue, and more.
    ("9999-12-24T10:00", "UTC", True, 3),
    ("9999-12-31T23:30", "UTC", False, 1),
    ("0001-01-01T00:00", "Asia/Tokyo", False, 1),
    ("9999-12-31T23:30", "Pacific/Kiritimati", False, 1),
    ("1969-07-20T20:17", "UTC", False, 1),
]


def db_of(client):
    return open_database(client.client.server.app[appkeys.DATA_DIR].db_path)


def appointment_count(client) -> int:
    db = db_of(client)
    try:
        return db.execute("SELECT count(*) FROM appointments").fetchone()[0]
    finally:
        db.close()


def insert_raw(client, therapist_id, patient_id, start_local, zone, weekly, count) -> int:
    """A row as a server without the date window could have committed it."""
    db = db_of(client)
    try:
        return db.table("appointments").insert({
            "therapist_id": therapist_id, "patient_id": patient_id, "start_local": start_local,
            "time_zone": zone, "duration_minutes": 50, "weekly": int(weekly),
            "occurrences": count, "environment_id": "beach", "created_at": "2026-01-01",
            "cancelled_at": None}).last_pk
    finally:
        db.close()


def local(delta: timedelta, zone: str = "UTC") -> str:
    return (datetime.now(UTC) + delta).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


@pytest.mark.parametrize("start,zone,weekly,count", FAR_AWAY)
async def test_far_away_start_is_refused_with_422_and_nothing_is_stored(
        clinic, start, zone, weekly, count):  # noqa: F811
    t, pid = clinic["t"], clinic["pid"]
    before = appointment_count(t)
    err = await error_of(await t.post("/api/appointments", {
        "patient_id": pid, "start_local": start, "time_zone": zone, "weekly": weekly,
        "occurrences": count}), 422)
    assert err["code"] == "invalid_field" and err["field"] == "start_local"
    assert "between" in err["message"]
    assert appointment_count(t) == before
    # The browser form gets the same refusal as a readable page, and stores nothing either.
    page = await t.client.post(f"/practice/patients/{pid}/appointments", data={
        "csrf_token": t.csrf, "start_local": start, "time_zone": zone}, allow_redirects=False)
    assert page.status == 422 and "between" in await page.text()
    assert appointment_count(t) == before
    # The pages still work afterwards.
    assert (await t.get("/practice")).status == 200


async def test_window_edges_one_year_back_ten_years_ahead(clinic):  # noqa: F811
    t, pid = clinic["t"], clinic["pid"]
    for delta, status in [(timedelta(days=-360), 201), (timedelta(days=-400), 422),
                          (timedelta(days=365 * 9 + 300), 201),
                          (timedelta(days=365 * 10 + 30), 422)]:
        resp = await t.post("/api/appointments", {
            "patient_id": pid, "start_local": local(delta, "Europe/London"),
            "time_zone": "Europe/London"})
        assert resp.status == status, (delta, await resp.text())


async def test_reschedule_to_a_far_away_date_is_refused_and_changes_nothing(clinic):  # noqa: F811
    t, pid = clinic["t"], clinic["pid"]
    made = await json_ok(await t.post("/api/appointments", {
        "patient_id": pid, "start_local": local(timedelta(days=3)), "time_zone": "UTC",
        "weekly": True, "occurrences": 4}), 201)
    appt = made["appointment_id"]
    before = (await json_ok(await t.get(f"/api/appointments/{appt}")))["occurrences"]
    for scope, index in [("this", 1), ("following", 2), ("following", 0)]:
        err = await error_of(await t.post(f"/api/appointments/{appt}/reschedule", {
            "occurrence": index, "start_local": "9999-12-31T23:59", "scope": scope}), 422)
        assert err["field"] == "start_local"
    after = (await json_ok(await t.get(f"/api/appointments/{appt}")))["occurrences"]
    assert after == before
    assert appointment_count(t) == 1
    # The page form too.
    page = await t.client.post(f"/practice/appointments/{appt}/reschedule", data={
        "csrf_token": t.csrf, "occurrence": "1", "start_local": "0001-01-01T00:00"},
        allow_redirects=False)
    assert page.status == 422


async def test_every_view_survives_stored_rows_it_cannot_expand(clinic):  # noqa: F811
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    await sign_consents(p)
    me = (await json_ok(await t.get("/api/me")))["user"]
    good = await json_ok(await t.post("/api/appointments", {
        "patient_id": pid, "start_local": local(timedelta(days=2)), "time_zone": "UTC"}), 201)
    broken = [insert_raw(t, me["id"], pid, s, z, w, c) for s, z, w, c in FAR_AWAY[:4]]
    feed = (await json_ok(await p.post("/api/me/calendar-feed"), 201))["feed_url"]
    feed_path = re.sub(r"^https?://[^/]+", "", feed)

    for who, paths in [
        (t, ["/practice", f"/practice/patients/{pid}", "/practice/waiting-room",
             f"/practice/appointments/{broken[0]}", f"/practice/appointments/{broken[2]}"]),
        (p, ["/practice", "/practice/record", "/practice/record/print",
             f"/practice/appointments/{broken[0]}"]),
    ]:
        for path in paths:
            resp = await who.get(path)
            text = await resp.text()
            assert resp.status == 200, (path, text[:300])
            if "appointments/" in path:
                assert "cannot be shown" in text, path
    home = await (await t.get("/practice")).text()
    assert "cannot be shown" in home

    listed = (await json_ok(await t.get("/api/appointments?past=1")))["occurrences"]
    errors = [o for o in listed if o["error"]]
    assert sorted(o["appointment_id"] for o in errors) == sorted(broken)
    assert all(o["error"]["code"] == "schedule_unreadable" for o in errors)
    assert any(o["appointment_id"] == good["appointment_id"] and o["error"] is None
               for o in listed)
    dash = await json_ok(await t.get("/api/practice/dashboard"))
    assert any(o["error"] for o in dash["upcoming"])
    await json_ok(await t.get("/api/practice/patients"))
    one = await json_ok(await t.get(f"/api/appointments/{broken[0]}"))
    assert one["occurrences"][0]["error"]["code"] == "schedule_unreadable"
    record = await json_ok(await p.get("/api/me/record"))
    assert any(o["error"] for o in record["appointments"])
    ics = await p.get(feed_path)
    body = await ics.text()
    assert ics.status == 200 and body.count("BEGIN:VEVENT") == 1  # only the good session
    await json_ok(await p.get("/api/practice/dashboard"))

    # Acting on one occurrence of a broken appointment is a clear 409, not a 500.
    err = await error_of(await p.post(
        f"/api/appointments/{broken[0]}/occurrences/0/check-in"), 409)
    assert err["code"] == "schedule_unreadable"
    err = await error_of(await t.post(f"/api/appointments/{broken[0]}/reschedule", {
        "occurrence": 0, "start_local": local(timedelta(days=5))}), 409)
    assert err["code"] == "schedule_unreadable"

    # Cancelling the series repairs the lists: a cancelled appointment is not expanded.
    for appt in broken:
        await json_ok(await t.post(f"/api/appointments/{appt}/cancel", {}))
    listed = (await json_ok(await t.get("/api/appointments?past=1")))["occurrences"]
    assert [o["appointment_id"] for o in listed] == [good["appointment_id"]]
    page = await (await t.get(f"/practice/patients/{pid}")).text()
    assert "cannot be shown" not in page


async def test_waiting_room_survives_a_visit_whose_appointment_cannot_expand(clinic):  # noqa: F811
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    await sign_consents(p)
    made = await json_ok(await t.post("/api/appointments", {
        "patient_id": pid, "start_local": local(timedelta(minutes=2)), "time_zone": "UTC"}),
        201)
    visit = (await json_ok(await p.post(
        f"/api/appointments/{made['appointment_id']}/occurrences/0/check-in"), 201))["visit"]
    # As a server without the window let a move to year 9999 through:
    db = db_of(t)
    try:
        db.table("appointments").update(made["appointment_id"],
                                        {"start_local": "9999-12-31T23:30",
                                         "time_zone": "Pacific/Kiritimati"})
    finally:
        db.close()
    waiting = (await json_ok(await t.get("/api/waiting-room")))["visits"]
    assert waiting[0]["occurrence"]["error"]["code"] == "schedule_unreadable"
    assert (await t.get("/practice/waiting-room")).status == 200
    assert (await json_ok(await p.get(f"/api/visits/{visit['id']}")))["visit"]["id"]
    assert (await p.get(f"/practice/visits/{visit['id']}/wait")).status == 200


# --- library properties ------------------------------------------------------------------

ZONES = ["UTC", "Asia/Tokyo", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/London",
         "America/St_Johns", "Australia/Lord_Howe"]
VIEWER = User(id=9, username="v", display_name="V", role=Role.THERAPIST, time_zone="UTC")


@settings(max_examples=300, deadline=None)
@given(start=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
       zone=st.sampled_from(ZONES), weekly=st.booleans(),
       count=st.integers(1, appointments.MAX_OCCURRENCES),
       duration=st.integers(appointments.DURATION_MIN, appointments.DURATION_MAX),
       viewer=st.sampled_from(ZONES))
def test_any_stored_row_expands_or_is_one_error_entry_and_renders_in_every_zone(
        start, zone, weekly, count, duration, viewer):
    row = {"id": 1, "therapist_id": 1, "patient_id": 2,
           "start_local": start.isoformat(timespec="minutes"), "time_zone": zone,
           "duration_minutes": duration, "weekly": int(weekly), "occurrences": count,
           "environment_id": "beach", "cancelled_at": None}
    entries = appointments.expand_entries(row, {})
    assert entries
    if isinstance(entries[0], BrokenAppointment):
        assert len(entries) == 1
    for entry in entries:
        view = entry.public(viewer)  # never raises, in any zone
        assert set(view) >= {"appointment_id", "starts_at", "local_label", "error"}
        if isinstance(entry, Occurrence):
            assert view["error"] is None and entry.end_utc > entry.start_utc


@settings(max_examples=300, deadline=None)
@given(offset=st.integers(-3 * 365 * 24 * 60, 15 * 365 * 24 * 60), zone=st.sampled_from(ZONES))
def test_accepted_starts_are_exactly_the_window(offset, zone):
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    value = (now.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
             + timedelta(minutes=offset)).isoformat(timespec="minutes")
    inside = -appointments.PAST_LIMIT <= timedelta(minutes=offset) <= appointments.FUTURE_LIMIT
    try:
        appointments.validate_start(value, zone, now=now)
    except ValidationError as exc:
        assert not inside and exc.field == "start_local"
    else:
        assert inside
