"""Safety pages: "Get help now" (/help, and the dialog every page carries), the account's
country form, the facilitators' safety dashboard (/groups/{id}/safety: alerts, concerns,
reports, notes), and the group page's safety forms. Every action runs the same groups.*
function as the API (groups.permissions decides); nothing here decides who may do what."""

from __future__ import annotations

import json

import jinja2
from aiohttp import web
from markupsafe import Markup

from groups import access, crisis, group_notes, safety
from groups.permissions import Action, allowed
from therapy import care, care_alerts
from therapy.accounts import Role, ValidationError
from web.api_accounts import actor_of
from web.errors import ApiError
from web.forms import read_form
from web.groups_actions import form_int, group_id
from web.pages import _account, render
from web.routing import current_user, require_user
from web.safety_api import country_for, crisis_directory, notes_changed, read, ring, write
from web.safety_notices import MEMBER_NOTICES

CSS = "/static/css/groups.css"
NOTICES = {
    **MEMBER_NOTICES,
    "concern": "Concern flagged.",
    "handled": "Saved.",
    "note": "Note saved.",
}


def install_globals(env: jinja2.Environment, directory: crisis.CrisisDirectory) -> None:
    """Every page's "Get help now" dialog carries the whole directory (about 11 kB), so it
    works offline once the page is loaded."""
    data = json.dumps(directory.public(), ensure_ascii=False, separators=(",", ":"))
    env.globals["crisis_json"] = Markup(data.replace("</", "<\\/"))
    env.globals["crisis_choices"] = directory.choices()


async def help_page(request: web.Request) -> web.Response:
    directory = crisis_directory(request)
    picked = request.query.get("country", "")
    country = directory.country(picked) if picked else None
    why = "picked" if country else None
    if country is None:
        code, why = await country_for(request)
        country = directory.country(code)
    user = current_user(request)
    groups, therapists = [], []
    if user is not None:
        groups = await read(request, lambda db: safety.alertable_groups(db, user))
        if user.role == Role.PATIENT:
            therapists = await read(request, lambda db: [
                t.display_name for t in care.therapists_of(db, user.id)])
    sent = None
    if request.query.get("done") == "alert" and request.query.get("g", "").isdigit():
        sent = next((g["name"] for g in groups if str(g["id"]) == request.query["g"]), None)
    return render(request, "help.html", country=country.public() if country else None,
                  country_from=why, groups=groups, sent=sent, therapists=therapists,
                  sent_therapist=request.query.get("done") == "therapist")


async def tell_therapist_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    form = await read_form(request)
    actor = actor_of(request)
    keys = ring(request)
    await write(request, lambda db: care_alerts.send(db, keys, user, form.get("message"),
                                                     actor=actor))
    raise web.HTTPSeeOther("/help?done=therapist#tell")


async def care_alerts_page(request: web.Request) -> web.Response:
    user = require_user(request, [Role.THERAPIST])
    actor = actor_of(request)
    keys = ring(request)
    alerts = await write(request, lambda db: care_alerts.for_therapist(db, keys, user,
                                                                       actor=actor))
    return render(request, "practice_alerts.html", alerts=alerts)


async def care_alert_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request, [Role.THERAPIST])
    form = await read_form(request)
    actor = actor_of(request)
    aid = form_int(form.get("id"), "id")
    await write(request, lambda db: care_alerts.set_status(db, user, aid,
                                                           form.get("status", ""), actor=actor))
    raise web.HTTPSeeOther("/practice/alerts")


async def country_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    form = await read_form(request)
    actor = actor_of(request)
    directory = crisis_directory(request)
    try:
        await write(request, lambda db: safety.set_account_country(
            db, user, form.get("country") or None, directory, actor=actor))
    except ApiError as err:
        return await _account(request, err.status, profile_error=err.message)
    raise web.HTTPSeeOther("/account?done=country#country-h")


async def group_action(request: web.Request) -> web.StreamResponse:
    """The member's forms on the group page, and the facilitator's on the safety page."""
    user = require_user(request)
    gid = group_id(request)
    action = request.match_info["action"]
    form = await read_form(request)
    actor = actor_of(request)
    keys = ring(request)
    back = f"/groups/{gid}"
    try:
        if action == "alert":
            await write(request, lambda db: safety.send_alert(
                db, keys, user, gid, form.get("message"), actor=actor))
            if form.get("from") == "help":
                raise web.HTTPSeeOther(f"/help?done=alert&g={gid}#tell")
        elif action == "report":
            mid = form_int(form.get("member_id"), "member_id")
            await write(request, lambda db: safety.file_report(
                db, keys, user, gid, mid, form.get("category"), form.get("text"),
                actor=actor))
        elif action == "notes-consent":
            version = form_int(form.get("version"), "version")
            await write(request, lambda db: group_notes.give_consent(
                db, user, gid, version, form.get("sha256"), actor=actor))
            action = "consent"
        elif action == "notes-withdraw":
            await write(request, lambda db: group_notes.withdraw_consent(
                db, user, gid, actor=actor))
            action = "withdrawn"
        else:
            back = f"/groups/{gid}/safety"
            if action == "concern":
                mid = form_int(form.get("member_id"), "member_id")
                await write(request, lambda db: safety.flag_concern(
                    db, keys, user, gid, mid, form.get("note"), actor=actor))
            elif action == "alert-status":
                aid = form_int(form.get("id"), "id")
                await write(request, lambda db: safety.set_alert_status(
                    db, user, gid, aid, form.get("status", ""), actor=actor))
                action = "handled"
            elif action == "note":
                text = form.get("text", "")
                if form.get("note_id"):
                    nid = form_int(form.get("note_id"), "note_id")
                    await write(request, lambda db: group_notes.edit_note(
                        db, keys, user, gid, nid, text, form.get("close") == "yes",
                        actor=actor))
                else:
                    key = form.get("key", "")[:40]
                    await write(request, lambda db: group_notes.start_note(
                        db, keys, user, gid, key, text, actor=actor))
            elif action == "report-status":
                rid = form_int(form.get("id"), "id")
                await write(request, lambda db: safety.set_report_status(
                    db, keys, user, gid, rid, form.get("status", ""), form.get("note"),
                    actor=actor))
                action = "handled"
    except ApiError as err:
        if back.endswith("/safety"):
            return await dashboard_page(request, error=err.message, status=err.status)
        from web.groups_pages import group_page

        return await group_page(request, gid=gid, error=err.message, status=err.status)
    except ValidationError as exc:
        raise ApiError(422, "invalid_field", exc.message, field=exc.field) from None
    if action in ("consent", "withdrawn", "note"):
        await notes_changed(request, gid)  # the in-room notes indicator
    anchor = "notes" if action == "note" else "safety"
    raise web.HTTPSeeOther(f"{back}?done={action}#{anchor}")


async def dashboard_page(request: web.Request, *, error: str | None = None,
                         status: int = 200) -> web.Response:
    user = require_user(request)
    gid = group_id(request)
    actor = actor_of(request)
    keys = ring(request)

    def load(db):
        board = safety.dashboard(db, keys, user, gid, actor=actor)
        notes = []
        editors = []
        ctx = access.load(db, user, gid)
        if allowed(Action.NOTES_READ, ctx.subject, ctx.facts):
            notes = group_notes.read_notes(db, keys, user, gid, actor=actor)
            editors = group_notes.open_meetings(db, user, gid)
            texts = {n["id"]: n["text"] for n in notes}
            for e in editors:
                e["text"] = texts.get(e.get("note_id"), "")
        return board, notes, editors

    board, notes, editors = await write(request, load)
    return render(request, "group_safety.html", status=status, error=error,
                  notice=NOTICES.get(request.query.get("done", "")), board=board,
                  notes=notes, editors=editors, css=CSS)


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/help", help_page, name="help")
    router.add_post("/account/country", country_submit)
    router.add_post("/help/tell-therapist", tell_therapist_submit)
    router.add_get("/practice/alerts", care_alerts_page)
    router.add_post("/practice/alerts", care_alert_submit)
    g = "/groups/{group_id:\\d+}"
    router.add_get(g + "/safety", dashboard_page)
    router.add_post(g + "/safety/{action:alert|report|notes-consent|notes-withdraw|concern|"
                    "alert-status|report-status|note}", group_action)
