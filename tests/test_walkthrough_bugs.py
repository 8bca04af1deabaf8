"""Bugs found walking the demo (issue 14), each pinned on the real app over HTTP: the account
page edits name and time zone, the record page uses the patient's zone, the home page's
grammar, no "Reschedule or cancel" on past sessions, ending from inside the room ends the
visit everywhere (through the real signaling hub and a real client)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from media.e2ee import IdentityKeys
from media.signaling import EndRoom
from media.voice_client import VoiceClient
from tests.conftest import Browserish
from tests.test_practice_http import (  # noqa: F401 (clinic is a fixture)
    clinic,
    error_of,
    json_ok,
    make_user,
    sign_consents,
)
from tests.voice_support import VoiceServer
from therapy.accounts import Role


async def test_home_names_the_role_with_the_right_article(clinic):  # noqa: F811
    for who, phrase in (("admin", "an administrator"), ("t", "a therapist"), ("p", "a patient")):
        html = await (await clinic[who].get("/")).text()
        assert f"signed in as <strong>{phrase}</strong>" in html, who
        assert "as a <strong>admin" not in html


async def test_account_page_changes_display_name_and_time_zone(clinic):  # noqa: F811
    p = clinic["p"]
    page = await (await p.get("/account")).text()
    assert 'action="/account/profile"' in page and 'name="time_zone"' in page
    assert '<option value="Pacific/Auckland">' in page  # the zone picker's list
    resp = await p.client.post("/account/profile", data={
        "csrf_token": p.csrf, "display_name": "Sam R.", "time_zone": "Asia/Tokyo"})
    assert resp.status == 200 and "Times are now shown in Asia/Tokyo" in await resp.text()
    me = (await json_ok(await p.get("/api/me")))["user"]
    assert me["display_name"] == "Sam R." and me["time_zone"] == "Asia/Tokyo"
    # A bad zone is refused with a readable message and changes nothing.
    resp = await p.client.post("/account/profile", data={
        "csrf_token": p.csrf, "display_name": "Someone Else", "time_zone": "Mars/Olympus"})
    text = await resp.text()
    assert resp.status == 422 and "unknown time zone" in text and "Someone Else" in text
    me = (await json_ok(await p.get("/api/me")))["user"]
    assert me["display_name"] == "Sam R." and me["time_zone"] == "Asia/Tokyo"
    # Without the CSRF token nothing changes either.
    resp = await p.client.post("/account/profile", data={"time_zone": "UTC"})
    assert resp.status == 403
    assert (await json_ok(await p.get("/api/me")))["user"]["time_zone"] == "Asia/Tokyo"


async def test_record_page_shows_session_times_in_the_patients_zone(clinic):  # noqa: F811
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]  # therapist London, patient New York
    await json_ok(await t.post("/api/appointments", {
        "patient_id": pid, "start_local": "2030-03-04T18:00", "time_zone": "Europe/London"}), 201)
    html = await (await p.get("/practice/record")).text()
    assert "Monday 4 March 2030, 13:00 EST" in html
    assert "18:00 GMT" not in html
    record = await json_ok(await p.get("/api/me/record"))
    assert record["appointments"][0]["time_zone"] == "America/New_York"


async def test_past_sessions_offer_no_reschedule_or_cancel(clinic):  # noqa: F811
    t, pid = clinic["t"], clinic["pid"]
    past = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    future = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    for start in (past, future):
        await json_ok(await t.post("/api/appointments", {
            "patient_id": pid, "start_local": start, "time_zone": "UTC"}), 201)
    html = await (await t.get(f"/practice/patients/{pid}")).text()
    items = re.findall(r"<li>\s*<time.*?</li>", html, re.S)
    assert len(items) == 2, items
    by_kind = {("past" if "Reschedule" not in li else "future"): li for li in items}
    assert set(by_kind) == {"past", "future"}
    assert "Details" in by_kind["past"]


async def test_ending_from_inside_the_room_ends_the_visit_everywhere(tmp_path):
    """The host's "End the session for everyone" in the room (signaling 'end'), not the
    waiting room's button: the visit ends, the waiting room empties, the patient is told."""
    async with VoiceServer(tmp_path / "data") as server:
        made = []

        async def browser():
            c = TestClient(server.server)
            await c.start_server()
            made.append(c)
            return Browserish(c)

        try:
            t = await browser()
            make_user(t, "therapist", Role.THERAPIST, "UTC", "Dr Robin")
            make_user(t, "sam", Role.PATIENT, "UTC", "Sam")
            await json_ok(await t.login("therapist"))
            p = await browser()
            await json_ok(await p.login("sam"))
            invite = await json_ok(await t.post("/api/practice/invites"), 201)
            token = invite["invite_url"].rsplit("/", 1)[1]
            resp = await p.client.post(f"/practice/invite/{token}", data={"csrf_token": p.csrf},
                                       allow_redirects=False)
            assert resp.status == 303
            await sign_consents(p, ("telehealth",))
            pid = (await json_ok(await p.get("/api/me")))["user"]["id"]
            start = datetime.now(UTC) + timedelta(minutes=5)
            appt = (await json_ok(await t.post("/api/appointments", {
                "patient_id": pid, "start_local": start.strftime("%Y-%m-%dT%H:%M"),
                "time_zone": "UTC"}), 201))["appointment_id"]
            visit = (await json_ok(await p.post(
                f"/api/appointments/{appt}/occurrences/0/check-in"), 201))["visit"]
            host = await json_ok(await t.post(f"/api/visits/{visit['id']}/admit"))
            assert "Go to the waiting room" in await (await p.get("/practice")).text()

            client = VoiceClient(server.base_url + host["join_path"], IdentityKeys.generate())
            await client.start()
            try:
                await client._send(EndRoom())
                await asyncio.wait_for(client.ended.wait(), 10)
                assert client.summary.ended == "room_closed"
            finally:
                await client.close()

            status = (await json_ok(await p.get(f"/api/visits/{visit['id']}")))["visit"]
            assert status["status"] == "ended"
            assert (await json_ok(await t.get("/api/waiting-room")))["visits"] == []
            room = await (await t.get("/practice/waiting-room")).text()
            assert "Nobody is waiting" in room and "Rejoin" not in room
            home = await (await p.get("/practice")).text()
            assert "Go to the waiting room" not in home and "This session has ended." in home
            dash = await json_ok(await p.get("/api/practice/dashboard"))
            assert all(o["visit"]["status"] == "ended" for o in dash["upcoming"] if o["visit"])
            await error_of(await p.post(f"/api/visits/{visit['id']}/join"), 409)
        finally:
            for c in made:
                await c.close()
