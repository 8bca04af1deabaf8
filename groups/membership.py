"""Membership under pseudonyms: join or ask to join, requests, one's own pseudonym and
colour, leaving, erasure, and the facilitators' side (roster, reveal, remove, ban).

A member is known inside a group only by the pseudonym they chose for it (unique in the
group). The roster shows facilitators pseudonyms and statuses, never accounts; the account
behind a pseudonym is shown only by :func:`reveal`, and every reveal is in the audit log.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata

from sqlite_utils import Database

from groups import access, conduct
from groups.errors import GroupError
from groups.permissions import Action
from therapy import audit, rooms
from therapy.accounts import User, ValidationError, get_user
from therapy.audit import Actor

PSEUDONYM_MAX = 32
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
COLORS = {"#a8d5c9": "Sea green", "#f2b8a2": "Soft coral", "#c7b8ea": "Lavender",
          "#f5d98e": "Sand yellow", "#9fc4e8": "Sky blue", "#e8a9c4": "Rose",
          "#b9dc9a": "Moss"}


def validate_pseudonym(value: object, user: User | None = None, *,
                       facilitator: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError("pseudonym", "pseudonym must be text")
    name = " ".join(value.split())
    if not 2 <= len(name) <= PSEUDONYM_MAX:
        raise ValidationError("pseudonym", f"a pseudonym is 2 to {PSEUDONYM_MAX} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name):
        raise ValidationError("pseudonym", "the pseudonym contains characters not allowed")
    if user is not None and name.casefold() in (user.username.casefold(),
                                                user.display_name.casefold()):
        raise ValidationError("pseudonym", "choose a name other than your account's name: "
                              "your pseudonym keeps your account private in the group")
    if not facilitator and name.casefold().startswith(("facilitator", "moderator", "admin")):
        raise ValidationError("pseudonym", "that name is kept for the group's facilitators")
    return name


def validate_color(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not COLOR_RE.fullmatch(value):
        raise ValidationError("color", "colour must look like #a8d5c9")
    return value.lower()


def _taken(db: Database, group_id: int, name: str, except_member: int | None = None) -> bool:
    return bool(db.execute(
        "SELECT 1 FROM group_members WHERE group_id = ? AND pseudonym_key = ? AND status IN "
        "('requested', 'active', 'banned') AND id != ?",
        [group_id, name.casefold(), except_member or 0]).fetchone())


def _write(db: Database, fn):
    try:
        return fn()
    except sqlite3.IntegrityError:
        raise GroupError("pseudonym_taken", "someone in this group already uses that "
                         "pseudonym; choose another", "pseudonym") from None


def member_view(m: dict) -> dict:
    """One membership as a facilitator sees it (pseudonym, never the account)."""
    return {"member_id": m["id"], "pseudonym": m["pseudonym"], "role": m["role"],
            "status": m["status"], "color": m["color"], "requested_at": m["requested_at"],
            "joined_at": m["joined_at"]}


def join(db: Database, user: User, group_id: int, *, pseudonym: str, color: str | None,
         conduct_version: int, conduct_sha256: str, invite: str | None = None,
         actor: Actor) -> dict:
    """Join at once (open groups) or ask to join (approval), accepting the code of conduct."""
    name = validate_pseudonym(pseudonym, user)
    color = validate_color(color)
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.JOIN, invite=invite)
        gid = ctx.group_id
        if _taken(db, gid, name, ctx.member["id"] if ctx.member else None):
            raise GroupError("pseudonym_taken", "someone in this group already uses that "
                             "pseudonym; choose another", "pseudonym")
        conduct.accept(db, gid, user.id, conduct_version, conduct_sha256, actor=actor)
        status = "active" if ctx.group["join_policy"] == "open" else "requested"
        now = audit.now_iso()
        values = {"role": "member", "status": status, "pseudonym": name,
                  "pseudonym_key": name.casefold(), "color": color, "updated_at": now,
                  "requested_at": now if status == "requested" else None,
                  "joined_at": now if status == "active" else None, "left_at": None}
        if ctx.member is None:
            member_id = _write(db, lambda: db.table("group_members").insert({
                "group_id": gid, "user_id": user.id, "feed_shows_name": 0,
                "banned_at": None, **values}).last_pk)
        else:
            member_id = ctx.member["id"]
            _write(db, lambda: db.table("group_members").update(member_id, values))
        audit.record(db, actor, "group.join" if status == "active" else "group.request",
                     "groups", gid, member_id=member_id)
        return member_view(access.member_by_id(db, gid, member_id))


def accept_conduct(db: Database, user: User, group_id: int, version: int, sha256: str, *,
                   actor: Actor) -> dict:
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.SELF_EDIT)
        return conduct.accept(db, ctx.group_id, user.id, version, sha256, actor=actor)


def in_open_meeting(db: Database, member_id: int) -> bool:
    return bool(db.execute(
        "SELECT 1 FROM group_attendance a JOIN group_meetings m ON m.id = a.meeting_id WHERE "
        "a.member_id = ? AND a.status = 'admitted' AND a.left_at IS NULL AND m.status = 'open'",
        [member_id]).fetchone())


def update_self(db: Database, user: User, group_id: int, *, pseudonym: str | None = None,
                color: str | None = None, feed_shows_name: bool | None = None,
                actor: Actor) -> dict:
    """Change one's own pseudonym (between meetings), colour or calendar option."""
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.SELF_EDIT)
        m = ctx.member
        values: dict = {}
        if pseudonym is not None:
            name = validate_pseudonym(pseudonym, user, facilitator=m["role"] != "member")
            if name != m["pseudonym"]:
                if in_open_meeting(db, m["id"]):
                    raise GroupError("in_meeting", "you can change your pseudonym between "
                                     "meetings, not during one", "pseudonym")
                if _taken(db, ctx.group_id, name, m["id"]):
                    raise GroupError("pseudonym_taken", "someone in this group already uses "
                                     "that pseudonym; choose another", "pseudonym")
                values.update(pseudonym=name, pseudonym_key=name.casefold())
        if color is not None:
            values["color"] = validate_color(color)
        if feed_shows_name is not None:
            values["feed_shows_name"] = int(bool(feed_shows_name))
        if values:
            values["updated_at"] = audit.now_iso()
            _write(db, lambda: db.table("group_members").update(m["id"], values))
            audit.record(db, actor, "group.member_update", "groups", ctx.group_id,
                         member_id=m["id"], fields=sorted(values))
        return member_view(access.member_by_id(db, ctx.group_id, m["id"]))


def _revoke_tokens(db: Database, member_id: int, actor: Actor) -> int:
    rows = list(db.query(
        "SELECT t.id FROM group_meeting_tokens g JOIN join_tokens t ON t.id = g.token_id "
        "WHERE g.member_id = ? AND t.revoked_at IS NULL", [member_id]))
    for r in rows:
        rooms.revoke(db, r["id"], actor=actor)
    db.execute("UPDATE group_attendance SET left_at = COALESCE(left_at, ?) WHERE member_id = ? "
               "AND status = 'admitted'", [audit.now_iso(), member_id])
    return len(rows)


def leave(db: Database, user: User, group_id: int, *, actor: Actor) -> None:
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.LEAVE)
        now = audit.now_iso()
        db.execute("UPDATE group_members SET status = 'left', left_at = ?, updated_at = ? "
                   "WHERE id = ?", [now, now, ctx.member["id"]])
        _revoke_tokens(db, ctx.member["id"], actor)
        audit.record(db, actor, "group.leave", "groups", ctx.group_id,
                     member_id=ctx.member["id"])


def erase_self(db: Database, user: User, group_id: int, *, actor: Actor) -> dict:
    """Erase the person's membership data in this group: pseudonym, colour, attendance,
    conduct acceptances. A ban stays (as a bare record without any name), so erasure is no
    way around it. The audit log keeps only that an erasure happened."""
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.ERASE_SELF)
        m = ctx.member
        _revoke_tokens(db, m["id"], actor)
        db.execute("DELETE FROM group_attendance WHERE member_id = ?", [m["id"]])
        db.execute("DELETE FROM group_meeting_tokens WHERE member_id = ?", [m["id"]])
        db.execute("DELETE FROM group_conduct_acceptances WHERE group_id = ? AND user_id = ?",
                   [ctx.group_id, user.id])
        kept_ban = m["status"] == "banned"
        if kept_ban:
            db.execute("UPDATE group_members SET pseudonym = NULL, pseudonym_key = NULL, "
                       "color = NULL, requested_at = NULL, joined_at = NULL, left_at = NULL, "
                       "feed_shows_name = 0, updated_at = ? WHERE id = ?",
                       [audit.now_iso(), m["id"]])
        else:
            # Meetings opened by this person keep their record, without the link to them.
            db.execute("UPDATE group_meetings SET opened_by = NULL WHERE opened_by = ?",
                       [m["id"]])
            db.execute("UPDATE group_attendance SET admitted_by = NULL WHERE admitted_by = ?",
                       [m["id"]])
            db.execute("DELETE FROM group_members WHERE id = ?", [m["id"]])
        audit.record(db, actor, "group.member_erased", "groups", ctx.group_id,
                     kept_ban=kept_ban)
        return {"erased": True, "ban_kept": kept_ban}


# --- the facilitators' side ---------------------------------------------------------------

def roster(db: Database, user: User | None, group_id: int) -> dict:
    ctx = access.load_for(db, user, group_id, Action.ROSTER_VIEW)
    rows = [dict(r) for r in db.query(
        "SELECT * FROM group_members WHERE group_id = ? AND status != 'left' ORDER BY "
        "CASE role WHEN 'lead' THEN 0 WHEN 'co' THEN 1 ELSE 2 END, pseudonym_key, id",
        [ctx.group_id])]
    cur = conduct.current(db, ctx.group_id)
    out = []
    for r in rows:
        v = member_view(r)
        v["conduct_current"] = bool(db.execute(
            "SELECT 1 FROM group_conduct_acceptances WHERE group_id = ? AND user_id = ? AND "
            "version = ? AND sha256 = ?", [ctx.group_id, r["user_id"], cur.version,
                                           cur.sha256]).fetchone())
        out.append(v)
    return {"members": [m for m in out if m["status"] == "active"],
            "requests": [m for m in out if m["status"] == "requested"],
            "removed": [m for m in out if m["status"] in ("removed", "banned")]}


def reveal(db: Database, user: User | None, group_id: int, member_id: int, *,
           actor: Actor) -> dict:
    """The account behind a pseudonym, for a facilitator (or admin). Audited."""
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.MEMBER_REVEAL)
        m = access.member_by_id(db, ctx.group_id, member_id)
        person = get_user(db, m["user_id"])
        audit.record(db, actor, "group.member_reveal", "groups", ctx.group_id,
                     member_id=m["id"], revealed_user_id=person.id)
        return {"member_id": m["id"], "pseudonym": m["pseudonym"],
                "account": {"id": person.id, "username": person.username,
                            "display_name": person.display_name}}


def decide_request(db: Database, user: User | None, group_id: int, member_id: int,
                   approve: bool, *, actor: Actor) -> dict:
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.REQUEST_DECIDE)
        m = access.member_by_id(db, ctx.group_id, member_id)
        if m["status"] != "requested":
            raise GroupError("not_requested", "there is no open request from this person")
        now = audit.now_iso()
        if approve:
            db.execute("UPDATE group_members SET status = 'active', joined_at = ?, "
                       "updated_at = ? WHERE id = ?", [now, now, m["id"]])
        else:
            db.execute("UPDATE group_members SET status = 'left', left_at = ?, updated_at = ? "
                       "WHERE id = ?", [now, now, m["id"]])
        audit.record(db, actor, "group.request_" + ("approved" if approve else "declined"),
                     "groups", ctx.group_id, member_id=m["id"])
        return member_view(access.member_by_id(db, ctx.group_id, m["id"]))


def remove(db: Database, user: User | None, group_id: int, member_id: int, *, ban: bool,
           actor: Actor) -> dict:
    """Remove a member (they may ask or join again) or ban them (they may not). Their meeting
    links stop working at once; returns the voice rooms they had tokens for."""
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.MEMBER_REMOVE,
                              target_member_id=member_id)
        m = access.member_by_id(db, ctx.group_id, member_id)
        if m["status"] in ("left",) and not ban:
            raise GroupError("not_member", "this person is not in the group")
        if ctx.member is not None and m["id"] == ctx.member["id"]:
            raise GroupError("forbidden", "you cannot remove yourself")
        rooms_held = [r[0] for r in db.execute(
            "SELECT DISTINCT gm.room_id FROM group_meeting_tokens t JOIN group_meetings gm ON "
            "gm.id = t.meeting_id WHERE t.member_id = ? AND gm.status = 'open'",
            [m["id"]]).fetchall()]
        now = audit.now_iso()
        status = "banned" if ban else "removed"
        values = {"status": status, "updated_at": now, "left_at": now}
        if ban:
            values["banned_at"] = now
        db.table("group_members").update(m["id"], values)
        _revoke_tokens(db, m["id"], actor)
        audit.record(db, actor, "group.member_" + status, "groups", ctx.group_id,
                     member_id=m["id"])
        return {"member": member_view(access.member_by_id(db, ctx.group_id, m["id"])),
                "rooms": rooms_held}


def unban(db: Database, user: User | None, group_id: int, member_id: int, *,
          actor: Actor) -> dict:
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.MEMBER_REMOVE,
                              target_member_id=member_id)
        m = access.member_by_id(db, ctx.group_id, member_id)
        if m["status"] != "banned":
            raise GroupError("not_banned", "this person is not banned")
        db.execute("UPDATE group_members SET status = 'removed', banned_at = NULL, "
                   "updated_at = ? WHERE id = ?", [audit.now_iso(), m["id"]])
        audit.record(db, actor, "group.member_unbanned", "groups", ctx.group_id,
                     member_id=m["id"])
        return member_view(access.member_by_id(db, ctx.group_id, m["id"]))
