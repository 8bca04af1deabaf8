"""The waiting room: check in, wait, be admitted, join the session's voice room.

One visit (and one voice room) per appointment occurrence. The patient can check in from
``CHECK_IN_OPENS`` before the start until the end; the therapist sees who is waiting and
admits them, which opens the room and gives the therapist a host token. Only once admitted
does the server issue the patient a member token for that room (each request issues a fresh
one and revokes the previous one if it was never used). Ending the visit closes the room for
everyone.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlite_utils import Database

from therapy import appointments, audit, care, consent, permissions, rooms
from therapy.accounts import User, get_user
from therapy.appointments import AppointmentError, BrokenAppointment, Occurrence
from therapy.audit import Actor
from therapy.permissions import Action

WAITING, ADMITTED, ENDED = "waiting", "admitted", "ended"


class WaitingRoomError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _now() -> datetime:
    return datetime.now(UTC)


def _visit_row(db: Database, visit_id: str) -> dict:
    rows = list(db.query("SELECT * FROM visits WHERE id = ?", [str(visit_id)[:64]]))
    if not rows:
        raise WaitingRoomError("not_found", "no such visit")
    return rows[0]


def _context(db: Database, user: User,
             visit_id: str) -> tuple[dict, dict, Occurrence | BrokenAppointment]:
    visit = _visit_row(db, visit_id)
    appt = appointments.require_view(db, user, visit["appointment_id"])
    occ = appointments.occurrence_entry(db, visit["appointment_id"], visit["occurrence"])
    return visit, appt, occ


def describe(db: Database, visit: dict, occ: Occurrence | BrokenAppointment,
             viewer: User) -> dict:
    patient = get_user(db, occ.patient_id)
    therapist = get_user(db, occ.therapist_id)
    return {
        "id": visit["id"],
        "status": visit["status"],
        "checked_in_at": visit["checked_in_at"],
        "admitted_at": visit["admitted_at"],
        "ended_at": visit["ended_at"],
        "room_id": visit["room_id"] if visit["status"] != WAITING else None,
        "patient": {"id": patient.id, "display_name": patient.display_name},
        "therapist": {"id": therapist.id, "display_name": therapist.display_name},
        "occurrence": occ.public(viewer.time_zone),
    }


def check_in(db: Database, patient: User, appointment_id: int, index: int, *,
             now: datetime | None = None, actor: Actor) -> dict:
    now = now or _now()
    with db.atomic():
        appt = appointments.require_view(db, patient, appointment_id)
        permissions.require(Action.CHECK_IN, care.subject(patient),
                            appointments.appointment_facts(patient, appt))
        occ = appointments.occurrence(db, appointment_id, index)
        if occ.cancelled:
            raise AppointmentError("cancelled", "this session was cancelled")
        if not consent.has_active(db, patient.id, consent.TELEHEALTH_DOCUMENT):
            raise permissions.Denied(permissions.Decision(
                False, "consent_required",
                "please read and sign the consent to telehealth before your first session"))
        rows = list(db.query("SELECT * FROM visits WHERE appointment_id = ? AND occurrence = ?",
                             [appointment_id, index]))
        if rows:
            if rows[0]["status"] == ENDED:
                raise WaitingRoomError("session_ended", "this session has ended")
            return describe(db, rows[0], occ, patient)
        if now < occ.check_in_opens():
            raise WaitingRoomError(
                "not_open_yet",
                "the waiting room opens 10 minutes before the start: "
                + appointments.format_local(occ.check_in_opens().astimezone(
                    occ.local_start(patient.time_zone).tzinfo)))
        if now >= occ.end_utc:
            raise WaitingRoomError("session_over", "this session's time is over")
        visit_id = "v-" + secrets.token_hex(8)
        db.table("visits").insert({
            "id": visit_id, "appointment_id": appointment_id, "occurrence": index,
            "room_id": None, "status": WAITING, "checked_in_at": audit.now_iso(),
            "admitted_at": None, "ended_at": None, "patient_token_id": None})
        audit.record(db, actor, "visit.check_in", "visits", visit_id,
                     patient_id=patient.id, appointment_id=appointment_id, occurrence=index)
        return describe(db, _visit_row(db, visit_id), occ, patient)


def status(db: Database, user: User, visit_id: str) -> dict:
    visit, _, occ = _context(db, user, visit_id)
    return describe(db, visit, occ, user)


def _require_host(db: Database, therapist: User, appt: dict) -> None:
    permissions.require(Action.ADMIT, care.subject(therapist),
                        appointments.appointment_facts(therapist, appt))


def waiting_list(db: Database, therapist: User) -> list[dict]:
    """The therapist's visits that are waiting or in progress, longest waiting first."""
    out = []
    for v in db.query(
            """SELECT v.* FROM visits v JOIN appointments a ON a.id = v.appointment_id
               WHERE a.therapist_id = ? AND v.status != 'ended' ORDER BY v.checked_in_at""",
            [therapist.id]):
        occ = appointments.occurrence_entry(db, v["appointment_id"], v["occurrence"])
        out.append(describe(db, v, occ, therapist))
    return out


def _host_token(db: Database, therapist: User, visit: dict, actor: Actor) -> str:
    return rooms.issue_token(db, visit["room_id"], therapist.display_name, room_role="host",
                             user_id=therapist.id, actor=actor)


def admit(db: Database, therapist: User, visit_id: str, *, actor: Actor) -> tuple[str, str]:
    """Admit the waiting patient. Returns (room_id, host token for the therapist)."""
    with db.atomic():
        visit, appt, _ = _context(db, therapist, visit_id)
        _require_host(db, therapist, appt)
        if visit["status"] == ENDED:
            raise WaitingRoomError("session_ended", "this session has ended")
        room_id = visit["room_id"]
        if room_id is None:
            room_id = rooms.create_room(db, "appointment", created_by=therapist.id)
        if visit["status"] == WAITING:
            db.execute("UPDATE visits SET status = ?, admitted_at = ?, room_id = ? WHERE id = ?",
                       [ADMITTED, audit.now_iso(), room_id, visit["id"]])
            audit.record(db, actor, "visit.admit", "visits", visit["id"],
                         patient_id=appt["patient_id"], room_id=room_id)
        visit = _visit_row(db, visit["id"])
        return room_id, _host_token(db, therapist, visit, actor)


def host_link(db: Database, therapist: User, visit_id: str, *, actor: Actor) -> tuple[str, str]:
    """A fresh host token to (re)join an admitted visit's room."""
    with db.atomic():
        visit, appt, _ = _context(db, therapist, visit_id)
        _require_host(db, therapist, appt)
        if visit["status"] != ADMITTED:
            raise WaitingRoomError("not_admitted", "admit the patient first")
        return visit["room_id"], _host_token(db, therapist, visit, actor)


def patient_join(db: Database, patient: User, visit_id: str, *,
                 actor: Actor) -> tuple[str, str] | None:
    """For an admitted patient: (room_id, a fresh member token). None while still waiting."""
    with db.atomic():
        visit, appt, _ = _context(db, patient, visit_id)
        permissions.require(Action.CHECK_IN, care.subject(patient),
                            appointments.appointment_facts(patient, appt))
        if visit["status"] == WAITING:
            return None
        if visit["status"] == ENDED:
            raise WaitingRoomError("session_ended", "this session has ended")
        if visit["patient_token_id"]:
            db.execute("UPDATE join_tokens SET revoked_at = ? WHERE id = ? AND "
                       "first_used_at IS NULL AND revoked_at IS NULL",
                       [audit.now_iso(), visit["patient_token_id"]])
        token = rooms.issue_token(db, visit["room_id"], patient.display_name,
                                  room_role="member", user_id=patient.id, actor=actor)
        db.execute("UPDATE visits SET patient_token_id = ? WHERE id = ?",
                   [hashlib.sha256(token.encode()).hexdigest(), visit["id"]])
        return visit["room_id"], token


def end(db: Database, therapist: User, visit_id: str, *, actor: Actor) -> str | None:
    """End the session for everyone (closes the room; a waiting patient is turned away).
    Returns the id of the visit's voice room, if it had one, so live connections can go too."""
    with db.atomic():
        visit, appt, _ = _context(db, therapist, visit_id)
        _require_host(db, therapist, appt)
        if visit["status"] == ENDED:
            return visit["room_id"]
        if visit["room_id"]:
            rooms.close_room(db, visit["room_id"], actor=actor)
        db.execute("UPDATE visits SET status = ?, ended_at = ? WHERE id = ?",
                   [ENDED, audit.now_iso(), visit["id"]])
        audit.record(db, actor, "visit.end", "visits", visit["id"],
                     patient_id=appt["patient_id"])
    return visit["room_id"]


def close_room(db: Database, room_id: str, *, actor: Actor) -> None:
    """A room was ended from inside (the host's "End the session for everyone"): close it in
    the records and end the visit it belongs to, so the waiting room, the patient's sessions
    and the dashboard all say it has ended. The hub checked that the actor is the host."""
    with db.atomic():
        rooms.close_room(db, room_id, actor=actor)
        for visit in db.query("SELECT id, appointment_id FROM visits WHERE room_id = ? AND "
                              "status != ?", [room_id, ENDED]):
            db.execute("UPDATE visits SET status = ?, ended_at = ? WHERE id = ?",
                       [ENDED, audit.now_iso(), visit["id"]])
            patient_id = db.execute("SELECT patient_id FROM appointments WHERE id = ?",
                                    [visit["appointment_id"]]).fetchone()[0]
            audit.record(db, actor, "visit.end", "visits", visit["id"], patient_id=patient_id,
                         via="room")


def visit_for(db: Database, appointment_id: int, index: int) -> dict | None:
    rows = list(db.query("SELECT * FROM visits WHERE appointment_id = ? AND occurrence = ?",
                         [appointment_id, index]))
    return rows[0] if rows else None
