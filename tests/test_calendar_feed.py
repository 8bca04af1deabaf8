"""The private calendar feed: valid ICS with the right UTC instants across DST, and no health
information at all (fixed title, a link, no names, no notes, no places)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from icalendar import Calendar

from therapy import accounts
from therapy.accounts import Role
from therapy.storage import open_database
from web import appkeys

PASSWORD = "correct horse battery"


def make_user(client, username, role, tz, display):
    app = client.client.server.app
    db = open_database(app[appkeys.DATA_DIR].db_path)
    try:
        return accounts.create_user(db, username, PASSWORD, role, display, tz,
                                    cost=app[appkeys.CONFIG].scrypt_cost)
    finally:
        db.close()


async def json_ok(resp, status=200):
    body = await resp.json()
    assert resp.status == status, body
    return body


async def invite_patient(therapist, new_client, username):
    invite = await json_ok(await therapist.post("/api/practice/invites"), 201)
    path = re.sub(r"^https?://[^/]+", "", invite["invite_url"])
    patient = await new_client(therapist)
    await patient.prime()
    resp = await patient.client.post(path, data={
        "csrf_token": patient.csrf, "username": username, "password": PASSWORD,
        "display_name": username.title(), "time_zone": "America/New_York"},
        allow_redirects=False)
    assert resp.status == 303
    return patient


async def sign_consents(patient):
    for doc in (await json_ok(await patient.get("/api/consent-documents")))["documents"]:
        await json_ok(await patient.post("/api/consents", {
            "document_id": doc["id"], "version": doc["version"], "sha256": doc["sha256"],
            "typed_name": "Sam Patient"}), 201)


async def test_feed_events_carry_no_health_information(client, new_client):
    make_user(client, "therapist", Role.THERAPIST, "Europe/London", "Dr Robin Reyes")
    await json_ok(await client.login("therapist"))
    patient = await invite_patient(client, new_client, "samuel")
    pid = (await json_ok(await patient.get("/api/me")))["user"]["id"]
    await sign_consents(patient)
    year = datetime.now(UTC).year + 1
    await json_ok(await client.post("/api/appointments", {
        "patient_id": pid, "start_local": f"{year}-03-02T18:00", "time_zone": "Europe/London",
        "weekly": True, "occurrences": 8, "environment_id": "forest"}), 201)
    appt = (await json_ok(await client.post("/api/appointments", {
        "patient_id": pid, "start_local": f"{year}-06-01T09:00",
        "time_zone": "Europe/London"}), 201))["appointment_id"]
    await json_ok(await client.post(f"/api/appointments/{appt}/cancel", {}))
    await json_ok(await client.post(f"/api/patients/{pid}/notes", {
        "kind": "progress", "template": "free", "sections": {"text": "anxiety about exams"}}),
        201)

    feeds = {}
    for who in (client, patient):
        body = await json_ok(await who.post("/api/me/calendar-feed"), 201)
        feeds[who] = re.sub(r"^https?://[^/]+", "", body["feed_url"])
        assert feeds[who].endswith(".ics")
    anon = await new_client(client)
    ics = await anon.get(feeds[patient])  # no login needed: the token is the credential
    assert ics.status == 200 and ics.content_type == "text/calendar"
    raw = await ics.read()
    cal = Calendar.from_ical(raw)
    events = [c for c in cal.walk("VEVENT")]
    assert len(events) == 9
    text = raw.decode()
    for secret in ("Robin", "Reyes", "samuel", "Samuel", "forest", "Forest", "anxiety",
                   "exams", "therapist", "progress"):
        assert secret not in text, secret
    assert {str(e["SUMMARY"]) for e in events} == {"Haven session"}
    starts = sorted(e.decoded("DTSTART") for e in events if str(e["STATUS"]) == "CONFIRMED")
    assert all(s.tzinfo is not None and s.utcoffset().total_seconds() == 0 for s in starts)
    # 18:00 London: 18:00 UTC in winter, 17:00 UTC once British Summer Time starts.
    assert {s.hour for s in starts} == {17, 18}
    assert sum(1 for e in events if str(e["STATUS"]) == "CANCELLED") == 1
    assert len({str(e["UID"]) for e in events}) == 9
    assert all(str(e["URL"]).endswith("/") for e in events)

    # The therapist's feed has the same instants, and a new link retires the old one.
    therapist_cal = Calendar.from_ical(await (await anon.get(feeds[client])).read())
    assert sorted(e.decoded("DTSTART") for e in therapist_cal.walk("VEVENT")
                  if str(e["STATUS"]) == "CONFIRMED") == starts
    await json_ok(await patient.post("/api/me/calendar-feed"), 201)
    assert (await anon.get(feeds[patient])).status == 404
    await json_ok(await patient.send("DELETE", "/api/me/calendar-feed"))
    assert (await anon.get("/calendar/" + "a" * 32 + ".ics")).status == 404
    assert PASSWORD not in text
