"""Therapy practice over HTTP: patients, appointments, waiting room, consent, notes, audit.

The JSON API (``/api/...``, declared with the ApiRegistry) and the server-rendered pages
(``/practice/...``) call the same library functions in therapy.*, which check every action
with therapy.permissions; the pages also ask therapy.permissions what to offer. Errors from
the library become ``{"error": {"code", "message"}}`` (API) or the readable error page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from environments import catalog
from therapy import (
    accounts,
    appointments,
    calendar_feed,
    care,
    consent,
    notes,
    permissions,
    practice_audit,
    rooms,
    sealing,
    waiting_room,
)
from therapy.accounts import AccountError, Role, User, ValidationError
from therapy.audit import Actor
from therapy.keyfile import KeyFileError, MasterKeyring, read_keyfile
from therapy.permissions import Action, Facts
from web import api_accounts, appkeys
from web.api_accounts import SignupBody, actor_of
from web.errors import ApiError, json_response, not_found
from web.pages import render
from web.routing import ANY_USER, ApiRegistry, current_user, require_user

THERAPIST = [Role.THERAPIST]
PATIENT = [Role.PATIENT]
ADMIN = [Role.ADMIN]


# --- plumbing ------------------------------------------------------------------------------

def keyring(request: web.Request) -> MasterKeyring:
    """The master keyring, re-read when the key file changes (``haven keys rotate`` may run
    while the server does; the new file holds every key still in use)."""
    data_dir = request.app[appkeys.DATA_DIR]
    try:
        mtime = data_dir.key_path.stat().st_mtime_ns
    except OSError:
        return data_dir.keyring
    if getattr(data_dir, "_practice_key_mtime", None) != mtime:
        try:
            data_dir.keyring = read_keyfile(data_dir.key_path)
        except KeyFileError:
            return data_dir.keyring
        data_dir._practice_key_mtime = mtime
    return data_dir.keyring


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


async def _as_api_errors(call) -> Any:
    """Await a store call, turning the practice's domain errors into API errors."""
    try:
        return await call
    except Exception as exc:
        err = api_error(exc)
        if err is None:
            raise
        raise err from None


async def write(request: web.Request, fn) -> Any:
    return await _as_api_errors(request.app[appkeys.STORE].write(fn))


async def read(request: web.Request, fn) -> Any:
    return await _as_api_errors(request.app[appkeys.STORE].read(fn))


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


def occurrence_view(db, occ: appointments.Occurrence, viewer: User,
                    now: datetime | None = None) -> dict:
    """An occurrence as the viewer sees it: their zone, the other person's name, the visit."""
    now = now or datetime.now(UTC)
    view = occ.public(viewer.time_zone)
    other = occ.patient_id if viewer.id == occ.therapist_id else occ.therapist_id
    view["with"] = names(db, [other])[other]
    visit = waiting_room.visit_for(db, occ.appointment_id, occ.index)
    view["visit"] = {"id": visit["id"], "status": visit["status"]} if visit else None
    view["open_now"] = occ.is_open(now)
    view["check_in_opens"] = occ.check_in_opens().isoformat()
    return view


# --- request bodies ------------------------------------------------------------------------

def _opt(data: dict, name: str, kind: type | tuple, label: str):
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise ValidationError(name, f"{name} must be {label}")
    if not isinstance(value, kind):
        raise ValidationError(name, f"{name} must be {label}")
    return value


def _req(data: dict, name: str, kind: type | tuple, label: str):
    value = _opt(data, name, kind, label)
    if value is None:
        raise ValidationError(name, f"{name} is required")
    return value


@dataclass(frozen=True)
class AppointmentBody:
    patient_id: int
    start_local: str
    time_zone: str
    duration_minutes: int
    weekly: bool
    occurrences: int
    environment_id: str | None
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["patient_id", "start_local", "time_zone"],
        "properties": {
            "patient_id": {"type": "integer"},
            "start_local": {"type": "string", "example": "2026-03-30T18:00",
                            "description": "wall-clock time in time_zone"},
            "time_zone": {"type": "string", "example": "Europe/London"},
            "duration_minutes": {"type": "integer", "minimum": appointments.DURATION_MIN,
                                 "maximum": appointments.DURATION_MAX, "default": 50},
            "weekly": {"type": "boolean", "default": False},
            "occurrences": {"type": "integer", "minimum": 1,
                            "maximum": appointments.MAX_OCCURRENCES, "default": 1},
            "environment_id": {"type": "string"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> AppointmentBody:
        start = _req(data, "start_local", str, "a local time like 2026-03-30T18:00")
        appointments.parse_local(start)
        weekly = bool(_opt(data, "weekly", bool, "true or false"))
        occurrences = _opt(data, "occurrences", int, "a whole number")
        return cls(
            patient_id=_req(data, "patient_id", int, "a whole number"),
            start_local=start,
            time_zone=accounts.validate_time_zone(_req(data, "time_zone", str, "a zone name")),
            duration_minutes=appointments.validate_duration(
                _opt(data, "duration_minutes", int, "a whole number") or 50),
            weekly=weekly,
            occurrences=occurrences if occurrences is not None else (12 if weekly else 1),
            environment_id=_opt(data, "environment_id", str, "an environment id"),
        )


@dataclass(frozen=True)
class RescheduleBody:
    occurrence: int
    start_local: str
    time_zone: str | None
    duration_minutes: int | None
    scope: str
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["occurrence", "start_local"],
        "properties": {
            "occurrence": {"type": "integer", "minimum": 0},
            "start_local": {"type": "string"},
            "time_zone": {"type": "string"},
            "duration_minutes": {"type": "integer"},
            "scope": {"type": "string", "enum": ["this", "following"], "default": "this"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> RescheduleBody:
        start = _req(data, "start_local", str, "a local time like 2026-03-30T18:00")
        appointments.parse_local(start)
        tz = _opt(data, "time_zone", str, "a zone name")
        scope = _opt(data, "scope", str, "this or following") or "this"
        if scope not in ("this", "following"):
            raise ValidationError("scope", "scope must be this or following")
        return cls(_req(data, "occurrence", int, "a whole number"), start,
                   accounts.validate_time_zone(tz) if tz else None,
                   _opt(data, "duration_minutes", int, "a whole number"), scope)


@dataclass(frozen=True)
class CancelBody:
    occurrence: int | None
    scope: str
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "occurrence": {"type": "integer", "minimum": 0,
                           "description": "leave out to cancel the whole series"},
            "scope": {"type": "string", "enum": ["this", "following"], "default": "this"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> CancelBody:
        scope = _opt(data, "scope", str, "this or following") or "this"
        if scope not in ("this", "following"):
            raise ValidationError("scope", "scope must be this or following")
        return cls(_opt(data, "occurrence", int, "a whole number"), scope)


@dataclass(frozen=True)
class EnvironmentBody:
    environment_id: str
    occurrence: int | None
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["environment_id"],
        "properties": {
            "environment_id": {"type": "string"},
            "occurrence": {"type": "integer", "minimum": 0,
                           "description": "leave out to choose for every session"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> EnvironmentBody:
        env = appointments.validate_environment(
            _req(data, "environment_id", str, "an environment id"))
        return cls(env, _opt(data, "occurrence", int, "a whole number"))


@dataclass(frozen=True)
class ConsentBody:
    document_id: str
    version: int
    sha256: str
    typed_name: str
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["document_id", "version", "sha256", "typed_name"],
        "properties": {
            "document_id": {"type": "string"},
            "version": {"type": "integer"},
            "sha256": {"type": "string", "description": "SHA-256 of the text you read"},
            "typed_name": {"type": "string", "maxLength": consent.TYPED_NAME_MAX},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> ConsentBody:
        return cls(_req(data, "document_id", str, "a document id"),
                   _req(data, "version", int, "a whole number"),
                   _req(data, "sha256", str, "a hex digest"),
                   _req(data, "typed_name", str, "your name"))


@dataclass(frozen=True)
class NoteBody:
    kind: str
    template: str
    sections: dict
    shared_with_patient: bool
    appointment_id: int | None
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["kind", "template", "sections"],
        "properties": {
            "kind": {"type": "string", "enum": ["progress", "psychotherapy"]},
            "template": {"type": "string", "enum": list(notes.TEMPLATES)},
            "sections": {"type": "object", "additionalProperties": {"type": "string"}},
            "shared_with_patient": {"type": "boolean", "default": False},
            "appointment_id": {"type": "integer"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> NoteBody:
        kind = _req(data, "kind", str, "progress or psychotherapy")
        if kind not in ("progress", "psychotherapy"):
            raise ValidationError("kind", "kind must be progress or psychotherapy")
        template = _req(data, "template", str, "a template name")
        try:
            sections = notes.validate_sections(template, data.get("sections", {}))
        except notes.NoteError as exc:
            raise ValidationError(exc.field or "sections", exc.message) from None
        return cls(kind, template, sections,
                   bool(_opt(data, "shared_with_patient", bool, "true or false")),
                   _opt(data, "appointment_id", int, "a whole number"))


@dataclass(frozen=True)
class NotePatchBody:
    sections: dict | None
    shared_with_patient: bool | None
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "sections": {"type": "object", "additionalProperties": {"type": "string"}},
            "shared_with_patient": {"type": "boolean"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> NotePatchBody:
        return cls(_opt(data, "sections", dict, "an object of text fields"),
                   _opt(data, "shared_with_patient", bool, "true or false"))


@dataclass(frozen=True)
class AddendumBody:
    text: str
    schema: ClassVar[dict] = {
        "type": "object", "required": ["text"],
        "properties": {"text": {"type": "string", "maxLength": notes.ADDENDUM_MAX}},
    }

    @classmethod
    def parse(cls, data: dict) -> AddendumBody:
        return cls(_req(data, "text", str, "text"))


@dataclass(frozen=True)
class EraseBody:
    confirm_username: str
    schema: ClassVar[dict] = {
        "type": "object", "required": ["confirm_username"],
        "properties": {"confirm_username": {
            "type": "string", "description": "the patient's username, to confirm"}},
    }

    @classmethod
    def parse(cls, data: dict) -> EraseBody:
        return cls(_req(data, "confirm_username", str, "the patient's username"))


# --- shared operations (API and pages) -----------------------------------------------------

def _patient_summaries(db, therapist: User) -> list[dict]:
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


def _dashboard(db, user: User) -> dict:
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


# --- the JSON API --------------------------------------------------------------------------

def register_api(api: ApiRegistry) -> None:
    tags = ["practice"]

    @api.operation("POST", "/api/practice/invites", summary="Make an invite link for a new "
                   "patient (copy it to them; nothing is e-mailed)", auth=THERAPIST, tags=tags)
    async def api_create_invite(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        actor = actor_of(request)
        token, expires = await write(request, lambda db: care.create_invite(db, user,
                                                                            actor=actor))
        return json_response({"invite_url": f"{base_url(request)}/practice/invite/{token}",
                              "expires_at": expires}, status=201)

    @api.operation("GET", "/api/practice/patients", summary="My patients", auth=THERAPIST,
                   tags=tags)
    async def api_patients(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        return json_response({"patients": await read(request, lambda db: _patient_summaries(
            db, user))})

    @api.operation("GET", "/api/practice/dashboard", summary="My upcoming sessions, the "
                   "waiting room (therapists) and consent status (patients)", tags=tags)
    async def api_dashboard(request: web.Request) -> web.Response:
        user = require_user(request)
        return json_response(await read(request, lambda db: _dashboard(db, user)))

    @api.operation("GET", "/api/appointments", summary="My sessions in my time zone "
                   "(?past=1 to include past ones)", tags=tags)
    async def api_appointments(request: web.Request) -> web.Response:
        user = require_user(request)
        past = request.query.get("past") == "1"

        def load(db):
            return [occurrence_view(db, o, user) for o in appointments.occurrences_for(
                db, user, include_past=past)]

        return json_response({"time_zone": user.time_zone,
                              "occurrences": await read(request, load)})

    @api.operation("POST", "/api/appointments", summary="Schedule a session (optionally "
                   "weekly)", auth=THERAPIST, body=AppointmentBody, tags=tags,
                   errors=[404, 409])
    async def api_schedule(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        b: AppointmentBody = request[appkeys.BODY]
        actor = actor_of(request)

        def go(db):
            appt_id = appointments.schedule(
                db, user, b.patient_id, b.start_local, b.time_zone, b.duration_minutes,
                weekly=b.weekly, occurrences=b.occurrences, environment_id=b.environment_id,
                actor=actor)
            return appt_id, [occurrence_view(db, o, user)
                             for o in appointments.occurrences(db, appt_id)]

        appt_id, occ = await write(request, go)
        return json_response({"appointment_id": appt_id, "occurrences": occ}, status=201)

    @api.operation("GET", "/api/appointments/{appointment_id}", summary="One appointment's "
                   "sessions", tags=tags, errors=[404])
    async def api_appointment(request: web.Request) -> web.Response:
        user = require_user(request)
        appt_id = int_param(request.match_info["appointment_id"], "appointment id")

        def load(db):
            appointments.require_view(db, user, appt_id)
            return [occurrence_view(db, o, user) for o in appointments.occurrences(db, appt_id)]

        return json_response({"appointment_id": appt_id,
                              "occurrences": await read(request, load)})

    @api.operation("POST", "/api/appointments/{appointment_id}/reschedule",
                   summary="Move one session, or it and the following ones", auth=THERAPIST,
                   body=RescheduleBody, tags=tags, errors=[404, 409])
    async def api_reschedule(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        b: RescheduleBody = request[appkeys.BODY]
        appt_id = int_param(request.match_info["appointment_id"], "appointment id")
        actor = actor_of(request)
        target = await write(request, lambda db: appointments.reschedule(
            db, user, appt_id, b.occurrence, b.start_local, time_zone=b.time_zone,
            duration_minutes=b.duration_minutes, scope=b.scope, actor=actor))
        return json_response({"appointment_id": target})

    @api.operation("POST", "/api/appointments/{appointment_id}/cancel",
                   summary="Cancel one session, it and the following, or the whole series",
                   auth=THERAPIST, body=CancelBody, tags=tags, errors=[404])
    async def api_cancel(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        b: CancelBody = request[appkeys.BODY]
        appt_id = int_param(request.match_info["appointment_id"], "appointment id")
        actor = actor_of(request)
        await write(request, lambda db: appointments.cancel(
            db, user, appt_id, b.occurrence, scope=b.scope, actor=actor))
        return json_response({"ok": True})

    @api.operation("PUT", "/api/appointments/{appointment_id}/environment",
                   summary="Choose where to meet (patient)", auth=PATIENT, body=EnvironmentBody,
                   tags=tags, errors=[404])
    async def api_environment(request: web.Request) -> web.Response:
        user = require_user(request, PATIENT)
        b: EnvironmentBody = request[appkeys.BODY]
        appt_id = int_param(request.match_info["appointment_id"], "appointment id")
        actor = actor_of(request)
        await write(request, lambda db: appointments.choose_environment(
            db, user, appt_id, b.environment_id, b.occurrence, actor=actor))
        return json_response({"ok": True, "environment_id": b.environment_id})

    @api.operation("POST", "/api/appointments/{appointment_id}/occurrences/{occurrence}/"
                   "check-in", summary="Check in to the waiting room (patient)", auth=PATIENT,
                   tags=tags, errors=[404, 409])
    async def api_check_in(request: web.Request) -> web.Response:
        user = require_user(request, PATIENT)
        visit = await do_check_in(
            request, user, int_param(request.match_info["appointment_id"], "appointment id"),
            int_param(request.match_info["occurrence"], "occurrence"))
        return json_response({"visit": visit}, status=201)

    @api.operation("GET", "/api/waiting-room", summary="Who is waiting for me (therapist)",
                   auth=THERAPIST, tags=tags)
    async def api_waiting_room(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        return json_response({"visits": await read(
            request, lambda db: waiting_room.waiting_list(db, user))})

    @api.operation("GET", "/api/visits/{visit_id}", summary="A visit's status", tags=tags,
                   errors=[404])
    async def api_visit(request: web.Request) -> web.Response:
        user = require_user(request)
        visit_id = request.match_info["visit_id"]
        return json_response({"visit": await read(
            request, lambda db: waiting_room.status(db, user, visit_id))})

    @api.operation("POST", "/api/visits/{visit_id}/join", summary="Once admitted: a join "
                   "link for the session's room (patient)", auth=PATIENT, tags=tags,
                   errors=[404, 409])
    async def api_join(request: web.Request) -> web.Response:
        user = require_user(request, PATIENT)
        visit_id = request.match_info["visit_id"]
        actor = actor_of(request)
        got = await write(request, lambda db: waiting_room.patient_join(
            db, user, visit_id, actor=actor))
        if got is None:
            raise ApiError(409, "still_waiting", "your therapist has not admitted you yet")
        room_id, token = got
        return json_response({"room_id": room_id, "join_path": join_path(room_id, token),
                              "join_url": rooms.join_url(base_url(request), room_id, token)})

    @api.operation("POST", "/api/visits/{visit_id}/admit", summary="Admit the waiting "
                   "patient; returns the therapist's host link", auth=THERAPIST, tags=tags,
                   errors=[404, 409])
    async def api_admit(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        room_id, token = await do_admit(request, user, request.match_info["visit_id"])
        return json_response({"room_id": room_id, "join_path": join_path(room_id, token),
                              "join_url": rooms.join_url(base_url(request), room_id, token)})

    @api.operation("POST", "/api/visits/{visit_id}/host-link", summary="A fresh host link "
                   "to rejoin (therapist)", auth=THERAPIST, tags=tags, errors=[404, 409])
    async def api_host_link(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        visit_id = request.match_info["visit_id"]
        actor = actor_of(request)
        room_id, token = await write(request, lambda db: waiting_room.host_link(
            db, user, visit_id, actor=actor))
        return json_response({"room_id": room_id, "join_path": join_path(room_id, token),
                              "join_url": rooms.join_url(base_url(request), room_id, token)})

    @api.operation("POST", "/api/visits/{visit_id}/end", summary="End the session for "
                   "everyone (closes the room)", auth=THERAPIST, tags=tags, errors=[404])
    async def api_end(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        visit_id = request.match_info["visit_id"]
        await end_visit(request, user, visit_id)
        return json_response({"ok": True})

    @api.operation("GET", "/api/consent-documents", summary="The current consent documents",
                   auth=ANY_USER, tags=tags)
    async def api_consent_documents(request: web.Request) -> web.Response:
        return json_response({"documents": [d.summary() for d in consent.current_documents()]})

    @api.operation("GET", "/api/consent-documents/{document_id}", summary="One consent "
                   "document's text (?version= for an older one)", auth=ANY_USER, tags=tags,
                   errors=[404])
    async def api_consent_document(request: web.Request) -> web.Response:
        version = request.query.get("version")
        doc = consent.document(request.match_info["document_id"],
                               int_param(version, "version") if version else None)
        if doc is None:
            raise not_found("no such consent document")
        return json_response({"document": {**doc.summary(), "text": doc.text}})

    @api.operation("GET", "/api/consents", summary="Consent status (mine, or ?patient_id= "
                   "for a therapist's patient)", tags=tags, errors=[403])
    async def api_consents(request: web.Request) -> web.Response:
        user = require_user(request)
        pid = request.query.get("patient_id")
        patient_id = int_param(pid, "patient_id") if pid else user.id

        def load(db):
            return {"status": consent.status(db, user, patient_id),
                    "signatures": consent.signatures(db, user, patient_id)}

        return json_response(await read(request, load))

    @api.operation("POST", "/api/consents", summary="Sign a consent document (patient)",
                   auth=PATIENT, body=ConsentBody, tags=tags, errors=[404, 409])
    async def api_sign_consent(request: web.Request) -> web.Response:
        user = require_user(request, PATIENT)
        b: ConsentBody = request[appkeys.BODY]
        actor = actor_of(request)
        sig_id = await write(request, lambda db: consent.sign(
            db, user, b.document_id, b.version, b.sha256, b.typed_name, actor=actor))
        return json_response({"signature_id": sig_id}, status=201)

    @api.operation("POST", "/api/consents/{document_id}/withdraw", summary="Withdraw a "
                   "consent (patient); takes effect at once", auth=PATIENT, tags=tags,
                   errors=[404, 409])
    async def api_withdraw_consent(request: web.Request) -> web.Response:
        user = require_user(request, PATIENT)
        doc_id = request.match_info["document_id"]
        actor = actor_of(request)
        count = await write(request, lambda db: consent.withdraw(db, user, doc_id, actor=actor))
        return json_response({"withdrawn": count})

    @api.operation("GET", "/api/patients/{patient_id}/notes", summary="The notes about a "
                   "patient that I may read (no text)", tags=tags, errors=[403])
    async def api_list_notes(request: web.Request) -> web.Response:
        user = require_user(request)
        pid = int_param(request.match_info["patient_id"], "patient id")
        metas = await read(request, lambda db: notes.list_notes(db, user, pid))
        return json_response({"notes": [m.public() for m in metas]})

    @api.operation("POST", "/api/patients/{patient_id}/notes", summary="Write a draft note "
                   "(needs the patient's consent to notes)", auth=THERAPIST, body=NoteBody,
                   tags=tags, errors=[409, 410])
    async def api_create_note(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        pid = int_param(request.match_info["patient_id"], "patient id")
        b: NoteBody = request[appkeys.BODY]
        ring, actor = keyring(request), actor_of(request)
        meta = await write(request, lambda db: notes.create_note(
            db, ring, user, pid, kind=b.kind, template=b.template, sections=b.sections,
            shared_with_patient=b.shared_with_patient, appointment_id=b.appointment_id,
            actor=actor))
        return json_response({"note": meta.public()}, status=201)

    @api.operation("GET", "/api/notes/{note_id}", summary="Read a note (audited)", tags=tags,
                   errors=[404, 410])
    async def api_read_note(request: web.Request) -> web.Response:
        user = require_user(request)
        note_id = request.match_info["note_id"]
        ring, actor = keyring(request), actor_of(request)
        return json_response({"note": await write(request, lambda db: notes.read_note(
            db, ring, user, note_id, actor=actor))})

    @api.operation("PATCH", "/api/notes/{note_id}", summary="Edit a draft (author only)",
                   auth=THERAPIST, body=NotePatchBody, tags=tags, errors=[404, 409])
    async def api_update_note(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        b: NotePatchBody = request[appkeys.BODY]
        note_id = request.match_info["note_id"]
        ring, actor = keyring(request), actor_of(request)
        meta = await write(request, lambda db: notes.update_note(
            db, ring, user, note_id, sections=b.sections,
            shared_with_patient=b.shared_with_patient, actor=actor))
        return json_response({"note": meta.public()})

    @api.operation("POST", "/api/notes/{note_id}/sign", summary="Sign and lock a draft",
                   auth=THERAPIST, tags=tags, errors=[404, 409])
    async def api_sign_note(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        note_id = request.match_info["note_id"]
        actor = actor_of(request)
        meta = await write(request, lambda db: notes.sign_note(db, user, note_id, actor=actor))
        return json_response({"note": meta.public()})

    @api.operation("POST", "/api/notes/{note_id}/addenda", summary="Add a correction to a "
                   "signed note", auth=THERAPIST, body=AddendumBody, tags=tags,
                   errors=[404, 409])
    async def api_addendum(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        b: AddendumBody = request[appkeys.BODY]
        note_id = request.match_info["note_id"]
        ring, actor = keyring(request), actor_of(request)
        add_id = await write(request, lambda db: notes.add_addendum(
            db, ring, user, note_id, b.text, actor=actor))
        return json_response({"addendum_id": add_id}, status=201)

    @api.operation("GET", "/api/me/record", summary="Export my record as JSON (patient; "
                   "audited)", auth=PATIENT, tags=tags)
    async def api_export(request: web.Request) -> web.Response:
        user = require_user(request, PATIENT)
        ring, actor = keyring(request), actor_of(request)
        record = await write(request, lambda db: notes.export_record(db, ring, user,
                                                                     actor=actor))
        return json_response(record, headers={
            "Content-Disposition": 'attachment; filename="haven-record.json"'})

    @api.operation("GET", "/api/audit", summary="The audit trail of a patient (therapist: "
                   "?patient_id= required) or of everything (admin); reading it is logged",
                   auth=[Role.THERAPIST, Role.ADMIN], tags=tags)
    async def api_audit(request: web.Request) -> web.Response:
        user = require_user(request, [Role.THERAPIST, Role.ADMIN])
        pid = request.query.get("patient_id")
        if pid is None and user.role != Role.ADMIN:
            raise ApiError(400, "invalid_request", "say which patient: ?patient_id=")
        patient_id = int_param(pid, "patient_id") if pid else None
        actor = actor_of(request)
        rows = await write(request, lambda db: practice_audit.trail(db, user, patient_id,
                                                                    actor=actor))
        return json_response({"entries": rows})

    @api.operation("POST", "/api/patients/{patient_id}/erase", summary="Crypto-shred a "
                   "patient's records (admin; irreversible; audited)", auth=ADMIN,
                   body=EraseBody, tags=tags, errors=[404])
    async def api_erase(request: web.Request) -> web.Response:
        admin = require_user(request, ADMIN)
        b: EraseBody = request[appkeys.BODY]
        pid = int_param(request.match_info["patient_id"], "patient id")
        await do_erase(request, admin, pid, b.confirm_username)
        return json_response({"ok": True, "erased": True})

    @api.operation("POST", "/api/me/calendar-feed", summary="Make my private calendar feed "
                   "link (replaces the old one)", tags=tags)
    async def api_calendar_feed(request: web.Request) -> web.Response:
        user = require_user(request)
        actor = actor_of(request)
        token = await write(request, lambda db: calendar_feed.create_feed(db, user,
                                                                          actor=actor))
        return json_response({"feed_url": f"{base_url(request)}/calendar/{token}.ics"},
                             status=201)

    @api.operation("DELETE", "/api/me/calendar-feed", summary="Turn my calendar feed off",
                   tags=tags)
    async def api_calendar_feed_off(request: web.Request) -> web.Response:
        user = require_user(request)
        actor = actor_of(request)
        await write(request, lambda db: calendar_feed.revoke_feed(db, user, actor=actor))
        return json_response({"ok": True})


async def calendar_ics(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    base = base_url(request)

    def build(db):
        user = calendar_feed.feed_user(db, token)
        return None if user is None else calendar_feed.build_ics(db, user, base)

    body = await request.app[appkeys.STORE].read(build)
    if body is None:
        raise web.HTTPNotFound(text="no such calendar feed")
    return web.Response(body=body, content_type="text/calendar", charset="utf-8",
                        headers={"Cache-Control": "private, no-store"})


# --- pages ---------------------------------------------------------------------------------

def _page_user(request: web.Request, roles=ANY_USER) -> User:
    return require_user(request, roles)


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def _see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


NOTICES = {
    "invite": "Invite link made. Copy it to your patient; it works once, for 14 days.",
    "scheduled": "Session scheduled.", "rescheduled": "Session moved.",
    "cancelled": "Session cancelled.", "environment": "Place chosen.",
    "signed": "Thank you. Your consent is recorded.",
    "withdrawn": "Your consent is withdrawn. This took effect immediately.",
    "note_saved": "Draft saved.", "note_signed": "Note signed and locked.",
    "addendum": "Addendum added.", "ended": "The session has ended for everyone.",
    "erased": "The patient's records were erased (their key was destroyed).",
    "feed": "Your new calendar link is below. The old link no longer works.",
    "feed_off": "Your calendar feed is turned off.", "linked": "You are now connected.",
}


def notice(request: web.Request) -> str | None:
    return NOTICES.get(request.query.get("done", ""))


async def practice_home(request: web.Request) -> web.Response:
    user = _page_user(request)

    def load(db):
        ctx = _dashboard(db, user)
        if user.role == Role.THERAPIST:
            ctx["patients"] = _patient_summaries(db, user)
        if user.role == Role.PATIENT:
            ctx["therapists"] = [t.display_name for t in care.therapists_of(db, user.id)]
            ctx["has_record"] = True
        return ctx

    ctx = await read(request, load)
    return render(request, "practice_home.html", notice=notice(request), invite_url=None,
                  environments=catalog.all_environments(), **ctx)


async def invite_submit(request: web.Request) -> web.Response:
    user = _page_user(request, THERAPIST)
    actor = actor_of(request)
    token, expires = await write(request, lambda db: care.create_invite(db, user, actor=actor))
    ctx = await read(request, lambda db: {**_dashboard(db, user),
                                         "patients": _patient_summaries(db, user)})
    return render(request, "practice_home.html", notice=NOTICES["invite"],
                  invite_url=f"{base_url(request)}/practice/invite/{token}",
                  invite_expires=expires, environments=catalog.all_environments(), **ctx)


async def invite_page(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    found = await read(request, lambda db: care.find_invite(db, token))
    if found is None:
        raise ApiError(404, "invite_invalid", "This invite link is not valid or has expired. "
                       "Ask your therapist for a new one.")
    return render(request, "practice_invite.html", token=token,
                  therapist_name=found["therapist_name"], error=None, field=None, form={})


async def invite_submit_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    form = await _form(request)
    found = await read(request, lambda db: care.find_invite(db, token))
    if found is None:
        raise ApiError(404, "invite_invalid", "This invite link is not valid or has expired. "
                       "Ask your therapist for a new one.")
    user = current_user(request)
    if user is not None:
        actor = actor_of(request)
        await write(request, lambda db: care.redeem_invite(db, token, user, actor=actor))
        raise _see_other("/practice?done=linked")
    data = {k: form.get(k, "") for k in ("username", "password", "display_name", "time_zone")}
    if not data["display_name"]:
        data.pop("display_name")
    data["time_zone"] = data.get("time_zone") or "UTC"
    shown = {k: v for k, v in data.items() if k != "password"}
    config = request.app[appkeys.CONFIG]
    try:
        body = SignupBody.parse(data)

        def create(db):
            with db.atomic():
                created = accounts.create_user(db, body.username, body.password, Role.PATIENT,
                                               body.display_name, body.time_zone,
                                               cost=config.scrypt_cost)
                care.redeem_invite(db, token, created, actor=Actor(created.id))
            return created

        await request.app[appkeys.STORE].write(create)
        _, session_token = await api_accounts.login(request, body.username, body.password)
    except ValidationError as exc:
        return render(request, "practice_invite.html", status=422, token=token,
                      therapist_name=found["therapist_name"], error=exc.message,
                      field=exc.field, form=shown)
    except (AccountError, care.CareError, ApiError) as exc:
        return render(request, "practice_invite.html", status=409, token=token,
                      therapist_name=found["therapist_name"], error=exc.message, field=None,
                      form=shown)
    redirect = _see_other("/practice/consent")
    api_accounts.set_session_cookie(request, redirect, session_token)
    raise redirect


async def patient_page(request: web.Request) -> web.Response:
    user = _page_user(request, THERAPIST)
    pid = int_param(request.match_info["patient_id"], "patient id")

    def load(db):
        facts = care.patient_facts(db, user, pid)
        permissions.require(Action.PATIENT_VIEW, care.subject(user), facts)
        patient = care.get_patient(db, pid)
        occ = appointments.occurrences_for(db, user, patient_id=pid, include_past=True,
                                           include_cancelled=True)
        metas = notes.list_notes(db, user, pid)
        authors = names(db, [m.author_id for m in metas])
        return {
            "patient": patient, "facts": facts,
            "consents": consent.status(db, user, pid),
            "occurrences": [occurrence_view(db, o, user) for o in occ],
            "notes": [{**m.public(), "author": authors[m.author_id]} for m in metas],
            "can_write": permissions.decide(Action.NOTE_CREATE, care.subject(user), facts),
        }

    ctx = await read(request, load)
    return render(request, "practice_patient.html", notice=notice(request),
                  templates=notes.TEMPLATE_NAMES, environments=catalog.all_environments(),
                  now_utc=datetime.now(UTC).isoformat(), **ctx)


async def schedule_submit(request: web.Request) -> web.StreamResponse:
    user = _page_user(request, THERAPIST)
    pid = int_param(request.match_info["patient_id"], "patient id")
    form = await _form(request)
    weekly = form.get("weekly") == "on"
    data = {
        "patient_id": pid, "start_local": form.get("start_local", ""),
        "time_zone": form.get("time_zone") or user.time_zone,
        "duration_minutes": int_param(form.get("duration_minutes") or "50", "duration"),
        "weekly": weekly,
        "occurrences": int_param(form.get("occurrences") or "1", "occurrences") if weekly
        else 1,
    }
    if form.get("environment_id"):
        data["environment_id"] = form["environment_id"]
    try:
        b = AppointmentBody.parse(data)
    except ValidationError as exc:
        raise api_error(exc) from None
    actor = actor_of(request)
    await write(request, lambda db: appointments.schedule(
        db, user, b.patient_id, b.start_local, b.time_zone, b.duration_minutes,
        weekly=b.weekly, occurrences=b.occurrences, environment_id=b.environment_id,
        actor=actor))
    raise _see_other(f"/practice/patients/{pid}?done=scheduled")


async def appointment_page(request: web.Request) -> web.Response:
    user = _page_user(request)
    appt_id = int_param(request.match_info["appointment_id"], "appointment id")

    def load(db):
        row = appointments.require_view(db, user, appt_id)
        occ = [occurrence_view(db, o, user) for o in appointments.occurrences(db, appt_id)]
        return {"row": row, "occurrences": occ,
                "patient_name": names(db, [row["patient_id"]])[row["patient_id"]]}

    ctx = await read(request, load)
    now = datetime.now(UTC).isoformat()
    return render(request, "practice_appointment.html", notice=notice(request),
                  environments=catalog.all_environments(), appointment_id=appt_id,
                  is_therapist=user.role == Role.THERAPIST,
                  is_patient=user.role == Role.PATIENT, now_utc=now, **ctx)


async def appointment_action_submit(request: web.Request) -> web.StreamResponse:
    user = _page_user(request, [Role.THERAPIST, Role.PATIENT])
    appt_id = int_param(request.match_info["appointment_id"], "appointment id")
    action = request.match_info["action"]
    form = await _form(request)
    actor = actor_of(request)
    occ_raw = form.get("occurrence", "")
    index = int_param(occ_raw, "occurrence") if occ_raw not in ("", "all") else None
    scope = form.get("scope") or "this"
    if scope not in ("this", "following"):
        raise ApiError(422, "invalid_field", "scope must be this or following")
    if action == "reschedule":
        if index is None:
            raise ApiError(422, "invalid_field", "say which session to move")
        start = form.get("start_local", "")
        await write(request, lambda db: appointments.reschedule(
            db, user, appt_id, index, start, time_zone=form.get("time_zone") or None,
            scope=scope, actor=actor))
        done = "rescheduled"
    elif action == "cancel":
        await write(request, lambda db: appointments.cancel(db, user, appt_id, index,
                                                            scope=scope, actor=actor))
        done = "cancelled"
    elif action == "environment":
        env = form.get("environment_id", "")
        await write(request, lambda db: appointments.choose_environment(
            db, user, appt_id, env, index, actor=actor))
        done = "environment"
    else:
        raise not_found()
    raise _see_other(f"/practice/appointments/{appt_id}?done={done}")


async def check_in_submit(request: web.Request) -> web.StreamResponse:
    user = _page_user(request, PATIENT)
    visit = await do_check_in(
        request, user, int_param(request.match_info["appointment_id"], "appointment id"),
        int_param(request.match_info["occurrence"], "occurrence"))
    raise _see_other(f"/practice/visits/{visit['id']}/wait")


async def wait_page(request: web.Request) -> web.Response:
    user = _page_user(request, PATIENT)
    visit_id = request.match_info["visit_id"]
    visit = await read(request, lambda db: waiting_room.status(db, user, visit_id))
    return render(request, "practice_wait.html", visit=visit)


async def join_submit(request: web.Request) -> web.StreamResponse:
    """No-JS fallback of the waiting page: go to the room if admitted, else back to wait."""
    user = _page_user(request, PATIENT)
    visit_id = request.match_info["visit_id"]
    actor = actor_of(request)
    got = await write(request, lambda db: waiting_room.patient_join(db, user, visit_id,
                                                                     actor=actor))
    if got is None:
        raise _see_other(f"/practice/visits/{visit_id}/wait")
    raise _see_other(join_path(*got))


async def waiting_room_page(request: web.Request) -> web.Response:
    user = _page_user(request, THERAPIST)
    visits = await read(request, lambda db: waiting_room.waiting_list(db, user))
    return render(request, "practice_waiting_room.html", visits=visits,
                  notice=notice(request))


async def visit_action_submit(request: web.Request) -> web.StreamResponse:
    user = _page_user(request, THERAPIST)
    visit_id = request.match_info["visit_id"]
    action = request.match_info["action"]
    actor = actor_of(request)
    if action == "admit":
        raise _see_other(join_path(*await do_admit(request, user, visit_id)))
    if action == "host-link":
        got = await write(request, lambda db: waiting_room.host_link(db, user, visit_id,
                                                                     actor=actor))
        raise _see_other(join_path(*got))
    if action == "end":
        await end_visit(request, user, visit_id)
        raise _see_other("/practice/waiting-room?done=ended")
    raise not_found()


async def consent_page(request: web.Request) -> web.Response:
    user = _page_user(request, PATIENT)
    status = await read(request, lambda db: consent.status(db, user, user.id))
    docs = []
    for row in status:
        doc = consent.document(row["document"]["id"])
        docs.append({**row, "blocks": consent.render_markdown(doc.text)})
    return render(request, "practice_consent.html", docs=docs, notice=notice(request))


async def consent_submit(request: web.Request) -> web.StreamResponse:
    user = _page_user(request, PATIENT)
    doc_id = request.match_info["document_id"]
    form = await _form(request)
    actor = actor_of(request)
    if request.match_info["action"] == "withdraw":
        await write(request, lambda db: consent.withdraw(db, user, doc_id, actor=actor))
        raise _see_other("/practice/consent?done=withdrawn")
    version = int_param(form.get("version", ""), "version")
    await write(request, lambda db: consent.sign(db, user, doc_id, version,
                                                 form.get("sha256", ""),
                                                 form.get("typed_name", ""), actor=actor))
    raise _see_other("/practice/consent?done=signed")


async def new_note_page(request: web.Request) -> web.Response:
    user = _page_user(request, THERAPIST)
    pid = int_param(request.match_info["patient_id"], "patient id")
    template = request.query.get("template", "soap")
    if template not in notes.TEMPLATES:
        template = "soap"

    def load(db):
        facts = care.patient_facts(db, user, pid)
        permissions.require(Action.NOTE_CREATE, care.subject(user), facts)
        return care.get_patient(db, pid)

    patient = await read(request, load)
    return render(request, "notes_new.html", patient=patient, note_template=template,
                  templates=notes.TEMPLATE_NAMES, fields=notes.TEMPLATES[template],
                  appointment_id=request.query.get("appointment_id", ""))


def _sections_from_form(form: dict[str, str], template: str) -> dict[str, str]:
    return {name: form.get(f"section_{name}", "") for name, _ in notes.TEMPLATES.get(
        template, ())}


async def new_note_submit(request: web.Request) -> web.StreamResponse:
    user = _page_user(request, THERAPIST)
    pid = int_param(request.match_info["patient_id"], "patient id")
    form = await _form(request)
    template = form.get("template", "")
    kind = form.get("kind", "progress")
    appt = form.get("appointment_id")
    ring, actor = keyring(request), actor_of(request)
    meta = await write(request, lambda db: notes.create_note(
        db, ring, user, pid, kind=kind, template=template,
        sections=_sections_from_form(form, template),
        shared_with_patient=form.get("shared_with_patient") == "on" and kind == "progress",
        appointment_id=int_param(appt, "appointment id") if appt else None, actor=actor))
    raise _see_other(f"/practice/notes/{meta.id}?done=note_saved")


async def note_page(request: web.Request) -> web.Response:
    user = _page_user(request)
    note_id = request.match_info["note_id"]
    ring, actor = keyring(request), actor_of(request)

    def load(db):
        opened = notes.read_note(db, ring, user, note_id, actor=actor)
        meta = notes.NoteMeta.from_row(db.table("notes").get(opened["id"]))
        facts = notes.note_facts(db, user, meta)
        subj = care.subject(user)
        who = names(db, [opened["author_id"], opened["patient_id"]]
                    + [a["author_id"] for a in opened["addenda"]])
        return {"note": opened, "names": who,
                "can_edit": permissions.allowed(Action.NOTE_EDIT, subj, facts),
                "can_addendum": permissions.allowed(Action.NOTE_ADDENDUM, subj, facts),
                "is_therapist": user.role == Role.THERAPIST}

    ctx = await write(request, load)
    return render(request, "notes_note.html", notice=notice(request), **ctx)


async def note_action_submit(request: web.Request) -> web.StreamResponse:
    user = _page_user(request, THERAPIST)
    note_id = request.match_info["note_id"]
    action = request.match_info["action"]
    form = await _form(request)
    ring, actor = keyring(request), actor_of(request)
    if action == "edit":
        def update(db):
            meta = notes.NoteMeta.from_row(db.table("notes").get(note_id)) if db.execute(
                "SELECT 1 FROM notes WHERE id = ?", [note_id]).fetchone() else None
            if meta is None:
                raise notes.NoteError("not_found", "no such note")
            shared = form.get("shared_with_patient") == "on" if \
                meta.kind == permissions.NoteKind.PROGRESS else None
            notes.update_note(db, ring, user, note_id,
                              sections=_sections_from_form(form, meta.template),
                              shared_with_patient=shared, actor=actor)
            if form.get("then") == "sign":
                notes.sign_note(db, user, note_id, actor=actor)
                return "note_signed"
            return "note_saved"

        done = await write(request, update)
    elif action == "sign":
        await write(request, lambda db: notes.sign_note(db, user, note_id, actor=actor))
        done = "note_signed"
    elif action == "addendum":
        text = form.get("text", "")
        await write(request, lambda db: notes.add_addendum(db, ring, user, note_id, text,
                                                           actor=actor))
        done = "addendum"
    else:
        raise not_found()
    raise _see_other(f"/practice/notes/{note_id}?done={done}")


async def record_page(request: web.Request) -> web.Response:
    user = _page_user(request, PATIENT)
    ring, actor = keyring(request), actor_of(request)
    printable = request.path.endswith("/print")
    record = await write(request, lambda db: notes.export_record(
        db, ring, user, actor=actor, format="print" if printable else "page"))
    return render(request, "practice_record.html", record=record, printable=printable)


async def audit_page(request: web.Request) -> web.Response:
    user = _page_user(request, [Role.THERAPIST, Role.ADMIN])
    pid_raw = request.query.get("patient_id")
    patient_id = int_param(pid_raw, "patient_id") if pid_raw else None
    if patient_id is None and user.role != Role.ADMIN:
        raise ApiError(400, "invalid_request", "Choose a patient to see their audit trail.")
    actor = actor_of(request)

    def load(db):
        rows = practice_audit.trail(db, user, patient_id, actor=actor)
        patient = care.get_patient(db, patient_id) if patient_id is not None else None
        return rows, patient

    rows, patient = await write(request, load)
    return render(request, "practice_audit.html", entries=rows, patient=patient)


async def calendar_page(request: web.Request) -> web.Response:
    user = _page_user(request)
    has = await read(request, lambda db: calendar_feed.has_feed(db, user))
    return render(request, "practice_calendar.html", has_feed=has, feed_url=None,
                  notice=notice(request))


async def calendar_submit(request: web.Request) -> web.Response:
    user = _page_user(request)
    actor = actor_of(request)
    if request.match_info["action"] == "off":
        await write(request, lambda db: calendar_feed.revoke_feed(db, user, actor=actor))
        raise _see_other("/practice/calendar?done=feed_off")
    token = await write(request, lambda db: calendar_feed.create_feed(db, user, actor=actor))
    return render(request, "practice_calendar.html", has_feed=True, notice=NOTICES["feed"],
                  feed_url=f"{base_url(request)}/calendar/{token}.ics")


async def erase_page(request: web.Request) -> web.Response:
    _page_user(request, ADMIN)
    patients = await read(request, lambda db: [
        {**u.public(), "erased": sealing.patient_erased(db, u.id)}
        for u in accounts.list_users(db) if u.role == Role.PATIENT])
    return render(request, "practice_erase.html", patients=patients, notice=notice(request))


async def erase_submit(request: web.Request) -> web.StreamResponse:
    admin = _page_user(request, ADMIN)
    form = await _form(request)
    await do_erase(request, admin, int_param(form.get("patient_id", ""), "patient"),
                   form.get("confirm_username", ""))
    raise _see_other("/practice/admin/erase?done=erased")


def register_pages(router: web.UrlDispatcher) -> None:
    router.add_get("/practice", practice_home, name="practice")
    router.add_post("/practice/invites", invite_submit)
    router.add_get("/practice/invite/{token}", invite_page)
    router.add_post("/practice/invite/{token}", invite_submit_page)
    router.add_get("/practice/patients/{patient_id:\\d+}", patient_page)
    router.add_post("/practice/patients/{patient_id:\\d+}/appointments", schedule_submit)
    router.add_get("/practice/patients/{patient_id:\\d+}/notes/new", new_note_page)
    router.add_post("/practice/patients/{patient_id:\\d+}/notes", new_note_submit)
    router.add_get("/practice/appointments/{appointment_id:\\d+}", appointment_page)
    router.add_post("/practice/appointments/{appointment_id:\\d+}/"
                    "{action:reschedule|cancel|environment}", appointment_action_submit)
    router.add_post("/practice/appointments/{appointment_id:\\d+}/occurrences/"
                    "{occurrence:\\d+}/check-in", check_in_submit)
    router.add_get("/practice/visits/{visit_id}/wait", wait_page)
    router.add_post("/practice/visits/{visit_id}/join", join_submit)
    router.add_get("/practice/waiting-room", waiting_room_page)
    router.add_post("/practice/visits/{visit_id}/{action:admit|host-link|end}",
                    visit_action_submit)
    router.add_get("/practice/consent", consent_page)
    router.add_post("/practice/consent/{document_id}/{action:sign|withdraw}", consent_submit)
    router.add_get("/practice/notes/{note_id}", note_page)
    router.add_post("/practice/notes/{note_id}/{action:edit|sign|addendum}",
                    note_action_submit)
    router.add_get("/practice/record", record_page)
    router.add_get("/practice/record/print", record_page)
    router.add_get("/practice/audit", audit_page)
    router.add_get("/practice/calendar", calendar_page)
    router.add_post("/practice/calendar/{action:new|off}", calendar_submit)
    router.add_get("/practice/admin/erase", erase_page)
    router.add_post("/practice/admin/erase", erase_submit)
    router.add_get("/calendar/{token}.ics", calendar_ics)


def register(api: ApiRegistry, router: web.UrlDispatcher) -> None:
    """Add the practice's API operations and pages."""
    register_api(api)
    register_pages(router)

