"""Peer groups over HTTP on the real app and a real SQLite file: the code of conduct gate
(409, then in), meeting lifecycle (lobby, open, admit, auto-admit, capacity, end), join
tokens under pseudonyms, bans, the calendar feed, erasure, reveal audit, bad input."""

from __future__ import annotations

import json
import re

import icalendar
import pytest

from groups import meetings
from tests.conftest import Browserish
from tests.conftest import test_config as config_for
from tests.groups_support import build_world, login, token_id
from therapy import audit, rooms
from therapy.storage import open_database
from web import appkeys
from web.app import create_app


@pytest.fixture
async def world(aiohttp_client, new_client, tmp_path):
    app = create_app(config_for(tmp_path / "data"))
    first = Browserish(await aiohttp_client(app))
    w = build_world(app)
    clients = {}

    async def as_(username: str) -> Browserish:
        if username not in clients:
            c = first if not clients else await new_client(first)
            await login(c, username)
            clients[username] = c
        return clients[username]

    w.app, w.as_ = app, as_
    return w


def db_of(w):
    return open_database(w.app[appkeys.DATA_DIR].db_path)


async def ok(resp, status=200):
    body = await resp.json()
    assert resp.status == status, body
    return body


async def err(resp, status):
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["message"]
    return body["error"]


def g(w, rest=""):
    return f"/api/groups/{w.group_a}{rest}"


async def test_a_new_code_of_conduct_is_accepted_before_the_next_meeting(world):
    fern, juniper = await world.as_("fac-fern"), await world.as_("acct-juniper")
    link = await ok(await juniper.post(g(world, f"/meetings/{world.key}/join")))
    assert link["join_path"].startswith(f"/s/{world.room_id}#")
    new = await ok(await fern.send("PUT", g(world, "/conduct"), json={
        "text": "# Our agreements\n\nBe kind. What is said here stays here."}))
    assert new["conduct"]["version"] == 2

    refused = await err(await juniper.post(g(world, f"/meetings/{world.key}/join")), 409)
    assert refused["code"] == "conduct_required"
    assert "code of conduct" in refused["message"] and "accept" in refused["message"]
    assert (await err(await juniper.post(g(world, f"/meetings/{world.key}/lobby")),
                      409))["code"] == "conduct_required"
    # The page says so too, and offers the new text.
    page = await juniper.get(f"/groups/{world.group_a}")
    assert "The code of conduct has changed" in await page.text()
    # A stale version or hash is refused; the current one lets them in again.
    stale = await err(await juniper.post(g(world, "/conduct/accept"), {
        "version": 1, "sha256": new["conduct"]["sha256"]}), 409)
    assert stale["code"] == "stale_conduct"
    await ok(await juniper.post(g(world, "/conduct/accept"), {
        "version": 2, "sha256": new["conduct"]["sha256"]}))
    link = await ok(await juniper.post(g(world, f"/meetings/{world.key}/join")))
    assert link["room_id"] == world.room_id
    db = db_of(world)
    try:
        rows = list(db.query("SELECT * FROM group_conduct_acceptances WHERE user_id = ? "
                             "ORDER BY id", [world.users["acct-juniper"].id]))
        assert [(r["group_id"], r["version"]) for r in rows] == [(world.group_a, 1),
                                                                 (world.group_a, 2)]
        assert rows[-1]["sha256"] == new["conduct"]["sha256"] and rows[-1]["accepted_at"]
    finally:
        db.close()


async def test_join_tokens_carry_the_pseudonym_and_map_back_to_the_membership(world):
    fern, juniper = await world.as_("fac-fern"), await world.as_("acct-juniper")
    member_link = await ok(await juniper.post(g(world, f"/meetings/{world.key}/join")))
    host_link = await ok(await fern.post(g(world, f"/meetings/{world.key}/host-link")))
    db = db_of(world)
    try:
        m_token = member_link["join_path"].split("#")[1]
        h_token = host_link["join_path"].split("#")[1]
        m_grant = rooms.redeem(db, m_token, world.room_id, "device-a")
        h_grant = rooms.redeem(db, h_token, world.room_id, "device-b")
        assert (m_grant.display_name, m_grant.room_role) == ("Juniper", "member")
        assert (h_grant.display_name, h_grant.room_role) == ("Sage (facilitator)", "host")
        seat = meetings.seat_for_token(db, token_id(m_token))
        assert (seat.group_id, seat.member_id, seat.group_role, seat.pseudonym) == (
            world.group_a, world.members["acct-juniper"], "member", "Juniper")
        assert meetings.seat_for_token(db, token_id(h_token)).facilitator
        assert rooms.room(db, world.room_id)["kind"] == "group"
    finally:
        db.close()
    # The session page of a group room opens in the group's place.
    page = await juniper.get(member_link["join_path"].split("#")[0])
    assert 'data-environment="forest"' in await page.text()


async def test_lobby_open_admit_one_by_one_auto_admit_capacity_and_end(world):
    fern, juniper = await world.as_("fac-fern"), await world.as_("acct-juniper")
    vale, birch = await world.as_("acct-victor"), await world.as_("acct-bianca")
    key = world.keys[0]  # next week: the lobby is not open yet
    early = await err(await vale.post(g(world, f"/meetings/{key}/lobby")), 409)
    assert early["code"] == "not_open_yet" and "30 minutes before" in early["message"]

    # This week's meeting is open; Vale waits until admitted.
    state = (await ok(await vale.post(g(world, f"/meetings/{world.key}/lobby"))))["meeting"]
    assert state["me"]["status"] == "waiting" and "let you in" in state["message"]
    assert "people" not in state  # members do not see who else waits
    waiting = await err(await vale.post(g(world, f"/meetings/{world.key}/join")), 409)
    assert waiting["code"] == "still_waiting"
    seen = (await ok(await fern.get(g(world, f"/meetings/{world.key}"))))["meeting"]
    assert {p["pseudonym"]: p["status"] for p in seen["people"]} == {
        "Juniper": "admitted", "Sage (facilitator)": "admitted", "Vale": "waiting"}
    # Capacity: a meeting of 3 is full with the facilitator, Juniper and Vale.
    await ok(await fern.send("PATCH", g(world), json={"capacity": 3}))
    await ok(await fern.post(g(world, f"/meetings/{world.key}/admit"),
                             {"member_id": world.members["acct-victor"]}))
    await ok(await vale.post(g(world, f"/meetings/{world.key}/join")))
    await ok(await birch.post(g(world, f"/meetings/{world.key}/lobby")))
    full = await err(await fern.post(g(world, f"/meetings/{world.key}/admit"),
                                     {"member_id": world.members["acct-bianca"]}), 409)
    assert full["code"] == "meeting_full"
    # Room again: turning on "admit automatically" lets the waiting one in.
    await ok(await fern.send("PATCH", g(world), json={"capacity": 12}))
    on = (await ok(await fern.send("PUT", g(world, f"/meetings/{world.key}/auto-admit"),
                                   json={"on": True})))["meeting"]
    assert {p["pseudonym"]: p["status"] for p in on["people"]}["Birch"] == "admitted"

    # Attendance: the facilitator sees everyone, a member only themself.
    mine = (await ok(await juniper.get(g(world, "/membership/attendance"))))["attendance"]
    assert len(mine) == 1 and mine[0]["status"] == "admitted"
    assert "Vale" not in json.dumps(mine)
    everyone = (await ok(await fern.get(g(world, "/attendance"))))["meetings"]
    assert {p["pseudonym"] for p in everyone[0]["people"]} >= {"Juniper", "Vale", "Birch"}

    await ok(await fern.post(g(world, f"/meetings/{world.key}/end")))
    db = db_of(world)
    try:
        assert rooms.room(db, world.room_id)["closed_at"]
    finally:
        db.close()
    ended = await err(await juniper.post(g(world, f"/meetings/{world.key}/join")), 409)
    assert ended["code"] == "meeting_ended"
    state = (await ok(await juniper.get(g(world, f"/meetings/{world.key}"))))["meeting"]
    assert state["status"] == "ended" and "ended" in state["message"]


async def test_no_meeting_without_a_facilitator(world):
    juniper = await world.as_("acct-juniper")
    admin = await world.as_("admin-ava")
    key = world.keys[0]
    # Members cannot open a meeting, nor can an admin who is not its facilitator.
    assert (await err(await juniper.post(g(world, f"/meetings/{key}/open")), 403))
    assert (await err(await admin.post(g(world, f"/meetings/{world.key}/open")), 403))


async def test_banned_members_cannot_come_back_and_their_links_stop(world):
    fern, birch = await world.as_("fac-fern"), await world.as_("acct-bianca")
    await ok(await birch.post(g(world, f"/meetings/{world.key}/lobby")))
    await ok(await fern.post(g(world, f"/meetings/{world.key}/admit"),
                             {"member_id": world.members["acct-bianca"]}))
    link = await ok(await birch.post(g(world, f"/meetings/{world.key}/join")))
    await ok(await fern.post(g(world, f"/members/{world.members['acct-bianca']}/remove"),
                             {"ban": True}))
    assert (await err(await birch.post(g(world, f"/meetings/{world.key}/join")),
                      403))["code"] == "banned"
    assert (await err(await birch.post(g(world, f"/meetings/{world.key}/lobby")),
                      403))["code"] == "banned"
    cur = (await ok(await birch.get(g(world, "/conduct"))))["conduct"]
    again = await err(await birch.post(g(world, "/join"), {
        "pseudonym": "Someone Else", "conduct_version": cur["version"],
        "conduct_sha256": cur["sha256"]}), 403)
    assert again["code"] == "banned"
    db = db_of(world)
    try:
        with pytest.raises(rooms.RoomError) as refused:
            rooms.redeem(db, link["join_path"].split("#")[1], world.room_id, "dev")
        assert refused.value.code == "token_revoked"
    finally:
        db.close()
    # Erasing one's data does not lift a ban.
    erased = await ok(await birch.post(g(world, "/membership/erase")))
    assert erased["ban_kept"] is True
    assert (await err(await birch.post(g(world, "/join"), {
        "pseudonym": "Third Try", "conduct_version": cur["version"],
        "conduct_sha256": cur["sha256"]}), 403))["code"] == "banned"


async def test_pseudonyms_are_unique_private_and_change_between_meetings(world):
    fern, juniper = await world.as_("fac-fern"), await world.as_("acct-juniper")
    orla = await world.as_("acct-orla")
    cur = (await ok(await orla.get(g(world, "/conduct"))))["conduct"]
    body = {"conduct_version": cur["version"], "conduct_sha256": cur["sha256"]}
    taken = await err(await orla.post(g(world, "/join"), {"pseudonym": "juniper", **body}), 409)
    assert taken["code"] == "pseudonym_taken"
    own = await err(await orla.post(g(world, "/join"), {"pseudonym": "acct-orla", **body}), 422)
    assert "account" in own["message"]
    fake = await err(await orla.post(g(world, "/join"), {"pseudonym": "Facilitator Jo",
                                                         **body}), 422)
    assert "facilitators" in fake["message"]
    asked = await ok(await orla.post(g(world, "/join"), {"pseudonym": "Oriel", **body}))
    assert asked["membership"]["status"] == "requested"  # group A asks for approval
    # Juniper is admitted to the open meeting: no new name until it is over.
    await ok(await juniper.post(g(world, f"/meetings/{world.key}/join")))
    during = await err(await juniper.send("PATCH", g(world, "/membership"),
                                          json={"pseudonym": "Juno"}), 409)
    assert during["code"] == "in_meeting"
    await ok(await fern.post(g(world, f"/meetings/{world.key}/end")))
    await ok(await juniper.send("PATCH", g(world, "/membership"), json={"pseudonym": "Juno"}))
    roster = await ok(await fern.get(g(world, "/members")))
    assert "Juno" in {m["pseudonym"] for m in roster["members"]}
    assert "Oriel" in {m["pseudonym"] for m in roster["requests"]}


async def test_reveal_is_audited_and_erasure_removes_the_membership(world):
    fern, juniper = await world.as_("fac-fern"), await world.as_("acct-juniper")
    mid = world.members["acct-juniper"]
    shown = await ok(await fern.post(g(world, f"/members/{mid}/reveal")))
    assert shown["account"]["username"] == "acct-juniper"
    db = db_of(world)
    try:
        entry = audit.entries(db, target_table="groups", target_ids=[str(world.group_a)])
        reveal = [e for e in entry if e["action"] == "group.member_reveal"]
        assert reveal and reveal[0]["actor_user_id"] == world.users["fac-fern"].id
        assert reveal[0]["detail"]["member_id"] == mid
    finally:
        db.close()
    await ok(await juniper.post(g(world, "/membership/erase")))
    db = db_of(world)
    try:
        uid = world.users["acct-juniper"].id
        assert not list(db.query("SELECT * FROM group_members WHERE user_id = ? AND "
                                 "group_id = ?", [uid, world.group_a]))
        assert not list(db.query("SELECT * FROM group_conduct_acceptances WHERE user_id = ?",
                                 [uid]))
        assert not list(db.query("SELECT * FROM group_attendance WHERE member_id = ?", [mid]))
        blob = json.dumps([dict(r) for r in db.query("SELECT detail FROM audit_log")])
        assert "Juniper" not in blob  # the audit trail never held the pseudonym
    finally:
        db.close()


async def test_invite_only_groups_are_joined_through_their_link(world):
    juniper, otto = await world.as_("acct-juniper"), await world.as_("fac-otto")
    b = f"/api/groups/{world.group_b}"
    await err(await juniper.get(b), 404)
    viewed = await ok(await juniper.get(f"/api/group-invites/{world.invite_b}"))
    cur = viewed["group"]["conduct"]
    body = {"pseudonym": "June", "conduct_version": cur["version"],
            "conduct_sha256": cur["sha256"]}
    await err(await juniper.post(b + "/join", body), 404)
    joined = await ok(await juniper.post(b + "/join", {**body, "invite": world.invite_b}))
    assert joined["membership"]["status"] == "active"  # group B is open to its invitees
    await ok(await juniper.get(b))
    invites = (await ok(await otto.get(b + "/invites")))["invites"]
    await ok(await otto.post(b + f"/invites/{invites[0]['id']}/revoke"))
    assert (await juniper.get(f"/api/group-invites/{world.invite_b}")).status == 404


async def test_calendar_feed_is_neutral_exact_and_revocable(world):
    fern, juniper = await world.as_("fac-fern"), await world.as_("acct-juniper")
    await ok(await fern.post(g(world, f"/meetings/{world.keys[0]}/cancel"), {"note": "holiday"}))
    group = (await ok(await fern.get(g(world))))["group"]
    third = group["next_meetings"][2]
    moved_to = third["local_start"]  # shown in Fern's zone; move within the group's zone
    await ok(await fern.post(g(world, f"/meetings/{world.keys[1]}/move"), {
        "start_local": group["schedule"]["start_local"][:11] + "06:15", "note": "secret"}))
    made = await ok(await juniper.post("/api/groups/calendar-feed"))
    path = re.sub(r"^https?://[^/]+", "", made["feed_url"])
    resp = await juniper.client.get(path)
    assert resp.status == 200 and resp.content_type == "text/calendar"
    text = await resp.text()
    cal = icalendar.Calendar.from_ical(text)
    events = list(cal.walk("VEVENT"))
    assert {str(e["SUMMARY"]) for e in events} == {"Haven group meeting"}
    master = next(e for e in events if "RECURRENCE-ID" not in e)
    assert master["RRULE"]["FREQ"] == ["WEEKLY"] and "EXDATE" in master
    assert any("RECURRENCE-ID" in e for e in events)
    for secret in ("Anxiety circle", "Juniper", "Sage", "acct-", "Realjuniper", "secret",
                   "holiday", "Vale", "Fern"):
        assert secret not in text, secret
    assert moved_to
    # Opting in per group shows that group's name (and the facilitator's note).
    await ok(await juniper.send("PATCH", g(world, "/membership"),
                                json={"feed_shows_name": True}))
    named = await (await juniper.client.get(path)).text()
    assert "Anxiety circle" in named and "secret" in named
    # A new address retires the old one; turning it off retires both.
    newer = await ok(await juniper.post("/api/groups/calendar-feed"))
    assert (await juniper.client.get(path)).status == 404
    await ok(await juniper.send("DELETE", "/api/groups/calendar-feed"))
    assert (await juniper.client.get(re.sub(r"^https?://[^/]+", "",
                                            newer["feed_url"]))).status == 404


@pytest.mark.parametrize("method, path, body, status", [
    ("PUT", "/schedule", {"rrule": "FREQ=WEEKLY;BYDAY=TU", "start_local": "9999-01-05T18:00"},
     422),
    ("PUT", "/schedule", {"rrule": "FREQ=WEEKLY;BYDAY=TU;UNTIL=20200101",
                          "start_local": "2026-12-01T18:00"}, 422),
    ("PUT", "/schedule", {"rrule": "FREQ=SECONDLY", "start_local": "2026-12-01T18:00"}, 422),
    ("PUT", "/schedule", {"rrule": "FREQ=WEEKLY", "start_local": "2026-12-01T18:00",
                          "duration_minutes": 10**12}, 422),
    ("PUT", "/schedule", {"rrule": {"nested": [1]}, "start_local": "x"}, 422),
    ("GET", "/meetings?days=100000", None, 422),
    ("GET", "/meetings?from=9999-01-01T00:00:00", None, 422),
    ("GET", "/meetings?from=yesterday", None, 422),
    ("POST", "/meetings/99991231T1800/cancel", {}, 404),
    ("POST", "/meetings/notakey/move", {"start_local": "2026-12-01T18:00"}, 404),
    ("POST", "/meetings/{key}/move", {"start_local": "3000-01-01T00:00"}, 422),
    ("GET", "/conduct?version=99999999999", None, 422),
    ("PUT", "/conduct", {"text": "<script>" * 3000}, 422),
    ("POST", "/members/99999999999999999999/reveal", None, 404),
    ("PATCH", "", {"capacity": 17}, 422),
    ("PATCH", "", {"tags": ["x" * 40]}, 422),
    ("PATCH", "", {"environment_id": "moon"}, 422),
])
async def test_bad_input_is_a_clear_4xx_and_changes_nothing(world, method, path, body, status):
    fern = await world.as_("fac-fern")
    before = await ok(await fern.get(g(world)))
    url = g(world, path.replace("{key}", world.key))
    error = await err(await fern.send(method, url, json=body), status)
    assert error["code"]
    assert await ok(await fern.get(g(world))) == before
    huge = await err(await fern.get("/api/groups/123456789012345678901234567890"), 404)
    assert huge["code"] == "not_found"


async def test_conduct_is_rendered_without_raw_html(world):
    fern, juniper = await world.as_("fac-fern"), await world.as_("acct-juniper")
    await ok(await fern.send("PUT", g(world, "/conduct"), json={
        "text": "# Rules\n\n<script>alert(1)</script> [x](javascript:alert(1)) "
                "<img src=x onerror=alert(1)> **be kind**"}))
    doc = (await ok(await juniper.get(g(world, "/conduct"))))["conduct"]
    assert "<script>" not in doc["html"] and "<img" not in doc["html"]
    assert "href=\"javascript:" not in doc["html"] and "<strong>be kind</strong>" in doc["html"]
    page = await (await juniper.get(f"/groups/{world.group_a}")).text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page


async def test_pages_render_and_forms_work_without_script(world):
    fern, juniper = await world.as_("fac-fern"), await world.as_("acct-juniper")
    admin, orla = await world.as_("admin-ava"), await world.as_("acct-orla")
    for who, path in ((juniper, "/groups"), (juniper, "/groups?day=tue&time_of_day=evening"),
                      (juniper, f"/groups/{world.group_a}"), (juniper, "/groups/mine"),
                      (juniper, f"/groups/{world.group_a}/meetings/{world.key}"),
                      (fern, f"/groups/{world.group_a}/manage"),
                      (fern, f"/groups/{world.group_a}/meetings/{world.key}"),
                      (admin, "/admin/groups"), (orla, f"/groups/invite/{world.invite_a}")):
        resp = await who.get(path)
        text = await resp.text()
        assert resp.status == 200, (path, text[:300])
        assert "acct-" not in text.replace("acct-juniper", "") or who is admin
    # The finder filters by day in the viewer's zone; a bad filter is a readable 422.
    assert (await juniper.get("/groups?day=someday")).status == 422
    # A member cannot open the dashboard.
    assert (await juniper.get(f"/groups/{world.group_a}/manage")).status == 403
    # Join by form: the box must be ticked.
    form = {"csrf_token": orla.csrf, "pseudonym": "Oriel", "conduct_version": "1",
            "conduct_sha256": "x", "color": "#a8d5c9"}
    resp = await orla.client.post(f"/groups/{world.group_a}/join", data=form,
                                  allow_redirects=False)
    assert resp.status == 422 and "tick the box" in await resp.text()


async def test_the_finder_filters_by_day_and_time_of_day_in_the_viewers_zone(world):
    orla = await world.as_("acct-orla")  # lives in Europe/Berlin; the group meets in New York
    view = (await ok(await orla.get(g(world))))["group"]
    first = view["next_meetings"][0]
    assert first["time_zone"] == "Europe/Berlin"
    day = first["weekday"]
    hour = first["hour"]
    bucket = next(name for name, (lo, hi) in {"morning": (5, 12), "afternoon": (12, 17),
                                              "evening": (17, 22)}.items()
                  if lo <= hour < hi) if 5 <= hour < 22 else "night"
    other_day = {"mon": "thu", "tue": "fri", "wed": "sat", "thu": "sun", "fri": "mon",
                 "sat": "tue", "sun": "wed"}[day]
    other_time = "morning" if bucket != "morning" else "evening"

    async def names(query):
        found = await ok(await orla.get("/api/groups" + query))
        assert found["time_zone"] == "Europe/Berlin"
        return [x["name"] for x in found["groups"]]

    assert "Anxiety circle" in await names("")
    assert "Hidden circle" not in await names("")  # invite-only groups are not listed
    assert "Anxiety circle" in await names(f"?day={day}&time_of_day={bucket}&topic=anxiety")
    assert "Anxiety circle" not in await names(f"?day={other_day}")
    assert "Anxiety circle" not in await names(f"?time_of_day={other_time}")
    assert "Anxiety circle" not in await names("?topic=grief")
    assert (await err(await orla.get("/api/groups?day=someday"), 422))["field"] == "day"


async def test_dashboard_forms_set_the_schedule_and_change_one_meeting(world):
    fern = await world.as_("fac-fern")
    gid = world.group_a
    view = (await ok(await fern.get(g(world))))["group"]
    start = view["schedule"]["start_local"]
    resp = await fern.client.post(f"/groups/{gid}/manage/schedule", data={
        "csrf_token": fern.csrf, "start_local": start, "repeat": "biweekly",
        "duration_minutes": "90", "ends": "count", "count": "5"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    sched = (await ok(await fern.get(g(world))))["group"]["schedule"]
    assert sched["rrule"].startswith("FREQ=WEEKLY;INTERVAL=2;BYDAY=") and "COUNT=5" in \
        sched["rrule"] and sched["duration_minutes"] == 90
    bad = await fern.client.post(f"/groups/{gid}/manage/schedule", data={
        "csrf_token": fern.csrf, "start_local": "9999-01-01T10:00", "repeat": "weekly",
        "duration_minutes": "60", "ends": "never"}, allow_redirects=False)
    assert bad.status == 422 and "ten years" in await bad.text()
    assert (await ok(await fern.get(g(world))))["group"]["schedule"] == sched
    meetings_now = (await ok(await fern.get(g(world, "/meetings?days=60"))))["meetings"]
    second = meetings_now[1]["key"]
    resp = await fern.client.post(f"/groups/{gid}/meetings/{second}/cancel", data={
        "csrf_token": fern.csrf, "note": "Room booked"}, allow_redirects=False)
    assert resp.status == 303
    after = (await ok(await fern.get(g(world, "/meetings?days=60"))))["meetings"]
    assert [m["status"] for m in after if m["key"] == second] == ["cancelled"]
    assert [m["status"] for m in after].count("cancelled") == 1
