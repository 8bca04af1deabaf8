"""Groups themselves: create (admin), edit (facilitators), facilitators, invite links, views
of a group as each viewer may see it, and the finder.

What a view holds depends on the viewer, never on the page: pseudonyms only (a member's
account name or username is in no view except the audited reveal, ``membership.reveal``).
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from environments import catalog
from groups import access, conduct, schedule
from groups.access import GroupContext, hash_token
from groups.errors import GroupError
from groups.permissions import Action, Denied
from groups.permissions import allowed as _allowed
from groups.recurrence import Occurrence, now_utc
from therapy import audit
from therapy.accounts import AccountError, Role, User, ValidationError, get_user
from therapy.accounts import validate_time_zone as _validate_zone
from therapy.audit import Actor

NAME_MAX, DESCRIPTION_MAX = 80, 2000
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9 '-]{0,23}$")
MAX_TAGS = 8
CAPACITY_MIN, CAPACITY_MAX, CAPACITY_DEFAULT = 2, 16, 12
VISIBILITIES = ("listed", "invite_only")
JOIN_POLICIES = ("open", "approval")
INVITE_TTL = timedelta(days=30)
FACILITATOR_NAME = "Facilitator"
PREFERRED_ENVIRONMENT = "forest"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIMES_OF_DAY = {"morning": (5, 12), "afternoon": (12, 17), "evening": (17, 22),
                "night": (22, 29)}  # hours, local; night runs past midnight to 05:00
FINDER_DAYS = 35
LOBBY_OPENS = timedelta(minutes=30)  # members may wait in a meeting's lobby from then  # the finder looks this far ahead for day / time matches


# --- validation ---------------------------------------------------------------------------

def _text(value: object, field: str, limit: int, *, multiline: bool = False,
          minimum: int = 1) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"{field} must be text")
    text = value.replace("\r\n", "\n").strip() if multiline else " ".join(value.split())
    if not minimum <= len(text) <= limit:
        raise ValidationError(field, f"{field} must be {minimum} to {limit} characters")
    bad = ("Cc", "Cs", "Co", "Cn", "Cf")
    if any(unicodedata.category(c) in bad and not (multiline and c == "\n") for c in text):
        raise ValidationError(field, f"{field} contains characters not allowed")
    return text


def validate_name(value: object) -> str:
    return _text(value, "name", NAME_MAX)


def validate_description(value: object) -> str:
    return _text(value, "description", DESCRIPTION_MAX, multiline=True, minimum=0)


def validate_tags(value: object) -> list[str]:
    if isinstance(value, str):
        value = [t for t in value.split(",")]
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise ValidationError("tags", f"tags must be a list of at most {MAX_TAGS} topics")
    out: list[str] = []
    for tag in value:
        if not isinstance(tag, str):
            raise ValidationError("tags", "each tag must be text")
        t = " ".join(tag.lower().split())
        if not t:
            continue
        if not TAG_RE.fullmatch(t):
            raise ValidationError("tags", "a tag is 1 to 24 letters, digits, spaces or '-'")
        if t not in out:
            out.append(t)
    return out


def validate_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationError(field, f"{field} must be one of: {', '.join(choices)}")
    return value  # type: ignore[return-value]


def validate_capacity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            CAPACITY_MIN <= value <= CAPACITY_MAX):
        raise ValidationError("capacity", f"capacity must be {CAPACITY_MIN} to {CAPACITY_MAX} "
                              "people")
    return value


def validate_environment(value: object) -> str:
    if not isinstance(value, str) or catalog.get_environment(value) is None:
        ids = ", ".join(e.id for e in catalog.all_environments())
        raise ValidationError("environment_id", f"the place must be one of: {ids}")
    return value


def validate_zone(value: object) -> str:
    return _validate_zone(value)


def default_environment() -> str:
    env = catalog.get_environment(PREFERRED_ENVIRONMENT) or catalog.all_environments()[0]
    return env.id


@dataclass(frozen=True)
class GroupSettings:
    """Validated group fields; ``None`` means "leave as it is" for edits."""

    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    visibility: str | None = None
    join_policy: str | None = None
    capacity: int | None = None
    environment_id: str | None = None
    time_zone: str | None = None
    auto_admit: bool | None = None

    ADMIN_ONLY = ("name", "visibility")

    def changes(self) -> dict:
        out = {}
        for name in ("name", "description", "visibility", "join_policy", "capacity",
                     "environment_id", "time_zone"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.tags is not None:
            out["tags"] = json.dumps(self.tags)
        if self.auto_admit is not None:
            out["auto_admit"] = int(self.auto_admit)
        return out


# --- create, edit, archive ----------------------------------------------------------------

def _unique_facilitator_name(db: Database, group_id: int) -> str:
    taken = {r[0] for r in db.execute(
        "SELECT pseudonym_key FROM group_members WHERE group_id = ? AND status IN "
        "('requested', 'active', 'banned')", [group_id]).fetchall()}
    n, name = 1, FACILITATOR_NAME
    while name.casefold() in taken:
        n += 1
        name = f"{FACILITATOR_NAME} {n}"
    return name


def create_group(db: Database, admin: User | None, settings: GroupSettings, *,
                 lead_user_id: int, co_user_ids: list[int] | None = None,
                 conduct_text: str | None = None, actor: Actor) -> int:
    """A new group with its lead facilitator (and co-facilitators), starting from the
    shared default code of conduct unless ``conduct_text`` is given."""
    access.require(Action.GROUP_CREATE, access.load(db, admin, 0))
    if not settings.name:
        raise ValidationError("name", "name is required")
    text = conduct.validate_text(conduct_text) if conduct_text is not None else (
        conduct.default_text())
    with db.atomic():
        group_id = db.table("groups").insert({
            "name": settings.name, "description": settings.description or "",
            "tags": json.dumps(settings.tags or []),
            "visibility": settings.visibility or "listed",
            "join_policy": settings.join_policy or "open",
            "capacity": settings.capacity or CAPACITY_DEFAULT,
            "environment_id": settings.environment_id or default_environment(),
            "time_zone": settings.time_zone or "UTC",
            "auto_admit": int(bool(settings.auto_admit)),
            "created_at": audit.now_iso(), "created_by": admin.id if admin else None,
            "archived_at": None}).last_pk
        conduct.add_version(db, group_id, text, by_user=admin.id if admin else None,
                            actor=actor)
        _set_facilitators(db, group_id, lead_user_id, co_user_ids or [], actor=actor)
        audit.record(db, actor, "group.create", "groups", group_id)
    return group_id


def update_group(db: Database, user: User | None, group_id: int, settings: GroupSettings, *,
                 actor: Actor) -> dict:
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.GROUP_EDIT)
        values = settings.changes()
        if any(getattr(settings, f) is not None for f in GroupSettings.ADMIN_ONLY):
            access.require(Action.GROUP_ADMINISTER, ctx)
        if values:
            db.table("groups").update(ctx.group_id, values)
            audit.record(db, actor, "group.update", "groups", ctx.group_id,
                         fields=sorted(values))
    return view(db, user, group_id)


def archive_group(db: Database, admin: User | None, group_id: int, *, actor: Actor) -> None:
    """Close a group (admin): it leaves the finder, no meetings, members keep their data
    until they erase it."""
    with db.atomic():
        ctx = access.load_for(db, admin, group_id, Action.GROUP_ADMINISTER)
        if ctx.group["archived_at"]:
            return
        db.table("groups").update(ctx.group_id, {"archived_at": audit.now_iso()})
        db.execute("UPDATE group_invites SET revoked_at = ? WHERE group_id = ? AND "
                   "revoked_at IS NULL", [audit.now_iso(), ctx.group_id])
        audit.record(db, actor, "group.archive", "groups", ctx.group_id)


def edit_conduct(db: Database, user: User | None, group_id: int, text: str, *,
                 actor: Actor) -> conduct.ConductVersion:
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.GROUP_EDIT)
        return conduct.add_version(db, ctx.group_id, text, by_user=user.id if user else None,
                                   actor=actor)


# --- facilitators -------------------------------------------------------------------------

def _moderator(db: Database, user_id: object, field: str) -> User:
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise ValidationError(field, f"{field} must be a user id")
    try:
        person = get_user(db, user_id) if 0 < user_id < access.MAX_ID else None
    except AccountError:
        person = None
    if person is None:
        raise ValidationError(field, "no such account")
    if person.role != Role.MODERATOR:
        raise ValidationError(field, "facilitators need the moderator role (an admin can give "
                              "it on the People page)")
    return person


def _set_facilitators(db: Database, group_id: int, lead_user_id: int, co_user_ids: list[int],
                      *, actor: Actor) -> None:
    if not isinstance(co_user_ids, list) or len(co_user_ids) > 4:
        raise ValidationError("co_user_ids", "at most 4 co-facilitators")
    lead = _moderator(db, lead_user_id, "lead_user_id")
    cos = [_moderator(db, u, "co_user_ids") for u in co_user_ids]
    wanted = {lead.id: "lead", **{c.id: "co" for c in cos if c.id != lead.id}}
    now = audit.now_iso()
    for row in db.query("SELECT * FROM group_members WHERE group_id = ? AND role IN "
                        "('lead', 'co')", [group_id]):
        if row["user_id"] not in wanted:
            db.execute("UPDATE group_members SET role = 'member', status = 'left', left_at = ?, "
                       "updated_at = ? WHERE id = ?", [now, now, row["id"]])
            audit.record(db, actor, "group.facilitator_unassigned", "groups", group_id,
                         member_id=row["id"])
    for user_id, role in wanted.items():
        existing = access.member_row(db, group_id, user_id)
        if existing is None:
            name = _unique_facilitator_name(db, group_id)
            member_id = db.table("group_members").insert({
                "group_id": group_id, "user_id": user_id, "role": role, "status": "active",
                "pseudonym": name, "pseudonym_key": name.casefold(), "color": None,
                "feed_shows_name": 0, "requested_at": None, "joined_at": now,
                "left_at": None, "banned_at": None, "updated_at": now}).last_pk
        elif existing["role"] != role or existing["status"] != "active":
            values = {"role": role, "status": "active", "updated_at": now, "left_at": None,
                      "banned_at": None, "joined_at": existing["joined_at"] or now}
            if not existing["pseudonym"]:
                values["pseudonym"] = _unique_facilitator_name(db, group_id)
                values["pseudonym_key"] = values["pseudonym"].casefold()
            db.table("group_members").update(existing["id"], values)
            member_id = existing["id"]
        else:
            continue
        audit.record(db, actor, "group.facilitator_assigned", "groups", group_id,
                     member_id=member_id, role=role)


def set_facilitators(db: Database, admin: User | None, group_id: int, lead_user_id: int,
                     co_user_ids: list[int], *, actor: Actor) -> list[dict]:
    with db.atomic():
        ctx = access.load_for(db, admin, group_id, Action.GROUP_ADMINISTER)
        _set_facilitators(db, ctx.group_id, lead_user_id, co_user_ids, actor=actor)
    return facilitators(db, group_id)


def facilitators(db: Database, group_id: int) -> list[dict]:
    """The group's facilitators as members see them: their names in the group."""
    return [{"member_id": r["id"], "pseudonym": r["pseudonym"], "role": r["role"]}
            for r in db.query("SELECT id, pseudonym, role FROM group_members WHERE group_id = ? "
                              "AND status = 'active' AND role IN ('lead', 'co') ORDER BY "
                              "role DESC, id", [group_id])]


def moderators(db: Database) -> list[User]:
    """Accounts that may be assigned as facilitators (for the admin's form)."""
    return [User.from_row(r) for r in db.query(
        "SELECT * FROM users WHERE role = 'moderator' AND disabled = 0 ORDER BY display_name")]


# --- invite links -------------------------------------------------------------------------

def create_invite(db: Database, user: User | None, group_id: int, *,
                  actor: Actor) -> tuple[str, dict]:
    """A new invite link token (shown once; anyone holding it may join or ask to join)."""
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.INVITE_MANAGE)
        token = secrets.token_urlsafe(24)
        now = datetime.now(UTC)
        row = {"id": hash_token(token), "group_id": ctx.group_id,
               "created_by": user.id if user else None,
               "created_at": now.isoformat(timespec="seconds"),
               "expires_at": (now + INVITE_TTL).isoformat(timespec="seconds"),
               "revoked_at": None}
        db.table("group_invites").insert(row)
        audit.record(db, actor, "group.invite_create", "groups", ctx.group_id,
                     invite=row["id"][:16])
    return token, _invite_view(row)


def _invite_view(row: dict) -> dict:
    return {"id": row["id"][:16], "created_at": row["created_at"],
            "expires_at": row["expires_at"], "revoked": bool(row["revoked_at"])}


def invites(db: Database, user: User | None, group_id: int) -> list[dict]:
    access.load_for(db, user, group_id, Action.INVITE_MANAGE)
    return [_invite_view(r) for r in db.query(
        "SELECT * FROM group_invites WHERE group_id = ? ORDER BY created_at DESC", [group_id])]


def revoke_invite(db: Database, user: User | None, group_id: int, invite_id: str, *,
                  actor: Actor) -> None:
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.INVITE_MANAGE)
        if not isinstance(invite_id, str) or not re.fullmatch(r"[0-9a-f]{16}", invite_id):
            raise GroupError("not_found", "no such invite link")
        rows = list(db.query("SELECT id FROM group_invites WHERE group_id = ? AND "
                             "substr(id, 1, 16) = ?", [ctx.group_id, invite_id]))
        if not rows:
            raise GroupError("not_found", "no such invite link")
        db.execute("UPDATE group_invites SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                   [audit.now_iso(), rows[0]["id"]])
        audit.record(db, actor, "group.invite_revoke", "groups", ctx.group_id, invite=invite_id)


def group_for_invite(db: Database, token: str) -> int | None:
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        return None
    rows = list(db.query("SELECT group_id FROM group_invites WHERE id = ?", [hash_token(token)]))
    if not rows or not access.invite_valid(db, rows[0]["group_id"], token):
        return None
    return rows[0]["group_id"]


# --- views --------------------------------------------------------------------------------

def label(instant: datetime, zone: str) -> str:
    """"Tuesday 10 March 2026, 18:00 EDT" in ``zone`` (no locale dependence)."""
    local = instant.astimezone(ZoneInfo(zone))
    return (f"{local.strftime('%A')} {local.day} {local.strftime('%B %Y')}, "
            f"{local.strftime('%H:%M')} {local.tzname()}")


def occurrence_view(occ: Occurrence, viewer_zone: str, group_zone: str, *,
                    now: datetime | None = None) -> dict:
    local = occ.start_utc.astimezone(ZoneInfo(viewer_zone))
    now = now or now_utc()
    return {
        "key": occ.key,
        "status": occ.status,
        "note": occ.note,
        "starts_at": occ.start_utc.isoformat(),
        "ends_at": occ.end_utc.isoformat(),
        "time_zone": viewer_zone,
        "local_start": local.isoformat(),
        "local_label": label(occ.start_utc, viewer_zone),
        "group_local_label": label(occ.start_utc, group_zone),
        "original_label": label(
            occ.original.replace(tzinfo=ZoneInfo(group_zone)).astimezone(UTC), viewer_zone)
        if occ.status == "moved" else None,
        "weekday": DAYS[local.weekday()],
        "hour": local.hour,
        "lobby_open": not occ.cancelled and occ.start_utc - LOBBY_OPENS <= now < occ.end_utc,
    }


def _my_membership(db: Database, ctx: GroupContext) -> dict | None:
    m = ctx.member
    if m is None or m["status"] == "none":
        return None
    acc = conduct.acceptance(db, ctx.group_id, m["user_id"]) if m["status"] != "left" else None
    return {"member_id": m["id"], "status": m["status"], "role": m["role"],
            "pseudonym": m["pseudonym"], "color": m["color"],
            "feed_shows_name": bool(m["feed_shows_name"]),
            "conduct_accepted": acc, "conduct_current": ctx.facts.conduct_current}


def view(db: Database, user: User | None, group_id: int, *, invite: str | None = None,
         viewer_zone: str | None = None, now: datetime | None = None,
         meetings: int = 6) -> dict:
    """The group as this viewer may see it (raises when they may not see it at all)."""
    ctx = access.load_for(db, user, group_id, Action.GROUP_VIEW, invite=invite)
    g = ctx.group
    zone = viewer_zone or (user.time_zone if user else g["time_zone"])
    sched = schedule.get(db, g)
    occs = schedule.upcoming(db, g, after=(now or now_utc()) - timedelta(
        minutes=sched.duration_minutes if sched else 0), include_cancelled=True,
        limit=meetings) if sched and not g["archived_at"] else []
    env = catalog.get_environment(g["environment_id"])
    cur = conduct.current(db, g["id"])
    subj, facts = ctx.subject, ctx.facts
    out = {
        "id": g["id"], "name": g["name"], "description": g["description"], "tags": g["tags"],
        "visibility": g["visibility"], "join_policy": g["join_policy"],
        "capacity": g["capacity"], "environment_id": g["environment_id"],
        "environment_name": getattr(env, "name", g["environment_id"]),
        "time_zone": g["time_zone"], "auto_admit": bool(g["auto_admit"]),
        "archived": bool(g["archived_at"]),
        "schedule": schedule.describe(sched),
        "next_meetings": [occurrence_view(o, zone, g["time_zone"], now=now) for o in occs],
        "viewer_time_zone": zone,
        "facilitators": facilitators(db, g["id"]),
        "member_count": db.execute("SELECT COUNT(*) FROM group_members WHERE group_id = ? AND "
                                   "status = 'active' AND role = 'member'",
                                   [g["id"]]).fetchone()[0],
        "conduct": cur.summary(),
        "membership": _my_membership(db, ctx),
        "can": {a: _allowed(act, subj, facts) for a, act in (
            ("join", Action.JOIN), ("edit", Action.GROUP_EDIT),
            ("administer", Action.GROUP_ADMINISTER), ("schedule", Action.SCHEDULE_EDIT),
            ("roster", Action.ROSTER_VIEW), ("run_meetings", Action.MEETING_RUN),
            ("attend", Action.MEETING_ATTEND), ("leave", Action.LEAVE))},
    }
    return out


def conduct_view(db: Database, user: User | None, group_id: int, *, invite: str | None = None,
                 version: int | None = None) -> dict:
    ctx = access.load_for(db, user, group_id, Action.GROUP_VIEW, invite=invite)
    doc = conduct.current(db, ctx.group_id) if version is None else conduct.version(
        db, ctx.group_id, version)
    if doc is None:
        raise GroupError("not_found", "no such version of the code of conduct")
    return {**doc.summary(), "text": doc.text, "html": conduct.render(doc.text),
            "history": conduct.history(db, ctx.group_id)}


# --- lists and the finder -----------------------------------------------------------------

def my_groups(db: Database, user: User, *, now: datetime | None = None) -> list[dict]:
    """Every group the person is in, has asked to join, or facilitates."""
    ids = [r[0] for r in db.execute(
        "SELECT g.id FROM groups g JOIN group_members m ON m.group_id = g.id WHERE "
        "m.user_id = ? AND m.status IN ('requested', 'active') ORDER BY g.name, g.id",
        [user.id]).fetchall()]
    return [view(db, user, gid, now=now, meetings=3) for gid in ids]


def all_groups(db: Database, admin: User | None) -> list[dict]:
    access.require(Action.GROUP_LIST_ALL, access.load(db, admin, 0))
    out = []
    for r in db.query("SELECT id FROM groups ORDER BY archived_at IS NOT NULL, name, id"):
        v = view(db, admin, r["id"], meetings=1)
        v["open_requests"] = db.execute(
            "SELECT COUNT(*) FROM group_members WHERE group_id = ? AND status = 'requested'",
            [r["id"]]).fetchone()[0]
        out.append(v)
    return out


def validate_filters(topic: object, day: object, time_of_day: object) -> tuple:
    topic = topic or None
    if topic is not None and (not isinstance(topic, str) or len(topic) > 24):
        raise ValidationError("topic", "topic must be a tag of at most 24 characters")
    day = day or None
    if day is not None and day not in DAYS:
        raise ValidationError("day", f"day must be one of: {', '.join(DAYS)}")
    time_of_day = time_of_day or None
    if time_of_day is not None and time_of_day not in TIMES_OF_DAY:
        raise ValidationError("time_of_day", "time of day must be one of: "
                              + ", ".join(TIMES_OF_DAY))
    return (topic.lower() if topic else None), day, time_of_day


def _matches(o: dict, day: str | None, time_of_day: str | None) -> bool:
    if o["status"] == "cancelled":
        return False
    local = datetime.fromisoformat(o["local_start"])
    if time_of_day is not None:
        lo, hi = TIMES_OF_DAY[time_of_day]
        hour = local.hour if local.hour >= 5 or time_of_day != "night" else local.hour + 24
        if not lo <= hour < hi:
            return False
    # Plain calendar days in the viewer's zone (a meeting at 00:30 is on the next day).
    return day is None or DAYS[local.weekday()] == day


def find(db: Database, user: User, *, topic: str | None = None, day: str | None = None,
         time_of_day: str | None = None, viewer_zone: str | None = None,
         now: datetime | None = None) -> dict:
    """Listed groups with their next meetings in the viewer's zone, filtered by topic, day
    of week and time of day (a group matches when one of its meetings in the next five
    weeks does)."""
    topic, day, time_of_day = validate_filters(topic, day, time_of_day)
    zone = viewer_zone or user.time_zone
    now = now or now_utc()
    results, tags = [], set()
    for r in db.query("SELECT id FROM groups WHERE visibility = 'listed' AND archived_at IS "
                      "NULL ORDER BY name, id"):
        try:
            v = view(db, user, r["id"], viewer_zone=zone, now=now, meetings=40)
        except Denied:
            continue
        tags.update(v["tags"])
        upcoming = [o for o in v["next_meetings"] if datetime.fromisoformat(o["starts_at"])
                    < now + timedelta(days=FINDER_DAYS)]
        if topic and topic not in v["tags"]:
            continue
        if (day or time_of_day) and not any(_matches(o, day, time_of_day) for o in upcoming):
            continue
        v["matching_meetings"] = [o for o in upcoming if _matches(o, day, time_of_day)][:3]
        v["next_meetings"] = v["next_meetings"][:3]
        results.append(v)
    return {"time_zone": zone, "topics": sorted(tags), "groups": results,
            "filters": {"topic": topic, "day": day, "time_of_day": time_of_day}}
