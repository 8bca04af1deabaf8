"""The groups' pages: finder, group page, my groups, the meeting lobby (and the
facilitator's view of it), the facilitator dashboard and the admin's group management.

Forms post with the CSRF token; every action runs the same groups.* function as the API
(so groups.permissions decides), and a refused or invalid form shows the page again with
the reason. Nothing here decides who may do what.
"""

from __future__ import annotations

from datetime import date

from aiohttp import web

from environments import catalog
from groups import calendar, conduct, directory, meetings, membership, safety, schedule
from groups.access import group_row
from groups.errors import GroupError
from groups.recurrence import parse_local, rule_for_start
from therapy.accounts import Role, ValidationError
from web import appkeys
from web.api_accounts import actor_of
from web.errors import ApiError, not_found
from web.forms import read_form
from web.groups_actions import (
    base_url,
    end_meeting,
    form_int,
    group_id,
    join_path,
    member_id,
    read,
    write,
)
from web.groups_bodies import parse_settings
from web.pages import render
from web.routing import require_user
from web.safety_notices import MEMBER_NOTICES

CSS = "/static/css/groups.css"
NOTICES = {
    "joined": "Welcome. You are a member of this group.",
    "requested": "Thank you. A facilitator will look at your request soon.",
    "accepted": "Thank you for accepting the code of conduct.",
    "saved": "Saved.",
    "left": "You have left the group.",
    "erased": "Your membership data in this group was erased.",
    "conduct": "The new code of conduct is saved. Members accept it before their next meeting.",
    "schedule": "The schedule is saved.",
    "cancelled": "That meeting is cancelled. Members see it in the group and their calendars.",
    "moved": "That meeting is moved.",
    "restored": "That meeting is back as scheduled.",
    "approved": "Request approved.",
    "declined": "Request declined.",
    "removed": "Removed from the group.",
    "banned": "Banned from the group. Their meeting links stopped working.",
    "unbanned": "Ban lifted.",
    "invite": "A new invite link is below. Copy it now: it is shown only once.",
    "invite_revoked": "That invite link no longer works.",
    "feed_off": "Your group calendar feed is off.",
    "created": "Group created.",
    "facilitators": "Facilitators saved.",
    "archived": "Group closed.",
    "ended": "The meeting has ended. Everyone was disconnected.",
    **MEMBER_NOTICES,  # the group page's safety card
}
REPEATS = [("weekly", "Every week"), ("biweekly", "Every other week"),
           ("monthly", "Every month, on the same weekday (e.g. the 2nd Tuesday)")]


def notice(request: web.Request) -> str | None:
    return NOTICES.get(request.query.get("done", ""))


def _see_other(path: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(path)


async def _form(request: web.Request) -> dict[str, str]:
    return await read_form(request)


def _key(request: web.Request) -> str:
    return request.match_info["key"]


# --- finder, my groups, group page ---------------------------------------------------------

async def finder_page(request: web.Request) -> web.Response:
    user = require_user(request)
    q = request.query
    error = None
    try:
        found = await read(request, lambda db: directory.find(
            db, user, topic=q.get("topic"), day=q.get("day"), time_of_day=q.get("time_of_day")))
    except ApiError as err:
        error = err.message
        found = await read(request, lambda db: directory.find(db, user))
    return render(request, "group_finder.html", found=found, error=error,
                  days=directory.DAYS, times=list(directory.TIMES_OF_DAY), css=CSS,
                  status=422 if error else 200)


async def mine_page(request: web.Request, *, feed_url: str | None = None,
                    done: str | None = None) -> web.Response:
    user = require_user(request)

    def load(db):
        return directory.my_groups(db, user), calendar.has_feed(db, user)

    groups, has_feed = await read(request, load)
    return render(request, "group_mine.html", groups=groups, has_feed=has_feed,
                  feed_url=feed_url, notice=NOTICES.get(done or "") or notice(request), css=CSS)


async def calendar_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    actor = actor_of(request)
    if request.match_info["action"] == "off":
        await write(request, lambda db: calendar.revoke_feed(db, user, actor=actor))
        raise _see_other("/groups/mine?done=feed_off")
    token = await write(request, lambda db: calendar.create_feed(db, user, actor=actor))
    return await mine_page(request, feed_url=f"{base_url(request)}/groups/calendar/{token}.ics")


async def calendar_ics(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    base = base_url(request)

    def load(db):
        user = calendar.feed_user(db, token)
        return None if user is None else calendar.build_ics(db, user, base)

    body = await request.app[appkeys.STORE].read(load)
    if body is None:
        raise not_found("This calendar link is not valid (it may have been replaced).")
    return web.Response(body=body, content_type="text/calendar", charset="utf-8",
                        headers={"Cache-Control": "private, no-store"})


async def _group_context(request: web.Request, gid: int, invite: str | None) -> dict:
    user = require_user(request)

    def load(db):
        v = directory.view(db, user, gid, invite=invite)
        doc = conduct.current(db, gid)
        mine = None
        if v["membership"] and v["membership"]["status"] in ("active", "requested"):
            mine = meetings_mine(db, user, gid)
        return {"group": v, "conduct_html": conduct.render(doc.text), "attendance": mine,
                "safety": safety.member_view(db, user, gid)}

    return await read(request, load)


def meetings_mine(db, user, gid):
    try:
        return meetings.my_attendance(db, user, gid)[:10]
    except Exception:  # noqa: BLE001 - not a member any more: nothing to show
        return None


async def group_page(request: web.Request, *, gid: int | None = None,
                     invite: str | None = None, error: str | None = None, status: int = 200,
                     form: dict | None = None) -> web.Response:
    gid = gid if gid is not None else group_id(request)
    ctx = await _group_context(request, gid, invite)
    return render(request, "group_page.html", status=status, notice=notice(request),
                  error=error, invite=invite, form=form or {}, colors=membership.COLORS,
                  css=CSS, **ctx)


async def invite_page(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    require_user(request)
    gid = await read(request, lambda db: directory.group_for_invite(db, token))
    if gid is None:
        raise not_found("This invite link is not valid or has expired. Ask the facilitator "
                        "for a new one.")
    return await group_page(request, gid=gid, invite=token)


async def _on_group_error(request, gid, invite, err: ApiError, form: dict):
    return await group_page(request, gid=gid, invite=invite, error=err.message,
                            status=err.status, form=form)


async def join_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    gid = group_id(request)
    form = await _form(request)
    invite = form.get("invite") or None
    actor = actor_of(request)
    try:
        if form.get("accept") != "yes":
            raise ApiError(422, "invalid_field", "please read the code of conduct and tick "
                           "the box to accept it", field="accept")
        version = form_int(form.get("conduct_version"), "conduct_version")
        got = await write(request, lambda db: membership.join(
            db, user, gid, pseudonym=form.get("pseudonym", ""), color=form.get("color"),
            conduct_version=version, conduct_sha256=form.get("conduct_sha256", ""),
            invite=invite, actor=actor))
    except ApiError as err:
        if err.status == 404:
            raise
        return await _on_group_error(request, gid, invite, err, form)
    raise _see_other(f"/groups/{gid}?done={'joined' if got['status'] == 'active' else 'requested'}")


async def member_submit(request: web.Request) -> web.StreamResponse:
    """The member's own forms: accept the conduct, settings, leave, erase."""
    user = require_user(request)
    gid = group_id(request)
    action = request.match_info["action"]
    form = await _form(request)
    actor = actor_of(request)
    try:
        if action == "accept":
            version = form_int(form.get("conduct_version"), "conduct_version")
            await write(request, lambda db: membership.accept_conduct(
                db, user, gid, version, form.get("conduct_sha256", ""), actor=actor))
            done = "accepted"
        elif action == "settings":
            await write(request, lambda db: membership.update_self(
                db, user, gid, pseudonym=form.get("pseudonym") or None,
                color=form.get("color") or None,
                feed_shows_name=form.get("feed_shows_name") == "on", actor=actor))
            done = "saved"
        elif action == "leave":
            await write(request, lambda db: membership.leave(db, user, gid, actor=actor))
            raise _see_other("/groups/mine?done=left")
        elif action == "erase":
            if form.get("confirm") != "yes":
                raise ApiError(422, "invalid_field", "tick the box to confirm the erasure")
            await write(request, lambda db: membership.erase_self(db, user, gid, actor=actor))
            raise _see_other("/groups/mine?done=erased")
        else:
            raise not_found()
    except ApiError as err:
        if err.status == 404:
            raise
        return await _on_group_error(request, gid, None, err, form)
    raise _see_other(f"/groups/{gid}?done={done}")


# --- meetings: lobby and the facilitator's view ---------------------------------------------

async def meeting_page(request: web.Request, *, error: str | None = None,
                       status: int = 200) -> web.Response:
    user = require_user(request)
    gid, key = group_id(request), _key(request)

    def load(db):
        return (meetings.state(db, user, gid, key),
                directory.view(db, user, gid, meetings=0))

    state, group = await read(request, load)
    return render(request, "group_meeting.html", state=state, group=group, key=key,
                  error=error, notice=notice(request), css=CSS, status=status)


async def meeting_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    gid, key = group_id(request), _key(request)
    action = request.match_info["action"]
    form = await _form(request)
    actor = actor_of(request)
    here = f"/groups/{gid}/meetings/{key}"
    try:
        if action == "lobby":
            await write(request, lambda db: meetings.arrive(db, user, gid, key, actor=actor))
            raise _see_other(here)
        if action == "join":  # the no-script way in: the room if admitted, else back
            got = await write(request, lambda db: meetings.join_link(db, user, gid, key,
                                                                     actor=actor))
            raise _see_other(join_path(*got) if got else here)
        if action == "open":
            await write(request, lambda db: meetings.open_meeting(db, user, gid, key,
                                                                  actor=actor))
            raise _see_other(here)
        if action == "enter":
            got = await write(request, lambda db: meetings.host_link(db, user, gid, key,
                                                                     actor=actor))
            raise _see_other(join_path(*got))
        if action == "admit":
            mid = form_int(form.get("member_id"), "member_id")
            await write(request, lambda db: meetings.admit(db, user, gid, key, mid,
                                                           actor=actor))
            raise _see_other(here)
        if action == "auto-admit":
            on = form.get("on") == "yes"
            await write(request, lambda db: meetings.set_auto_admit(db, user, gid, key, on,
                                                                    actor=actor))
            raise _see_other(here)
        if action == "end":
            await end_meeting(request, user, gid, key)
            raise _see_other(f"/groups/{gid}/manage?done=ended")
        raise not_found()
    except ApiError as err:
        if err.status in (401, 404) or action == "lobby" and err.status != 409:
            raise
        if action == "lobby":
            return await group_page(request, error=err.message, status=err.status)
        return await meeting_page(request, error=err.message, status=err.status)


# --- the facilitator dashboard -------------------------------------------------------------

async def dashboard_page(request: web.Request, *, error: str | None = None,
                         status: int = 200, invite_url: str | None = None) -> web.Response:
    user = require_user(request)
    gid = group_id(request)

    def load(db):
        v = directory.view(db, user, gid, meetings=0)
        if not (v["can"]["edit"] or v["can"]["roster"]):
            raise GroupError("forbidden", "only the group's facilitators see this page")
        group = group_row(db, gid)
        upcoming = schedule.upcoming(db, group, days=120, include_cancelled=True)
        return {
            "group": v,
            "roster": membership.roster(db, user, gid),
            "upcoming": [directory.occurrence_view(o, user.time_zone, group["time_zone"])
                         for o in upcoming[:8]],
            "attendance": meetings.attendance(db, user, gid)[:10],
            "invites": directory.invites(db, user, gid) if v["can"]["edit"] else [],
            "conduct_text": conduct.current(db, gid).text,
        }

    ctx = await read(request, load)
    return render(request, "group_dashboard.html", status=status, error=error,
                  notice=notice(request), invite_url=invite_url, repeats=REPEATS,
                  environments=catalog.all_environments(), css=CSS, **ctx)


def _schedule_rrule(form: dict) -> tuple[str, str]:
    start = parse_local(form.get("start_local", ""))
    ends = form.get("ends", "never")
    count = until = None
    if ends == "count":
        count = form_int(form.get("count"), "count")
    elif ends == "until":
        try:
            until = date.fromisoformat(form.get("until", ""))
        except ValueError:
            raise ValidationError("until", "the end date must look like 2027-06-30") from None
    return rule_for_start(form.get("repeat", ""), start, count=count, until=until), \
        form.get("start_local", "")


async def manage_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    gid = group_id(request)
    action = request.match_info["action"]
    form = await _form(request)
    actor = actor_of(request)
    try:
        if action == "settings":
            data = {"description": form.get("description", ""),
                    "tags": [t for t in form.get("tags", "").split(",")],
                    "join_policy": form.get("join_policy"),
                    "capacity": form_int(form.get("capacity"), "capacity"),
                    "environment_id": form.get("environment_id"),
                    "auto_admit": form.get("auto_admit") == "on"}
            settings = parse_settings(data)
            await write(request, lambda db: directory.update_group(db, user, gid, settings,
                                                                   actor=actor))
            done = "saved"
        elif action == "conduct":
            await write(request, lambda db: directory.edit_conduct(
                db, user, gid, form.get("text", ""), actor=actor))
            done = "conduct"
        elif action == "schedule":
            rrule, start = _schedule_rrule(form)
            duration = form_int(form.get("duration_minutes"), "duration_minutes")
            await write(request, lambda db: schedule.set_schedule(
                db, user, gid, rrule, start, duration, actor=actor))
            done = "schedule"
        elif action == "invite":
            token, _ = await write(request, lambda db: directory.create_invite(
                db, user, gid, actor=actor))
            return await dashboard_page(
                request, invite_url=f"{base_url(request)}/groups/invite/{token}")
        elif action == "revoke-invite":
            invite = form.get("invite_id", "")
            await write(request, lambda db: directory.revoke_invite(db, user, gid, invite,
                                                                    actor=actor))
            done = "invite_revoked"
        else:
            raise not_found()
    except ApiError as err:
        if err.status in (401, 404):
            raise
        return await dashboard_page(request, error=err.message, status=err.status)
    except ValidationError as exc:
        return await dashboard_page(request, error=exc.message, status=422)
    raise _see_other(f"/groups/{gid}/manage?done={done}")


async def occurrence_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    gid, key = group_id(request), _key(request)
    action = request.match_info["action"]
    form = await _form(request)
    actor = actor_of(request)
    note = form.get("note") or None
    try:
        if action == "cancel":
            await write(request, lambda db: schedule.cancel_one(db, user, gid, key, note,
                                                                actor=actor))
            done = "cancelled"
        elif action == "move":
            start = form.get("start_local", "")
            await write(request, lambda db: schedule.move_one(db, user, gid, key, start, note,
                                                              actor=actor))
            done = "moved"
        else:
            await write(request, lambda db: schedule.restore_one(db, user, gid, key,
                                                                 actor=actor))
            done = "restored"
    except ApiError as err:
        if err.status in (401, 404):
            raise
        return await dashboard_page(request, error=err.message, status=err.status)
    raise _see_other(f"/groups/{gid}/manage?done={done}#schedule")


async def roster_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    gid, mid = group_id(request), member_id(request)
    action = request.match_info["action"]
    actor = actor_of(request)
    try:
        if action == "reveal":
            got = await write(request, lambda db: membership.reveal(db, user, gid, mid,
                                                                    actor=actor))
            return render(request, "group_reveal.html", reveal=got, group_id=gid, css=CSS)
        if action in ("approve", "decline"):
            await write(request, lambda db: membership.decide_request(
                db, user, gid, mid, action == "approve", actor=actor))
            done = "approved" if action == "approve" else "declined"
        elif action in ("remove", "ban"):
            await write(request, lambda db: membership.remove(db, user, gid, mid,
                                                              ban=action == "ban",
                                                              actor=actor))
            done = "banned" if action == "ban" else "removed"
        else:
            await write(request, lambda db: membership.unban(db, user, gid, mid, actor=actor))
            done = "unbanned"
    except ApiError as err:
        if err.status in (401, 404):
            raise
        return await dashboard_page(request, error=err.message, status=err.status)
    raise _see_other(f"/groups/{gid}/manage?done={done}#members")


# --- admin ---------------------------------------------------------------------------------

async def admin_page(request: web.Request, *, error: str | None = None,
                     status: int = 200) -> web.Response:
    user = require_user(request, [Role.ADMIN])

    def load(db):
        return directory.all_groups(db, user), directory.moderators(db)

    groups, mods = await read(request, load)
    return render(request, "group_admin.html", groups=groups, moderators=mods, error=error,
                  notice=notice(request), environments=catalog.all_environments(), css=CSS,
                  status=status)


async def admin_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request, [Role.ADMIN])
    form = await _form(request)
    actor = actor_of(request)
    action = request.match_info.get("action", "create")
    try:
        if action == "create":
            settings = parse_settings({
                "name": form.get("name", ""), "description": form.get("description", ""),
                "tags": form.get("tags", "").split(","),
                "visibility": form.get("visibility"), "join_policy": form.get("join_policy"),
                "capacity": form_int(form.get("capacity"), "capacity"),
                "environment_id": form.get("environment_id"),
                "time_zone": form.get("time_zone", ""),
                "auto_admit": form.get("auto_admit") == "on"})
            lead = form_int(form.get("lead_user_id"), "lead_user_id")
            gid = await write(request, lambda db: directory.create_group(
                db, user, settings, lead_user_id=lead, actor=actor))
            raise _see_other(f"/groups/{gid}/manage?done=created")
        gid = group_id(request)
        if action == "facilitators":
            lead = form_int(form.get("lead_user_id"), "lead_user_id")
            # read_form (in _form and the CSRF check) already parsed the body safely;
            # post() returns that parsed body, with every value of the repeated field.
            cos = [int(v) for k, v in (await request.post()).items()
                   if k == "co_user_ids" and str(v).isdigit() and len(str(v)) < 15]
            await write(request, lambda db: directory.set_facilitators(
                db, user, gid, lead, cos, actor=actor))
            done = "facilitators"
        else:
            await write(request, lambda db: directory.archive_group(db, user, gid,
                                                                    actor=actor))
            done = "archived"
    except ApiError as err:
        if err.status in (401, 404):
            raise
        return await admin_page(request, error=err.message, status=err.status)
    except ValidationError as exc:
        return await admin_page(request, error=exc.message, status=422)
    raise _see_other(f"/admin/groups?done={done}")


def register(router: web.UrlDispatcher) -> None:
    g = "/groups/{group_id:\\d+}"
    router.add_get("/groups", finder_page, name="groups")
    router.add_get("/groups/mine", mine_page, name="groups-mine")
    router.add_post("/groups/calendar/{action:new|off}", calendar_submit)
    router.add_get("/groups/calendar/{token}.ics", calendar_ics)
    router.add_get("/groups/invite/{token}", invite_page)
    router.add_get(g, group_page)
    router.add_post(g + "/join", join_submit)
    router.add_post(g + "/{action:accept|settings|leave|erase}", member_submit)
    router.add_get(g + "/meetings/{key}", meeting_page)
    router.add_post(g + "/meetings/{key}/{action:lobby|join|open|enter|admit|auto-admit|end}",
                    meeting_submit)
    router.add_post(g + "/meetings/{key}/{action:cancel|move|restore}", occurrence_submit)
    router.add_get(g + "/manage", dashboard_page)
    router.add_post(g + "/manage/{action:settings|conduct|schedule|invite|revoke-invite}",
                    manage_submit)
    router.add_post(g + "/members/{member_id:\\d+}/"
                    "{action:reveal|approve|decline|remove|ban|unban}", roster_submit)
    router.add_get("/admin/groups", admin_page, name="admin-groups")
    router.add_post("/admin/groups", admin_submit)
    router.add_post("/admin/groups/{group_id:\\d+}/{action:facilitators|archive}",
                    admin_submit)
