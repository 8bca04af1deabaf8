"""The practice's server-rendered pages (``/practice/...``) and the calendar feed.

Forms post with a CSRF token; authorisation is checked on the server by the same library
functions the JSON API calls (shared plumbing in web.practice_ops).
"""

from __future__ import annotations

from datetime import UTC, datetime

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
    sealing,
    waiting_room,
)
from therapy.accounts import AccountError, Role, User, ValidationError
from therapy.audit import Actor
from therapy.permissions import Action
from web import api_accounts, appkeys
from web.api_accounts import SignupBody, actor_of
from web.errors import ApiError, not_found
from web.forms import read_form
from web.pages import render
from web.practice_bodies import AppointmentBody
from web.practice_ops import (
    ADMIN,
    PATIENT,
    THERAPIST,
    api_error,
    base_url,
    dashboard,
    do_admit,
    do_check_in,
    do_erase,
    end_visit,
    int_param,
    join_path,
    keyring,
    names,
    occurrence_view,
    patient_summaries,
    read,
    write,
)
from web.routing import ANY_USER, current_user, require_user


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
    return await read_form(request)


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
        ctx = dashboard(db, user)
        if user.role == Role.THERAPIST:
            ctx["patients"] = patient_summaries(db, user)
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
    ctx = await read(request, lambda db: {**dashboard(db, user),
                                         "patients": patient_summaries(db, user)})
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
        occ = [occurrence_view(db, o, user)
               for o in appointments.occurrence_entries(db, appt_id)]
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


def register(router: web.UrlDispatcher) -> None:
    """Add the practice's pages and the calendar feed."""
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
