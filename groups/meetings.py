"""The meeting lifecycle: lobby, open, admit, join links, attendance, end.

One meeting per occurrence of a group's schedule, created when the first person arrives in
the lobby or a facilitator opens it:

* ``scheduled`` - people may wait in the lobby from :data:`LOBBY_OPENS` before the start; the
  lobby says when the meeting starts. There is no room yet: no meeting without a
  facilitator.
* ``open`` - a facilitator opened it, which creates its voice room (``therapy.rooms``, kind
  ``group``: an ordinary E2EE room the hub and SFU serve unchanged) and gives them a host
  link. The facilitator admits people one by one, or turns on "admit members
  automatically". Only once admitted does a member get a join link, under their pseudonym.
* ``ended`` - a facilitator ended it: the room is closed for everyone.

Every member entry checks ``groups.permissions`` (active membership, not banned, the current
code of conduct accepted), so a refusal is the server's, whatever the page shows.

Join tokens are issued with the member's pseudonym as the display name (facilitators: their
name in the group), ``room_role`` host for facilitators and member otherwise, and every token
is mapped to its membership in ``group_meeting_tokens``: :func:`seat_for_token` answers "who
is this, in which group, with which role" for the signaling hub and for moderation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from groups import access, membership, schedule
from groups.access import GroupContext
from groups.directory import LOBBY_OPENS, label, occurrence_view
from groups.errors import GroupError
from groups.permissions import Action
from groups.recurrence import Occurrence, format_local, now_utc
from therapy import audit, rooms
from therapy.accounts import User, get_user
from therapy.audit import Actor

TOKEN_TTL = timedelta(hours=6)
SCHEDULED, OPEN, ENDED = "scheduled", "open", "ended"


@dataclass(frozen=True)
class Seat:
    """Who holds a meeting's join token: their group, membership and role in the group."""

    group_id: int
    meeting_id: int
    member_id: int
    user_id: int
    group_role: str  # lead | co | member
    pseudonym: str
    room_id: str
    member_status: str = "active"  # the membership's status (banned: never let in)

    @property
    def facilitator(self) -> bool:
        return self.group_role in ("lead", "co")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row(db: Database, group_id: int, occ: Occurrence) -> dict | None:
    rows = list(db.query("SELECT * FROM group_meetings WHERE group_id = ? AND original_local = ?",
                         [group_id, format_local(occ.original)]))
    return dict(rows[0]) if rows else None


def _ensure(db: Database, group: dict, occ: Occurrence) -> dict:
    row = _row(db, group["id"], occ)
    if row is None:
        db.table("group_meetings").insert({
            "group_id": group["id"], "original_local": format_local(occ.original),
            "starts_at": occ.start_utc.isoformat(), "ends_at": occ.end_utc.isoformat(),
            "status": SCHEDULED, "room_id": None, "opened_at": None, "opened_by": None,
            "ended_at": None, "auto_admit": group["auto_admit"], "locked": 0})
        row = _row(db, group["id"], occ)
    elif row["status"] == SCHEDULED and row["starts_at"] != occ.start_utc.isoformat():
        db.execute("UPDATE group_meetings SET starts_at = ?, ends_at = ? WHERE id = ?",
                   [occ.start_utc.isoformat(), occ.end_utc.isoformat(), row["id"]])
        row = _row(db, group["id"], occ)
    return row


def _check_time(occ: Occurrence, row: dict | None, now: datetime, zone: str) -> None:
    if row is not None and row["status"] == ENDED:
        raise GroupError("meeting_ended", "this meeting has ended")
    if row is not None and row["status"] == OPEN:
        return
    if occ.cancelled:
        raise GroupError("meeting_cancelled", "this meeting was cancelled"
                         + (f": {occ.note}" if occ.note else ""))
    if now < occ.start_utc - LOBBY_OPENS:
        raise GroupError("not_open_yet", "the lobby opens 30 minutes before the meeting, at "
                         + label(occ.start_utc - LOBBY_OPENS, zone))
    if now >= occ.end_utc:
        raise GroupError("meeting_over", "this meeting's time is over")


def _attendance(db: Database, meeting_id: int, member_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM group_attendance WHERE meeting_id = ? AND member_id = ?",
                         [meeting_id, member_id]))
    return dict(rows[0]) if rows else None


def _admitted_count(db: Database, meeting_id: int) -> int:
    return db.execute("SELECT COUNT(*) FROM group_attendance WHERE meeting_id = ? AND "
                      "status = 'admitted'", [meeting_id]).fetchone()[0]


def _admit_row(db: Database, group: dict, meeting: dict, att: dict, by: int | None) -> bool:
    """Admit one waiting person if the meeting has room; False when it is full."""
    if att["status"] == "admitted":
        return True
    if _admitted_count(db, meeting["id"]) >= group["capacity"]:
        return False
    db.execute("UPDATE group_attendance SET status = 'admitted', admitted_at = ?, "
               "admitted_by = ?, left_at = NULL WHERE id = ?", [audit.now_iso(), by, att["id"]])
    return True


def _admit_waiting(db: Database, group: dict, meeting: dict, by: int | None) -> int:
    n = 0
    for att in db.query("SELECT * FROM group_attendance WHERE meeting_id = ? AND status = "
                        "'waiting' ORDER BY arrived_at, id", [meeting["id"]]):
        if not _admit_row(db, group, meeting, dict(att), by):
            break
        n += 1
    return n


def _context(db: Database, user: User | None, group_id: int, key: str, action: Action
             ) -> tuple[GroupContext, Occurrence]:
    ctx = access.load_for(db, user, group_id, action)
    return ctx, schedule.find(db, ctx.group, key)


def _token(db: Database, ctx: GroupContext, meeting: dict, room_role: str,
           actor: Actor) -> str:
    m = ctx.member
    # Unused links this person was given earlier for this meeting stop working.
    db.execute("UPDATE join_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND "
               "first_used_at IS NULL AND id IN (SELECT token_id FROM group_meeting_tokens "
               "WHERE meeting_id = ? AND member_id = ?)",
               [audit.now_iso(), meeting["id"], m["id"]])
    token = rooms.issue_token(db, meeting["room_id"], m["pseudonym"], room_role=room_role,
                              user_id=m["user_id"], ttl=TOKEN_TTL, actor=actor)
    db.table("group_meeting_tokens").insert({
        "token_id": _hash(token), "meeting_id": meeting["id"], "member_id": m["id"],
        "issued_at": audit.now_iso()})
    return token


# --- facilitators ---------------------------------------------------------------------------

def open_meeting(db: Database, user: User | None, group_id: int, key: str, *,
                 now: datetime | None = None, actor: Actor) -> tuple[str, str]:
    """Open the meeting (creating its voice room) and return (room id, host token)."""
    now = now or now_utc()
    with db.atomic():
        ctx, occ = _context(db, user, group_id, key, Action.MEETING_RUN)
        row = _row(db, ctx.group_id, occ)
        _check_time(occ, row, now, user.time_zone)
        meeting = _ensure(db, ctx.group, occ)
        if meeting["status"] == SCHEDULED:
            room_id = rooms.create_room(db, "group", created_by=user.id)
            db.execute("UPDATE group_meetings SET status = ?, room_id = ?, opened_at = ?, "
                       "opened_by = ? WHERE id = ?",
                       [OPEN, room_id, audit.now_iso(), ctx.member["id"], meeting["id"]])
            audit.record(db, actor, "group.meeting_open", "group_meetings", meeting["id"],
                         group_id=ctx.group_id, room_id=room_id)
            meeting = _row(db, ctx.group_id, occ)
            if meeting["auto_admit"]:
                _admit_waiting(db, ctx.group, meeting, ctx.member["id"])
        return meeting["room_id"], _host_token(db, ctx, meeting, actor)


def _host_token(db: Database, ctx: GroupContext, meeting: dict, actor: Actor) -> str:
    att = _attendance(db, meeting["id"], ctx.member["id"])
    if att is None:
        db.table("group_attendance").insert({
            "meeting_id": meeting["id"], "member_id": ctx.member["id"], "status": "admitted",
            "arrived_at": audit.now_iso(), "admitted_at": audit.now_iso(),
            "admitted_by": ctx.member["id"], "left_at": None})
    return _token(db, ctx, meeting, "host", actor)


def host_link(db: Database, user: User | None, group_id: int, key: str, *,
              actor: Actor) -> tuple[str, str]:
    """A fresh host link to (re)enter an open meeting's room, for any facilitator."""
    with db.atomic():
        ctx, occ = _context(db, user, group_id, key, Action.MEETING_RUN)
        meeting = _row(db, ctx.group_id, occ)
        if meeting is None or meeting["status"] != OPEN:
            raise GroupError("not_open", "open the meeting first" if meeting is None or
                             meeting["status"] == SCHEDULED else "this meeting has ended")
        return meeting["room_id"], _host_token(db, ctx, meeting, actor)


def admit(db: Database, user: User | None, group_id: int, key: str, member_id: int, *,
          actor: Actor) -> dict:
    with db.atomic():
        ctx, occ = _context(db, user, group_id, key, Action.MEETING_RUN)
        meeting = _row(db, ctx.group_id, occ)
        if meeting is None or meeting["status"] != OPEN:
            raise GroupError("not_open", "open the meeting before admitting anyone")
        target = access.member_by_id(db, ctx.group_id, member_id)
        att = _attendance(db, meeting["id"], target["id"])
        if att is None or att["status"] not in ("waiting", "admitted"):
            raise GroupError("not_waiting", "this person is not waiting in the lobby")
        if target["status"] != "active":
            raise GroupError("not_member", "this person is no longer a member")
        if not _admit_row(db, ctx.group, meeting, att, ctx.member["id"]):
            raise GroupError("meeting_full", f"the meeting is full ({ctx.group['capacity']} "
                             "people)")
        audit.record(db, actor, "group.meeting_admit", "group_meetings", meeting["id"],
                     member_id=target["id"])
        return state(db, user, group_id, key)


def set_auto_admit(db: Database, user: User | None, group_id: int, key: str, on: bool, *,
                   now: datetime | None = None, actor: Actor) -> dict:
    """Turn "admit members automatically" on or off for this meeting (on: everyone waiting
    comes in now, as far as the meeting has room)."""
    now = now or now_utc()
    with db.atomic():
        ctx, occ = _context(db, user, group_id, key, Action.MEETING_RUN)
        meeting = _row(db, ctx.group_id, occ)
        _check_time(occ, meeting, now, user.time_zone)
        meeting = _ensure(db, ctx.group, occ)
        db.execute("UPDATE group_meetings SET auto_admit = ? WHERE id = ?",
                   [int(bool(on)), meeting["id"]])
        if on and meeting["status"] == OPEN:
            _admit_waiting(db, ctx.group, meeting, ctx.member["id"])
        audit.record(db, actor, "group.meeting_auto_admit", "group_meetings", meeting["id"],
                     on=bool(on))
        return state(db, user, group_id, key)


def end_meeting(db: Database, user: User | None, group_id: int, key: str, *,
                actor: Actor) -> str | None:
    """End the meeting for everyone: close its room. Returns the room id (to disconnect
    live connections), or None when it never opened."""
    with db.atomic():
        ctx, occ = _context(db, user, group_id, key, Action.MEETING_RUN)
        meeting = _row(db, ctx.group_id, occ)
        if meeting is None or meeting["status"] == SCHEDULED:
            raise GroupError("not_open", "this meeting has not been opened")
        if meeting["status"] == ENDED:
            return meeting["room_id"]
        _close(db, meeting, actor)
        audit.record(db, actor, "group.meeting_end", "group_meetings", meeting["id"],
                     group_id=ctx.group_id)
        return meeting["room_id"]


def _close(db: Database, meeting: dict, actor: Actor) -> None:
    """Close an open meeting's room and records: ended, attendance closed, lobby emptied."""
    now = audit.now_iso()
    rooms.close_room(db, meeting["room_id"], actor=actor)
    db.execute("UPDATE group_meetings SET status = ?, ended_at = ? WHERE id = ?",
               [ENDED, now, meeting["id"]])
    db.execute("UPDATE group_attendance SET left_at = COALESCE(left_at, ?) WHERE "
               "meeting_id = ? AND status = 'admitted'", [now, meeting["id"]])
    db.execute("UPDATE group_attendance SET status = 'turned_away' WHERE meeting_id = ? "
               "AND status = 'waiting'", [meeting["id"]])


# --- members ------------------------------------------------------------------------------

def arrive(db: Database, user: User | None, group_id: int, key: str, *,
           now: datetime | None = None, actor: Actor) -> dict:
    """Enter the lobby (idempotent). Admitted at once when the meeting admits automatically."""
    now = now or now_utc()
    with db.atomic():
        ctx, occ = _context(db, user, group_id, key, Action.MEETING_ATTEND)
        _check_time(occ, _row(db, ctx.group_id, occ), now, user.time_zone)
        meeting = _ensure(db, ctx.group, occ)
        if ctx.facts.facilitator:
            return state(db, user, group_id, key, now=now)  # facilitators do not wait
        att = _attendance(db, meeting["id"], ctx.member["id"])
        if att is None:
            db.table("group_attendance").insert({
                "meeting_id": meeting["id"], "member_id": ctx.member["id"],
                "status": "waiting", "arrived_at": audit.now_iso(), "admitted_at": None,
                "admitted_by": None, "left_at": None})
            audit.record(db, actor, "group.meeting_arrive", "group_meetings", meeting["id"],
                         member_id=ctx.member["id"])
            att = _attendance(db, meeting["id"], ctx.member["id"])
        if meeting["status"] == OPEN and meeting["auto_admit"] and att["status"] == "waiting":
            _admit_row(db, ctx.group, meeting, att, None)
        return state(db, user, group_id, key, now=now)


def join_link(db: Database, user: User | None, group_id: int, key: str, *,
              actor: Actor) -> tuple[str, str] | None:
    """For an admitted member: (room id, a fresh join token under their pseudonym). None
    while still waiting. Refused (409 conduct_required) without the current code of conduct
    accepted, and for banned or removed people."""
    with db.atomic():
        ctx, occ = _context(db, user, group_id, key, Action.MEETING_ATTEND)
        meeting = _row(db, ctx.group_id, occ)
        if meeting is None:
            raise GroupError("not_in_lobby", "wait in the lobby first")
        if meeting["status"] == ENDED:
            raise GroupError("meeting_ended", "this meeting has ended")
        if ctx.facts.facilitator:
            if meeting["status"] != OPEN:
                raise GroupError("not_open", "open the meeting first")
            return meeting["room_id"], _host_token(db, ctx, meeting, actor)
        att = _attendance(db, meeting["id"], ctx.member["id"])
        if att is None:
            raise GroupError("not_in_lobby", "wait in the lobby first")
        if meeting["status"] != OPEN or att["status"] == "waiting" or meeting["locked"]:
            return None  # still waiting (a locked meeting lets no one new in; it says so)
        if att["status"] != "admitted":
            raise GroupError("not_admitted", "you were not admitted to this meeting")
        db.execute("UPDATE group_attendance SET left_at = NULL WHERE id = ?", [att["id"]])
        return meeting["room_id"], _token(db, ctx, meeting, "member", actor)


def state(db: Database, user: User | None, group_id: int, key: str, *,
          now: datetime | None = None) -> dict:
    """The meeting as this person sees it: a member their own lobby place, a facilitator
    everyone waiting and admitted (pseudonyms only)."""
    now = now or now_utc()
    ctx = access.load_for(db, user, group_id, Action.GROUP_VIEW)
    facilitator = access.decide_allowed(Action.MEETING_RUN, ctx)
    if not facilitator:
        access.require(Action.MEETING_ATTEND, ctx)
    occ = schedule.find(db, ctx.group, key)
    meeting = _row(db, ctx.group_id, occ)
    status = meeting["status"] if meeting else SCHEDULED
    if occ.cancelled and status == SCHEDULED:
        status = "cancelled"
    zone = user.time_zone
    out = {
        "group_id": ctx.group_id,
        "occurrence": occurrence_view(occ, zone, ctx.group["time_zone"]),
        "status": status,
        "auto_admit": bool(meeting["auto_admit"] if meeting else ctx.group["auto_admit"]),
        "lobby_opens_at": (occ.start_utc - LOBBY_OPENS).isoformat(),
        "lobby_opens_label": label(occ.start_utc - LOBBY_OPENS, zone),
        "lobby_open": meeting is not None and status in (SCHEDULED, OPEN) or (
            occ.start_utc - LOBBY_OPENS <= now < occ.end_utc and not occ.cancelled),
        "capacity": ctx.group["capacity"],
        "admitted_count": _admitted_count(db, meeting["id"]) if meeting else 0,
        "facilitator": facilitator,
        "locked": bool(meeting["locked"]) if meeting else False,
    }
    mine = _attendance(db, meeting["id"], ctx.member["id"]) if meeting and ctx.member else None
    out["me"] = {"status": mine["status"] if mine else "not_here",
                 "pseudonym": ctx.member["pseudonym"] if ctx.member else None}
    out["message"] = _message(out, occ)
    if facilitator:
        out["people"] = _people(db, meeting["id"]) if meeting else []
    return out


def _message(s: dict, occ: Occurrence) -> str:
    starts = s["occurrence"]["local_label"]
    if s["status"] == "cancelled":
        return "This meeting was cancelled." + (f" {occ.note}" if occ.note else "")
    if s["status"] == ENDED:
        return "This meeting has ended. Thank you for coming."
    me = s["me"]["status"]
    if s["facilitator"]:
        return ("The meeting is open." if s["status"] == OPEN else
                f"The meeting starts {starts}. Open it when you are ready.")
    if s["status"] == SCHEDULED:
        return (f"The meeting starts {starts}. A facilitator has not opened it yet; you can "
                "wait here and this page moves on by itself.")
    if s["locked"]:
        return ("The facilitator has locked this meeting for now, so no one new can come in. "
                "You can wait here; this page moves on by itself if it is unlocked.")
    if me == "admitted":
        return "You have been let in. Joining the meeting…"
    if me == "waiting":
        return "The meeting is open. A facilitator will let you in soon."
    return "The meeting is open."


def _people(db: Database, meeting_id: int) -> list[dict]:
    out = []
    for r in db.query(
            """SELECT a.*, m.pseudonym, m.role, m.color, m.status AS member_status,
                      (SELECT MIN(t.first_used_at) FROM group_meeting_tokens g
                       JOIN join_tokens t ON t.id = g.token_id
                       WHERE g.meeting_id = a.meeting_id AND g.member_id = a.member_id)
                      AS joined_at
               FROM group_attendance a JOIN group_members m ON m.id = a.member_id
               WHERE a.meeting_id = ? ORDER BY a.arrived_at, a.id""", [meeting_id]):
        out.append({"member_id": r["member_id"], "pseudonym": r["pseudonym"],
                    "role": r["role"], "color": r["color"], "status": r["status"],
                    "arrived_at": r["arrived_at"], "admitted_at": r["admitted_at"],
                    "joined_at": r["joined_at"], "left_at": r["left_at"],
                    "member_status": r["member_status"]})
    return out


# --- attendance ---------------------------------------------------------------------------

def attendance(db: Database, user: User | None, group_id: int) -> list[dict]:
    """Every meeting of the group that opened, with who came (facilitators, admins)."""
    ctx = access.load_for(db, user, group_id, Action.ATTENDANCE_VIEW)
    zone = user.time_zone
    out = []
    for m in db.query("SELECT * FROM group_meetings WHERE group_id = ? AND status != ? "
                      "ORDER BY starts_at DESC LIMIT 100", [ctx.group_id, SCHEDULED]):
        people = _people(db, m["id"])
        out.append({"key": _key(m), "starts_at": m["starts_at"], "status": m["status"],
                    "local_label": label(datetime.fromisoformat(m["starts_at"]), zone),
                    "opened_at": m["opened_at"], "ended_at": m["ended_at"],
                    "people": people,
                    "attended": sum(1 for p in people if p["joined_at"])})
    return out


def my_attendance(db: Database, user: User, group_id: int) -> list[dict]:
    """The person's own attendance in this group (no one else's)."""
    ctx = access.load_for(db, user, group_id, Action.SELF_EDIT)
    zone = user.time_zone
    out = []
    for r in db.query(
            """SELECT m.original_local, m.starts_at, m.status AS meeting_status, a.status,
                      a.arrived_at, a.admitted_at,
                      (SELECT MIN(t.first_used_at) FROM group_meeting_tokens g
                       JOIN join_tokens t ON t.id = g.token_id
                       WHERE g.meeting_id = a.meeting_id AND g.member_id = a.member_id)
                      AS joined_at
               FROM group_attendance a JOIN group_meetings m ON m.id = a.meeting_id
               WHERE a.member_id = ? ORDER BY m.starts_at DESC LIMIT 100""",
            [ctx.member["id"]]):
        out.append({"key": _key(r), "starts_at": r["starts_at"],
                    "local_label": label(datetime.fromisoformat(r["starts_at"]), zone),
                    "meeting_status": r["meeting_status"], "status": r["status"],
                    "arrived_at": r["arrived_at"], "admitted_at": r["admitted_at"],
                    "joined_at": r["joined_at"]})
    return out


def _key(row: dict) -> str:
    return row["original_local"].replace("-", "").replace(":", "")


# --- lookups for the voice side ---------------------------------------------------------------

def seat_for_token(db: Database, token_id: str) -> Seat | None:
    """Who holds a join token (its sha256 id, as in ``rooms.JoinGrant.token_id``)."""
    rows = list(db.query(
        """SELECT g.meeting_id, g.member_id, m.group_id, m.user_id, m.role, m.pseudonym,
                  gm.room_id, m.status
           FROM group_meeting_tokens g JOIN group_members m ON m.id = g.member_id
           JOIN group_meetings gm ON gm.id = g.meeting_id WHERE g.token_id = ?""",
        [token_id]))
    if not rows:
        return None
    r = rows[0]
    return Seat(r["group_id"], r["meeting_id"], r["member_id"], r["user_id"], r["role"],
                r["pseudonym"], r["room_id"], r["status"])


def meeting_for_room(db: Database, room_id: str) -> dict | None:
    rows = list(db.query("SELECT * FROM group_meetings WHERE room_id = ?", [room_id]))
    return dict(rows[0]) if rows else None


def room_environment(db: Database, room_id: str) -> str | None:
    """The group's place, for a group meeting's room (the session page's default)."""
    rows = list(db.query("SELECT g.environment_id FROM group_meetings m JOIN groups g ON "
                         "g.id = m.group_id WHERE m.room_id = ?", [room_id]))
    return rows[0]["environment_id"] if rows else None


# --- moderation's records (the live state is groups.moderation, driven by web.voice) --------

OUT_WAYS = ("remove", "lobby", "ban_meeting", "ban_group")


def _revoke_meeting_tokens(db: Database, meeting_id: int, member_id: int, actor: Actor) -> None:
    for r in db.query("SELECT t.id FROM group_meeting_tokens g JOIN join_tokens t ON "
                      "t.id = g.token_id WHERE g.meeting_id = ? AND g.member_id = ? AND "
                      "t.revoked_at IS NULL", [meeting_id, member_id]):
        rooms.revoke(db, r["id"], actor=actor)


def take_out(db: Database, target: Seat, by: Seat, how: str, *, actor: Actor) -> None:
    """A facilitator (``by``) took ``target`` out of a live meeting: every link of that
    membership for this meeting stops working; ``lobby`` puts them back in the lobby to be
    let in again, ``remove`` and the bans turn them away from this meeting, and
    ``ban_group`` bans the membership from the group (groups.membership.remove)."""
    if how not in OUT_WAYS:
        raise GroupError("invalid_action", "unknown way out")
    if by.group_id != target.group_id or not by.facilitator or target.facilitator:
        raise GroupError("forbidden", "only a facilitator of this group can do that")
    with db.atomic():
        _revoke_meeting_tokens(db, target.meeting_id, target.member_id, actor)
        now = audit.now_iso()
        if how == "lobby":
            db.execute("UPDATE group_attendance SET status = 'waiting', admitted_at = NULL, "
                       "admitted_by = NULL, arrived_at = ? WHERE meeting_id = ? AND "
                       "member_id = ?", [now, target.meeting_id, target.member_id])
        else:
            db.execute("UPDATE group_attendance SET status = 'turned_away', left_at = ? "
                       "WHERE meeting_id = ? AND member_id = ?",
                       [now, target.meeting_id, target.member_id])
        if how == "ban_group":
            membership.remove(db, get_user(db, by.user_id), target.group_id,
                              target.member_id, ban=True, actor=actor)
        audit.record(db, actor, "group.meeting_" + how, "group_meetings", target.meeting_id,
                     member_id=target.member_id, by_member_id=by.member_id)


def set_locked(db: Database, by: Seat, locked: bool, *, actor: Actor) -> None:
    if not by.facilitator:
        raise GroupError("forbidden", "only a facilitator can lock the meeting")
    with db.atomic():
        db.execute("UPDATE group_meetings SET locked = ? WHERE id = ?",
                   [int(locked), by.meeting_id])
        audit.record(db, actor, "group.meeting_" + ("locked" if locked else "unlocked"),
                     "group_meetings", by.meeting_id)


def end_unattended(db: Database, room_id: str, *, actor: Actor) -> None:
    """No facilitator came back in time: the meeting ends as if a facilitator ended it."""
    meeting = meeting_for_room(db, room_id)
    with db.atomic():
        if meeting is None or meeting["status"] != OPEN:
            rooms.close_room(db, room_id, actor=actor)
            return
        _close(db, meeting, actor)
        audit.record(db, actor, "group.meeting_end_unattended", "group_meetings",
                     meeting["id"])
