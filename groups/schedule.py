"""A group's stored schedule (one rule per group) and its exceptions (cancel one, move one).

The rule and every exception are validated in full (``groups.recurrence``) before anything
is written. Replacing the rule keeps the exceptions that still name an occurrence of the new
rule and drops the rest (the count is returned, so the page can say so).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlite_utils import Database

from groups import access
from groups.errors import GroupError
from groups.permissions import Action
from groups.recurrence import (
    Change,
    Occurrence,
    Rule,
    Schedule,
    check_in_window,
    format_local,
    now_utc,
    parse_key,
    parse_local,
    validate_note,
)
from therapy import audit
from therapy.accounts import User, ValidationError
from therapy.audit import Actor


def get(db: Database, group: dict) -> Schedule | None:
    rows = list(db.query("SELECT * FROM group_schedules WHERE group_id = ?", [group["id"]]))
    if not rows:
        return None
    r = rows[0]
    # Stored rules were validated when written; rebuild without the "not in the past" window.
    start = parse_local(r["start_local"])
    return Schedule(Rule.parse(r["rrule"], start), start, r["duration_minutes"],
                    group["time_zone"])


def changes(db: Database, group_id: int) -> dict[datetime, Change]:
    out = {}
    for r in db.query("SELECT * FROM group_exceptions WHERE group_id = ?", [group_id]):
        original = parse_local(r["original_local"])
        new = parse_local(r["new_start_local"]) if r["new_start_local"] else None
        out[original] = Change(original, r["status"], new, r["note"])
    return out


def upcoming(db: Database, group: dict, *, after: datetime | None = None,
             days: int = 60, include_cancelled: bool = False,
             limit: int | None = None) -> list[Occurrence]:
    """The group's occurrences starting from ``after`` (default: those not yet ended)."""
    sched = get(db, group)
    if sched is None:
        return []
    if after is None:
        after = now_utc() - timedelta(minutes=sched.duration_minutes)
    occ = sched.expand(after, after + timedelta(days=days), changes(db, group["id"]),
                       include_cancelled=include_cancelled)
    return occ[:limit] if limit else occ


def find(db: Database, group: dict, key: str) -> Occurrence:
    original = parse_key(key)
    sched = get(db, group)
    if sched is None:
        raise GroupError("not_found", "this group has no schedule yet")
    try:
        check_in_window(original, group["time_zone"], "occurrence")
    except ValidationError:  # a key far away names no meeting
        raise GroupError("not_found", "the schedule has no meeting at that time") from None
    return sched.find(original, changes(db, group["id"]))


def describe(sched: Schedule | None) -> dict | None:
    if sched is None:
        return None
    return {"rrule": sched.rule.text(), "start_local": format_local(sched.start_local),
            "duration_minutes": sched.duration_minutes, "time_zone": sched.zone,
            "description": sched.describe()}


def set_schedule(db: Database, user: User | None, group_id: int, rrule: str,
                 start_local: str, duration_minutes: int, *, actor: Actor) -> dict:
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.SCHEDULE_EDIT)
        sched = Schedule.build(rrule, start_local, duration_minutes, ctx.group["time_zone"])
        return _store(db, ctx.group, sched, user, actor)


def _store(db: Database, group: dict, sched: Schedule, user: User | None,
           actor: Actor) -> dict:
    db.table("group_schedules").upsert({
        "group_id": group["id"], "rrule": sched.rule.text(),
        "start_local": format_local(sched.start_local),
        "duration_minutes": sched.duration_minutes, "updated_at": audit.now_iso(),
        "updated_by": user.id if user else None}, pk="group_id")
    dropped = 0
    for original in list(changes(db, group["id"])):
        if not sched.is_occurrence(original):
            db.execute("DELETE FROM group_exceptions WHERE group_id = ? AND original_local = ?",
                       [group["id"], format_local(original)])
            dropped += 1
    audit.record(db, actor, "group.schedule_set", "groups", group["id"],
                 rrule=sched.rule.text(), dropped_changes=dropped)
    return {**describe(sched), "dropped_changes": dropped}


def _editable(db: Database, group: dict, occ: Occurrence) -> None:
    rows = list(db.query("SELECT status FROM group_meetings WHERE group_id = ? AND "
                         "original_local = ?", [group["id"], format_local(occ.original)]))
    if rows and rows[0]["status"] in ("open", "ended"):
        raise GroupError("meeting_started", "this meeting has already been opened; it can no "
                         "longer be moved or cancelled")


def _put_change(db: Database, group_id: int, original: datetime, status: str,
                new_start: datetime | None, note: str | None, user: User | None) -> None:
    db.table("group_exceptions").upsert({
        "group_id": group_id, "original_local": format_local(original), "status": status,
        "new_start_local": format_local(new_start) if new_start else None, "note": note,
        "updated_at": audit.now_iso(), "updated_by": user.id if user else None},
        pk=("group_id", "original_local"))


def cancel_one(db: Database, user: User | None, group_id: int, key: str,
               note: str | None = None, *, actor: Actor) -> Occurrence:
    note = validate_note(note)
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.SCHEDULE_EDIT)
        occ = find(db, ctx.group, key)
        _editable(db, ctx.group, occ)
        _put_change(db, ctx.group_id, occ.original, "cancelled", None, note, user)
        audit.record(db, actor, "group.meeting_cancelled", "groups", ctx.group_id,
                     occurrence=occ.key)
        return find(db, ctx.group, key)


def move_one(db: Database, user: User | None, group_id: int, key: str, new_start_local: str,
             note: str | None = None, *, actor: Actor) -> Occurrence:
    note = validate_note(note)
    new_start = parse_local(new_start_local, "start_local")
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.SCHEDULE_EDIT)
        check_in_window(new_start, ctx.group["time_zone"], "start_local")
        occ = find(db, ctx.group, key)
        _editable(db, ctx.group, occ)
        if new_start == occ.original:
            db.execute("DELETE FROM group_exceptions WHERE group_id = ? AND original_local = ?",
                       [ctx.group_id, format_local(occ.original)])
        else:
            _put_change(db, ctx.group_id, occ.original, "moved", new_start, note, user)
        audit.record(db, actor, "group.meeting_moved", "groups", ctx.group_id,
                     occurrence=occ.key)
        return find(db, ctx.group, key)


def restore_one(db: Database, user: User | None, group_id: int, key: str, *,
                actor: Actor) -> Occurrence:
    """Undo a cancellation or a move: the occurrence is as the rule says again."""
    with db.atomic():
        ctx = access.load_for(db, user, group_id, Action.SCHEDULE_EDIT)
        occ = find(db, ctx.group, key)
        _editable(db, ctx.group, occ)
        db.execute("DELETE FROM group_exceptions WHERE group_id = ? AND original_local = ?",
                   [ctx.group_id, format_local(occ.original)])
        audit.record(db, actor, "group.meeting_restored", "groups", ctx.group_id,
                     occurrence=occ.key)
        return find(db, ctx.group, key)
