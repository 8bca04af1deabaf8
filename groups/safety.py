"""Safety in groups: private alerts ("let the facilitator know I'm struggling"), concerns a
facilitator flags, reports of behaviour, the facilitators' safety dashboard, the admin's
reports about facilitators, deleting a group (crypto-shred), and each account's country
for crisis lines.

* Every text a person writes is sealed under the group's key (groups.group_keys); the
  audit log gets ids and categories only.
* Only facilitators (and the admin) see alerts and reports; a report about a facilitator
  is the admin's alone (groups.permissions decides, from the report's stored target).
* The reported member is never shown a report, so never learns who made it.
* Live delivery to the facilitators in the room is the voice hub's (web/voice.py, the
  `help_alert` message): it stores through :func:`send_alert` / :func:`flag_concern`,
  audits the live delivery (:func:`record_delivery`), and gives facilitators who join later
  :func:`open_alerts_for_meeting`.
"""

from __future__ import annotations

import dataclasses

from sqlite_utils import Database

from groups import access, crisis, group_keys, presence
from groups.errors import GroupError
from groups.permissions import Action
from therapy import audit
from therapy.accounts import User, ValidationError
from therapy.audit import Actor
from therapy.keyfile import MasterKeyring
from therapy.sealing import SealingError, checkpoint_wal

MESSAGE_MAX = 2000
CATEGORIES = {"harassment": "Harassment", "unsafe_advice": "Unsafe advice",
              "recording": "Recording without consent", "other": "Something else"}
REPORT_STATUSES = ("open", "handled", "dismissed")
ALERT_STATUSES = ("open", "handled")


def validate_message(value: object, field: str = "message") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(field, f"{field} must be text")
    if len(value) > MESSAGE_MAX:
        raise ValidationError(field, f"{field} is at most {MESSAGE_MAX} characters")
    return value.replace("\r\n", "\n").strip()


def validate_category(value: object) -> str:
    if value not in CATEGORIES:
        raise ValidationError("category", "category must be one of " + ", ".join(CATEGORIES))
    return str(value)


def _pseudonym(db: Database, member_id: int | None) -> str:
    if member_id is None:
        return "(nobody)"
    row = db.execute("SELECT pseudonym FROM group_members WHERE id = ?",
                     [member_id]).fetchone()
    return (row[0] if row and row[0] else None) or "(former member)"


def _open(db: Database, ring: MasterKeyring, gid: int, table: str, row_id: int, field: str,
          blob: bytes | None) -> str | None:
    if blob is None:
        return None
    try:
        return group_keys.open_sealed(db, ring, gid, table, row_id, field, blob)
    except SealingError:
        return None  # crypto-shredded (the group was deleted) or unreadable


def _seal_into(db: Database, ring: MasterKeyring, gid: int, table: str, row_id: int,
               field: str, text: str) -> None:
    db.execute(f"UPDATE {table} SET {field} = ? WHERE id = ?",
               [group_keys.seal(db, ring, gid, table, row_id, field, text), row_id])


# --- alerts and concerns ------------------------------------------------------------------

def send_alert(db: Database, ring: MasterKeyring, user: User, gid: int, message: object = None,
               *, actor: Actor) -> dict:
    """A member's private alert to the group's facilitators. Other members see nothing."""
    text = validate_message(message)
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.ALERT_SEND)
        return _insert_alert(db, ring, ctx.group_id, ctx.member["id"], ctx.member["id"],
                             "alert", text, actor)


def flag_concern(db: Database, ring: MasterKeyring, user: User, gid: int, member_id: int,
                 note: object = None, *, actor: Actor) -> dict:
    text = validate_message(note, "note")
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.CONCERN_FLAG, target_member_id=member_id)
        target = access.member_by_id(db, ctx.group_id, member_id)
        if target["status"] != "active":
            raise GroupError("not_found", "no such member in this group")
        return _insert_alert(db, ring, ctx.group_id, member_id, ctx.member["id"], "concern",
                             text, actor)


def _insert_alert(db: Database, ring: MasterKeyring, gid: int, member_id: int, raised_by: int,
                  kind: str, text: str, actor: Actor) -> dict:
    meeting_id = presence.current_meeting(db, gid, member_id)
    row_id = db.table("safety_alerts").insert({
        "group_id": gid, "member_id": member_id, "raised_by": raised_by, "kind": kind,
        "meeting_id": meeting_id, "body": b"", "status": "open", "handled_by": None,
        "handled_at": None, "created_at": audit.now_iso()}).last_pk
    _seal_into(db, ring, gid, "safety_alerts", row_id, "body", text)
    created = db.execute("SELECT created_at FROM safety_alerts WHERE id = ?",
                         [row_id]).fetchone()[0]
    audit.record(db, actor, f"safety.{kind}", "safety_alerts", row_id, group_id=gid,
                 meeting_id=meeting_id)
    return {"id": row_id, "kind": kind, "status": "open", "created_at": created,
            "meeting_id": meeting_id}


def record_delivery(db: Database, gid: int, alert_id: int, member_ids: list[int], *,
                    actor: Actor) -> None:
    """The voice hub showed an alert's text live to these facilitators (members of the
    group): audited like a read of the dashboard."""
    with db.atomic():
        audit.record(db, actor, "safety.alert_delivered", "safety_alerts", alert_id,
                     group_id=gid, to=sorted(member_ids))


def set_alert_status(db: Database, user: User, gid: int, alert_id: int, status: str, *,
                     actor: Actor) -> dict:
    if status not in ALERT_STATUSES:
        raise ValidationError("status", "status must be open or handled")
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.SAFETY_HANDLE)
        row = _get(db, "safety_alerts", ctx.group_id, alert_id, "alert")
        handled = status != "open"
        db.table("safety_alerts").update(row["id"], {
            "status": status, "handled_by": user.id if handled else None,
            "handled_at": audit.now_iso() if handled else None})
        audit.record(db, actor, "safety.alert_status", "safety_alerts", row["id"],
                     group_id=gid, status=status)
        return {"id": row["id"], "status": status}


def _get(db: Database, table: str, gid: int, row_id: int, what: str) -> dict:
    rows = list(db.query(f"SELECT * FROM {table} WHERE id = ? AND group_id = ?",
                         [row_id, gid])) if 0 < row_id < access.MAX_ID else []
    if not rows:
        raise GroupError("not_found", f"no such {what} in this group")
    return dict(rows[0])


def open_alerts_for_meeting(db: Database, meeting_id: int) -> list[dict]:
    """For the voice hub: the open alerts raised during a meeting (ids and pseudonyms, no
    text), to deliver to the facilitators present."""
    return [{"id": r["id"], "kind": r["kind"], "pseudonym": _pseudonym(db, r["member_id"]),
             "member_id": r["member_id"], "created_at": r["created_at"],
             "raised_by": (_pseudonym(db, r["raised_by"]) if r["kind"] == "concern"
                           else None)}
            for r in db.query("SELECT * FROM safety_alerts WHERE meeting_id = ? AND "
                              "status = 'open' ORDER BY id", [meeting_id])]


# --- reports ------------------------------------------------------------------------------

def file_report(db: Database, ring: MasterKeyring, user: User, gid: int, member_id: int,
                category: object, text: object = None, *, actor: Actor) -> dict:
    """Report a member's behaviour. About a facilitator, it goes to the admin instead."""
    cat = validate_category(category)
    body = validate_message(text, "text")
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.REPORT_FILE)
        target = access.member_by_id(db, ctx.group_id, member_id)
        if target["status"] != "active":
            raise GroupError("not_found", "no such member in this group")
        if target["id"] == ctx.member["id"]:
            raise ValidationError("member_id", "you cannot report yourself")
        about_fac = int(target["role"] in ("lead", "co"))
        row_id = db.table("safety_reports").insert({
            "group_id": ctx.group_id, "reporter_id": ctx.member["id"],
            "reported_id": target["id"], "about_facilitator": about_fac, "category": cat,
            "meeting_id": presence.current_meeting(db, ctx.group_id, ctx.member["id"]),
            "body": b"", "status": "open", "resolution": None, "handled_by": None,
            "handled_at": None, "created_at": audit.now_iso()}).last_pk
        _seal_into(db, ring, ctx.group_id, "safety_reports", row_id, "body", body)
        audit.record(db, actor, "safety.report", "safety_reports", row_id, group_id=gid,
                     category=cat, to_admin=bool(about_fac))
        return {"id": row_id, "category": cat, "status": "open",
                "goes_to": "admin" if about_fac else "facilitators"}


def _report_ctx(db: Database, user: User, gid: int, report: dict, action: Action):
    ctx = access.load(db, user, gid)
    facts = dataclasses.replace(
        ctx.facts, target_group_role="lead" if report["about_facilitator"] else None)
    return access.require(action, dataclasses.replace(ctx, facts=facts))


def set_report_status(db: Database, ring: MasterKeyring, user: User, gid: int, report_id: int,
                      status: str, note: object = None, *, actor: Actor) -> dict:
    if status not in REPORT_STATUSES:
        raise ValidationError("status", "status must be open, handled or dismissed")
    text = validate_message(note, "note")
    with db.atomic():
        access.load_for(db, user, gid, Action.GROUP_VIEW)  # outsiders learn nothing
        report = _get(db, "safety_reports", gid, report_id, "report")
        _report_ctx(db, user, gid, report, Action.SAFETY_HANDLE)
        handled = status != "open"
        db.table("safety_reports").update(report["id"], {
            "status": status, "handled_by": user.id if handled else None,
            "handled_at": audit.now_iso() if handled else None})
        _seal_into(db, ring, gid, "safety_reports", report["id"], "resolution", text)
        audit.record(db, actor, "safety.report_status", "safety_reports", report["id"],
                     group_id=gid, status=status)
        return {"id": report["id"], "status": status}


def _report_view(db: Database, ring: MasterKeyring, r: dict) -> dict:
    gid = r["group_id"]
    return {
        "id": r["id"], "group_id": gid, "category": r["category"],
        "category_label": CATEGORIES.get(r["category"], r["category"]),
        "reporter": _pseudonym(db, r["reporter_id"]),
        "reported": _pseudonym(db, r["reported_id"]),
        "reported_member_id": r["reported_id"],
        "about_facilitator": bool(r["about_facilitator"]),
        "text": _open(db, ring, gid, "safety_reports", r["id"], "body", r["body"]),
        "status": r["status"],
        "resolution": _open(db, ring, gid, "safety_reports", r["id"], "resolution",
                            r["resolution"]),
        "created_at": r["created_at"], "handled_at": r["handled_at"],
    }


def dashboard(db: Database, ring: MasterKeyring, user: User, gid: int, *,
              actor: Actor) -> dict:
    """The facilitators' safety view of a group: alerts, concerns and reports (reports about
    facilitators only for the admin), opened and audited in one transaction."""
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.SAFETY_VIEW)
        admin_too = access.decide_allowed(Action.SAFETY_VIEW, dataclasses.replace(
            ctx, facts=dataclasses.replace(ctx.facts, target_group_role="lead")))
        alerts = [{
            "id": r["id"], "kind": r["kind"], "member_id": r["member_id"],
            "pseudonym": _pseudonym(db, r["member_id"]),
            "raised_by": _pseudonym(db, r["raised_by"]),
            "message": _open(db, ring, gid, "safety_alerts", r["id"], "body", r["body"]),
            "status": r["status"], "in_meeting": r["meeting_id"] is not None,
            "created_at": r["created_at"], "handled_at": r["handled_at"],
        } for r in db.query("SELECT * FROM safety_alerts WHERE group_id = ? "
                            "ORDER BY status = 'open' DESC, id DESC LIMIT 200", [gid])]
        reports = [_report_view(db, ring, dict(r)) for r in db.query(
            "SELECT * FROM safety_reports WHERE group_id = ? AND (about_facilitator = 0 OR ?) "
            "ORDER BY status = 'open' DESC, id DESC LIMIT 200", [gid, int(admin_too)])]
        audit.record(db, actor, "safety.dashboard_read", "groups", gid,
                     alerts=len(alerts), reports=len(reports))
        members = [{"id": m["id"], "pseudonym": m["pseudonym"], "role": m["role"]}
                   for m in db.query("SELECT id, pseudonym, role FROM group_members WHERE "
                                     "group_id = ? AND status = 'active' ORDER BY pseudonym",
                                     [gid])]
        return {"group_id": gid, "group_name": ctx.group["name"], "alerts": alerts,
                "reports": reports, "members": members,
                "shredded": group_keys.shredded(db, gid)}


def admin_reports(db: Database, ring: MasterKeyring, user: User, *, actor: Actor) -> list[dict]:
    """Every report about a facilitator, in every group (admin), audited."""
    from groups.permissions import require

    require(Action.REPORTS_ADMIN, access.subject_of(user), access.load(db, user, 0).facts)
    with db.atomic():
        out = []
        for r in db.query("SELECT r.*, g.name AS group_name FROM safety_reports r JOIN groups "
                          "g ON g.id = r.group_id WHERE r.about_facilitator = 1 "
                          "ORDER BY r.status = 'open' DESC, r.id DESC LIMIT 500"):
            view = _report_view(db, ring, dict(r))
            view["group_name"] = r["group_name"]
            out.append(view)
        audit.record(db, actor, "safety.admin_reports_read", "safety_reports", None,
                     reports=len(out))
        return out


# --- deleting a group ---------------------------------------------------------------------

def delete_group(db: Database, user: User, gid: int, *, actor: Actor) -> dict:
    """Close the group for good and destroy its key: its notes, alerts and reports can never
    be opened again (crypto-shredding). The rows stay as unreadable ciphertext."""
    db.execute("PRAGMA secure_delete = ON")
    try:
        with db.atomic():
            ctx = access.load_for(db, user, gid, Action.GROUP_DELETE)
            if not ctx.group["archived_at"]:
                db.table("groups").update(gid, {"archived_at": audit.now_iso()})
            db.execute("DELETE FROM group_presence WHERE meeting_id IN (SELECT id FROM "
                       "group_meetings WHERE group_id = ?)", [gid])
            destroyed = group_keys.shred(db, gid, actor=actor)
    finally:
        db.execute("PRAGMA secure_delete = OFF")
    checkpoint_wal(db)
    return {"id": gid, "deleted": True, "keys_destroyed": destroyed}


# --- the account's country, for crisis lines ----------------------------------------------

def account_country(db: Database, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    row = db.execute("SELECT country FROM safety_account_settings WHERE user_id = ?",
                     [user_id]).fetchone()
    return row[0] if row else None


def set_account_country(db: Database, user: User, country: object,
                        directory: crisis.CrisisDirectory, *, actor: Actor) -> str | None:
    """Set (or, with "" / None, clear) the country whose crisis lines the person sees."""
    if country in (None, ""):
        code = None
    elif not isinstance(country, str) or directory.country(country) is None:
        raise ValidationError("country", "choose one of the countries in the list")
    else:
        code = country.upper()
    with db.atomic():
        db.table("safety_account_settings").upsert(
            {"user_id": user.id, "country": code, "updated_at": audit.now_iso()},
            pk="user_id")
        audit.record(db, actor, "account.country", "users", user.id)
    return code


# --- what a member's group page shows -----------------------------------------------------

def member_view(db: Database, user: User, gid: int) -> dict | None:
    """The group page's safety card: the notes indicator, my notes consent, whom I can
    report (the facilitators and the people I have met in this group's meetings)."""
    from groups import group_notes
    from groups.permissions import allowed

    ctx = access.load(db, user, gid)
    if ctx.group is None or not allowed(Action.NOTES_CONSENT, ctx.subject, ctx.facts):
        return None
    mine = ctx.member["id"]
    people = [dict(r) for r in db.query(
        """SELECT DISTINCT m.id, m.pseudonym, m.role FROM group_members m
           WHERE m.group_id = ? AND m.status = 'active' AND m.id != ? AND (
             m.role IN ('lead', 'co') OR m.id IN (
               SELECT a.member_id FROM group_attendance a WHERE a.admitted_at IS NOT NULL
               AND a.meeting_id IN (SELECT meeting_id FROM group_attendance WHERE
                                    member_id = ? AND admitted_at IS NOT NULL)))
           ORDER BY m.pseudonym""", [gid, mine, mine])]
    return {"notes": group_notes.indicator(db, user, gid),
            "consent": group_notes.consent_status(db, user, gid),
            "reportable": people, "categories": CATEGORIES,
            "can_alert": allowed(Action.ALERT_SEND, ctx.subject, ctx.facts),
            "facilitator": ctx.facts.facilitator}


def alertable_groups(db: Database, user: User) -> list[dict]:
    """The groups whose facilitators this person can alert (active member, not closed)."""
    return [{"id": r["id"], "name": r["name"]} for r in db.query(
        "SELECT g.id, g.name FROM groups g JOIN group_members m ON m.group_id = g.id WHERE "
        "m.user_id = ? AND m.status = 'active' AND m.role = 'member' AND g.archived_at IS NULL "
        "ORDER BY g.name, g.id", [user.id])]
