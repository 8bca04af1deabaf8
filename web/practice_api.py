"""The practice's JSON API: patients, appointments, waiting room, consent, notes, audit.

Every operation is declared with the ApiRegistry (so it is in /api/openapi.json); bodies are
parsed by web.practice_bodies, shared plumbing and operations live in web.practice_ops.
"""

from __future__ import annotations

from aiohttp import web

from therapy import (
    appointments,
    calendar_feed,
    care,
    consent,
    notes,
    practice_audit,
    rooms,
    waiting_room,
)
from therapy.accounts import Role
from web import appkeys
from web.api_accounts import actor_of
from web.errors import ApiError, json_response, not_found
from web.practice_bodies import (
    AddendumBody,
    AppointmentBody,
    CancelBody,
    ConsentBody,
    EnvironmentBody,
    EraseBody,
    NoteBody,
    NotePatchBody,
    RescheduleBody,
)
from web.practice_ops import (
    ADMIN,
    PATIENT,
    THERAPIST,
    base_url,
    dashboard,
    do_admit,
    do_check_in,
    do_erase,
    end_visit,
    int_param,
    join_path,
    keyring,
    occurrence_view,
    patient_summaries,
    read,
    write,
)
from web.routing import ANY_USER, ApiRegistry, require_user

ID_NUMBER = {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}


def register(api: ApiRegistry) -> None:
    """Add the practice's API operations."""
    tags = ["practice"]

    @api.operation("POST", "/api/practice/invites", summary="Make an invite link for a new "
                   "patient (copy it to them; nothing is e-mailed)", auth=THERAPIST, tags=tags,
                   status=201)
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
        return json_response({"patients": await read(request, lambda db: patient_summaries(
            db, user))})

    @api.operation("GET", "/api/practice/dashboard", summary="My upcoming sessions, the "
                   "waiting room (therapists) and consent status (patients)", tags=tags)
    async def apidashboard(request: web.Request) -> web.Response:
        user = require_user(request)
        return json_response(await read(request, lambda db: dashboard(db, user)))

    @api.operation("GET", "/api/appointments", summary="My sessions in my time zone "
                   "(?past=1 to include past ones)", tags=tags,
                   query={"past": {"type": "string", "enum": ["0", "1"]}})
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
                   errors=[404, 409], status=201)
    async def api_schedule(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        b: AppointmentBody = request[appkeys.BODY]
        actor = actor_of(request)

        def go(db):
            with db.atomic():  # the reply is built before the row commits
                appt_id = appointments.schedule(
                    db, user, b.patient_id, b.start_local, b.time_zone, b.duration_minutes,
                    weekly=b.weekly, occurrences=b.occurrences,
                    environment_id=b.environment_id, actor=actor)
                return appt_id, [occurrence_view(db, o, user)
                                 for o in appointments.occurrences(db, appt_id)]

        appt_id, occ = await write(request, go)
        return json_response({"appointment_id": appt_id, "occurrences": occ}, status=201)

    @api.operation("GET", "/api/appointments/{appointment_id:int}", summary="One appointment's "
                   "sessions", tags=tags, errors=[404])
    async def api_appointment(request: web.Request) -> web.Response:
        user = require_user(request)
        appt_id = int_param(request.match_info["appointment_id"], "appointment id")

        def load(db):
            appointments.require_view(db, user, appt_id)
            return [occurrence_view(db, o, user)
                    for o in appointments.occurrence_entries(db, appt_id)]

        return json_response({"appointment_id": appt_id,
                              "occurrences": await read(request, load)})

    @api.operation("POST", "/api/appointments/{appointment_id:int}/reschedule",
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

    @api.operation("POST", "/api/appointments/{appointment_id:int}/cancel",
                   summary="Cancel one session, it and the following, or the whole series",
                   auth=THERAPIST, body=CancelBody, tags=tags, errors=[404, 409])
    async def api_cancel(request: web.Request) -> web.Response:
        user = require_user(request, THERAPIST)
        b: CancelBody = request[appkeys.BODY]
        appt_id = int_param(request.match_info["appointment_id"], "appointment id")
        actor = actor_of(request)
        await write(request, lambda db: appointments.cancel(
            db, user, appt_id, b.occurrence, scope=b.scope, actor=actor))
        return json_response({"ok": True})

    @api.operation("PUT", "/api/appointments/{appointment_id:int}/environment",
                   summary="Choose where to meet (patient)", auth=PATIENT, body=EnvironmentBody,
                   tags=tags, errors=[404, 409])
    async def api_environment(request: web.Request) -> web.Response:
        user = require_user(request, PATIENT)
        b: EnvironmentBody = request[appkeys.BODY]
        appt_id = int_param(request.match_info["appointment_id"], "appointment id")
        actor = actor_of(request)
        await write(request, lambda db: appointments.choose_environment(
            db, user, appt_id, b.environment_id, b.occurrence, actor=actor))
        return json_response({"ok": True, "environment_id": b.environment_id})

    @api.operation("POST", "/api/appointments/{appointment_id:int}/occurrences/{occurrence:int}/"
                   "check-in", summary="Check in to the waiting room (patient)", auth=PATIENT,
                   tags=tags, errors=[404, 409], status=201)
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
                   "everyone (closes the room)", auth=THERAPIST, tags=tags, errors=[404, 409])
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
                   errors=[404], query={"version": ID_NUMBER})
    async def api_consent_document(request: web.Request) -> web.Response:
        version = request.query.get("version")
        doc = consent.document(request.match_info["document_id"],
                               int_param(version, "version") if version else None)
        if doc is None:
            raise not_found("no such consent document")
        return json_response({"document": {**doc.summary(), "text": doc.text}})

    @api.operation("GET", "/api/consents", summary="Consent status (mine, or ?patient_id= "
                   "for a therapist's patient)", tags=tags, errors=[403, 404],
                   query={"patient_id": ID_NUMBER})
    async def api_consents(request: web.Request) -> web.Response:
        user = require_user(request)
        pid = request.query.get("patient_id")
        patient_id = int_param(pid, "patient_id") if pid else user.id

        def load(db):
            return {"status": consent.status(db, user, patient_id),
                    "signatures": consent.signatures(db, user, patient_id)}

        return json_response(await read(request, load))

    @api.operation("POST", "/api/consents", summary="Sign a consent document (patient)",
                   auth=PATIENT, body=ConsentBody, tags=tags, errors=[404, 409], status=201)
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

    @api.operation("GET", "/api/patients/{patient_id:int}/notes", summary="The notes about a "
                   "patient that I may read (no text)", tags=tags, errors=[403])
    async def api_list_notes(request: web.Request) -> web.Response:
        user = require_user(request)
        pid = int_param(request.match_info["patient_id"], "patient id")
        metas = await read(request, lambda db: notes.list_notes(db, user, pid))
        return json_response({"notes": [m.public() for m in metas]})

    @api.operation("POST", "/api/patients/{patient_id:int}/notes", summary="Write a draft note "
                   "(needs the patient's consent to notes)", auth=THERAPIST, body=NoteBody,
                   tags=tags, errors=[404, 409, 410], status=201)
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
                   errors=[404, 409], status=201)
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
                   auth=[Role.THERAPIST, Role.ADMIN], tags=tags, errors=[404],
                   query={"patient_id": ID_NUMBER})
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

    @api.operation("POST", "/api/patients/{patient_id:int}/erase", summary="Crypto-shred a "
                   "patient's records (admin; irreversible; audited)", auth=ADMIN,
                   body=EraseBody, tags=tags, errors=[404])
    async def api_erase(request: web.Request) -> web.Response:
        admin = require_user(request, ADMIN)
        b: EraseBody = request[appkeys.BODY]
        pid = int_param(request.match_info["patient_id"], "patient id")
        await do_erase(request, admin, pid, b.confirm_username)
        return json_response({"ok": True, "erased": True})

    @api.operation("POST", "/api/me/calendar-feed", summary="Make my private calendar feed "
                   "link (replaces the old one)", tags=tags, status=201)
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
