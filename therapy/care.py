"""Therapist–patient relationships (care links) and the invite links that create them.

A therapist makes an invite link; nothing is e-mailed, the therapist copies the link to the
person. Whoever signs up (or, already a patient, accepts) through it becomes the therapist's
patient. Invite tokens are random, shown once and stored only as their SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from therapy import audit, permissions
from therapy.accounts import AccountError, Role, User, get_user
from therapy.audit import Actor
from therapy.permissions import Action, Facts, Subject

INVITE_TTL = timedelta(days=14)


class CareError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def subject(user: User) -> Subject:
    return Subject(user.id, user.role)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


# --- care links ----------------------------------------------------------------------------

def link(db: Database, therapist_id: int, patient_id: int, *, actor: Actor) -> bool:
    """Make ``patient_id`` a patient of ``therapist_id``. Returns False if already linked."""
    therapist = get_user(db, therapist_id)
    patient = get_user(db, patient_id)
    if therapist.role != Role.THERAPIST or patient.role != Role.PATIENT:
        raise CareError("invalid_link", "a care link joins a therapist and a patient")
    rows = list(db.query(
        "SELECT id, ended_at FROM care_links WHERE therapist_id = ? AND patient_id = ?",
        [therapist_id, patient_id]))
    with db.atomic():
        if rows and rows[0]["ended_at"] is None:
            return False
        if rows:
            db.table("care_links").update(rows[0]["id"], {"ended_at": None})
        else:
            db.table("care_links").insert({
                "therapist_id": therapist_id, "patient_id": patient_id,
                "created_at": audit.now_iso(), "ended_at": None})
        audit.record(db, actor, "care.link", "users", patient_id, patient_id=patient_id,
                     therapist_id=therapist_id)
    return True


def is_care_team(db: Database, therapist_id: int, patient_id: int) -> bool:
    return bool(db.execute(
        "SELECT 1 FROM care_links WHERE therapist_id = ? AND patient_id = ? "
        "AND ended_at IS NULL", [therapist_id, patient_id]).fetchone())


def patients_of(db: Database, therapist_id: int) -> list[User]:
    return [User.from_row(r) for r in db.query(
        """SELECT u.* FROM users u JOIN care_links c ON c.patient_id = u.id
           WHERE c.therapist_id = ? AND c.ended_at IS NULL AND u.disabled = 0
           ORDER BY u.display_name, u.id""", [therapist_id])]


def therapists_of(db: Database, patient_id: int) -> list[User]:
    return [User.from_row(r) for r in db.query(
        """SELECT u.* FROM users u JOIN care_links c ON c.therapist_id = u.id
           WHERE c.patient_id = ? AND c.ended_at IS NULL AND u.disabled = 0
           ORDER BY u.display_name, u.id""", [patient_id])]


def patient_facts(db: Database, user: User, patient_id: int) -> Facts:
    """The facts every patient-level rule needs (see therapy.permissions)."""
    from therapy import consent, sealing  # consent imports this module

    return Facts(
        is_self=user.role == Role.PATIENT and user.id == patient_id,
        care_team=user.role == Role.THERAPIST and is_care_team(db, user.id, patient_id),
        notes_consent=consent.has_active(db, patient_id, consent.NOTES_DOCUMENT),
        erased=sealing.patient_erased(db, patient_id),
    )


def get_patient(db: Database, patient_id: int) -> User:
    try:
        patient = get_user(db, patient_id)
    except AccountError:
        raise CareError("not_found", "no such patient") from None
    if patient.role != Role.PATIENT:
        raise CareError("not_found", "no such patient")
    return patient


# --- invites -------------------------------------------------------------------------------

def create_invite(db: Database, therapist: User, *, actor: Actor,
                  ttl: timedelta = INVITE_TTL) -> tuple[str, str]:
    """A new invite token (shown once) and its expiry time (ISO)."""
    permissions.require(Action.INVITE_CREATE, subject(therapist), Facts())
    token = secrets.token_urlsafe(24)
    now = _now()
    expires = (now + ttl).isoformat(timespec="seconds")
    with db.atomic():
        db.table("practice_invites").insert({
            "id": _hash(token), "therapist_id": therapist.id,
            "created_at": now.isoformat(timespec="seconds"), "expires_at": expires,
            "used_at": None, "used_by": None})
        audit.record(db, actor, "invite.create", "practice_invites", _hash(token)[:16])
    return token, expires


def find_invite(db: Database, token: str) -> dict | None:
    """The live invite for a token (not used, not expired), with the therapist's name."""
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        return None
    rows = list(db.query(
        """SELECT i.*, u.display_name AS therapist_name FROM practice_invites i
           JOIN users u ON u.id = i.therapist_id WHERE i.id = ?""", [_hash(token)]))
    if not rows:
        return None
    row = rows[0]
    if row["used_at"] or datetime.fromisoformat(row["expires_at"]) < _now():
        return None
    return row


def redeem_invite(db: Database, token: str, patient: User, *, actor: Actor) -> User:
    """Link ``patient`` to the inviting therapist and use the invite up. Returns the therapist."""
    if patient.role != Role.PATIENT:
        raise CareError("not_a_patient", "invites are for patient accounts")
    with db.atomic():
        row = find_invite(db, token)
        if row is None:
            raise CareError("invite_invalid", "this invite link is not valid or has expired; "
                            "ask your therapist for a new one")
        db.execute("UPDATE practice_invites SET used_at = ?, used_by = ? WHERE id = ?",
                   [audit.now_iso(), patient.id, row["id"]])
        link(db, row["therapist_id"], patient.id, actor=actor)
    return get_user(db, row["therapist_id"])
