"""``haven serve --demo`` seeds peer groups a newcomer can try at once: a real process on a
real data folder, used over HTTP as the demo's people would."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar

import icalendar

from web.demo import DEMO_GROUP_1, DEMO_GROUP_2


class Person:
    def __init__(self, base: str, username: str, password: str):
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.call("GET", "/healthz")
        self.call("POST", "/api/login", {"username": username, "password": password})

    def call(self, method: str, path: str, body: dict | None = None):
        csrf = next((c.value for c in self.jar if c.name == "haven_csrf"), "")
        req = urllib.request.Request(
            self.base + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf})
        with self.opener.open(req) as r:
            raw = r.read()
            return json.loads(raw) if r.headers.get_content_type() == "application/json" else raw


def test_demo_groups_meetings_and_calendar_feeds(live_server):
    base, logins = live_server.base_url, live_server.logins
    assert {"facilitator", "member", "member2"} <= set(logins)
    fac = Person(base, "facilitator", logins["facilitator"])
    member = Person(base, "member", logins["member"])
    member2 = Person(base, "member2", logins["member2"])

    mine = {g["name"]: g for g in fac.call("GET", "/api/groups/mine")["groups"]}
    assert set(mine) == {DEMO_GROUP_1, DEMO_GROUP_2}
    listed, hidden = mine[DEMO_GROUP_1], mine[DEMO_GROUP_2]
    assert listed["visibility"] == "listed" and listed["time_zone"] == "America/New_York"
    assert listed["schedule"]["rrule"].startswith("FREQ=WEEKLY;BYDAY=")
    assert hidden["visibility"] == "invite_only" and hidden["time_zone"] == "Europe/Berlin"
    assert hidden["schedule"]["rrule"].startswith("FREQ=WEEKLY;INTERVAL=2;")

    # One meeting of the listed group opens within the demo's first hour.
    now = datetime.now(UTC)
    starts = [datetime.fromisoformat(o["starts_at"]) for o in listed["next_meetings"]
              if o["status"] != "cancelled"]
    assert any(now - timedelta(minutes=5) <= s <= now + timedelta(hours=1) for s in starts)
    soon = next(o for o in listed["next_meetings"]
                if datetime.fromisoformat(o["starts_at"]) <= now + timedelta(hours=1))
    assert soon["lobby_open"] is True

    # The members are in, under pseudonyms; a request waits in the invite-only group.
    roster = fac.call("GET", f"/api/groups/{listed['id']}/members")
    assert {m["pseudonym"] for m in roster["members"]} >= {"Juniper", "Wren"}
    assert [r["pseudonym"] for r in fac.call(
        "GET", f"/api/groups/{hidden['id']}/members")["requests"]] == ["Kestrel"]
    assert [g["name"] for g in member.call("GET", "/api/groups/mine")["groups"]] == [
        DEMO_GROUP_1]
    assert len(member2.call("GET", "/api/groups/mine")["groups"]) == 2
    # The listed group is in the finder; the invite-only one is not.
    found = [g["name"] for g in member.call("GET", "/api/groups")["groups"]]
    assert DEMO_GROUP_1 in found and DEMO_GROUP_2 not in found

    # Each member's calendar feed: the rule, the cancelled and the moved meeting.
    for person in (member, member2):
        url = person.call("POST", "/api/groups/calendar-feed")["feed_url"]
        ics = person.call("GET", re.sub(r"^https?://[^/]+", "", url))
        cal = icalendar.Calendar.from_ical(ics)
        events = list(cal.walk("VEVENT"))
        masters = [e for e in events if "RECURRENCE-ID" not in e]
        assert len(masters) == len(person.call("GET", "/api/groups/mine")["groups"])
        assert all("RRULE" in e for e in masters)
        assert {str(e["SUMMARY"]) for e in events} == {"Haven group meeting"}
        text = ics.decode()
        assert "Juniper" not in text and "Wren" not in text and "Sky" not in text
    member_cal = icalendar.Calendar.from_ical(member.call("GET", re.sub(
        r"^https?://[^/]+", "", member.call("POST", "/api/groups/calendar-feed")["feed_url"])))
    master = next(e for e in member_cal.walk("VEVENT") if "RECURRENCE-ID" not in e)
    assert "EXDATE" in master
    assert any("RECURRENCE-ID" in e for e in member_cal.walk("VEVENT"))
