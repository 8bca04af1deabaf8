"""The practice's HTTP plumbing, shared by its JSON API (web.practice_api) and its pages
(web.practice_pages): the master keyring, domain errors as API errors, store calls, and the
views and operations both sides use.

The API and the pages call the same library functions in therapy.*, which check every action
with therapy.permissions; the pages also ask therapy.permissions what to offer. Errors from
the library become ``{"error": {"code", "message"}}`` (API) or the readable error page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from therapy import (
    appointments,
    care,
    consent,
    notes,
    permissions,
    rooms,
    sealing,
    waiting_room,
)
from therapy.accounts import AccountError, Role, User, ValidationError
from therapy.keyfile import MasterKeyring
from therapy.permissions import Action, Facts
from web import appkeys
from web.api_accounts import actor_of
from web.errors import ApiError
from web.store_calls import store_call

THERAPIST = [Role.THERAPIST]
PATIENT = [Role.PATIENT]
ADMIN = [Role.ADMIN]

# --- plumbing ------------------------------------------------------------------------------

def keyring(request: web.Request) -> MasterKeyring:
    """The master keyring (web.app.LiveKeyring follows ``haven keys rotate`` and refuses a
    key file that does not belong to this database)."""
    return request.app[appkeys.KEYRING].current()


STATUS_OF = {"forbidden": 403, "locked": 409, "not_signed": 409, "consent_required": 409,
             "erased": 410, "not_found": 404, "invalid_field": 422}
KNOWN_ERRORS = (care.CareError, consent.ConsentError, notes.NoteError,
                appointments.AppointmentError, waiting_room.WaitingRoomError, rooms.RoomError)


def api_error(exc: Exception) -> ApiError | None:
    if isinstance(exc, permissions.Denied):
        return ApiError(STATUS_OF.get(exc.code, 403), exc.code, exc.message)
    if isinstance(exc, ValidationError):
        return ApiError(422, "invalid_field", exc.message, field=exc.field)
    if isinstance(exc, KNOWN_ERRORS):
        extra = {"field": exc.field} if getattr(exc, "field", None) else {}
        return ApiError(STATUS_OF.get(exc.code, 409), exc.code, exc.message, **extra)
    if isinstance(exc, sealing.PatientKeyDestroyed):
        return ApiError(410, "erased", "this patient's records were erased")
    if isinstance(exc, sealing.SealingError):
        return ApiError(500, "record_unreadable",
                        "this record cannot be opened (damaged, or the key file is wrong)")
    if isinstance(exc, AccountError):
        return ApiError(404 if exc.code == "not_found" else 409, exc.code, exc.message)
    return None


async def write(request: web.Request, fn) -> Any:
    return await store_call(request, fn, write=True, to_api=api_error)


async def read(request: web.Request, fn) -> Any:
    return await store_call(request, fn, write=False, to_api=api_error)


async def end_visit(request: web.Request, user, visit_id: str) -> None:
    """End a session for everyone: close its room in the records, then disconnect whoever
    is still in the voice room."""
    actor = actor_of(request)
    room_id = await write(request, lambda db: waiting_room.end(db, user, visit_id, actor=actor))
    if room_id:
        await request.app[appkeys.VOICE].disconnect_room(room_id)


def int_param(value: object, name: str) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise ApiError(400, "invalid_request", f"{name} must be a number") from None
    if not 0 <= number < 2**53:
        raise ApiError(400, "invalid_request", f"{name} is out of range")
    return number


def base_url(request: web.Request) -> str:
    return request.app[appkeys.CONFIG].base_url


def join_path(room_id: str, token: str) -> str:
    return f"/s/{room_id}#{token}"


def names(db, ids) -> dict[int, str]:
    out = {}
    for uid in set(ids):
        row = db.execute("SELECT display_name FROM users WHERE id = ?", [uid]).fetchone()
        out[uid] = row[0] if row else "(removed)"
    return out


def occurrence_view(db, occ: appointments.Occurrence | appointments.BrokenAppointment,
                    viewer: User, now: datetime | None = None) -> dict:
    """An occurrence as the viewer sees it: their zone, the other person's name, the visit.
    A broken appointment (dates that cannot be shown) keeps the same keys, with ``error``."""
    now = now or datetime.now(UTC)
    view = occ.public(viewer.time_zone)
    other = occ.patient_id if viewer.id == occ.therapist_id else occ.therapist_id
    view["with"] = names(db, [other])[other]
    visit = None if occ.broken else waiting_room.visit_for(db, occ.appointment_id, occ.index)
    view["visit"] = {"id": visit["id"], "status": visit["status"]} if visit else None
    view["open_now"] = occ.is_open(now)
    view["check_in_opens"] = "" if occ.broken else occ.check_in_opens().isoformat()
    return view


# --- shared operations (API and pages) -----------------------------------------------------

def patient_summaries(db, therapist: User) -> list[dict]:
    out = []
    for p in care.patients_of(db, therapist.id):
        facts = care.patient_facts(db, therapist, p.id)
        nxt = appointments.occurrences_for(db, therapist, patient_id=p.id, limit=1)
        out.append({
            "id": p.id, "username": p.username, "display_name": p.display_name,
            "time_zone": p.time_zone,
            "notes_consent": facts.notes_consent,
            "telehealth_consent": consent.has_active(db, p.id, consent.TELEHEALTH_DOCUMENT),
            "erased": facts.erased,
            "next_session": occurrence_view(db, nxt[0], therapist) if nxt else None,
        })
    return out


def dashboard(db, user: User) -> dict:
    now = datetime.now(UTC)
    upcoming = [occurrence_view(db, o, user, now)
                for o in appointments.occurrences_for(db, user, now=now, limit=5)]
    out: dict = {"upcoming": upcoming, "time_zone": user.time_zone}
    if user.role == Role.THERAPIST:
        out["waiting"] = waiting_room.waiting_list(db, user)
    if user.role == Role.PATIENT:
        out["consents"] = consent.status(db, user, user.id)
    return out


async def do_check_in(request: web.Request, user: User, appt_id: int, index: int) -> dict:
    actor = actor_of(request)
    return await write(request, lambda db: waiting_room.check_in(
        db, user, appt_id, index, actor=actor))


async def do_admit(request: web.Request, user: User, visit_id: str) -> tuple[str, str]:
    actor = actor_of(request)
    return await write(request, lambda db: waiting_room.admit(db, user, visit_id, actor=actor))


async def do_erase(request: web.Request, admin: User, patient_id: int, confirm: str) -> None:
    actor = actor_of(request)

    def erase(db):
        permissions.require(Action.PATIENT_SHRED, care.subject(admin), Facts())
        patient = care.get_patient(db, patient_id)
        if confirm.strip().lower() != patient.username:
            raise ValidationError("confirm_username",
                                  "type the patient's username exactly to confirm")
        sealing.shred_patient(db, patient.id, actor=actor)

    await write(request, erase)
