"""The safety JSON API: crisis lines and the account's country, private alerts and concerns,
reports, the facilitators' safety dashboard, the admin's reports about facilitators,
deleting a group (crypto-shred), and consented group notes. Declared through the
ApiRegistry (so in /api/openapi.json); each handler calls one groups.* function, which asks
groups.permissions."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from groups import crisis, group_notes, safety
from groups.group_notes import ConsentMissing
from therapy import care_alerts
from therapy.accounts import Role
from therapy.care_alerts import CareAlertError
from therapy.sealing import SealingError
from web import appkeys
from web.api_accounts import actor_of
from web.errors import ApiError, json_response
from web.groups_actions import api_error, group_id
from web.routing import PUBLIC, ApiRegistry, current_user, require_user
from web.safety_bodies import (
    AlertBody,
    AlertStatusBody,
    ConcernBody,
    CountryBody,
    NoteEditBody,
    NotesConsentBody,
    NoteTextBody,
    ReportBody,
    ReportStatusBody,
)

TAGS = ["safety"]
G = "/api/groups/{group_id:int}"


def crisis_directory(request: web.Request) -> crisis.CrisisDirectory:
    return request.app[appkeys.CRISIS]


def ring(request: web.Request):
    return request.app[appkeys.KEYRING].current()


def _mapped_error(exc: Exception) -> ApiError | None:
    if isinstance(exc, ConsentMissing):
        return ApiError(409, "consent_missing", exc.message, missing=exc.missing)
    if isinstance(exc, CareAlertError):
        return ApiError(404 if exc.code == "not_found" else 409, exc.code, exc.message)
    if isinstance(exc, SealingError):
        return ApiError(409, exc.code, "this group's safety records and notes were deleted")
    return api_error(exc)


async def _run(call) -> Any:
    try:
        return await call
    except Exception as exc:
        err = _mapped_error(exc)
        if err is None:
            raise
        raise err from None


async def write(request: web.Request, fn) -> Any:
    return await _run(request.app[appkeys.STORE].write(fn))


async def read(request: web.Request, fn) -> Any:
    return await _run(request.app[appkeys.STORE].read(fn))


async def notes_changed(request: web.Request, gid: int) -> None:
    """Notes or consents of a group changed: the voice hub refreshes the in-room notes
    indicator of its meetings (the state only)."""
    hub = request.app.get(appkeys.VOICE)
    if hub is not None:
        await hub.notes_changed(gid)


def path_int(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 15 or int(raw) == 0:
        raise ApiError(404, "not_found", f"no such {what} in this group")
    return int(raw)


async def country_for(request: web.Request) -> tuple[str | None, str]:
    """The country whose lines this person sees first, and why: their account setting,
    else the browser's languages (Accept-Language), else none."""
    user = current_user(request)
    known = crisis_directory(request).countries
    if user is not None:
        code = await request.app[appkeys.STORE].read(
            lambda db: safety.account_country(db, user.id))
        if code in known:
            return code, "account"
    code = crisis.country_from_locales(
        crisis.accept_language(request.headers.get("Accept-Language")), known)
    return code, ("browser" if code else "none")


def register(api: ApiRegistry) -> None:
    def op(method: str, path: str, *, errors=(), **kw):
        if "{group_id" in path:
            errors = sorted({*errors, 404, 409, 422})
        return api.operation(method, path, errors=errors, tags=TAGS, **kw)

    # --- crisis lines and the account's country ------------------------------------------

    @op("GET", "/api/safety/crisis-lines", summary="Crisis lines and emergency numbers by "
        "country, with the country this person sees first", auth=PUBLIC)
    async def api_crisis_lines(request: web.Request) -> web.Response:
        code, why = await country_for(request)
        return json_response({"country": code, "country_from": why,
                              **crisis_directory(request).public()})

    @op("GET", "/api/me/safety", summary="My safety settings (the country of my crisis lines)")
    async def api_my_safety(request: web.Request) -> web.Response:
        user = require_user(request)
        code = await read(request, lambda db: safety.account_country(db, user.id))
        return json_response({"country": code})

    @op("PUT", "/api/me/safety", summary="Set the country whose crisis lines I see (null: "
        "use my browser's language)", body=CountryBody, errors=[422])
    async def api_set_my_safety(request: web.Request) -> web.Response:
        user = require_user(request)
        b: CountryBody = request[appkeys.BODY]
        actor = actor_of(request)
        directory = crisis_directory(request)
        code = await write(request, lambda db: safety.set_account_country(
            db, user, b.country, directory, actor=actor))
        return json_response({"country": code})

    # --- a patient's alert to their therapist (1:1 care) ----------------------------------

    @op("POST", "/api/me/safety/alerts", summary="Let my therapist know I'm struggling "
        "(patients; only my therapists see it)", auth=[Role.PATIENT], body=AlertBody,
        status=201, errors=[409, 422])
    async def api_send_care_alert(request: web.Request) -> web.Response:
        user = require_user(request, [Role.PATIENT])
        b: AlertBody = request[appkeys.BODY]
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"alert": await write(request, lambda db: care_alerts.send(
            db, keys, user, b.message, actor=actor))}, status=201)

    @op("GET", "/api/practice/safety-alerts", summary="My patients' alerts (therapists; "
        "reads are audited)", auth=[Role.THERAPIST])
    async def api_care_alerts(request: web.Request) -> web.Response:
        user = require_user(request, [Role.THERAPIST])
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"alerts": await write(request, lambda db: care_alerts.for_therapist(
            db, keys, user, actor=actor))})

    @op("PATCH", "/api/practice/safety-alerts/{care_alert_id:int}", summary="Mark a "
        "patient's alert followed up (or open again) (their therapist)",
        auth=[Role.THERAPIST], body=AlertStatusBody, errors=[404, 422])
    async def api_care_alert_status(request: web.Request) -> web.Response:
        user = require_user(request, [Role.THERAPIST])
        aid = path_int(request, "care_alert_id", "alert")
        b: AlertStatusBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"alert": await write(request, lambda db: care_alerts.set_status(
            db, user, aid, b.status, actor=actor))})

    # --- alerts, concerns, reports --------------------------------------------------------

    @op("POST", G + "/safety/alerts", summary="Let the facilitators know I'm struggling "
        "(private: other members see nothing)", body=AlertBody, status=201)
    async def api_send_alert(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: AlertBody = request[appkeys.BODY]
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"alert": await write(request, lambda db: safety.send_alert(
            db, keys, user, gid, b.message, actor=actor))}, status=201)

    @op("POST", G + "/safety/concerns", summary="Flag concern about a member (facilitators)",
        body=ConcernBody, status=201)
    async def api_flag_concern(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: ConcernBody = request[appkeys.BODY]
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"alert": await write(request, lambda db: safety.flag_concern(
            db, keys, user, gid, b.member_id, b.note, actor=actor))}, status=201)

    @op("PATCH", G + "/safety/alerts/{alert_id:int}", summary="Mark an alert or concern "
        "handled (or open again) (facilitators)", body=AlertStatusBody)
    async def api_alert_status(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        aid = path_int(request, "alert_id", "alert")
        b: AlertStatusBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"alert": await write(request, lambda db: safety.set_alert_status(
            db, user, gid, aid, b.status, actor=actor))})

    @op("POST", G + "/safety/reports", summary="Report a member's behaviour to the "
        "facilitators (about a facilitator: to the admin); the reported member is never "
        "told who reported", body=ReportBody, status=201)
    async def api_file_report(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: ReportBody = request[appkeys.BODY]
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"report": await write(request, lambda db: safety.file_report(
            db, keys, user, gid, b.member_id, b.category, b.text, actor=actor))}, status=201)

    @op("PATCH", G + "/safety/reports/{report_id:int}", summary="Mark a report handled or "
        "dismissed, with a note (facilitators; about a facilitator: admin)",
        body=ReportStatusBody)
    async def api_report_status(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        rid = path_int(request, "report_id", "report")
        b: ReportStatusBody = request[appkeys.BODY]
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"report": await write(request, lambda db: safety.set_report_status(
            db, keys, user, gid, rid, b.status, b.note, actor=actor))})

    @op("GET", G + "/safety", summary="The safety dashboard: alerts, concerns and reports "
        "(facilitators; reads are audited)")
    async def api_safety_dashboard(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"safety": await write(request, lambda db: safety.dashboard(
            db, keys, user, gid, actor=actor))})

    @op("GET", "/api/admin/safety/reports", summary="Reports about facilitators, in every "
        "group (admin; audited)", auth=[Role.ADMIN])
    async def api_admin_reports(request: web.Request) -> web.Response:
        user = require_user(request, [Role.ADMIN])
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"reports": await write(request, lambda db: safety.admin_reports(
            db, keys, user, actor=actor))})

    @op("DELETE", G, summary="Delete a group: close it and destroy its key, so its notes, "
        "alerts and reports can never be read again (admin)", auth=[Role.ADMIN])
    async def api_delete_group(request: web.Request) -> web.Response:
        user = require_user(request, [Role.ADMIN])
        gid = group_id(request)
        actor = actor_of(request)
        return json_response({"group": await write(request, lambda db: safety.delete_group(
            db, user, gid, actor=actor))})

    # --- consented group notes ------------------------------------------------------------

    @op("GET", G + "/notes/consent", summary="The group-notes consent text and whether I "
        "have given it")
    async def api_notes_consent(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        return json_response({"consent": await read(
            request, lambda db: group_notes.consent_status(db, user, gid))})

    @op("POST", G + "/notes/consent", summary="Consent to group notes (the version and hash "
        "I read)", body=NotesConsentBody)
    async def api_give_notes_consent(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: NotesConsentBody = request[appkeys.BODY]
        actor = actor_of(request)
        consent = await write(request, lambda db: group_notes.give_consent(
            db, user, gid, b.version, b.sha256, actor=actor))
        await notes_changed(request, gid)
        return json_response({"consent": consent})

    @op("DELETE", G + "/notes/consent", summary="Withdraw my consent to group notes (no "
        "future notes while I am present; past notes stay)")
    async def api_withdraw_notes_consent(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        actor = actor_of(request)
        consent = await write(
            request, lambda db: group_notes.withdraw_consent(db, user, gid, actor=actor))
        await notes_changed(request, gid)
        return json_response({"consent": consent})

    @op("GET", G + "/notes/status", summary="Whether notes are being taken in the group's "
        "meeting (what every member sees)")
    async def api_notes_status(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        return json_response({"notes": await read(
            request, lambda db: group_notes.indicator(db, user, gid))})

    @op("GET", G + "/notes", summary="The group's notes, opened (facilitators; every read "
        "audited)")
    async def api_read_notes(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        actor = actor_of(request)
        keys = ring(request)
        return json_response({"notes": await write(request, lambda db: group_notes.read_notes(
            db, keys, user, gid, actor=actor))})

    @op("GET", G + "/meetings/{key}/notes", summary="A meeting's note state for the "
        "facilitator: on, paused (with who has not consented) or off")
    async def api_meeting_notes(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        key = request.match_info["key"]
        return json_response({"notes": await read(request, lambda db: group_notes.editor(
            db, user, gid, key))})

    @op("POST", G + "/meetings/{key}/notes", summary="Start the meeting's note (facilitators; "
        "409 consent_missing names who present has not consented)", body=NoteTextBody,
        status=201)
    async def api_start_note(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        key = request.match_info["key"]
        b: NoteTextBody = request[appkeys.BODY]
        actor = actor_of(request)
        keys = ring(request)
        note = await write(request, lambda db: group_notes.start_note(
            db, keys, user, gid, key, b.text, actor=actor))
        await notes_changed(request, gid)
        return json_response({"note": note}, status=201)

    @op("PATCH", G + "/notes/{group_note_id:int}", summary="Edit or finish a note (facilitators; "
        "refused while someone present has not consented)", body=NoteEditBody)
    async def api_edit_note(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        nid = path_int(request, "group_note_id", "note")
        b: NoteEditBody = request[appkeys.BODY]
        actor = actor_of(request)
        keys = ring(request)
        note = await write(request, lambda db: group_notes.edit_note(
            db, keys, user, gid, nid, b.text, b.close, actor=actor))
        await notes_changed(request, gid)
        return json_response({"note": note})
