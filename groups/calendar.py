"""Each person's private calendar feed (ICS) of their groups' meetings.

One VEVENT per group with the schedule as RFC 5545 expects it: DTSTART in the group's zone
(with its VTIMEZONE), the RRULE, an EXDATE for every cancelled meeting, and for every moved
one an overriding VEVENT with the same UID and a RECURRENCE-ID naming the original start.
Calendar apps then show every meeting at the right time, in the device's zone, across DST.

The feed says as little as possible, since a group's name can reveal a health condition:
every event is titled "Haven group meeting" and carries only a link to Haven, unless the
member chose (per group) to show the group's name. No pseudonyms, no account names, no
notes (a facilitator's note on a moved meeting appears only with the group's name).

The URL carries a random token, stored only as its SHA-256; making a new one retires the
old, and the feed can be turned off.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vRecur
from sqlite_utils import Database

from groups import schedule
from groups.access import group_row, hash_token
from groups.recurrence import Change, Schedule, now_utc
from therapy import audit
from therapy.accounts import AccountError, User, get_user
from therapy.audit import Actor

NEUTRAL_TITLE = "Haven group meeting"


def create_feed(db: Database, user: User, *, actor: Actor) -> str:
    token = secrets.token_urlsafe(24)
    with db.atomic():
        db.execute("DELETE FROM group_feeds WHERE user_id = ?", [user.id])
        db.table("group_feeds").insert({"id": hash_token(token), "user_id": user.id,
                                        "created_at": audit.now_iso()})
        db.execute("INSERT OR IGNORE INTO groups_meta (key, value) VALUES ('feed_uid_secret', ?)",
                   [secrets.token_hex(16)])
        audit.record(db, actor, "group.feed_created", "users", user.id)
    return token


def has_feed(db: Database, user: User) -> bool:
    return bool(db.execute("SELECT 1 FROM group_feeds WHERE user_id = ?", [user.id]).fetchone())


def revoke_feed(db: Database, user: User, *, actor: Actor) -> bool:
    with db.atomic():
        gone = db.execute("DELETE FROM group_feeds WHERE user_id = ?", [user.id]).rowcount
        audit.record(db, actor, "group.feed_revoked", "users", user.id)
    return bool(gone)


def feed_user(db: Database, token: object) -> User | None:
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        return None
    rows = list(db.query("SELECT user_id FROM group_feeds WHERE id = ?", [hash_token(token)]))
    if not rows:
        return None
    try:
        return get_user(db, rows[0]["user_id"])
    except AccountError:
        return None


def _secret(db: Database) -> str:
    rows = list(db.query("SELECT value FROM groups_meta WHERE key = 'feed_uid_secret'"))
    return rows[0]["value"] if rows else "haven-groups"


def event_uid(secret: str, group_id: int, user_id: int) -> str:
    """Stable per group and person, revealing neither."""
    mac = hmac.new(secret.encode(), f"group:{group_id}/user:{user_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32] + "@haven"


def feed_groups(db: Database, user: User) -> list[tuple[dict, bool]]:
    """(group row, show its name) for every group whose meetings the person goes to."""
    out = []
    for r in db.query("SELECT group_id, feed_shows_name FROM group_members WHERE user_id = ? AND "
                      "status = 'active' ORDER BY group_id", [user.id]):
        g = group_row(db, r["group_id"])
        if g is not None and not g["archived_at"]:
            out.append((g, bool(r["feed_shows_name"])))
    return out


def new_calendar() -> Calendar:
    cal = Calendar()
    cal.add("prodid", "-//Haven//Haven groups//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "Haven groups")
    return cal


def schedule_events(sched: Schedule, changes: dict[datetime, Change], *, uid: str, title: str,
                    link: str, now: datetime, with_notes: bool = False) -> list[Event]:
    """The VEVENTs of one schedule: the master (DTSTART, RRULE, EXDATE) and one override
    (RECURRENCE-ID) per moved meeting. Pure: the property tests expand these."""
    zone = ZoneInfo(sched.zone)
    length = timedelta(minutes=sched.duration_minutes)

    def event(start_local: datetime) -> Event:
        ev = Event()
        ev.add("uid", uid)
        ev.add("dtstamp", now)
        ev.add("dtstart", start_local.replace(tzinfo=zone))
        ev.add("dtend", (start_local + length).replace(tzinfo=zone))
        ev.add("summary", title)
        ev.add("url", link)
        ev.add("description", f"Open Haven: {link}")
        ev.add("class", "PRIVATE")
        return ev

    master = event(sched.start_local)
    master.add("rrule", vRecur(sched.rule.ical(sched.zone)))
    cancelled = sorted(o for o, c in changes.items() if c.status == "cancelled")
    if cancelled:
        master.add("exdate", [o.replace(tzinfo=zone) for o in cancelled])
    out = [master]
    for original, change in sorted(changes.items()):
        if change.status != "moved" or change.new_start is None:
            continue
        override = event(change.new_start)
        override.add("recurrence-id", original.replace(tzinfo=zone))
        if with_notes and change.note:
            override["description"] = f"{change.note}\nOpen Haven: {link}"
        out.append(override)
    return out


def finish(cal: Calendar, now: datetime) -> bytes:
    # VTIMEZONE rules covering every date a schedule may use (a year back, ten ahead).
    cal.add_missing_timezones(first_date=date(now.year - 2, 1, 1),
                              last_date=date(now.year + 12, 1, 1))
    return cal.to_ical()


def build_ics(db: Database, user: User, base_url: str, *, now: datetime | None = None) -> bytes:
    now = (now or now_utc()).replace(microsecond=0)
    cal = new_calendar()
    secret = _secret(db)
    link = base_url.rstrip("/") + "/groups/mine"
    for group, show_name in feed_groups(db, user):
        sched = schedule.get(db, group)
        if sched is None:
            continue
        for ev in schedule_events(sched, schedule.changes(db, group["id"]),
                                  uid=event_uid(secret, group["id"], user.id),
                                  title=group["name"] if show_name else NEUTRAL_TITLE,
                                  link=link, now=now, with_notes=show_name):
            cal.add_component(ev)
    return finish(cal, now)
