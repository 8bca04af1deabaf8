"""Who may do what in the practice: every rule in one pure function.

``decide(action, subject, facts)`` looks only at its arguments (no database, no clock), so
the storage layer (therapy.notes, therapy.appointments, …) and the HTTP layer
(web.practice_pages, for what to show and to check before acting) ask the same question and
get the same answer, and the whole matrix can be property-tested.

The storage functions gather the :class:`Facts` about the record from the database and call
:func:`require`; a refusal is a :class:`Denied` with a stable ``code``:

* ``forbidden``        - this person may never do this to this record
* ``locked``           - the note is signed; corrections go in an addendum
* ``not_signed``       - addenda are for signed notes (edit the draft instead)
* ``consent_required`` - the patient has no active consent to session notes
* ``erased``           - the patient's records were crypto-shredded
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from therapy.accounts import Role


class Action(StrEnum):
    NOTE_CREATE = "note.create"
    NOTE_READ = "note.read"
    NOTE_EDIT = "note.edit"
    NOTE_SIGN = "note.sign"
    NOTE_ADDENDUM = "note.addendum"
    NOTE_LIST = "note.list"  # see that notes exist (metadata, no text)
    RECORD_EXPORT = "record.export"
    AUDIT_READ = "audit.read"
    PATIENT_SHRED = "patient.shred"
    PATIENT_VIEW = "patient.view"  # the therapist's page about a patient
    INVITE_CREATE = "invite.create"
    APPOINTMENT_MANAGE = "appointment.manage"  # schedule, reschedule, cancel
    APPOINTMENT_VIEW = "appointment.view"
    ENVIRONMENT_CHOOSE = "appointment.environment"
    CHECK_IN = "visit.check_in"
    ADMIT = "visit.admit"  # also: host link, end the session for everyone
    CONSENT_SIGN = "consent.sign"  # also withdraw: only the patient themself
    CONSENT_VIEW = "consent.view"
    CARE_ALERT_SEND = "care_alert.send"  # "let my therapist know I'm struggling"
    CARE_ALERT_VIEW = "care_alert.view"  # the therapist sees (and follows up) a patient's alert


class NoteKind(StrEnum):
    PROGRESS = "progress"
    PSYCHOTHERAPY = "psychotherapy"


@dataclass(frozen=True)
class Subject:
    user_id: int
    role: Role


@dataclass(frozen=True)
class Facts:
    """What is known about the record the action touches, relative to the subject."""

    is_self: bool = False  # the subject is the patient the record is about
    care_team: bool = False  # the subject is a therapist with an active link to the patient
    is_author: bool = False  # the subject wrote the note / scheduled the appointment
    note_kind: NoteKind | None = None
    note_signed: bool = False
    note_shared: bool = False  # a progress note shared with the patient
    notes_consent: bool = False  # the patient's consent to session notes is active
    erased: bool = False  # the patient's key was destroyed


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str = "ok"
    message: str = ""

    def __bool__(self) -> bool:
        return self.allowed


class Denied(Exception):
    def __init__(self, decision: Decision):
        super().__init__(decision.message)
        self.code = decision.code
        self.message = decision.message


ALLOW = Decision(True)


def _no(message: str, code: str = "forbidden") -> Decision:
    return Decision(False, code, message)


def decide(action: Action, subject: Subject, facts: Facts) -> Decision:
    role = subject.role
    therapist = role == Role.THERAPIST
    patient = role == Role.PATIENT
    admin = role == Role.ADMIN

    if action == Action.NOTE_CREATE:
        if not (therapist and facts.care_team):
            return _no("only the patient's own therapist can write notes about them")
        if facts.erased:
            return _no("this patient's records were erased", "erased")
        if not facts.notes_consent:
            return _no("the patient has not given (or has withdrawn) consent to session notes; "
                       "no new note can be written", "consent_required")
        return ALLOW

    if action == Action.NOTE_READ:
        if facts.erased:
            # Nobody can read it any more; say why instead of a bare refusal.
            return _no("this patient's records were erased", "erased") if (
                (therapist and (facts.is_author or facts.care_team)) or (patient and facts.is_self)
            ) else _no("you cannot read this note")
        if therapist and facts.is_author:
            return ALLOW
        if (therapist and facts.care_team and facts.note_kind == NoteKind.PROGRESS
                and facts.note_signed):
            return ALLOW
        if (patient and facts.is_self and facts.note_kind == NoteKind.PROGRESS
                and facts.note_signed and facts.note_shared):
            return ALLOW
        return _no("you cannot read this note")

    if action in (Action.NOTE_EDIT, Action.NOTE_SIGN):
        if facts.note_signed:
            return _no("this note is signed and locked; add an addendum to correct it", "locked")
        if not (therapist and facts.is_author):
            return _no("only the note's author can change or sign a draft")
        if facts.erased:
            return _no("this patient's records were erased", "erased")
        return ALLOW

    if action == Action.NOTE_ADDENDUM:
        if not (therapist and facts.is_author):
            return _no("only the note's author can add an addendum")
        if facts.erased:
            return _no("this patient's records were erased", "erased")
        if not facts.note_signed:
            return _no("addenda are for signed notes; edit the draft instead", "not_signed")
        return ALLOW

    if action == Action.NOTE_LIST:
        if (therapist and facts.care_team) or (patient and facts.is_self):
            return ALLOW
        return _no("you cannot see this patient's notes")

    if action == Action.RECORD_EXPORT:
        if patient and facts.is_self:
            return ALLOW
        return _no("patients export their own record")

    if action == Action.AUDIT_READ:
        if admin or (therapist and facts.care_team):
            return ALLOW
        return _no("the audit trail is open to the patient's therapist and to admins")

    if action == Action.PATIENT_SHRED:
        if admin:
            return ALLOW
        return _no("only an admin can erase a patient's records")

    if action == Action.PATIENT_VIEW:
        if therapist and facts.care_team:
            return ALLOW
        return _no("this is not one of your patients")

    if action == Action.INVITE_CREATE:
        if therapist:
            return ALLOW
        return _no("only therapists invite patients")

    if action == Action.APPOINTMENT_MANAGE:
        if therapist and facts.care_team:
            return ALLOW
        return _no("only the patient's therapist schedules their sessions")

    if action == Action.APPOINTMENT_VIEW:
        if (therapist and facts.is_author) or (patient and facts.is_self):
            return ALLOW
        return _no("this appointment is not yours")

    if action == Action.ENVIRONMENT_CHOOSE:
        if patient and facts.is_self:
            return ALLOW
        return _no("the patient chooses the environment")

    if action == Action.CHECK_IN:
        if patient and facts.is_self:
            return ALLOW
        return _no("only the patient checks in to their session")

    if action == Action.ADMIT:
        if therapist and facts.is_author:
            return ALLOW
        return _no("only the session's therapist can admit or end it")

    if action == Action.CONSENT_SIGN:
        if patient and facts.is_self:
            return ALLOW
        return _no("only the patient can give or withdraw their consent")

    if action == Action.CONSENT_VIEW:
        if (patient and facts.is_self) or (therapist and facts.care_team) or admin:
            return ALLOW
        return _no("you cannot see this patient's consent")

    if action == Action.CARE_ALERT_SEND:
        if patient and facts.is_self:
            return ALLOW
        return _no("only a patient alerts their own therapist")

    if action == Action.CARE_ALERT_VIEW:
        if therapist and facts.care_team:
            return ALLOW
        return _no("only the patient's therapist sees their alerts")

    return _no("unknown action")  # pragma: no cover - every Action is handled above


def allowed(action: Action, subject: Subject, facts: Facts) -> bool:
    return decide(action, subject, facts).allowed


def require(action: Action, subject: Subject, facts: Facts) -> None:
    decision = decide(action, subject, facts)
    if not decision.allowed:
        raise Denied(decision)
