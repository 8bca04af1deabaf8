"""The groups JSON API (``/api/groups/...``), declared through the ApiRegistry so every
operation is in /api/openapi.json. Handlers parse, call one groups.* function (which checks
groups.permissions) through the store, and shape the answer; see web.groups_actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from groups import calendar, directory, meetings, membership, schedule
from groups.errors import GroupError
from groups.recurrence import MAX_WINDOW
from therapy import rooms
from therapy.accounts import Role
from web import appkeys
from web.api_accounts import actor_of
from web.errors import ApiError, json_response
from web.groups_actions import (
    base_url,
    end_meeting,
    group_id,
    invalid,
    join_path,
    member_id,
    read,
    write,
)
from web.groups_bodies import (
    AcceptBody,
    AdmitBody,
    ConductBody,
    DecisionBody,
    FacilitatorsBody,
    GroupCreateBody,
    GroupUpdateBody,
    JoinBody,
    MoveBody,
    NoteBody,
    RemoveBody,
    ScheduleBody,
    SelfBody,
    SwitchBody,
)
from web.routing import ANY_USER, ApiRegistry, require_user

TAGS = ["groups"]
ADMIN = [Role.ADMIN]
G = "/api/groups/{group_id:int}"
M = G + "/meetings/{key}"


def _room_link(request: web.Request, room_id: str, token: str) -> dict:
    return {"room_id": room_id, "join_path": join_path(room_id, token),
            "join_url": rooms.join_url(base_url(request), room_id, token)}


def _window(request: web.Request) -> tuple[datetime, int]:
    raw_from, raw_days = request.query.get("from"), request.query.get("days", "60")
    if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_WINDOW.days:
        raise invalid("days", f"days must be 1 to {MAX_WINDOW.days}")
    start = datetime.now(UTC) - timedelta(hours=4)
    if raw_from:
        try:
            start = datetime.fromisoformat(raw_from)
        except ValueError:
            raise invalid("from", "from must be an ISO date-time such as "
                          "2026-03-10T00:00:00Z") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        now = datetime.now(UTC)
        if not now - timedelta(days=366) <= start <= now + timedelta(days=3653):
            raise invalid("from", "from must be within a year back and ten years ahead")
    return start, int(raw_days)


def register(api: ApiRegistry) -> None:
    def op(method: str, path: str, *, errors=(), **kw):
        # Anything under one group may find it gone (404), closed or in another state (409),
        # or a value out of range (422): documented for every such operation.
        if "{group_id" in path:
            errors = sorted({*errors, 404, 409, 422})
        return api.operation(method, path, errors=errors, **kw)

    # --- my calendar feed (before /api/groups/{group_id}, which would match it) -----------------------------------------------------------------

    @op("GET", "/api/groups/calendar-feed", summary="Whether my group calendar feed is on",
        tags=TAGS)
    async def api_feed_status(request: web.Request) -> web.Response:
        user = require_user(request)
        return json_response({"enabled": await read(request, lambda db: calendar.has_feed(
            db, user))})

    @op("POST", "/api/groups/calendar-feed", summary="A new private feed URL of my groups' "
        "meetings (the old one stops working)", tags=TAGS, auth=ANY_USER)
    async def api_feed_create(request: web.Request) -> web.Response:
        user = require_user(request)
        actor = actor_of(request)
        token = await write(request, lambda db: calendar.create_feed(db, user, actor=actor))
        return json_response({"feed_url": f"{base_url(request)}/groups/calendar/{token}.ics"})

    @op("DELETE", "/api/groups/calendar-feed", summary="Turn my group calendar feed off",
        tags=TAGS)
    async def api_feed_revoke(request: web.Request) -> web.Response:
        user = require_user(request)
        actor = actor_of(request)
        await write(request, lambda db: calendar.revoke_feed(db, user, actor=actor))
        return json_response({"enabled": False})

    # --- the directory --------------------------------------------------------------------

    @op("GET", "/api/groups", summary="Find listed groups (?topic=, ?day=mon..sun, "
        "?time_of_day=morning|afternoon|evening|night; times in my zone)", tags=TAGS,
        errors=[422])
    async def api_find_groups(request: web.Request) -> web.Response:
        user = require_user(request)
        q = request.query
        return json_response(await read(request, lambda db: directory.find(
            db, user, topic=q.get("topic"), day=q.get("day"),
            time_of_day=q.get("time_of_day"))))

    @op("GET", "/api/groups/mine", summary="The groups I am in, have asked to join, or "
        "facilitate", tags=TAGS)
    async def api_my_groups(request: web.Request) -> web.Response:
        user = require_user(request)
        return json_response({"groups": await read(request, lambda db: directory.my_groups(
            db, user))})

    @op("GET", "/api/groups/all", summary="Every group, listed or not (admin)", auth=ADMIN,
        tags=TAGS)
    async def api_all_groups(request: web.Request) -> web.Response:
        user = require_user(request, ADMIN)
        return json_response({"groups": await read(request, lambda db: directory.all_groups(
            db, user))})

    @op("POST", "/api/groups", summary="Create a group with its facilitators (admin)",
        auth=ADMIN, body=GroupCreateBody, tags=TAGS, errors=[404, 409])
    async def api_create_group(request: web.Request) -> web.Response:
        user = require_user(request, ADMIN)
        b: GroupCreateBody = request[appkeys.BODY]
        actor = actor_of(request)

        def go(db):
            gid = directory.create_group(db, user, b.settings, lead_user_id=b.lead_user_id,
                                         co_user_ids=b.co_user_ids,
                                         conduct_text=b.conduct_text, actor=actor)
            return directory.view(db, user, gid)

        return json_response({"group": await write(request, go)})

    @op("GET", G, summary="A group as I may see it (description, schedule, next meetings "
        "in my zone, facilitators, my membership)", tags=TAGS, errors=[404])
    async def api_group(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        return json_response({"group": await read(request, lambda db: directory.view(
            db, user, gid))})

    @op("PATCH", G, summary="Change a group's settings (facilitators; name and visibility: "
        "admin)", body=GroupUpdateBody, tags=TAGS, errors=[404, 409])
    async def api_update_group(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: GroupUpdateBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"group": await write(request, lambda db: directory.update_group(
            db, user, gid, b.settings, actor=actor))})

    @op("POST", G + "/archive", summary="Close a group (admin)", auth=ADMIN, tags=TAGS,
        errors=[404])
    async def api_archive_group(request: web.Request) -> web.Response:
        user = require_user(request, ADMIN)
        gid = group_id(request)
        actor = actor_of(request)
        await write(request, lambda db: directory.archive_group(db, user, gid, actor=actor))
        return json_response({"ok": True})

    @op("PUT", G + "/facilitators", summary="Assign the lead facilitator and co-facilitators "
        "(admin; moderator accounts)", auth=ADMIN, body=FacilitatorsBody, tags=TAGS,
        errors=[404, 409])
    async def api_set_facilitators(request: web.Request) -> web.Response:
        user = require_user(request, ADMIN)
        gid = group_id(request)
        b: FacilitatorsBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"facilitators": await write(
            request, lambda db: directory.set_facilitators(
                db, user, gid, b.lead_user_id, b.co_user_ids, actor=actor))})

    # --- code of conduct ------------------------------------------------------------------

    @op("GET", G + "/conduct", summary="The group's code of conduct (markdown and safe "
        "HTML; ?version= for an older one)", tags=TAGS, errors=[404, 422])
    async def api_conduct(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        raw = request.query.get("version")
        if raw is not None and (not raw.isdigit() or len(raw) > 6):
            raise invalid("version", "version must be a whole number")
        number = int(raw) if raw else None
        return json_response({"conduct": await read(request, lambda db: directory.conduct_view(
            db, user, gid, version=number))})

    @op("PUT", G + "/conduct", summary="Edit the code of conduct: a new version, which "
        "members accept again before their next meeting (facilitators)", body=ConductBody,
        tags=TAGS, errors=[404, 409])
    async def api_edit_conduct(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: ConductBody = request[appkeys.BODY]
        actor = actor_of(request)
        doc = await write(request, lambda db: directory.edit_conduct(db, user, gid, b.text,
                                                                     actor=actor))
        return json_response({"conduct": doc.summary()})

    @op("POST", G + "/conduct/accept", summary="Accept the current code of conduct (the "
        "version and hash you read)", body=AcceptBody, tags=TAGS, errors=[404, 409])
    async def api_accept_conduct(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: AcceptBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"acceptance": await write(
            request, lambda db: membership.accept_conduct(db, user, gid, b.version, b.sha256,
                                                          actor=actor))})

    # --- schedule -------------------------------------------------------------------------

    @op("GET", G + "/meetings", summary="The group's meetings in my zone, cancelled and "
        "moved ones marked (?from=ISO instant, ?days=1..400)", tags=TAGS, errors=[404, 422])
    async def api_meetings(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        start, days = _window(request)

        def load(db):
            v = directory.view(db, user, gid, meetings=0)
            group = {"id": gid, "time_zone": v["time_zone"]}
            occ = schedule.upcoming(db, group, after=start, days=days, include_cancelled=True)
            return {"time_zone": user.time_zone, "schedule": v["schedule"],
                    "meetings": [directory.occurrence_view(o, user.time_zone, v["time_zone"])
                                 for o in occ]}

        return json_response(await read(request, load))

    @op("PUT", G + "/schedule", summary="Set the group's recurring schedule (facilitators)",
        body=ScheduleBody, tags=TAGS, errors=[404, 409])
    async def api_set_schedule(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: ScheduleBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"schedule": await write(request, lambda db: schedule.set_schedule(
            db, user, gid, b.rrule, b.start_local, b.duration_minutes, actor=actor))})

    async def _changed(request, fn) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        key = request.match_info["key"]
        actor = actor_of(request)

        def go(db):
            occ = fn(db, user, gid, key, actor)
            group = directory.view(db, user, gid, meetings=0)
            return {"meeting": directory.occurrence_view(occ, user.time_zone,
                                                         group["time_zone"])}

        return json_response(await write(request, go))

    @op("POST", M + "/cancel", summary="Cancel one meeting (facilitators)", body=NoteBody,
        tags=TAGS, errors=[404, 409])
    async def api_cancel_meeting(request: web.Request) -> web.Response:
        b: NoteBody = request[appkeys.BODY]
        return await _changed(request, lambda db, u, g, k, a: schedule.cancel_one(
            db, u, g, k, b.note, actor=a))

    @op("POST", M + "/move", summary="Move one meeting to a new start (facilitators)",
        body=MoveBody, tags=TAGS, errors=[404, 409])
    async def api_move_meeting(request: web.Request) -> web.Response:
        b: MoveBody = request[appkeys.BODY]
        return await _changed(request, lambda db, u, g, k, a: schedule.move_one(
            db, u, g, k, b.start_local, b.note, actor=a))

    @op("POST", M + "/restore", summary="Undo a meeting's cancellation or move "
        "(facilitators)", tags=TAGS, errors=[404, 409])
    async def api_restore_meeting(request: web.Request) -> web.Response:
        return await _changed(request, lambda db, u, g, k, a: schedule.restore_one(
            db, u, g, k, actor=a))

    # --- joining, invites, my membership ---------------------------------------------------

    @op("POST", G + "/join", summary="Join the group (open groups) or ask to join, accepting "
        "its code of conduct, under a pseudonym", body=JoinBody, tags=TAGS, errors=[404, 409])
    async def api_join_group(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: JoinBody = request[appkeys.BODY]
        actor = actor_of(request)
        got = await write(request, lambda db: membership.join(
            db, user, gid, pseudonym=b.pseudonym, color=b.color,
            conduct_version=b.conduct_version, conduct_sha256=b.conduct_sha256,
            invite=b.invite, actor=actor))
        return json_response({"membership": got})

    @op("GET", "/api/group-invites/{token}", summary="The group an invite link is for",
        tags=TAGS, errors=[404])
    async def api_invite(request: web.Request) -> web.Response:
        user = require_user(request)
        token = request.match_info["token"]

        def load(db):
            gid = directory.group_for_invite(db, token)
            if gid is None:
                raise GroupError("not_found", "this invite link is not valid or has expired")
            return directory.view(db, user, gid, invite=token)

        return json_response({"group": await read(request, load)})

    @op("POST", G + "/invites", summary="Make an invite link (facilitators; shown once)",
        tags=TAGS, errors=[404, 409])
    async def api_create_invite(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        actor = actor_of(request)
        token, info = await write(request, lambda db: directory.create_invite(
            db, user, gid, actor=actor))
        return json_response({"invite": info, "invite_url":
                              f"{base_url(request)}/groups/invite/{token}"})

    @op("GET", G + "/invites", summary="The group's invite links (facilitators)", tags=TAGS,
        errors=[404, 409])
    async def api_invites(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        return json_response({"invites": await read(request, lambda db: directory.invites(
            db, user, gid))})

    @op("POST", G + "/invites/{invite_id}/revoke", summary="Stop an invite link working "
        "(facilitators)", tags=TAGS, errors=[404, 409])
    async def api_revoke_invite(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        invite_id = request.match_info["invite_id"]
        actor = actor_of(request)
        await write(request, lambda db: directory.revoke_invite(db, user, gid, invite_id,
                                                                actor=actor))
        return json_response({"ok": True})

    @op("PATCH", G + "/membership", summary="Change my pseudonym (between meetings), colour "
        "or calendar option", body=SelfBody, tags=TAGS, errors=[404, 409])
    async def api_update_membership(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        b: SelfBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"membership": await write(
            request, lambda db: membership.update_self(
                db, user, gid, pseudonym=b.pseudonym, color=b.color,
                feed_shows_name=b.feed_shows_name, actor=actor))})

    @op("POST", G + "/membership/leave", summary="Leave the group", tags=TAGS,
        errors=[404, 409])
    async def api_leave_group(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        actor = actor_of(request)
        await write(request, lambda db: membership.leave(db, user, gid, actor=actor))
        return json_response({"ok": True})

    @op("POST", G + "/membership/erase", summary="Erase my membership data in this group "
        "(pseudonym, attendance, acceptances)", tags=TAGS, errors=[404, 409])
    async def api_erase_membership(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        actor = actor_of(request)
        return json_response(await write(request, lambda db: membership.erase_self(
            db, user, gid, actor=actor)))

    @op("GET", G + "/membership/attendance", summary="My own attendance in this group",
        tags=TAGS, errors=[404])
    async def api_my_attendance(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        return json_response({"attendance": await read(
            request, lambda db: meetings.my_attendance(db, user, gid))})

    # --- the facilitators' side --------------------------------------------------------------

    @op("GET", G + "/members", summary="Members, join requests and removed people, by "
        "pseudonym (facilitators)", tags=TAGS, errors=[404])
    async def api_members(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        return json_response(await read(request, lambda db: membership.roster(db, user, gid)))

    @op("POST", G + "/members/{member_id:int}/reveal", summary="The account behind a "
        "pseudonym (facilitators; audited)", tags=TAGS, errors=[404])
    async def api_reveal_member(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, mid = group_id(request), member_id(request)
        actor = actor_of(request)
        return json_response(await write(request, lambda db: membership.reveal(
            db, user, gid, mid, actor=actor)))

    @op("POST", G + "/members/{member_id:int}/decision", summary="Approve or decline a join "
        "request (facilitators)", body=DecisionBody, tags=TAGS, errors=[404, 409])
    async def api_decide_request(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, mid = group_id(request), member_id(request)
        b: DecisionBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"member": await write(request, lambda db: membership.
                                                    decide_request(db, user, gid, mid,
                                                                   b.approve, actor=actor))})

    @op("POST", G + "/members/{member_id:int}/remove", summary="Remove a member, or ban "
        "them (facilitators); their meeting links stop working", body=RemoveBody, tags=TAGS,
        errors=[404, 409])
    async def api_remove_member(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, mid = group_id(request), member_id(request)
        b: RemoveBody = request[appkeys.BODY]
        actor = actor_of(request)
        got = await write(request, lambda db: membership.remove(db, user, gid, mid, ban=b.ban,
                                                                actor=actor))
        return json_response({"member": got["member"]})

    @op("POST", G + "/members/{member_id:int}/unban", summary="Lift a ban (facilitators)",
        tags=TAGS, errors=[404, 409])
    async def api_unban_member(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, mid = group_id(request), member_id(request)
        actor = actor_of(request)
        return json_response({"member": await write(request, lambda db: membership.unban(
            db, user, gid, mid, actor=actor))})

    @op("GET", G + "/attendance", summary="Attendance of every meeting that opened "
        "(facilitators)", tags=TAGS, errors=[404])
    async def api_attendance(request: web.Request) -> web.Response:
        user = require_user(request)
        gid = group_id(request)
        return json_response({"meetings": await read(request, lambda db: meetings.attendance(
            db, user, gid))})

    # --- meetings -------------------------------------------------------------------------

    @op("GET", M, summary="One meeting's state: my place in the lobby, or (facilitators) "
        "everyone waiting and admitted", tags=TAGS, errors=[404, 409])
    async def api_meeting(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, key = group_id(request), request.match_info["key"]
        return json_response({"meeting": await read(request, lambda db: meetings.state(
            db, user, gid, key))})

    @op("POST", M + "/lobby", summary="Wait in the meeting's lobby (opens 30 minutes before "
        "the start)", tags=TAGS, errors=[404, 409])
    async def api_arrive(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, key = group_id(request), request.match_info["key"]
        actor = actor_of(request)
        return json_response({"meeting": await write(request, lambda db: meetings.arrive(
            db, user, gid, key, actor=actor))})

    @op("POST", M + "/join", summary="Once admitted: a join link for the meeting's room, "
        "under my pseudonym (409 still_waiting before)", tags=TAGS, errors=[404, 409])
    async def api_meeting_join(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, key = group_id(request), request.match_info["key"]
        actor = actor_of(request)
        got = await write(request, lambda db: meetings.join_link(db, user, gid, key,
                                                                 actor=actor))
        if got is None:
            raise ApiError(409, "still_waiting", "a facilitator has not let you in yet")
        return json_response(_room_link(request, *got))

    @op("POST", M + "/open", summary="Open the meeting (facilitators): creates its voice "
        "room and returns my host link", tags=TAGS, errors=[404, 409])
    async def api_open_meeting(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, key = group_id(request), request.match_info["key"]
        actor = actor_of(request)
        got = await write(request, lambda db: meetings.open_meeting(db, user, gid, key,
                                                                    actor=actor))
        return json_response(_room_link(request, *got))

    @op("POST", M + "/host-link", summary="A fresh host link for an open meeting "
        "(facilitators)", tags=TAGS, errors=[404, 409])
    async def api_host_link(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, key = group_id(request), request.match_info["key"]
        actor = actor_of(request)
        got = await write(request, lambda db: meetings.host_link(db, user, gid, key,
                                                                 actor=actor))
        return json_response(_room_link(request, *got))

    @op("POST", M + "/admit", summary="Admit one person waiting in the lobby (facilitators)",
        body=AdmitBody, tags=TAGS, errors=[404, 409])
    async def api_admit(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, key = group_id(request), request.match_info["key"]
        b: AdmitBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"meeting": await write(request, lambda db: meetings.admit(
            db, user, gid, key, b.member_id, actor=actor))})

    @op("PUT", M + "/auto-admit", summary="Admit members automatically, on or off "
        "(facilitators)", body=SwitchBody, tags=TAGS, errors=[404, 409])
    async def api_auto_admit(request: web.Request) -> web.Response:
        user = require_user(request)
        gid, key = group_id(request), request.match_info["key"]
        b: SwitchBody = request[appkeys.BODY]
        actor = actor_of(request)
        return json_response({"meeting": await write(request, lambda db: meetings.
                                                     set_auto_admit(db, user, gid, key, b.on,
                                                                    actor=actor))})

    @op("POST", M + "/end", summary="End the meeting for everyone (facilitators)", tags=TAGS,
        errors=[404, 409])
    async def api_end_meeting(request: web.Request) -> web.Response:
        user = require_user(request)
        await end_meeting(request, user, group_id(request), request.match_info["key"])
        return json_response({"ok": True})
