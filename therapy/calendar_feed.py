"""Each user's private calendar feed (ICS), for their own calendar app.

The feed URL carries a random token (stored only as its SHA-256; making a new one retires
the old). Events carry no health information: the title is always "Haven session", the
only other content is a link to Haven. No names, no notes, no environment, no diagnosis.
Times are UTC instants (calendar apps show them in the device's zone).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event
from sqlite_utils import Database

from therapy import appointments, audit
from therapy.accounts import User, get_user
from therapy.audit import Actor

EVENT_TITLE = "Haven session"
PAST_WINDOW = timedelta(days=30)
FUTURE_WINDOW = timedelta(days=400)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_feed(db: Database, user: User, *, actor: Actor) -> str:
    """A new feed token for ``user`` (any older feed URL stops working)."""
    token = secrets.token_urlsafe(24)
    with db.atomic():
        db.execute("DELETE FROM calendar_feeds WHERE user_id = ?", [user.id])
        db.table("calendar_feeds").insert({"id": _hash(token), "user_id": user.id,
                                           "created_at": audit.now_iso()})
        ensure_uid_secret(db)
        audit.record(db, actor, "calendar.feed_created", "users", user.id)
    return token


def has_feed(db: Database, user: User) -> bool:
    return bool(db.execute("SELECT 1 FROM calendar_feeds WHERE user_id = ?",
                           [user.id]).fetchone())


def revoke_feed(db: Database, user: User, *, actor: Actor) -> None:
    with db.atomic():
        db.execute("DELETE FROM calendar_feeds WHERE user_id = ?", [user.id])
        audit.record(db, actor, "calendar.feed_revoked", "users", user.id)


def feed_user(db: Database, token: str) -> User | None:
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        return None
    rows = list(db.query("SELECT user_id FROM calendar_feeds WHERE id = ?", [_hash(token)]))
    if not rows:
        return None
    try:
        return get_user(db, rows[0]["user_id"])
    except Exception:  # noqa: BLE001 - a disabled user has no feed
        return None


def event_uid(occ: appointments.Occurrence, user_id: int, secret: str) -> str:
    """Stable per occurrence and user, but reveals nothing (not even the appointment id)."""
    digest = hmac.new(secret.encode(), f"{occ.key}/{user_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32] + "@haven"


def build_ics(db: Database, user: User, base_url: str, *, now: datetime | None = None) -> bytes:
    now = now or datetime.now(UTC)
    cal = Calendar()
    cal.add("prodid", "-//Haven//Haven sessions//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "Haven")
    secret = _uid_secret(db)
    link = base_url.rstrip("/") + "/"
    for occ in appointments.occurrences_for(db, user, now=now - PAST_WINDOW,
                                            include_cancelled=True, limit=500):
        if occ.broken or occ.start_utc > now + FUTURE_WINDOW:
            continue
        ev = Event()
        ev.add("uid", event_uid(occ, user.id, secret))
        ev.add("dtstamp", now.replace(microsecond=0))
        ev.add("dtstart", occ.start_utc)
        ev.add("dtend", occ.end_utc)
        ev.add("summary", EVENT_TITLE)
        ev.add("url", link)
        ev.add("description", f"Open Haven: {link}")
        ev.add("status", "CANCELLED" if occ.cancelled else "CONFIRMED")
        ev.add("class", "PRIVATE")
        cal.add_component(ev)
    return cal.to_ical()


def _uid_secret(db: Database) -> str:
    rows = list(db.query("SELECT value FROM meta WHERE key = 'calendar_uid_secret'"))
    return rows[0]["value"] if rows else "haven-calendar"


def ensure_uid_secret(db: Database) -> None:
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('calendar_uid_secret', ?)",
               [secrets.token_hex(16)])
